"""The similarity-constrained improvement metric (Jin et al. 2018) on hand-made cases."""

from __future__ import annotations

import pytest
from rdkit import Chem, DataStructs

from molvae.chem.properties import morgan_fingerprint, penalized_logp_raw
from molvae.evaluation.improvement import best_improvements, summarize, table, without_stereo

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
