"""Campaign metrics: the top-k mean and the PMO top-k AUC, by hand, and in the report."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molvae.bo import BOConfig, campaign_metrics, top_k_auc, top_k_mean
from molvae.bo.loop import run_campaign
from molvae.bo.report import write_report

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F

torch.set_num_threads(1)


def test_top_k_mean():
    assert top_k_mean([1.0, 5.0, 3.0, 4.0], k=2) == 4.5
    assert top_k_mean([1.0, 2.0], k=10) == 1.5  # fewer than k: all of them, as PMO
    assert math.isnan(top_k_mean([], k=10))


def test_top_k_auc_by_hand():
    """Scores 1, 3, 2, 5, 4 in call order; top-2, logged every 2 calls, budget 8.

    Running top-2 mean at calls 2, 4, 5: 2.0, 4.0, 4.5. Trapezoids from 0 (PMO's first segment
    starts at 0): 2 * (2 + 0) / 2 = 2; 2 * (4 + 2) / 2 = 6; 1 * (4.5 + 4) / 2 = 4.25. The run
    stopped at 5 calls of 8: padded with its last value, 3 * 4.5 = 13.5. Sum 25.75, / 8.
    """
    scores = [1.0, 3.0, 2.0, 5.0, 4.0]
    assert top_k_auc(scores, k=2, budget=8, freq_log=2) == pytest.approx(25.75 / 8)
    assert top_k_auc(scores, k=2, budget=8, freq_log=2, finish=False) == pytest.approx(12.25 / 8)
    assert top_k_auc(scores, k=2, freq_log=2) == pytest.approx(12.25 / 5)  # budget = calls
    # calls past the budget do not count: the first 4, logged at 2, then 2 more calls
    assert top_k_auc(scores, k=2, budget=4, freq_log=2) == pytest.approx((2.0 + 6.0) / 4)
    # constant 1, logged every call: 0.5 + 1 + 1 + 1 over 4 calls
    assert top_k_auc([1.0] * 4, k=10, freq_log=1) == pytest.approx(3.5 / 4)
    assert math.isnan(top_k_auc([], budget=10))


def test_top_k_auc_rewards_finding_good_molecules_early():
    rng = np.random.default_rng(0)
    scores = rng.random(300)
    early, late = np.sort(scores)[::-1], np.sort(scores)
    assert top_k_auc(early, budget=300) > top_k_auc(scores, budget=300) > top_k_auc(late, 300)
    assert top_k_auc(early, budget=300) <= top_k_mean(scores)


def test_campaign_metrics_of_a_free_pool_count_only_proposals_scored_ok():
    h = pd.DataFrame({
        "iteration": [0, 0, 1, 1, 1, 2, 2],
        "status": ["ok", "ok", "ok", "duplicate", "invalid", "ok", "failed"],
        "score": [9.0, 8.0, 1.0, 9.0, np.nan, 3.0, np.nan],
    })  # fmt: skip
    m = campaign_metrics(h, budget=4, k=10, free_pool=True)
    # 2 calls (1.0, 3.0): one trapezoid from 0 to the top-10 mean 2.0, then padded to 4 calls
    assert m == {"best": 3.0, "top10_mean": 2.0, "scored": 2,
                 "top10_auc": pytest.approx((2 * (2.0 + 0) / 2 + 2 * 2.0) / 4)}  # fmt: skip


def test_report_shows_the_auc_the_stop_reason_and_new_molecule_rates(tmp_path):
    cfg = BOConfig(surrogate="latent",
                   budget=8, batch_size=4, n_init=4, init_pool=20, init_top=2, free_pool=True,
                   acquisition="ts", ts_candidates=32, fit_maxiter=10, n_decode_attempts=2,
                   seed=0)  # fmt: skip
    res = run_campaign(cfg, F.decode, F.encode, F.Objective(), F.DATA, tmp_path / "c",
                       canonical_fn=F.canonical, progress=False, report=False)  # fmt: skip
    text = write_report(res)["summary"].read_text()
    m = campaign_metrics(res.history, cfg.budget, free_pool=True)
    assert (
        f"top-10 AUC {m['top10_auc']:.4f}" in text and f"top-10 mean {m['top10_mean']:.4f}" in text
    )
    assert f"Stopped: {res.stop_reason}." in text and res.stop_reason.startswith("budget reached")
    assert "| new_rate | duplicate_rate | invalid_rate |" in text
    assert "tr_restarted" in text and "redrawn_spare" in text
