"""A trained model's vocabulary grows: it keeps what it learned, fine-tuning learns the rest."""

from __future__ import annotations

import json

import pytest
import torch

from molvae.model import MolVAE, load_checkpoint
from molvae.model.vocab_extension import extend_vocabulary, merged_tokens
from molvae.runs import TrainRunConfig, train_on_smiles
from molvae.train import TrainConfig


def test_merged_tokens_keeps_the_first_order() -> None:
    assert merged_tokens(["a", "b"], ["c", "b", "d"]) == ["a", "b", "c", "d"]


def test_known_tokens_keep_their_rows_and_new_ones_start_unlikely(tiny_model) -> None:
    ck = load_checkpoint(tiny_model)
    old = ck.vocab_tokens
    # a new token in the middle and the known data tokens reversed: rows move by name
    specials, data = old[:4], old[4:]
    new_tokens = [*specials, "[NH3+]", *reversed(data)]
    grown = extend_vocabulary(ck, new_tokens)
    assert grown.vocab_tokens == new_tokens and grown.config.vocab_size == len(old) + 1
    assert grown.train_state is None
    for key in ("embedding.weight", "out.weight", "out.bias"):
        for t in old:
            torch.testing.assert_close(
                grown.state_dict[key][new_tokens.index(t)], ck.state_dict[key][old.index(t)]
            )
    before = MolVAE.from_checkpoint(ck, "cpu")
    after = MolVAE.from_checkpoint(grown, "cpu")
    torch.manual_seed(0)
    z = torch.randn(3, ck.config.latent_dim)
    h_old = before.init_hidden(z)
    h_new = after.init_hidden(z)
    torch.testing.assert_close(h_old, h_new)
    # the output layer on the same hidden state: known tokens agree; the new token's logit is
    # the lowest trained data-token bias whatever the state, until training moves it
    hid = torch.randn(5, ck.config.dec_hidden)
    lo, ln = before.out(hid), after.out(hid)
    perm = [new_tokens.index(t) for t in old]
    torch.testing.assert_close(ln[:, perm], lo)
    new_row = ln[:, new_tokens.index("[NH3+]")]
    lowest = ck.state_dict["out.bias"][4:].min()
    torch.testing.assert_close(new_row, lowest.expand(5))


def test_extension_refuses_to_lose_tokens(tiny_model) -> None:
    ck = load_checkpoint(tiny_model)
    with pytest.raises(ValueError, match="lacks tokens"):
        extend_vocabulary(ck, ck.vocab_tokens[:-1])


def test_fine_tuning_on_new_tokens_keeps_every_molecule(tiny_model, tmp_path) -> None:
    charged = ["C[NH3+]", "CC(=O)[O-]", "CC[NH3+]", "OCC(=O)[O-]", "c1ccccc1C[NH3+]", "CCO"] * 4
    data = tmp_path / "charged.smi"
    data.write_text("\n".join(charged) + "\n")
    run = TrainRunConfig(data=str(data), out_dir=str(tmp_path / "ft"), init_from=str(tiny_model),
                         max_val=4)  # fmt: skip
    cfg = TrainConfig(epochs=1, batch_size=8, kl_schedule="constant", val_recon_samples=4)
    result = train_on_smiles(run, cfg, progress=False)
    tokens = load_checkpoint(result.best_path).vocab_tokens
    assert {"[NH3+]", "[O-]"} <= set(tokens)
    old = load_checkpoint(tiny_model).vocab_tokens
    assert tokens[: len(old)] == old
    run_info = json.loads((tmp_path / "ft" / "run.json").read_text())
    assert run_info.get("unknown_tokens", 0) == 0
