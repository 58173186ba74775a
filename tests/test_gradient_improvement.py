"""The similarity-constrained improvement metric (Jin et al. 2018) on hand-made cases, and the
candidates of its ascent (`molvae.runs.gradient.ascent_candidates`) from posterior starts."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from rdkit import Chem, DataStructs

from molvae.bo.gradient import GradientConfig, ascent_path
from molvae.chem.properties import morgan_fingerprint, penalized_logp_raw
from molvae.evaluation.improvement import best_improvements, summarize, table, without_stereo
from molvae.model import LatentCodec
from molvae.runs import gradient
from molvae.runs.gradient import ascent_candidates, latent_box, posterior_starts

START = "CC(=O)Nc1ccc(O)cc1"  # paracetamol
CLOSE = "CC(=O)Nc1ccccc1"  # similarity 0.625, better
MID = "CCCCC(=O)Nc1ccc(O)cc1"  # similarity 0.516, better still
FAR = "CCCCCCCCCCCCCCCC"  # hexadecane: far better logP, not similar
WORSE = "CC(=O)Nc1ccc(O)c(O)c1"  # similar, worse


def _sim(a: str, b: str) -> float:
    fa, fb = (morgan_fingerprint(Chem.MolFromSmiles(s)) for s in (a, b))
    return DataStructs.TanimotoSimilarity(fa, fb)


def _score(s: str) -> float:
    return penalized_logp_raw(Chem.MolFromSmiles(s))


def test_hand_made_cases_follow_the_thresholds() -> None:
    # what the cases rely on, checked rather than assumed
    assert _sim(START, CLOSE) >= 0.6 and 0.4 <= _sim(START, MID) < 0.6
    assert _sim(START, FAR) < 0.4 and _sim(START, WORSE) >= 0.4
    assert _score(FAR) > _score(MID) > _score(CLOSE) > _score(START) > _score(WORSE)
    cands = [(0, FAR), (0, CLOSE), (0, MID), (0, WORSE), (0, "not a smiles"), (1, WORSE),
             (1, START)]  # fmt: skip
    per = best_improvements([START, "c1ccccc1"], cands)
    gain = _score(CLOSE) - _score(START)
    gain_mid = _score(MID) - _score(START)
    assert per.loc[0, "improvement_0.4"] == pytest.approx(gain_mid)  # FAR is too far
    assert per.loc[0, "smiles_0.4"] == MID
    assert per.loc[0, "improvement_0.6"] == pytest.approx(gain)  # MID is too far at 0.6
    assert per.loc[0, "sim_0.6"] == pytest.approx(_sim(START, CLOSE))
    # benzene: nothing similar and better -> improvement 0, a failure
    assert per.loc[1, "improvement_0.4"] == 0.0 and per.loc[1, "smiles_0.4"] == ""

    summary = summarize(per).set_index("delta")
    assert summary.loc[0.6, "n"] == 2
    assert summary.loc[0.6, "mean"] == pytest.approx(gain / 2)  # the failure counts as 0
    assert summary.loc[0.6, "std"] == pytest.approx(gain / 2)  # ddof 0 of (gain, 0)
    assert summary.loc[0.6, "success"] == 0.5
    assert summary.loc[0.6, "mean_success"] == pytest.approx(gain)


def test_the_start_itself_up_to_stereo_never_counts() -> None:
    start = "C[C@H]1CC[C@@H](C)CC1N"  # stereo can change the SA score
    flat = without_stereo(start)
    assert flat is not None and "@" not in flat
    per = best_improvements([start], [(0, flat), (0, start)])
    assert per.loc[0, "improvement_0.4"] == 0.0


def test_a_threshold_of_zero_admits_any_better_molecule() -> None:
    per = best_improvements([START], [(0, FAR), (0, CLOSE)], thresholds=(0.0,))
    assert per.loc[0, "improvement_0.0"] == pytest.approx(_score(FAR) - _score(START))


def test_unparsable_start_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be parsed"):
        best_improvements(["C1CC"], [])


def test_table_puts_the_published_rows_first() -> None:
    per = best_improvements([START], [(0, CLOSE)])
    t = table(summarize(per), "ours")
    assert list(t["method"]) == ["JT-VAE", "GCPN", "MoFlow", "ours"]
    assert t.loc[1, "δ=0.4 improvement"] == "2.49 ± 1.30"
    assert t.loc[3, "δ=0.6 success"] == "100.0%"


def _linear_head(monkeypatch) -> None:
    """A fixed linear objective instead of a property head: the tiny model has none, and the
    candidates' bookkeeping is what is tested, not the head."""
    w = torch.linspace(-1.0, 1.0, 8)
    monkeypatch.setattr(gradient, "head_predictor", lambda model, objective: lambda z: z @ w)


def _mean_ascent(codec: LatentCodec, smiles: list[str], cfg: GradientConfig, attempts: int,
                 seed: int) -> pd.DataFrame:  # fmt: skip
    """The candidates as computed before posterior starts existed: one ascent from each mean."""
    enc = codec.encode(smiles, check_domain=False)
    rows = torch.as_tensor(enc.ok).nonzero().flatten()
    predict = gradient.head_predictor(codec.model, "x")
    path = ascent_path(enc.z[rows], predict, cfg, latent_box(codec, seed=seed))
    z = path.reshape(-1, path.shape[-1]).float()
    decoded = codec.decode_attempts(z, attempts, generator=torch.Generator().manual_seed(seed))
    n = len(rows)
    out = [(int(rows[k % n]), k // n, a, smi) for k, att in enumerate(decoded)
           for a, smi in enumerate(att)]  # fmt: skip
    return pd.DataFrame(out, columns=["start", "step", "attempt", "smiles"])


def test_one_posterior_start_reproduces_the_mean_ascent(tiny_model, zinc_small, monkeypatch):
    _linear_head(monkeypatch)
    codec = LatentCodec.from_checkpoint(tiny_model, device="cpu", grammar=None)
    smiles = [zinc_small[0], "", *zinc_small[1:4]]  # "" cannot be encoded: no rows for it
    cfg = GradientConfig(steps=3, step_size=0.3)
    got = ascent_candidates(codec, smiles, "x", cfg, n_attempts=3, seed=7)
    want = _mean_ascent(codec, smiles, cfg, 3, seed=7)
    pd.testing.assert_frame_equal(got.drop(columns="draw"), want)
    assert (got["draw"] == 0).all() and 1 not in set(got["start"])

    k = 4
    many = ascent_candidates(codec, smiles, "x", cfg, n_attempts=3, seed=7, n_posterior=k)
    assert len(many) == k * len(got) and set(many["draw"]) == set(range(k))
    # the mean's chain is today's path: its greedy decodes (attempt 0) are the same
    greedy = many[(many["draw"] == 0) & (many["attempt"] == 0)].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        greedy.drop(columns="draw"), want[want["attempt"] == 0].reset_index(drop=True)
    )


def test_posterior_starts_are_the_mean_then_scaled_draws() -> None:
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(3, 5, generator=gen), torch.randn(3, 5, generator=gen)
    assert torch.equal(posterior_starts(mu, logvar, 1), mu)
    z = posterior_starts(mu, logvar, 4, scale=2.0, seed=1).reshape(3, 4, 5)
    assert torch.equal(z[:, 0], mu)  # the mean first, then draws around it
    assert not torch.isclose(z[:, 1:], mu[:, None]).any()
    assert torch.equal(z, posterior_starts(mu, logvar, 4, scale=2.0, seed=1).reshape(3, 4, 5))
    # N(mu, (scale * sigma)^2) per dimension
    sigma = torch.tensor([[0.5, 2.0]])
    many = posterior_starts(torch.zeros(1, 2), 2 * sigma.log(), 20_001, scale=3.0)
    assert many[1:].std(0).tolist() == pytest.approx([1.5, 6.0], rel=0.05)
    assert many[1:].mean(0).abs().max() < 0.15
    with pytest.raises(ValueError, match=">= 1"):
        posterior_starts(mu, logvar, 0)
