"""The training domain: what it records, the reasons it gives, and the CLI's domain column."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from molvae.model.domain import TrainingDomain, compute_domain, domain_summary

# hand-picked: a quaternary ammonium, an iodobenzene, a C60-sized chain, and a ZINC molecule
CHARGED = "C[N+](C)(C)CCOc1ccc(C(=O)Nc2ccccc2)cc1"
IODINE = "Ic1ccc(C(=O)Nc2ccccc2)cc1"
HUGE = "CC(=O)N" + "CCOCCN" * 12 + "C(=O)C"
INSIDE = "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1ccnc1"


@pytest.fixture(scope="module")
def domain(request) -> TrainingDomain:
    from conftest import ZINC_SMALL

    return compute_domain([*ZINC_SMALL, "not a smiles"], extra={"data": "fixture"})


def test_domain_records_atoms_charges_tokens_and_ranges(domain) -> None:
    assert domain.elements == ["Br", "C", "Cl", "N", "O", "S"]
    assert domain.charges == [0] and domain.n_molecules == 8  # the bad string is skipped
    assert domain.max_tokens == 36  # COc1ccc(CC(=O)N2CCN(c3ncccn3)CC2)cc1
    assert domain.ranges["heavy_atoms"] == [13, 23]  # aspirin .. two of 23
    assert domain.ranges["mw"][0] == pytest.approx(180.159, abs=1e-3)  # aspirin
    assert domain.ranges["rings"] == [1.0, 3.0] and domain.ranges["max_ring_size"] == [6.0, 6.0]
    assert domain.ranges["rotatable_bonds"] == [0, 6]  # caffeine .. the diol ester


def test_worker_processes_give_the_same_domain(domain) -> None:
    from conftest import ZINC_SMALL

    again = compute_domain([*ZINC_SMALL, "not a smiles"], extra={"data": "fixture"}, n_jobs=2)
    assert again == domain


def test_reasons_on_hand_picked_molecules(domain) -> None:
    assert domain.check(INSIDE) == ""
    assert domain.check(CHARGED) == "charge_outside_training:+1"
    assert domain.check(IODINE) == "atom_outside_training:I"  # MW 323.1, inside
    huge = domain.check(HUGE).split(";")
    assert huge == [
        "tokens_above_training_max:85 > 36",
        "heavy_atoms_above_training_max:79 > 23",
        "mw_above_training_max:1146.6 > 336.8",
        "logp_below_training_min:-5.06 < -1.03",
        "rings_below_training_min:0 < 1",
        "max_ring_size_below_training_min:0 < 6",
        "rotatable_bonds_above_training_max:72 > 6",
    ]
    assert domain.check("C1CC") == "unparsable"


def test_domain_round_trips_as_plain_types(domain, tmp_path) -> None:
    path = tmp_path / "d.pt"
    torch.save(domain.to_dict(), path)
    back = TrainingDomain.from_dict(torch.load(path, weights_only=True))
    assert back == domain
    with pytest.raises(ValueError, match="malformed"):
        TrainingDomain.from_dict({"elements": ["C"]})
    with pytest.raises(ValueError, match="no parsable molecule"):
        compute_domain(["xx", ""])


def test_summary_line() -> None:
    statuses = ["", "charge_outside_training:+1", "atom_outside_training:I;mw_above_training_max:"
                "412.0 > 350.0", "", "unparsable", "charge_outside_training:-1"]  # fmt: skip
    assert domain_summary(statuses) == (
        "3 of 6 molecules lie outside the training domain: charge_outside_training (2), "
        "atom_outside_training (1), mw_above_training_max (1)"
    )
    assert domain_summary(["", ""]) == ""


def test_codec_encode_reports_domain(domain) -> None:
    from conftest import ZINC_SMALL

    from molvae.data.tokens import Vocab
    from molvae.model import LatentCodec, MolVAE, VAEConfig

    vocab = Vocab.build(ZINC_SMALL)
    model = MolVAE(VAEConfig(len(vocab), emb_dim=8, enc_hidden=16, latent_dim=4, dec_hidden=16,
                             dec_layers=1, max_len=60))  # fmt: skip
    batch = [INSIDE, CHARGED, "", HUGE]
    plain = LatentCodec(model, vocab).encode(batch)
    assert plain.domain == ["", "", "", ""]  # no domain known: nothing claimed
    res = LatentCodec(model, vocab, domain=domain).encode(batch)
    assert res.domain[:3] == ["", "charge_outside_training:+1", ""]
    assert res.domain[3].startswith("tokens_above_training_max:85 > 36;")
    assert res.ok.tolist() == [True, False, False, False]  # [N+] is no token; HUGE too long
    assert res.logvar is not None and torch.isfinite(res.logvar[0]).all()
    assert torch.isnan(res.logvar[1:]).all()
    assert LatentCodec(model, vocab, domain=domain).encode(batch, check_domain=False).domain == [
        "", "", "", ""
    ]  # fmt: skip


@pytest.fixture(scope="module")
def domain_model(tiny_model, tmp_path_factory):
    """The tiny model with the domain of its 400 training molecules (bundled ZINC) added."""
    from molvae.data import read_smiles
    from molvae.model.checkpoint import add_to_checkpoint

    out = tmp_path_factory.mktemp("domain") / "model.pt"
    return add_to_checkpoint(tiny_model, out, domain=compute_domain(read_smiles("zinc")[:400]))


def _input_file(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("\n".join([INSIDE, CHARGED, IODINE, "not_a_smiles", HUGE]) + "\n")
    return path


def test_encode_cli_status_column_and_summary(domain_model, tiny_model, tmp_path, capsys) -> None:
    from molvae.cli import main

    out = tmp_path / "z.csv"
    assert main(["encode", str(_input_file(tmp_path)), "--model", str(domain_model),
                 "--out", str(out)]) == 0  # fmt: skip
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns[:4]) == ["smiles", "canonical", "status", "domain"]
    dom = df["domain"].tolist()
    assert dom[0] == "" and dom[1] == "charge_outside_training:+1" and dom[3] == ""
    assert dom[2].startswith("atom_outside_training:I") and "tokens_above" in dom[4]
    assert df["status"][3] == "invalid"
    err = capsys.readouterr().err
    assert "3 of 5 molecules lie outside the training domain: " in err
    assert "charge_outside_training (1)" in err and "atom_outside_training (1)" in err
    # a checkpoint without a domain says so, and claims nothing
    assert main(["encode", str(_input_file(tmp_path)), "--model", str(tiny_model),
                 "--out", str(tmp_path / "n.npy")]) == 0  # fmt: skip
    assert "training domain unknown" in capsys.readouterr().err
    status = pd.read_csv(tmp_path / "n.status.csv", keep_default_na=False)
    assert status["domain"].tolist() == [""] * 5


def test_reconstruct_cli_status_column(domain_model, tmp_path, capsys) -> None:
    from molvae.cli import main

    out = tmp_path / "rec.csv"
    assert main(["reconstruct", str(_input_file(tmp_path)), "--model", str(domain_model),
                 "--unconstrained", "--out", str(out)]) == 0  # fmt: skip
    df = pd.read_csv(out, keep_default_na=False)
    assert "domain" in df.columns and df["domain"][1] == "charge_outside_training:+1"
    assert "3 of 5 molecules lie outside the training domain" in capsys.readouterr().err


def test_fit_prior_records_the_domain_of_other_data(tiny_model, tmp_path) -> None:
    """A model trained on a mix: the prior follows one part, the domain covers the whole mix."""
    from conftest import ZINC_SMALL

    from molvae.model import load_checkpoint
    from molvae.model.prior import PriorConfig
    from molvae.runs.priors import fit_prior_run

    part, extra = tmp_path / "part.smi", tmp_path / "extra.smi"
    part.write_text("\n".join(ZINC_SMALL) + "\n")
    extra.write_text(IODINE + "\n")
    out = tmp_path / "mix.pt"
    res = fit_prior_run(tiny_model, out, data=str(part), config=PriorConfig("gmm", components=2),
                        n_molecules=None, domain_data=[str(part), str(extra)])  # fmt: skip
    dom = load_checkpoint(out).training_domain()
    assert res.n_molecules == len(ZINC_SMALL)  # the prior saw only the part
    assert dom.n_molecules == len(ZINC_SMALL) + 1 and "I" in dom.elements
    assert dom.check(IODINE) == "" and dom.extra["data"] == f"{part} + {extra}"
