"""Property-guided latent ascent: the step, the head's objectives, the campaign and its resume."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from bo_fakes import DIM, Crash, Objective, canonical, decode, encode, prior
from conftest import TINY
from rdkit import Chem

from molvae.bo import BOConfig, GradientConfig, ascent_path, ascent_step, gradient_campaign
from molvae.chem.properties import logp, penalized_logp, penalized_logp_raw, sa_score
from molvae.model import MolVAE, VAEConfig
from molvae.model.property_head import PropertyScale
from molvae.runs.gradient import head_predictor

POOL = ["CCCC", "CCCCCO", "CCCCCCF", "CCCCCCCC", "FCCCCCC(=O)O", "OCCCCCCCC", "CCCCCCCCCCN"]
# the ascent's subject is not the accounting: the pool scored free, 5 of its 7 the design
FREE_POOL = dict(n_init=5, init_pool=7, init_top=5, free_pool=True)


def tiny_head_model(names=("logp", "sa", "qed", "plogp"), seed: int = 0) -> MolVAE:
    torch.manual_seed(seed)
    cfg = VAEConfig(vocab_size=12, emb_dim=8, enc_hidden=8, latent_dim=6, dec_hidden=8,
                    dec_layers=1, property_dim=len(names))  # fmt: skip
    model = MolVAE(cfg).eval()
    model.property_scale = PropertyScale(list(names), [1.0] * len(names), [2.0] * len(names))
    return model


def test_ascent_raises_the_heads_prediction_and_stays_in_the_box() -> None:
    model = tiny_head_model()
    predict = head_predictor(model, "qed")
    z0 = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
    path = ascent_path(z0, predict, GradientConfig(steps=30, step_size=0.05))
    assert path.shape == (31, 16, 6)
    with torch.no_grad():
        before, after = predict(path[0].float()), predict(path[-1].float())
    assert bool((after > before).all())
    # each normalized step moves exactly step_size (no box here)
    steps = (path[1:] - path[:-1]).norm(dim=-1)
    assert torch.allclose(steps, torch.full_like(steps, 0.05), atol=1e-6)
    box = torch.tensor([[-0.1] * 6, [0.1] * 6], dtype=torch.float64)
    z = ascent_step(z0, predict, GradientConfig(step_size=5.0), box)
    assert bool(((z >= -0.1) & (z <= 0.1)).all())


def test_a_zero_gradient_leaves_the_point_where_it_is() -> None:
    z0 = torch.randn(3, 4)
    z = ascent_step(z0, lambda x: 0.0 * x.sum(dim=1), GradientConfig(step_size=1.0))
    assert torch.equal(z, z0.double())


def test_head_predictor_refuses_in_one_sentence() -> None:
    cfg = VAEConfig(vocab_size=12, emb_dim=8, enc_hidden=8, latent_dim=6, dec_hidden=8)
    with pytest.raises(ValueError, match="needs a model with a property head"):
        head_predictor(MolVAE(cfg), "qed")
    with pytest.raises(ValueError, match=r"not objective 'tpsa'.*\['logp', 'sa', 'qed'"):
        head_predictor(tiny_head_model(), "tpsa")
    with pytest.raises(ValueError, match="not objective 'plogp_raw'"):
        head_predictor(tiny_head_model(("logp", "qed")), "plogp_raw")


class _Constant(torch.nn.Module):
    def __init__(self, values: list[float]):
        super().__init__()
        self.values = torch.tensor([values], dtype=torch.float64)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.values.expand(len(z), -1) + 0.0 * z[:, :1]


@pytest.mark.parametrize("smiles", ["CCOc1ccccc1", "C1CCCCCCCC1CC(=O)[O-]", "CC(C)Cc1ccc2c(c1)CC2"])
def test_plogp_raw_from_the_heads_properties_is_exact_for_exact_values(smiles) -> None:
    """The head's logp, -SA and standardized plogp give logP - SA - ring penalty exactly."""
    mol = Chem.MolFromSmiles(smiles)
    values = [logp(mol), -sa_score(mol), penalized_logp(mol)]
    model = tiny_head_model(("logp", "sa", "plogp"))
    model.prop_head = _Constant(values)
    model.property_scale = PropertyScale(["logp", "sa", "plogp"], [0.0] * 3, [1.0] * 3)
    pred = head_predictor(model, "plogp_raw")(torch.zeros(2, 6))
    assert pred.tolist() == pytest.approx([penalized_logp_raw(mol)] * 2, abs=1e-9)


def _linear(z: torch.Tensor) -> torch.Tensor:
    return z[:, 0] - 0.5 * z[:, 2]  # the fakes' molecules grow with z0


def _campaign(out, max_iterations=None, steps=4):
    cfg = BOConfig(surrogate="latent", budget=100, **FREE_POOL, n_decode_attempts=2,
                   max_iterations=max_iterations, seed=3)  # fmt: skip
    return gradient_campaign(
        cfg, GradientConfig(steps=steps, step_size=0.4, n_starts=3), decode, encode, _linear,
        Objective(), POOL, out, progress=False, canonical_fn=canonical, report=False,
        prior_fn=prior,
    )  # fmt: skip


def test_campaign_records_every_step_and_resumes_exactly(tmp_path) -> None:
    full = _campaign(tmp_path / "full")
    h = full.history
    assert full.kind == "gradient" and full.stop_reason == "4 ascent steps done"
    assert sorted(h["iteration"].unique()) == [0, 1, 2, 3, 4]
    steps = h[h["iteration"] > 0]
    assert len(steps) == 4 * 3 and set(steps["source"]) <= {"gradient", "gradient/attempt"}
    assert set(steps["status"]) <= {"ok", "invalid", "duplicate", "failed"}
    zc = [f"z{i}" for i in range(DIM)]
    start = steps[steps["iteration"] == 1][zc].to_numpy()
    end = steps[steps["iteration"] == 4][zc].to_numpy()
    assert (end[:, 0] > start[:, 0]).all()  # the chains climb z0

    part = tmp_path / "part"
    first = _campaign(part, max_iterations=2)
    assert first.history["iteration"].max() == 2
    resumed = _campaign(part)  # max_iterations may change on resume
    pd.testing.assert_frame_equal(resumed.history, full.history)

    with pytest.raises(ValueError, match="other settings"):
        _campaign(part, steps=6)  # the gradient settings are pinned


def test_a_crash_mid_step_is_finished_on_resume(tmp_path) -> None:
    full = _campaign(tmp_path / "full")
    cfg = BOConfig(surrogate="latent", budget=100, **FREE_POOL, n_decode_attempts=2, seed=3)
    gcfg = GradientConfig(steps=4, step_size=0.4, n_starts=3)
    with pytest.raises(Crash):  # call 1 scores the pool, calls 2-3 steps 1-2, call 4 crashes
        gradient_campaign(cfg, gcfg, decode, encode, _linear, Objective(crash_after=3), POOL,
                          tmp_path / "part", progress=False, canonical_fn=canonical,
                          report=False, prior_fn=prior)  # fmt: skip
    assert (tmp_path / "part" / "pending.json").exists()
    resumed = _campaign(tmp_path / "part")
    pd.testing.assert_frame_equal(resumed.history, full.history)
    assert not (tmp_path / "part" / "pending.json").exists()


def test_budget_stops_the_ascent(tmp_path) -> None:
    cfg = BOConfig(surrogate="latent", budget=2, **FREE_POOL, seed=3)
    res = gradient_campaign(cfg, GradientConfig(steps=50, step_size=0.4, n_starts=3), decode,
                            encode, _linear, Objective(), POOL, tmp_path, progress=False,
                            canonical_fn=canonical, report=False)  # fmt: skip
    assert "budget" in res.stop_reason
    assert res.history["iteration"].max() < 50
    # a batch is trimmed to what the budget still needs (3 chains, budget 2: the best 2 go on)
    steps = res.history[res.history["iteration"] > 0]
    assert (steps["iteration"] == 1).sum() == 2
    needed = 2
    for _, batch in steps.groupby("iteration"):
        assert 1 <= len(batch) <= needed
        needed -= int((batch["status"] == "ok").sum())


def test_max_iterations_stops_a_gradient_campaign_in_its_own_words(tmp_path) -> None:
    res = _campaign(tmp_path, max_iterations=2, steps=50)
    assert res.history["iteration"].max() == 2
    assert res.stop_reason.startswith("max_iterations reached: 2 iterations")


def test_cli_gradient_campaign_round_trip(tmp_path, zinc_small) -> None:
    from molvae.bo import load_campaign
    from molvae.cli import main

    run = tmp_path / "run"
    pool = tmp_path / "pool.smi"
    pool.write_text("\n".join(zinc_small * 2) + "\n")
    assert main(["train", "--data", str(pool), "--epochs", "1", "--batch-size", "8", "--out",
                 str(run), "--no-progress", "--threads", "1", "--properties", "logp", "qed",
                 *TINY]) == 0  # fmt: skip
    args = ["optimize", "--model", str(run / "best.pt"), "--data", str(pool), "--objective",
            "qed", "--method", "gradient", "--steps", "3", "--step-size", "0.5", "--starts", "2",
            "--n-init", "4", "--budget", "50", "--threads", "1", "--no-progress", "--out",
            str(tmp_path / "c")]  # fmt: skip
    assert main(args) == 0
    res = load_campaign(tmp_path / "c")
    assert res.kind == "gradient" and res.history["iteration"].max() == 3
    assert len(res.history[res.history["iteration"] > 0]) == 3 * 2
    assert (tmp_path / "c" / "report" / "summary.md").exists()
    assert main(args) == 0  # a finished campaign resumes to itself
    assert len(load_campaign(tmp_path / "c").history) == len(res.history)
    bad = [*args[:-1], str(tmp_path / "d")]
    bad[bad.index("qed")] = "tpsa"
    assert main(bad) == 2
    assert math.isfinite(res.best_score)


def test_chains_step_past_molecules_already_recorded(tmp_path) -> None:
    """Small steps decode to the same molecule; with substeps the chains move on before a
    proposal is spent, so fewer proposals are duplicates (and none while the box allows)."""

    def run(out, max_substeps):
        cfg = BOConfig(surrogate="latent", budget=100, **FREE_POOL, n_decode_attempts=1, seed=3)
        gcfg = GradientConfig(steps=4, step_size=0.1, n_starts=3, max_substeps=max_substeps)
        return gradient_campaign(cfg, gcfg, decode, encode, _linear, Objective(), POOL, out,
                                 progress=False, canonical_fn=canonical, report=False,
                                 prior_fn=prior)  # fmt: skip

    def duplicates(res):
        steps = res.history[res.history["iteration"] > 0]
        return int((steps["status"] == "duplicate").sum())

    stuck, moving = run(tmp_path / "stuck", 0), run(tmp_path / "moving", 8)
    assert duplicates(stuck) > 0
    assert duplicates(moving) < duplicates(stuck)
    assert moving.iterations["extra_steps"].sum() > 0
    assert stuck.iterations["extra_steps"].sum() == 0


def test_growing_substeps_leave_a_wide_basin_equal_steps_do_not(tmp_path) -> None:
    """Tiny steps with 6 equal substeps stay on the molecules already recorded; the same substeps,
    each twice the last, reach new ones (the fakes' molecules change every ~0.4 of z0)."""

    def run(out, growth):
        cfg = BOConfig(surrogate="latent", budget=100, **FREE_POOL, n_decode_attempts=1, seed=3)
        gcfg = GradientConfig(steps=3, step_size=0.01, n_starts=3, max_substeps=6,
                              substep_growth=growth)  # fmt: skip
        return gradient_campaign(cfg, gcfg, decode, encode, _linear, Objective(), POOL, out,
                                 progress=False, canonical_fn=canonical, report=False,
                                 prior_fn=prior)  # fmt: skip

    def new_molecules(res):
        steps = res.history[res.history["iteration"] > 0]
        return int((steps["status"] != "duplicate").sum())

    equal, growing = run(tmp_path / "equal", 1.0), run(tmp_path / "growing", 2.0)
    assert new_molecules(growing) > new_molecules(equal)
    with pytest.raises(ValueError, match="substep_growth"):
        GradientConfig(substep_growth=0.5)


def test_gradient_campaign_ends_within_the_iteration_cap(tmp_path) -> None:
    # Budget 100 in batches of 50: ceil(100 / 50) + 2 = 4 iterations, though 3 chains of 50 steps
    # could go on and never fill the budget.
    res = _campaign(tmp_path, steps=50)
    assert res.history["iteration"].max() == 4
    assert res.stop_reason.startswith("stopped early: 4 iterations, the cap")
