"""Tests for molvae.evaluation with fake model callables and known answers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from molvae.evaluation import EvaluateConfig, EvaluationResult, evaluate, metrics, write_evaluation

SAMPLE_CYCLE = ["CCO", "OCC", "c1ccccc1", "bad", "CCN"]
TEST = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "CC(=O)Nc1ccc(O)cc1",
    "c1ccc2ccccc2c1",
    "O=C(O)c1ccccc1O",
]
TRAIN = ["OCC", "CCCC"]


def sample_fn(n: int, seed: int) -> list[str]:
    return [SAMPLE_CYCLE[i % len(SAMPLE_CYCLE)] for i in range(n)]


def reconstruct_fn(inputs: list[str]) -> list[str]:
    # right for the first half, wrong for the rest
    return [s if i < len(inputs) // 2 else "C" for i, s in enumerate(inputs)]


def attempts_fn(inputs: list[str], k: int) -> list[list[str]]:
    # the majority is right for all but the first input
    out = [[s] * (k - 1) + ["bad"] for s in inputs]
    out[0] = ["CC"] * k
    return out


def run(compute_fcd: bool = True, attempts=attempts_fn) -> EvaluationResult:
    torch.set_num_threads(1)
    cfg = EvaluateConfig(n_samples=10, n_reconstruct=4, n_recon_attempts=3, compute_fcd=compute_fcd)
    return evaluate(sample_fn, reconstruct_fn, attempts, TEST, TRAIN, cfg)


def test_evaluate_known_numbers() -> None:
    r = run()
    assert (r.n_samples, r.n_valid) == (10, 8)
    assert r.validity == pytest.approx(0.8)
    # valid canonical: CCO CCO c1ccccc1 CCN, twice -> 3 distinct of 8
    assert r.unique_at_1k == pytest.approx(3 / 8) and r.unique_at_10k == pytest.approx(3 / 8)
    # distinct {CCO, c1ccccc1, CCN}; ethanol is in TRAIN (as OCC)
    assert r.novelty == pytest.approx(2 / 3)
    valid = [s for s in sample_fn(10, 0) if s != "bad"]
    assert r.intdiv == pytest.approx(metrics.internal_diversity(valid))
    assert r.n_reconstructed == 4
    assert r.recon_greedy == pytest.approx(0.5)
    assert r.recon_majority == pytest.approx(0.75)
    assert r.n_fcd_reference == len(TEST)
    assert math.isfinite(r.fcd_test) and r.fcd_test > 0
    assert r.property_stats_samples.loc["QED", "n"] == 8
    assert r.property_stats_data.loc["logP", "n"] == len(TEST)
    assert r.property_stats_data.loc["logP", "mean"] == pytest.approx(
        metrics.property_stats(TEST).loc["logP", "mean"]
    )
    assert r.timing.total_s >= r.timing.fcd_s > 0


def test_evaluate_without_fcd_and_attempts() -> None:
    r = run(compute_fcd=False, attempts=None)
    assert math.isnan(r.fcd_test) and math.isnan(r.recon_majority)
    assert r.recon_greedy == pytest.approx(0.5)
    assert r.to_dict()["fcd_test"] is None


def test_evaluate_rejects_short_sampler() -> None:
    cfg = EvaluateConfig(n_samples=5, compute_fcd=False)
    with pytest.raises(ValueError, match="expected 5"):
        evaluate(lambda n, s: ["CCO"], reconstruct_fn, None, TEST, TRAIN, cfg)
    with pytest.raises(ValueError):
        EvaluateConfig(n_samples=0)


def test_write_evaluation(tmp_path) -> None:
    r = run()
    paths = write_evaluation(r, tmp_path / "out", model_name="tiny")
    assert set(paths) == {"metrics_json", "metrics_md", "histograms"}
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())

    data = json.loads(paths["metrics_json"].read_text())
    assert data["model"] == "tiny"
    assert data["validity"] == pytest.approx(0.8)
    assert data["recon_majority"] == pytest.approx(0.75)
    assert data["config"]["n_samples"] == 10
    assert data["property_stats_samples"]["QED"]["n"] == 8

    md = paths["metrics_md"].read_text()
    assert "Model | Valid | Unique@10k | FCD/Test | IntDiv | Novelty" in md
    assert f"tiny (this run) | 0.800 | 0.375 | {r.fcd_test:.3f} | {r.intdiv:.3f} | 0.667" in md
    assert "MOSES VAE (published) | 0.977 | 0.998 | 0.099 | 0.856 | 0.695" in md
    assert "MOSES CharRNN (published)" in md
    assert "tiny (majority of 3 decodes) | 75.0% | 80.0%" in md
    assert "tiny (greedy) | 50.0% | 80.0%" in md
    assert "JT-VAE (published) | 76.7% | 100%" in md
    assert "ZINC data (published) | 2.46 (1.43) | 3.05 (0.83) | 0.73 (0.14)" in md
    assert "tiny samples (this run) |" in md

    assert paths["histograms"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
