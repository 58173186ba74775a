"""End-to-end runs: a campaign is pinned to the model bytes and decoding it ran with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from molvae.bo import BOConfig
from molvae.data import Vocab
from molvae.io import file_sha256
from molvae.model import MolVAE, VAEConfig, save_checkpoint
from molvae.runs import OptimizeRunConfig, optimize

SIZES = {"emb_dim": 8, "enc_hidden": 16, "latent_dim": 4, "dec_hidden": 16, "dec_layers": 1}
# The pool is charged (the default): 4 calls for the initial design, 2 for one batch.
TINY_BO = BOConfig(budget=6, batch_size=2, max_iterations=1, init_pool=4, mc_samples=16,
                   num_restarts=1, raw_samples=16, acq_maxiter=5, n_decode_attempts=1)  # fmt: skip


def _checkpoint(path: Path, smiles: list[str], seed: int) -> Path:
    vocab = Vocab.build(smiles)
    torch.manual_seed(seed)
    model = MolVAE(VAEConfig(len(vocab), max_len=60, **SIZES))
    return save_checkpoint(path, model, vocab.tokens)


@pytest.fixture
def setup(tmp_path, zinc_small):
    data = tmp_path / "pool.smi"
    data.write_text("\n".join(zinc_small) + "\n")
    model = _checkpoint(tmp_path / "a.pt", zinc_small, seed=0)
    run = OptimizeRunConfig(model=str(model), objective="qed", data=str(data),
                            out_dir=str(tmp_path / "camp"), device="cpu")  # fmt: skip
    optimize(run, TINY_BO, progress=False)
    return run, model, tmp_path


def test_config_and_report_name_the_model_by_path_and_hash(setup) -> None:
    run, model, _ = setup
    meta = json.loads((Path(run.out_dir) / "config.json").read_text())["metadata"]
    assert meta["model_path"] == str(model.resolve())
    assert meta["model_sha256"] == meta["pinned"]["model_sha256"] == file_sha256(model)
    summary = (Path(run.out_dir) / "report" / "summary.md").read_text()
    assert file_sha256(model) in summary and str(model.resolve()) in summary


def test_same_bytes_under_another_path_resume(setup) -> None:
    run, model, tmp_path = setup
    copy = shutil.copy(model, tmp_path / "elsewhere.pt")
    bigger = BOConfig(**{**TINY_BO.__dict__, "budget": 8, "max_iterations": 2})
    result = optimize(OptimizeRunConfig(**{**run.__dict__, "model": str(copy)}), bigger,
                      progress=False)  # fmt: skip
    assert result.history["iteration"].max() == 2


def test_other_model_bytes_or_decoding_are_refused(setup, zinc_small) -> None:
    run, model, _ = setup
    before = (Path(run.out_dir) / "evaluations.csv").read_bytes()
    _checkpoint(model, zinc_small, seed=1)  # the same file name, other weights
    with pytest.raises(ValueError, match="model_sha256") as err:
        optimize(run, TINY_BO, progress=False)
    assert "\n" not in str(err.value)
    _checkpoint(model, zinc_small, seed=0)
    with pytest.raises(ValueError, match=r"constrained: True -> False.*grammar"):
        optimize(OptimizeRunConfig(**{**run.__dict__, "constrained": False}), TINY_BO,
                 progress=False)  # fmt: skip
    assert (Path(run.out_dir) / "evaluations.csv").read_bytes() == before


def test_constraints_are_pinned_and_validated_before_the_model_loads(setup) -> None:
    run, _, _ = setup
    with pytest.raises(ValueError, match=r"constraints: \[\] -> \['filters'\]"):
        optimize(OptimizeRunConfig(**{**run.__dict__, "constraints": ["filters"]}), TINY_BO,
                 progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="must read"):
        optimize(OptimizeRunConfig(**{**run.__dict__, "model": "missing.pt",
                                      "constraints": ["mw=3"]}), TINY_BO)  # fmt: skip


# -- the latent prior: random search, the latent box, pinned ---------------------------------
class _LearnedPrior:
    """A codec with a learned prior (as `molvae fit-prior` gives one): N(1, 0.25^2 I)."""

    def __init__(self, codec):
        self._codec, self.prior, self.calls = codec, object(), []

    def __getattr__(self, name):
        return getattr(self._codec, name)

    def sample_latents(self, n, prior="auto", generator=None):
        self.calls.append(prior)
        return 1.0 + 0.25 * torch.randn(n, self._codec.latent_dim, generator=generator)


def test_prior_resolution_and_the_gaussian_sampler(setup) -> None:
    from molvae.model import LatentCodec
    from molvae.runs.callables import prior_sampler, resolve_prior

    _, model, _ = setup
    codec = LatentCodec.from_checkpoint(model, device="cpu")
    assert resolve_prior(codec, "auto") == resolve_prior(codec, "gaussian") == "gaussian"
    with pytest.raises(ValueError, match="no learned prior") as err:
        resolve_prior(codec, "learned")
    assert "\n" not in str(err.value)
    z = prior_sampler(codec, "gaussian")(5, 3)
    expected = torch.randn(5, SIZES["latent_dim"], generator=torch.Generator().manual_seed(3))
    assert z.dtype == np.float64 and np.allclose(z, expected.double().numpy())
    learned = _LearnedPrior(codec)
    assert resolve_prior(learned, "auto") == "learned" and resolve_prior(learned, "gaussian")
    assert abs(prior_sampler(learned, "learned")(2000, 0).mean() - 1.0) < 0.05
    assert learned.calls == ["learned"]


def test_learned_prior_sets_the_box_and_is_pinned(setup, monkeypatch) -> None:
    import molvae.runs.optimizing as optimizing

    run, _, tmp_path = setup
    load = optimizing.LatentCodec.from_checkpoint
    monkeypatch.setattr(optimizing.LatentCodec, "from_checkpoint",
                        lambda *a, **k: _LearnedPrior(load(*a, **k)))  # fmt: skip
    out = str(tmp_path / "learned")
    learned = OptimizeRunConfig(**{**run.__dict__, "out_dir": out, "method": "random"})
    result = optimize(learned, TINY_BO, progress=False)
    stored = json.loads((Path(out) / "config.json").read_text())
    assert (
        stored["config"]["bounds"] == "prior" and stored["metadata"]["pinned"]["prior"] == "learned"
    )
    new = result.history[result.history["iteration"] > 0]
    z = new[[f"z{i}" for i in range(SIZES["latent_dim"])]].to_numpy(float)
    assert abs(z.mean() - 1.0) < 0.5  # random search draws from the learned prior
    with pytest.raises(ValueError, match="started with other settings"):
        optimize(OptimizeRunConfig(**{**learned.__dict__, "prior": "gaussian"}), TINY_BO,
                 progress=False)  # fmt: skip


def test_checkpoint_with_a_fitted_prior_takes_its_box_from_it(setup) -> None:
    """End to end with `molvae fit-prior`'s checkpoint: "auto" picks the learned prior, the box
    holds its samples, and a resume with --prior gaussian is refused."""
    from molvae.model.prior import PriorConfig
    from molvae.runs.priors import fit_prior_run

    run, model, tmp_path = setup
    fitted = tmp_path / "with_prior.pt"
    config = PriorConfig(kind="gmm", components=2, covariance="diag")
    fit_prior_run(model, fitted, data=run.data, config=config, n_molecules=8, domain=False)
    out = OptimizeRunConfig(**{**run.__dict__, "model": str(fitted),
                               "out_dir": str(tmp_path / "fitted")})  # fmt: skip
    optimize(out, TINY_BO, progress=False)
    stored = json.loads((Path(out.out_dir) / "config.json").read_text())
    assert stored["config"]["bounds"] == "prior"
    assert stored["metadata"]["pinned"]["prior"] == stored["metadata"]["prior"] == "learned"
    with pytest.raises(ValueError, match="prior: 'learned' -> 'gaussian'"):
        optimize(OptimizeRunConfig(**{**out.__dict__, "prior": "gaussian"}), TINY_BO,
                 progress=False)  # fmt: skip


def test_cli_prints_why_the_campaign_stopped(setup, capsys) -> None:
    from molvae.cli import main

    run, model, tmp_path = setup
    args = ["optimize", "--model", str(model), "--data", run.data, "--objective", "qed",
            "--budget", "4", "-q", "2", "--iterations", "1", "--device", "cpu",
            "--no-progress", "--out", str(tmp_path / "cli")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    # --budget 4: a charged pool of max(1, 4 // 4) = 1 call, then one batch of 2
    assert "stopped: max_iterations reached: 1 iterations, 3 of 4 oracle calls" in out or (
        "stopped: budget reached: 4 of 4 oracle calls in 1 iterations" in out
    )
    last = out.strip().splitlines()[-1]
    assert last.startswith("oracle calls: ") and "of 4 (pool 1, proposals " in last, last
    assert last.endswith("; free: 0")
    assert main([*args[:-2], "--prior", "learned", "--out", str(tmp_path / "cli2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no learned prior" in err and len(err.splitlines()) == 1
