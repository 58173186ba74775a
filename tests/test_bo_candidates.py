"""The fingerprint GP (Tanimoto kernel) and the molecule proposals it ranks (molvae.bo.fingerprint,
molvae.bo.candidates), alone and inside a campaign."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import bo_fakes as F
import numpy as np
import pytest
import torch
from rdkit import Chem, DataStructs

from molvae.bo import BOConfig, candidates
from molvae.bo.candidates import (
    gp_points,
    heavy_atoms,
    propose_molecules,
    size_limit,
)
from molvae.bo.fingerprint import (
    TanimotoKernel,
    fingerprints,
    fit_fingerprint_gp,
    thompson_select,
)
from molvae.bo.loop import run_campaign
from molvae.bo.observations import scored_molecules
from molvae.chem import canonical
from molvae.chem.properties import morgan_fingerprint

ASPIRIN, SALICYLIC, CAFFEINE = (
    "CC(=O)Oc1ccccc1C(=O)O",
    "O=C(O)c1ccccc1O",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
)
# small, fast proposal settings for the tests
FAST = dict(ga_candidates=60, ga_generations=2, fit_maxiter=30)


def test_tanimoto_kernel_matches_rdkit_and_is_positive_definite():
    smiles = [ASPIRIN, SALICYLIC, CAFFEINE, "CCO"]
    x = fingerprints(smiles)
    k = TanimotoKernel()(x, x).to_dense()
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    fps = [morgan_fingerprint(m) for m in mols]
    for i in range(4):
        for j in range(4):
            assert k[i, j].item() == pytest.approx(DataStructs.TanimotoSimilarity(fps[i], fps[j]))
    assert torch.linalg.eigvalsh(k).min() > 0
    diag = TanimotoKernel()(x, x, diag=True)
    assert torch.allclose(diag, torch.ones(4, dtype=torch.float64))


def test_an_unparsable_smiles_is_a_zero_fingerprint_the_kernel_survives():
    x = fingerprints(["not a molecule", "CCO"])
    assert x[0].sum() == 0 and x[1].sum() > 0
    k = TanimotoKernel()(x, x).to_dense()
    assert torch.isfinite(k).all() and k[0, 0] == 1 and k[0, 1] == 0


def test_thompson_sampling_picks_distinct_candidates_and_the_clear_winner():
    train = ["CCO", "CCCO", "CCCCO", "c1ccccc1", "Cc1ccccc1", "CCc1ccccc1"]
    y = torch.tensor([0.0, 0.1, 0.2, 2.0, 2.2, 2.4], dtype=torch.float64)
    model = fit_fingerprint_gp(fingerprints(train), y, maxiter=50)
    cands = ["CCCCCO", "CCCc1ccccc1", "CCCCCCO", "OCCO"]
    picks = thompson_select(model, fingerprints(cands), 2, seed=0)
    assert len(set(picks)) == 2 and 1 in picks  # the benzene ring is where the scores are
    with torch.no_grad():
        mean = model.posterior(fingerprints(cands)).mean.squeeze(-1)
    assert int(mean.argmax()) == 1
    assert thompson_select(model, fingerprints(cands[:1]), 3, seed=0) == [0]


def test_thompson_sampling_adds_the_known_part_to_every_draw():
    train = ["CCO", "CCCO", "CCCCO", "c1ccccc1", "Cc1ccccc1", "CCc1ccccc1"]
    y = torch.tensor([0.0, 0.1, 0.2, 2.0, 2.2, 2.4], dtype=torch.float64)
    model = fit_fingerprint_gp(fingerprints(train), y, maxiter=50)
    x = fingerprints(["CCCCCO", "CCCc1ccccc1", "CCCCCCO", "OCCO"])
    zero = torch.zeros(4, dtype=torch.float64)
    assert thompson_select(model, x, 2, 0, offset=zero) == thompson_select(model, x, 2, 0)
    # the GP ranks the ring first; a known part worth far more puts OCCO first in every draw
    big = torch.tensor([0.0, 0.0, 0.0, 100.0], dtype=torch.float64)
    assert thompson_select(model, x, 2, 0, offset=big)[0] == 3


def _heteroatoms(smiles: str) -> int:
    return sum(a.GetSymbol() != "C" for a in Chem.MolFromSmiles(smiles).GetAtoms())


def _known_heteroatom_penalty(smiles: list[str]) -> np.ndarray:
    """F.Objective's exactly known part: -0.5 per heteroatom (NaN where RDKit cannot parse)."""
    return np.array([-0.5 * _heteroatoms(s) if Chem.MolFromSmiles(s) else np.nan for s in smiles])


def test_with_a_known_part_the_gp_models_only_the_rest(monkeypatch):
    scored = _scored(F.Objective())  # carbons - 0.5 per heteroatom
    known = {c for c, _ in scored}
    fitted: list[torch.Tensor] = []
    real_fit = candidates.fit_fingerprint_gp

    def spy(x, y, **kwargs):
        fitted.append(y.clone())
        return real_fit(x, y, **kwargs)

    monkeypatch.setattr(candidates, "fit_fingerprint_gp", spy)
    prop = propose_molecules(scored, known, 6, 0, BOConfig(**FAST), canonical,
                             known_fn=_known_heteroatom_penalty)  # fmt: skip
    carbons = [Chem.MolFromSmiles(c).GetNumHeavyAtoms() - _heteroatoms(c) for c, _ in scored]
    assert fitted[-1].tolist() == pytest.approx(carbons)  # the rest: the carbons alone
    assert prop.known_part and len(prop.smiles) == 6 and not set(prop.smiles) & known
    # switched off, or with no known part, the GP sees the scores themselves
    off = propose_molecules(scored, known, 6, 0, BOConfig(**FAST, known_part=False), canonical,
                            known_fn=_known_heteroatom_penalty)  # fmt: skip
    assert fitted[-1].tolist() == pytest.approx([v for _, v in scored]) and not off.known_part
    assert propose_molecules(scored, known, 6, 0, BOConfig(**FAST), canonical).smiles == off.smiles


def test_a_molecule_whose_known_part_fails_is_neither_learnt_from_nor_proposed(monkeypatch):
    scored = _scored(F.Objective())
    bad = scored[0][0]
    ban = lambda smiles: np.array([np.nan if s == bad or "O" in s else -0.5 * _heteroatoms(s)  # noqa: E731
                                   for s in smiles])  # fmt: skip
    prop = propose_molecules(scored, {c for c, _ in scored}, 6, 0, BOConfig(**FAST), canonical,
                             known_fn=ban)  # fmt: skip
    assert prop.gp_points == len(scored) - sum(c == bad or "O" in c for c, _ in scored)
    assert prop.smiles and not any("O" in s for s in prop.smiles)


def test_a_campaign_records_its_known_part_and_an_older_directory_resumes_without(tmp_path):
    cfg = BOConfig(budget=25, batch_size=5, init_pool=10, seed=1, **FAST)
    run = lambda out, c: run_campaign(c, F.decode, F.encode, F.Objective(), F.DATA, out,  # noqa: E731
                                      canonical_fn=F.canonical, progress=False, report=False,
                                      known_fn=_known_heteroatom_penalty)  # fmt: skip
    run(tmp_path / "new", cfg)
    state = json.loads((tmp_path / "new" / "state.json").read_text())
    assert state["oracle_calls"] == 25 and state["iterations"]
    assert all(r.get("known_part") is True for r in state["iterations"])
    # a directory from before the known part resumes as it started: the GP sees the scores
    out = tmp_path / "old"
    run(out, replace(cfg, budget=20, known_part=False))
    stored = json.loads((out / "config.json").read_text())
    del stored["config"]["known_part"]
    (out / "config.json").write_text(json.dumps(stored))
    res = run(out, cfg)
    state = json.loads((out / "state.json").read_text())
    assert BOConfig().known_part and not res.config.known_part and state["oracle_calls"] == 25
    assert not any("known_part" in r for r in state["iterations"])


@pytest.mark.parametrize("kind", ["bits", "counts"])
def test_the_eigenbasis_fit_finds_botorchs_hyperparameters(kind):
    # golden values: BoTorch's own fit_gpytorch_mll of the same model, one Cholesky a step
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize
    from gpytorch.kernels import ScaleKernel
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from rdkit.Chem import Crippen

    smiles = [canonical(s) for s in F.DATA][:60]
    x = fingerprints(smiles, kind=kind)
    y = torch.tensor([Crippen.MolLogP(Chem.MolFromSmiles(s)) for s in smiles], dtype=torch.float64)
    ours = fit_fingerprint_gp(x, y, maxiter=200)
    ref = SingleTaskGP(x, y.reshape(-1, 1), covar_module=ScaleKernel(TanimotoKernel()),
                       outcome_transform=Standardize(m=1))  # fmt: skip
    fit_gpytorch_mll(ExactMarginalLogLikelihood(ref.likelihood, ref),
                     optimizer_kwargs={"options": {"maxiter": 200}})  # fmt: skip

    def mll(model):
        model.train()
        with torch.no_grad():
            out = ExactMarginalLogLikelihood(model.likelihood, model)(
                model(*model.train_inputs), model.train_targets)  # fmt: skip
        model.eval()
        return float(out)

    assert mll(ours) == pytest.approx(mll(ref), abs=1e-4)
    for get in (lambda m: m.covar_module.outputscale, lambda m: m.likelihood.noise,
                lambda m: m.mean_module.constant):  # fmt: skip
        want = float(get(ref).detach())
        assert float(get(ours).detach()) == pytest.approx(want, rel=2e-2, abs=1e-4)
    assert float(ours.likelihood.noise) >= 1e-4  # BoTorch's noise floor holds


def _scored(objective):
    data = [canonical(s) for s in F.DATA]
    scores, status = objective(data)
    return [(c, float(v)) for c, v, st in zip(data, scores, status, strict=True) if st == "ok"]


def test_proposals_are_new_valid_canonical_molecules_and_repeat_with_the_seed():
    scored = _scored(F.Objective())
    known = {c for c, _ in scored}
    cfg = BOConfig(**FAST)
    a = propose_molecules(scored, known, 8, 3, cfg, canonical)
    b = propose_molecules(scored, known, 8, 3, cfg, canonical)
    assert a.smiles == b.smiles and len(a.smiles) == 8 and len(set(a.smiles)) == 8
    assert all(canonical(s) == s for s in a.smiles)
    assert not set(a.smiles) & known
    assert a.n_candidates >= 8 and a.gp_points == len(scored)
    assert all(src == "fp-ts/ga" for src in a.sources)


def test_vae_neighbours_join_the_candidates():
    scored = _scored(F.Objective())
    cfg = BOConfig(**{**FAST, "ga_generations": 0}, vae_neighbours=6, vae_parents=3)
    prop = propose_molecules(scored, {c for c, _ in scored}, 4, 0, cfg, canonical,
                             decode_fn=F.decode, latents=F.encode)  # fmt: skip
    assert prop.smiles and all(src == "fp-ts/vae" for src in prop.sources)


def test_only_candidates_that_meet_the_constraints_are_proposed():
    scored = _scored(F.Objective())
    heavy = lambda smiles: np.array([[Chem.MolFromSmiles(s).GetNumHeavyAtoms() - 8.0]  # noqa: E731
                                     for s in smiles])  # fmt: skip
    prop = propose_molecules(scored, {c for c, _ in scored}, 6, 1, BOConfig(**FAST), canonical,
                             slack_fn=heavy)  # fmt: skip
    assert prop.smiles and all(Chem.MolFromSmiles(s).GetNumHeavyAtoms() <= 8 for s in prop.smiles)


def test_no_candidate_outgrows_the_size_limit_though_the_objective_rewards_size():
    scored = _scored(F.Objective())  # carbons score: unbounded, the GA grows molecules
    known = {c for c, _ in scored}
    free = propose_molecules(scored, known, 10, 0, BOConfig(**{**FAST, "ga_generations": 4}),
                             canonical)  # fmt: skip
    assert max(map(heavy_atoms, free.smiles)) > 8
    held = propose_molecules(scored, known, 10, 0, BOConfig(**{**FAST, "ga_generations": 4}),
                             canonical, limit=8)  # fmt: skip
    assert held.smiles and max(map(heavy_atoms, held.smiles)) <= 8


def test_the_size_limit_follows_the_initial_design_and_a_resumed_campaign_keeps_none(tmp_path):
    cfg = BOConfig(budget=30, batch_size=8, init_pool=10, seed=2, **FAST)
    res = run_campaign(cfg, F.decode, F.encode, F.Objective(), F.DATA, tmp_path / "c",
                       canonical_fn=F.canonical, progress=False, report=False)  # fmt: skip
    start = res.history[res.history["iteration"] == 0]
    limit = math.ceil(1.5 * max(heavy_atoms(c) for c in start["canonical"] if c))
    assert size_limit(res.history, cfg) == limit
    new = res.history[(res.history["iteration"] > 0) & res.history["canonical"].astype(bool)]
    assert len(new) and all(heavy_atoms(c) <= limit for c in new["canonical"])
    assert size_limit(res.history, BOConfig(max_heavy_atoms=0)) is None
    assert size_limit(res.history, BOConfig(max_heavy_atoms=5)) == 5
    # a directory from before the limit resumes without one, as it was started
    out = tmp_path / "c"
    stored = json.loads((out / "config.json").read_text())
    del stored["config"]["max_heavy_atoms"]
    (out / "config.json").write_text(json.dumps(stored))
    more = run_campaign(BOConfig(**{**vars(cfg), "budget": 40}), F.decode, F.encode,
                        F.Objective(), F.DATA, out, canonical_fn=F.canonical, progress=False,
                        report=False)  # fmt: skip
    assert more.config.max_heavy_atoms == 0


class Counting(F.Objective):
    """The fake objective, recording every molecule it is called on."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __call__(self, smiles):
        self.seen.extend(smiles)
        return super().__call__(smiles)


def test_a_fingerprint_campaign_spends_exactly_its_budget_on_new_molecules(tmp_path):
    obj = Counting()
    cfg = BOConfig(budget=30, batch_size=8, init_pool=10, seed=2, **FAST)
    res = run_campaign(cfg, F.decode, F.encode, obj, F.DATA, tmp_path / "c",
                       canonical_fn=F.canonical, progress=False, report=False)  # fmt: skip
    assert len(obj.seen) == 30 and len(set(obj.seen)) == 30
    state = json.loads((tmp_path / "c" / "state.json").read_text())
    assert state["oracle_calls"] == 30
    new = res.history[res.history["iteration"] > 0]
    assert set(new["source"]) == {"fp-ts/ga"} and (new["status"] != "duplicate").all()
    assert all(r["source"] == "fp-ts" and r["candidates"] > 0 for r in state["iterations"])
    assert math.isfinite(res.best_score) and res.best_score >= max(v for _, v in scored_molecules(
        res.history[res.history["iteration"] == 0]))  # fmt: skip


def test_a_killed_fingerprint_batch_resumes_with_the_same_molecules(tmp_path):
    cfg = BOConfig(budget=30, batch_size=8, init_pool=10, seed=2, **FAST)
    ref = run_campaign(cfg, F.decode, F.encode, F.Objective(), F.DATA, tmp_path / "ref",
                       canonical_fn=F.canonical, progress=False, report=False)  # fmt: skip
    # the objective dies in its third call: mid-campaign, after the pool and one batch
    with pytest.raises(F.Crash):
        run_campaign(cfg, F.decode, F.encode, F.Objective(crash_after=2), F.DATA,
                     tmp_path / "k", canonical_fn=F.canonical, progress=False,
                     report=False)  # fmt: skip
    assert (tmp_path / "k" / "pending.json").exists()
    obj = Counting()
    res = run_campaign(cfg, F.decode, F.encode, obj, F.DATA, tmp_path / "k",
                       canonical_fn=F.canonical, progress=False, report=False)  # fmt: skip
    done = set(res.history["canonical"]) - set(obj.seen)
    assert len(obj.seen) == 30 - len([c for c in done if c])  # nothing scored twice
    assert res.history["canonical"].tolist() == ref.history["canonical"].tolist()


def test_a_directory_from_before_the_fingerprint_gp_resumes_in_latent_space(tmp_path):
    cfg = BOConfig(surrogate="latent", budget=20, batch_size=5, init_pool=10,
                   num_restarts=2, raw_samples=16, acq_maxiter=10, fit_maxiter=20)  # fmt: skip
    out = tmp_path / "old"
    run_campaign(cfg, F.decode, F.encode, F.Objective(), F.DATA, out, canonical_fn=F.canonical,
                 progress=False, report=False)  # fmt: skip
    stored = json.loads((out / "config.json").read_text())
    del stored["config"]["surrogate"]
    (out / "config.json").write_text(json.dumps(stored))
    res = run_campaign(BOConfig(budget=25, batch_size=5, init_pool=10, num_restarts=2,
                                raw_samples=16, acq_maxiter=10, fit_maxiter=20),
                       F.decode, F.encode, F.Objective(), F.DATA, out,
                       canonical_fn=F.canonical, progress=False, report=False)  # fmt: skip
    new = res.history[res.history["iteration"] > 0]
    assert not new["source"].str.startswith("fp-ts").any()
    assert res.config.surrogate == "latent"


def test_a_directory_from_before_count_fingerprints_resumes_on_bits(tmp_path):
    out = tmp_path / "old"
    run_campaign(BOConfig(budget=20, batch_size=5, init_pool=10, fp_kind="bits", **FAST),
                 F.decode, F.encode, F.Objective(), F.DATA, out, canonical_fn=F.canonical,
                 progress=False, report=False)  # fmt: skip
    stored = json.loads((out / "config.json").read_text())
    del stored["config"]["fp_kind"]
    (out / "config.json").write_text(json.dumps(stored))
    res = run_campaign(BOConfig(budget=25, batch_size=5, init_pool=10, **FAST), F.decode,
                       F.encode, F.Objective(), F.DATA, out, canonical_fn=F.canonical,
                       progress=False, report=False)  # fmt: skip
    assert BOConfig().fp_kind == "counts" and res.config.fp_kind == "bits"
    assert (res.history["iteration"] == res.history["iteration"].max()).sum() == 5


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="surrogate"):
        BOConfig(surrogate="graph")
    with pytest.raises(ValueError, match="ga_candidates"):
        BOConfig(ga_candidates=-1)
    with pytest.raises(ValueError, match="max_heavy_atoms"):
        BOConfig(max_heavy_atoms=-1)
    with pytest.raises(ValueError, match="fp_kind"):
        BOConfig(fp_kind="ecfp6")


def test_count_fingerprints_see_how_often_a_group_occurs():
    one, three = "Fc1ccccc1", "Fc1cc(F)cc(F)c1"
    bits, counts = fingerprints([one, three]), fingerprints([one, three], kind="counts")
    fluorine = counts[1] >= 3  # the bin of the fluorine atom's environment
    assert fluorine.any() and (bits[1][fluorine] == 1).all()
    assert counts[1].max() == 3 and bits.max() == 1  # symmetric: every environment x3
    k = TanimotoKernel()
    assert k(bits[:1], bits[1:]).to_dense().item() > k(counts[:1], counts[1:]).to_dense().item()


def test_a_count_fingerprint_campaign_proposes_as_the_bit_one_does():
    scored = _scored(F.Objective())
    known = {c for c, _ in scored}
    a = propose_molecules(scored, known, 8, 3, BOConfig(fp_kind="counts", **FAST), canonical)
    assert len(set(a.smiles)) == 8 and not set(a.smiles) & known
    assert all(canonical(s) == s for s in a.smiles)


def test_past_fp_max_points_the_gp_keeps_the_best_half_and_a_random_rest():
    scored = [(f"C{'C' * i}O", float(i)) for i in range(40)]
    assert gp_points(scored, 50, random.Random(0)) == scored
    kept = gp_points(scored, 10, random.Random(0))
    assert len(kept) == 10 and len(set(kept)) == 10
    assert sorted(v for _, v in kept)[-5:] == [35.0, 36.0, 37.0, 38.0, 39.0]
