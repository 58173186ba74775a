"""The learned latent prior: fitting, sampling, densities, the checkpoint entry, the CLI."""

from __future__ import annotations

import math

import pytest
import torch

from molvae.model import LatentCodec, load_checkpoint, save_checkpoint
from molvae.model.checkpoint import CheckpointError, add_to_checkpoint
from molvae.model.prior import LatentPrior, PriorConfig, fit_prior

D = 4
CONFIGS = [
    PriorConfig("flow", flow="maf", transforms=3, hidden=32, epochs=30, batch_size=128, lr=1e-2),
    PriorConfig("flow", flow="nsf", transforms=2, hidden=32, epochs=20, batch_size=128, lr=1e-2),
    PriorConfig("gmm", components=2),
    PriorConfig("gmm", components=2, covariance="diag"),
    PriorConfig("posterior", components=100, smoothing=2.0),
]


@pytest.fixture(scope="module")
def codes() -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means in two clusters at +-3 along every axis, posterior std 0.1."""
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([3.0, -3.0]).repeat_interleave(300).unsqueeze(1).expand(-1, D)
    mu = centers + 0.3 * torch.randn(600, D, generator=g)
    return mu, torch.full((600, D), 2 * math.log(0.1))


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: f"{c.kind}-{c.flow}-{c.covariance}")
def fitted(request, codes) -> LatentPrior:
    return fit_prior(*codes, request.param)


def test_samples_have_the_right_shape_and_repeat_with_a_seed(fitted) -> None:
    a = fitted.sample(50, generator=torch.Generator().manual_seed(1))
    b = fitted.sample(50, generator=torch.Generator().manual_seed(1))
    c = fitted.sample(50, generator=torch.Generator().manual_seed(2))
    assert a.shape == (50, D) and a.dtype == torch.float32 and fitted.dim == D
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(a).all()


def test_log_prob_is_higher_on_training_codes_than_far_away(fitted, codes) -> None:
    mu, _ = codes
    near = fitted.log_prob(mu[::50])
    far = fitted.log_prob(torch.zeros(5, D) + torch.tensor([0.0, 0.0, 20.0, -20.0]))
    between = fitted.log_prob(torch.zeros(3, D))  # the hole between the two clusters
    assert near.shape == (12,) and torch.isfinite(near).all()
    assert near.min() > far.max() + 10 and near.min() > between.max()


def test_samples_land_near_the_training_codes(fitted, codes) -> None:
    z = fitted.sample(400, generator=torch.Generator().manual_seed(0))
    dist = torch.cdist(z, codes[0]).min(dim=1).values
    assert dist.median() < 1.5  # the hole at the origin is 6 away from both clusters


def test_fitting_repeats_with_the_seed(codes) -> None:
    for cfg in CONFIGS:
        a, b = fit_prior(*codes, cfg), fit_prior(*codes, cfg)
        assert a.state.keys() == b.state.keys()
        assert all(torch.allclose(a.state[k].float(), b.state[k].float()) for k in a.state)


def test_temperature_narrows_the_samples(codes) -> None:
    prior = fit_prior(*codes, PriorConfig("gmm", components=2))
    cold = prior.with_temperature(0.2).sample(500, generator=torch.Generator().manual_seed(0))
    warm = prior.sample(500, generator=torch.Generator().manual_seed(0))
    spread = lambda z: (z.abs() - 3).abs().mean()  # noqa: E731
    assert spread(cold) < 0.5 * spread(warm)


def test_max_scale_smooths_only_the_tight_dimensions() -> None:
    mu = torch.zeros(3, 2)
    sigma = torch.tensor([[0.1, 1.0], [0.4, 0.9], [0.05, 1.2]])
    cfg = PriorConfig("posterior", components=3, smoothing=3.0, max_scale=1.0)
    scales = fit_prior(mu, 2 * sigma.log(), cfg).state["scales"]
    expected = torch.minimum(3 * sigma, sigma.clamp_min(1.0))  # never wider than N(0, 1) ...
    assert torch.allclose(scales.sort(0).values, expected.sort(0).values)  # ... unless sigma is
    uncapped = PriorConfig("posterior", components=3, smoothing=3.0, max_scale=0.0)
    plain = fit_prior(mu, 2 * sigma.log(), uncapped)
    assert torch.allclose(plain.state["scales"].sort(0).values, (3 * sigma).sort(0).values)


def test_round_trip_through_torch_weights_only(fitted, codes, tmp_path) -> None:
    path = tmp_path / "prior.pt"
    torch.save(fitted.to_dict(), path)
    back = LatentPrior.from_dict(torch.load(path, weights_only=True))
    assert back.kind == fitted.kind and back.config == fitted.config
    z = codes[0][:7]
    assert torch.allclose(back.log_prob(z), fitted.log_prob(z))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(back.sample(5, g()), fitted.sample(5, g()))


def test_bad_configs_and_entries_say_what_is_wrong(fitted) -> None:
    with pytest.raises(ValueError, match="unknown prior kind"):
        PriorConfig("vae")
    with pytest.raises(ValueError, match="flow must be"):
        PriorConfig("flow", flow="realnvp")
    with pytest.raises(ValueError, match="covariance"):
        PriorConfig("gmm", covariance="spherical")
    with pytest.raises(ValueError, match="n x d"):
        fit_prior(torch.zeros(1, 3), torch.zeros(1, 3))
    entry = fitted.to_dict()
    with pytest.raises(ValueError, match="malformed"):
        LatentPrior.from_dict({"kind": entry["kind"]})
    with pytest.raises(ValueError, match="does not match"):
        LatentPrior.from_dict({**entry, "kind": "other"})
    with pytest.raises(ValueError, match="lacks"):
        LatentPrior.from_dict({**entry, "state": {}})


# ---------------------------------------------------------------- checkpoint and codec


@pytest.fixture(scope="module")
def tiny_codec_parts():
    from conftest import ZINC_SMALL

    from molvae.data.tokens import Vocab
    from molvae.model import MolVAE, VAEConfig

    vocab = Vocab.build(ZINC_SMALL)
    torch.manual_seed(0)
    model = MolVAE(VAEConfig(len(vocab), emb_dim=8, enc_hidden=16, latent_dim=D, dec_hidden=16,
                             dec_layers=1, max_len=60))  # fmt: skip
    return model.eval(), vocab


def test_checkpoint_round_trip_with_prior(tiny_codec_parts, codes, tmp_path) -> None:
    model, vocab = tiny_codec_parts
    prior = fit_prior(*codes, PriorConfig("gmm", components=2))
    path = save_checkpoint(tmp_path / "m.pt", model, vocab.tokens, prior=prior)
    raw = torch.load(path, weights_only=True)
    assert raw["prior"]["kind"] == "gmm" and "domain" not in raw
    ck = load_checkpoint(path)
    assert ck.domain is None and ck.training_domain() is None
    back = ck.latent_prior()
    assert torch.allclose(back.log_prob(codes[0][:5]), prior.log_prob(codes[0][:5]))
    codec = LatentCodec.from_checkpoint(path, device="cpu", grammar=None)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(codec.sample_latents(6, generator=g()), prior.sample(6, generator=g()))
    assert torch.equal(codec.sample_latents(6, "learned", g()), prior.sample(6, generator=g()))
    gauss = codec.sample_latents(6, "gaussian", g())
    assert torch.equal(gauss, model.sample_prior(6, generator=g()))
    z, smiles = codec.sample(3, strategy="sample", seed=0, prior="learned")
    assert torch.equal(z, prior.sample(3, generator=g())) and len(smiles) == 3


def test_checkpoint_without_prior_keeps_working(tiny_codec_parts, tmp_path) -> None:
    model, vocab = tiny_codec_parts
    path = save_checkpoint(tmp_path / "plain.pt", model, vocab.tokens)
    assert set(torch.load(path, weights_only=True)) >= {"format", "config", "vocab"}
    codec = LatentCodec.from_checkpoint(path, device="cpu")
    assert codec.prior is None and codec.domain is None
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(codec.sample_latents(4, generator=g()), model.sample_prior(4, generator=g()))
    z, _ = codec.sample(2, seed=0)  # as before the prior existed
    assert torch.equal(z, model.sample_prior(2, generator=g()))
    with pytest.raises(ValueError, match=r"no learned prior.*fit-prior"):
        codec.sample_latents(4, "learned")
    with pytest.raises(ValueError, match="unknown prior"):
        codec.sample_latents(4, "uniform")


def test_add_to_checkpoint_keeps_every_other_entry(tiny_codec_parts, codes, tmp_path) -> None:
    model, vocab = tiny_codec_parts
    src = save_checkpoint(tmp_path / "a.pt", model, vocab.tokens, meta={"epochs": 3},
                          train_state={"epoch": 3})  # fmt: skip
    prior = fit_prior(*codes, PriorConfig("posterior", components=10))
    dst = add_to_checkpoint(src, tmp_path / "b.pt", prior=prior)
    a, b = torch.load(src, weights_only=True), torch.load(dst, weights_only=True)
    assert "prior" not in a and b["prior"]["kind"] == "posterior"
    assert b["meta"]["epochs"] == 3 and b["train_state"] == {"epoch": 3}
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_a_damaged_prior_entry_is_one_clear_error(tiny_codec_parts, codes, tmp_path) -> None:
    model, vocab = tiny_codec_parts
    path = save_checkpoint(tmp_path / "m.pt", model, vocab.tokens)
    raw = torch.load(path, weights_only=True)
    raw["prior"] = {"kind": "gmm", "config": {"kind": "gmm"}, "state": {}}
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"m\.pt.*prior state lacks"):
        LatentCodec.from_checkpoint(path, device="cpu")
    raw["prior"] = [1, 2]
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="'prior' is not a dict"):
        load_checkpoint(path)


# ---------------------------------------------------------------- the fit-prior run and CLI


@pytest.fixture(scope="module")
def fitted_model(tiny_model, tmp_path_factory):
    """``molvae fit-prior`` on the tiny model and 300 bundled ZINC molecules (gmm, fast)."""
    from molvae.cli import main
    from molvae.data import read_smiles

    base = tmp_path_factory.mktemp("fit-prior")
    data = base / "train.smi"
    data.write_text("\n".join(read_smiles("zinc")[:300]) + "\n")
    out = base / "with_prior.pt"
    args = ["fit-prior", str(tiny_model), "--out", str(out), "--data", str(data),
            "--kind", "gmm", "--components", "3", "--n-molecules", "200"]  # fmt: skip
    assert main(args) == 0
    return out


def test_fit_prior_cli_writes_prior_and_domain(fitted_model, tiny_model, capsys) -> None:
    raw = torch.load(fitted_model, weights_only=True)
    assert raw["prior"]["kind"] == "gmm" and raw["prior"]["config"]["components"] == 3
    assert raw["domain"]["n_molecules"] == 300 and raw["domain"]["charges"] == [0]
    before = torch.load(tiny_model, weights_only=True)
    assert "prior" not in before  # the input model is left alone
    codec = LatentCodec.from_checkpoint(fitted_model, device="cpu")
    assert codec.prior is not None and codec.prior.dim == codec.latent_dim


def test_sample_cli_prior_flag(fitted_model, tiny_model, tmp_path, capsys) -> None:
    from molvae.cli import main

    for model, prior, code in ((fitted_model, "learned", 0), (fitted_model, "gaussian", 0),
                               (tiny_model, "auto", 0), (tiny_model, "learned", 2)):  # fmt: skip
        out = tmp_path / f"{prior}.csv"
        args = ["sample", "--model", str(model), "-n", "4", "--prior", prior, "--out", str(out)]
        assert main(args) == code
    err = capsys.readouterr().err
    assert "prior: learned" in err and "prior: N(0, I)" in err
    assert "no learned prior" in err


def test_fit_prior_refuses_to_overwrite_its_input(tiny_model, capsys) -> None:
    from molvae.cli import main

    assert main(["fit-prior", str(tiny_model), "--out", str(tiny_model), "--no-domain"]) == 2
    assert "is the input model" in capsys.readouterr().err


# ---------------------------------------------------------------- pipelines/fit_prior.py


def test_pipeline_candidates_and_choice() -> None:
    import pandas as pd
    from conftest import load_pipeline

    mod = load_pipeline("fit_prior")
    assert mod.parse_candidate("gaussian") is None
    cfg = mod.parse_candidate("flow:flow=nsf,hidden=64,temperature=0.9")
    assert (cfg.kind, cfg.flow, cfg.hidden, cfg.temperature) == ("flow", "nsf", 64, 0.9)
    with pytest.raises(ValueError, match="no field 'width'"):
        mod.parse_candidate("flow:width=3")
    for spec in mod.CANDIDATES + mod.SMOKE:
        mod.parse_candidate(spec)  # every built-in candidate is a valid config
    table = pd.DataFrame(
        {
            "candidate": ["gaussian", "a", "b", "c"],
            "novel": [1.0, 0.4, 0.85, 0.9],
            "fcd": [7.0, 3.9, 4.8, 5.0],
            "_prior": [None, "pa", "pb", "pc"],
        }
    )
    assert mod.choose(table, 0.8)["candidate"] == "b"  # the memorizing "a" is not novel enough
    assert mod.choose(table, 0.95) is None  # N(0, I) is the baseline, never the choice


@pytest.mark.slow
def test_pipeline_smoke(tiny_model, tmp_path) -> None:
    import pandas as pd
    from conftest import load_pipeline

    mod = load_pipeline("fit_prior")
    out, results = tmp_path / "model.pt", tmp_path / "results"
    args = ["--smoke", "--model", str(tiny_model), "--out", str(out), "--results", str(results)]
    assert mod.main(args) == 0
    table = pd.read_csv(results / "results.csv")
    assert table["candidate"].tolist() == mod.SMOKE
    assert {"valid", "unique", "novel", "fcd", "heldout_logp"} <= set(table.columns)
    assert table["valid"].between(0, 1).all() and "chosen" in (results / "results.md").read_text()
    if out.exists():  # a candidate passed the novelty bar: the checkpoint has prior and domain
        raw = torch.load(out, weights_only=True)
        assert raw["prior"]["kind"] in ("posterior", "gmm", "flow") and raw["domain"]["n_molecules"]
