"""The semi-supervised conditional VAE benchmark: property prediction from few labels, generation
to order, and held-out likelihood bounds; prints Markdown tables.

    python pipelines/benchmarks/conditional.py prediction     # q(y|x) at 1/5/20/100% labels
    python pipelines/benchmarks/conditional.py generation     # --model conditional by default
    python pipelines/benchmarks/conditional.py likelihood     # ELBO and IWAE of the bundled models
    python pipelines/benchmarks/conditional.py probe --y-kernel 512   # q(y|x) refitted, no training
    python pipelines/benchmarks/conditional.py --smoke        # all three, tiny, seconds

**prediction** (issue 30, part a): for each label fraction a conditional model is fine-tuned
from ``--init`` (the bundled default) on the first ``--n-molecules`` bundled ZINC molecules
(MOSES train) with labels (logP, QED, SA score, MW, computed with RDKit) kept on that random
share of them only (`molvae.data.labels.keep_fraction`: training and validation alike).
q(y|x)'s mean is then compared with the truth on ``--n-test`` held-out MOSES test molecules
(R², per property). Beside it, on the very same labelled molecules, supervised baselines on
2048-bit Morgan fingerprints (radius 2): ridge regression and a random forest (scikit-learn;
up to ``--rf-max`` labelled molecules). With ``--y-hidden K`` q(y|x) has an MLP part of width K
(`VAEConfig.y_hidden`); its rows are kept apart from the linear ones. q(y|x) is fitted again
to the encoder after the last epoch (`TrainConfig.final_probe`) unless ``--no-final-probe``;
rows record which.

**generation** (part b): for targets spanning each property's range, ``--n`` molecules of the
conditional model with that one property fixed (the others drawn from p(y) given it; z from the
model's prior), decoded through the grammar, once per ``--to-order K:T`` setting (`ToOrder`:
each molecule the best of K decodings by q(y|x), the prior at temperature T; by default one
decoding at 1.0, and the default `ToOrder`). Reported: the generated molecules' mean property,
its absolute error to the target, the share of the ``--n`` within a tolerance of it (``TOL``),
validity, uniqueness and novelty (against the full MOSES train split when fetched, else the
bundled 250k subset). Against it, at the same decoding cost (K x ``--n`` decodings):
unconditional samples of ``--baseline`` (the default model, its learned prior) kept when RDKit
puts them within the tolerance (rejection): how many of the ``--n`` wanted that fills.

**probe**: q(y|x) fitted again, with the parts asked for (``--y-hidden``, ``--y-kernel``), to
the encoder of each fraction's finished prediction run (``<out>/runs/labels-<fraction>``, its
``best.pt``; the same labelled molecules), as the final probe fits it, then scored as in
**prediction**: a reader compared on the very encoder, with no training run.

**likelihood** (part c): the ELBO and the IWAE bound (K = ``--k``) of ``--n-test`` held-out test
molecules, per model, in nats per molecule (`molvae.model.likelihood`).

Each finished unit appends one JSON line to ``<out>/results.jsonl`` (a rerun skips it); training
runs resume from ``<out>/runs/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.chem import canonical, parse
from molvae.chem.properties import morgan_fingerprint
from molvae.data import FilterConfig, load_smiles, read_smiles
from molvae.data.labels import keep_fraction
from molvae.data.property_cache import compute_properties
from molvae.io import markdown_table, write_text
from molvae.model import GrammarConfig, LatentCodec, ToOrder
from molvae.resources import cache_dir, resolve_model
from molvae.runs import TrainRunConfig, train_on_smiles
from molvae.runs.training import split_run
from molvae.train import TrainConfig

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from pmo import hardware  # noqa: E402

PROPERTIES = ["logp", "qed", "sa_score", "mw"]
FRACTIONS = [0.01, 0.05, 0.2, 1.0]
TARGETS = {
    "logp": [1.0, 2.0, 3.0, 4.0, 5.0],
    "qed": [0.5, 0.6, 0.7, 0.8, 0.9],
    "sa_score": [2.0, 2.5, 3.0, 3.5, 4.0],
    "mw": [250.0, 300.0, 350.0, 400.0, 450.0],
}
TOL = {"logp": 0.5, "qed": 0.05, "sa_score": 0.25, "mw": 25.0}


def _append(out: Path, row: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def _done(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def _truth(smiles: list[str], names: list[str]) -> np.ndarray:
    """RDKit's values, ``n x len(names)`` (NaN where one cannot be computed)."""
    return compute_properties(smiles, names).astype(np.float64)


def r2(pred: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination over the rows where both are finite."""
    ok = np.isfinite(pred) & np.isfinite(true)
    p, t = pred[ok], true[ok]
    return (
        float(1.0 - ((p - t) ** 2).sum() / ((t - t.mean()) ** 2).sum()) if len(t) > 1 else math.nan
    )


def _fingerprints(smiles: list[str]) -> np.ndarray:
    out = np.zeros((len(smiles), 2048), dtype=np.float32)
    for i, s in enumerate(smiles):
        mol = parse(s)
        if mol is not None:
            out[i, list(morgan_fingerprint(mol).GetOnBits())] = 1.0
    return out


# ------------------------------------------------------------------ prediction
def labelled_molecules(smiles: list[str], run: TrainRunConfig) -> list[str]:
    """The training molecules ``run`` had labels on (its split and its seeded choice), checked
    against the count its ``run.json`` recorded."""
    train, _ = split_run(smiles, run)
    keep = np.isfinite(keep_fraction(np.ones((len(train), 1)), run.label_fraction,
                                     run.label_seed)[:, 0])  # fmt: skip
    labelled = [s for s, k in zip(train, keep, strict=True) if k]
    meta = json.loads((Path(run.out_dir) / "run.json").read_text())["condition"]
    assert len(labelled) == meta["labelled_train"][0], f"{run.out_dir}: the labels differ"
    return labelled


def prediction(a: argparse.Namespace, results: Path, hw: str) -> None:
    done = {(r["fraction"], r["n_molecules"], r.get("y_hidden", 0), r.get("y_kernel", 0),
             r.get("final_probe", False))
            for r in _done(results) if r["part"] == "prediction"}  # fmt: skip
    test = read_smiles("zinc-test")[: a.n_test]
    y_test = _truth(test, PROPERTIES)
    init = resolve_model(a.init)
    max_len = LatentCodec.from_checkpoint(init, device="cpu", grammar=None).max_len
    smiles, _ = load_smiles("zinc", config=FilterConfig(max_tokens=max_len - 2, dedupe=True),
                           limit=a.n_molecules)  # fmt: skip
    for fraction in a.fractions:
        if (fraction, a.n_molecules, a.y_hidden, a.y_kernel, a.final_probe) in done:
            continue
        t0 = time.perf_counter()
        mlp = f"-mlp{a.y_hidden}" if a.y_hidden else ""
        mlp += f"-k{a.y_kernel}" if a.y_kernel else ""
        # the final probe rewrites best.pt, so runs without it keep their own directory
        out = Path(a.out) / "runs" / f"labels-{fraction:g}{mlp}{'' if a.final_probe else '-lpft'}"
        run = TrainRunConfig(data="zinc", out_dir=str(out), max_molecules=a.n_molecules,
                             init_from=str(init), properties=PROPERTIES, conditional=True,
                             # y_kernel always given: 0 asks for the linear q(y|x)
                             model={"y_kernel": a.y_kernel,
                                    **({"y_hidden": a.y_hidden} if a.y_hidden else {})},
                             label_fraction=None if fraction >= 1 else fraction,
                             resume=(out / "last.pt").exists())  # fmt: skip
        tc = TrainConfig(epochs=a.epochs, lr=3e-4, beta_max=0.1, kl_schedule="constant",
                         num_threads=a.threads, max_steps_per_epoch=a.max_steps,
                         final_probe=a.final_probe)  # fmt: skip
        result = train_on_smiles(run, tc, progress=False)
        codec = LatentCodec.from_checkpoint(result.best_path, device="cpu", grammar=None)
        enc = codec.encode(test)
        pred = codec.properties(enc.z).numpy()
        # the baselines see exactly the molecules the model had labels on
        labelled = labelled_molecules(smiles, run)
        base = baselines(labelled, test, a.threads, a.rf_max)
        row = {"part": "prediction", "fraction": fraction, "n_molecules": a.n_molecules,
               "y_hidden": a.y_hidden, "y_kernel": a.y_kernel, "final_probe": a.final_probe,
               "n_labelled": len(labelled), "n_test": len(test), "epochs": a.epochs,
               "r2": {m: {n: r2(p[:, j], y_test[:, j]) for j, n in enumerate(PROPERTIES)}
                      for m, p in {"molvae": pred, **base}.items()},
               "wall_s": round(time.perf_counter() - t0, 1), "hardware": hw}  # fmt: skip
        _append(results, row)
        print(f"labels {fraction:g}: {row['r2']}", file=sys.stderr)


def probe(a: argparse.Namespace, results: Path, hw: str) -> None:
    """q(y|x) refitted on finished prediction runs' encoders (the ``probe`` part)."""
    from molvae.model import MolVAE, VAEConfig
    from molvae.model.checkpoint import load_checkpoint
    from molvae.model.conditional import condition_scale
    from molvae.train.probe import probe_features, probe_init

    done = {(r["fraction"], r["n_molecules"], r["y_hidden"], r["y_kernel"])
            for r in _done(results) if r["part"] == "probe"}  # fmt: skip
    test = read_smiles("zinc-test")[: a.n_test]
    y_test = _truth(test, PROPERTIES)
    for fraction in a.fractions:
        if (fraction, a.n_molecules, a.y_hidden, a.y_kernel) in done:
            continue
        src = Path(a.out) / "runs" / f"labels-{fraction:g}"
        if not (src / "best.pt").exists():
            print(f"probe: no finished run at {src}; run the prediction part first",
                  file=sys.stderr)  # fmt: skip
            continue
        t0 = time.perf_counter()
        ck = load_checkpoint(src / "best.pt")
        codec = LatentCodec.from_checkpoint(src / "best.pt", device="cpu", grammar=None)
        config = VAEConfig(**{**ck.config.to_dict(), "y_hidden": a.y_hidden,
                              "y_kernel": a.y_kernel})  # fmt: skip
        model = MolVAE(config)
        missing, _ = model.load_state_dict(ck.state_dict, strict=False)
        assert all(k.startswith(("y_mlp.", "y_kernel.")) for k in missing), missing
        scale = condition_scale(ck.meta)
        run = TrainRunConfig(data="zinc", out_dir=str(src), max_molecules=a.n_molecules,
                             init_from=str(resolve_model(a.init)), properties=PROPERTIES,
                             conditional=True,
                             label_fraction=None if fraction >= 1 else fraction)  # fmt: skip
        filt = FilterConfig(max_tokens=codec.max_len - 2, dedupe=True)
        smiles, _ = load_smiles("zinc", config=filt, limit=a.n_molecules)
        labelled = labelled_molecules(smiles, run)
        mean, std = np.asarray(scale.mean), np.asarray(scale.std)
        props = (_truth(labelled, PROPERTIES) - mean) / std
        ids = [np.asarray(codec.vocab.encode(s)) for s in labelled]
        record = probe_init(model, ids, props, torch.device("cpu"), a.seed)
        test_ids = [np.asarray(codec.vocab.encode(s)) for s in test]
        h = torch.as_tensor(probe_features(model, test_ids, np.arange(len(test)),
                                           torch.device("cpu")))  # fmt: skip
        with torch.no_grad():
            pred = model.y_posterior(h)[0].double().numpy() * std + mean
        row = {"part": "probe", "fraction": fraction, "n_molecules": a.n_molecules,
               "from": str(src), "y_hidden": a.y_hidden, "y_kernel": a.y_kernel,
               "n_labelled": len(labelled), "n_test": len(test),
               "r2": {n: r2(pred[:, j], y_test[:, j]) for j, n in enumerate(PROPERTIES)},
               "probe": {k: v for k, v in record.items() if k.startswith("kernel_")},
               "wall_s": round(time.perf_counter() - t0, 1), "hardware": hw}  # fmt: skip
        _append(results, row)
        print(f"probe {fraction:g}: {row['r2']}", file=sys.stderr)


def probe_table(rows: list[dict[str, Any]]) -> str:
    """R² of each refitted q(y|x), by label fraction and parts."""
    lines = ["| labels | q(y\\|x) parts | " + " | ".join(PROPERTIES) + " |",
             "|---|---|" + "---|" * len(PROPERTIES)]  # fmt: skip
    for r in sorted(rows, key=lambda r: (r["fraction"], r["y_hidden"], r["y_kernel"])):
        parts = ["linear"] + ([f"MLP {r['y_hidden']}"] if r["y_hidden"] else [])
        parts += [f"kernel {r['y_kernel']}"] if r["y_kernel"] else []
        cells = " | ".join(f"{r['r2'][n]:.3f}" for n in PROPERTIES)
        lines.append(f"| {r['fraction']:g} ({r['n_labelled']:,}) | {' + '.join(parts)} | {cells} |")
    return "\n".join(lines)


def baselines(
    labelled: list[str], test: list[str], threads: int, rf_max: int | None = None
) -> dict[str, np.ndarray]:
    """Ridge and random-forest predictions of the properties on ``test`` from Morgan
    fingerprints, fitted on the ``labelled`` molecules; no forest past ``rf_max`` of them (200
    fully grown trees on 2048 bits took most of 42 minutes of one core at 9,500 molecules)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import RidgeCV

    x, y = _fingerprints(labelled), _truth(labelled, PROPERTIES)
    xt = _fingerprints(test)
    forest = rf_max is None or len(labelled) <= rf_max
    out = {"ridge_fp": np.zeros((len(test), len(PROPERTIES)))}
    if forest:
        out["rf_fp"] = np.zeros((len(test), len(PROPERTIES)))
    for j in range(len(PROPERTIES)):
        ok = np.isfinite(y[:, j])
        ridge = RidgeCV(alphas=np.logspace(-2, 3, 11)).fit(x[ok], y[ok, j])
        out["ridge_fp"][:, j] = ridge.predict(xt)
        if not forest:
            continue
        rf = RandomForestRegressor(n_estimators=200, min_samples_leaf=1, n_jobs=threads,
                                   random_state=0).fit(x[ok], y[ok, j])  # fmt: skip
        out["rf_fp"][:, j] = rf.predict(xt)
    return out


def prediction_table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for n in PROPERTIES:
        table = []
        for r in sorted(rows, key=lambda r: (r["fraction"], r.get("y_hidden", 0),
                                             r.get("y_kernel", 0),
                                             r.get("final_probe", False))):  # fmt: skip
            head = f", q(y\\|x) + MLP {r['y_hidden']}" if r.get("y_hidden") else ""
            head += f", q(y\\|x) kernel {r['y_kernel']}" if r.get("y_kernel") else ""
            head += ", final probe" if r.get("final_probe") else ""
            table.append({"labels": f"{100 * r['fraction']:g}% ({r['n_labelled']:,}){head}",
                          **{m: round(v[n], 3) for m, v in r["r2"].items()}})  # fmt: skip
        # a row without a method (the forest past --rf-max) shows an empty cell
        lines += [f"R² of {n} on {rows[0]['n_test']:,} held-out MOSES test molecules:", "",
                  markdown_table(pd.DataFrame(table).astype(object).fillna("")), ""]  # fmt: skip
    return "\n".join(lines)


# ------------------------------------------------------------------ generation
def _training_set() -> tuple[set[str], str]:
    path = cache_dir() / "moses" / "train.csv.gz"
    if path.exists():
        return set(read_smiles(path)), "the full MOSES train split"
    return set(read_smiles("zinc")), "the bundled 250k subset of MOSES train (an upper bound)"


def _set_metrics(smiles: list[str], train: set[str]) -> tuple[dict[str, float], list]:
    """Validity, uniqueness and novelty of decoded strings, and their canonical forms."""
    can = [canonical(s) for s in smiles]
    valid = [c for c in can if c]
    unique = set(valid)
    return {
        "valid": len(valid) / len(smiles),
        "unique": len(unique) / max(len(valid), 1),
        "novel": len(unique - train) / max(len(unique), 1),
    }, can  # type: ignore[return-value]


def generation(a: argparse.Namespace, results: Path, hw: str) -> None:
    done = {(r["model"], r["property"], r["target"], r.get("best_of", 1),
             r.get("prior_temperature", 1.0)) for r in _done(results)
            if r["part"] == "generation"}  # fmt: skip
    train, train_name = _training_set()
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), device="cpu",
                                        grammar=GrammarConfig())  # fmt: skip
    base = LatentCodec.from_checkpoint(resolve_model(a.baseline), device="cpu",
                                       grammar=GrammarConfig())  # fmt: skip
    # one unconditional set serves every target: its first best_of x n molecules match the
    # decoding cost of a conditional row
    _, base_smiles = base.sample(a.n * max(h.best_of for h in a.to_order), seed=a.seed)
    base_metrics = _set_metrics(base_smiles[: a.n], train)[0]
    base_can = [canonical(x) for x in base_smiles]
    for name, targets in a.targets.items():
        base_values = _truth([c or "" for c in base_can], [name])[:, 0]
        for target in targets:
            for how in a.to_order:
                if (a.model, name, target, how.best_of, how.temperature) in done:
                    continue
                t0 = time.perf_counter()
                _, smiles = codec.sample(a.n, seed=a.seed, condition={name: target},
                                         to_order=how)  # fmt: skip
                metrics, can = _set_metrics(smiles, train)
                values = np.array(_truth([c for c in can if c], [name])[:, 0])
                within = float(np.sum(np.abs(values - target) <= TOL[name]) / a.n)
                cost = base_values[: a.n * how.best_of]
                b_within = min(int(np.sum(np.abs(cost - target) <= TOL[name])), a.n) / a.n
                row = {"part": "generation", "model": a.model, "baseline": a.baseline,
                       "property": name, "target": target, "tolerance": TOL[name], "n": a.n,
                       "best_of": how.best_of, "prior_temperature": how.temperature,
                       "mean": float(np.nanmean(values)),
                       "abs_error": float(abs(np.nanmean(values) - target)),
                       "within": within, **metrics, "baseline_within": b_within,
                       "baseline_mean": float(np.nanmean(base_values[: a.n])),
                       "baseline_valid": base_metrics["valid"], "novelty_against": train_name,
                       "wall_s": round(time.perf_counter() - t0, 1), "hardware": hw}  # fmt: skip
                _append(results, row)
                print(f"{name}={target:g} best of {how.best_of} at T {how.temperature:g}: mean "
                      f"{row['mean']:.3g}, within {within:.2f} (unconditional {b_within:.2f}), "
                      f"valid {metrics['valid']:.2f}, novel {metrics['novel']:.3f}",
                      file=sys.stderr)  # fmt: skip


def generation_table(rows: list[dict[str, Any]]) -> str:
    table = [{"property": r["property"], "target": r["target"],
              "best of": r.get("best_of", 1), "prior T": r.get("prior_temperature", 1.0),
              "mean": round(r["mean"], 3), "abs error": round(r["abs_error"], 3),
              "within tol": round(r["within"], 3),
              "unconditional within": round(r["baseline_within"], 3), "valid": round(r["valid"], 3),
              "unique": round(r["unique"], 3), "novel": round(r["novel"], 3)}
             for r in rows]  # fmt: skip
    tol = ", ".join(f"{k} ±{v:g}" for k, v in TOL.items())
    return (
        f"{rows[0]['n']} decoded per target (tolerances: {tol}; novelty against "
        f"{rows[0]['novelty_against']}):\n\n" + markdown_table(pd.DataFrame(table)) + "\n"
    )


# ------------------------------------------------------------------ likelihood
def likelihood(a: argparse.Namespace, results: Path, hw: str) -> None:
    done = {(r["model"], r["n_test"], r["k"]) for r in _done(results) if r["part"] == "likelihood"}
    test = read_smiles("zinc-test")[: a.n_test]
    for model in a.models:
        if (model, a.n_test, a.k) in done:
            continue
        t0 = time.perf_counter()
        codec = LatentCodec.from_checkpoint(resolve_model(model), device="cpu", grammar=None)
        s = codec.likelihood_bounds(test, k=a.k, seed=a.seed).summary()
        row = {"part": "likelihood", "model": model, "n_test": a.n_test, **s,
               "wall_s": round(time.perf_counter() - t0, 1), "hardware": hw}  # fmt: skip
        _append(results, row)
        print(f"{model}: ELBO {s['elbo']:.2f}, IWAE {s['iwae']:.2f}", file=sys.stderr)


def likelihood_table(rows: list[dict[str, Any]]) -> str:
    table = [{"model": r["model"], "molecules": r["n"], "K": r["k"],
              "ELBO": f"{r['elbo']:.2f} ± {r['elbo_sem']:.2f}",
              "IWAE": f"{r['iwae']:.2f} ± {r['iwae_sem']:.2f}", "IWAE - ELBO": round(r["gap"], 2)}
             for r in rows]  # fmt: skip
    return markdown_table(pd.DataFrame(table)) + "\n"


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "parts",
        nargs="*",
        metavar="PART",
        help="prediction, generation, likelihood and/or probe (default: the first three)",
    )
    p.add_argument("--out", default="runs/conditional_bench")
    p.add_argument("--init", default="default", help="prediction: the model fine-tuned")
    p.add_argument("--n-molecules", type=int, default=50_000, help="prediction: training set")
    p.add_argument("--fractions", type=float, nargs="+", default=FRACTIONS)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=None, help="per epoch (smoke runs)")
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument(
        "--y-hidden",
        type=int,
        default=0,
        help="prediction: width of q(y|x)'s MLP part (VAEConfig.y_hidden; 0 = linear only)",
    )
    p.add_argument(
        "--y-kernel",
        type=int,
        default=0,
        help="prediction, probe: inducing summaries of q(y|x)'s kernel part (VAEConfig.y_kernel;"
        " 0 = none)",
    )
    p.add_argument(
        "--no-final-probe",
        dest="final_probe",
        action="store_false",
        help="prediction: keep the fine-tuned q(y|x) (TrainConfig.final_probe off)",
    )
    p.add_argument(
        "--rf-max",
        type=int,
        default=20_000,
        help="prediction: no random forest on more labelled molecules than this",
    )
    p.add_argument("--model", default="conditional", help="generation: the conditional model")
    p.add_argument("--baseline", default="default", help="generation: unconditional model")
    p.add_argument("-n", type=int, default=500, help="generation: molecules per target")
    p.add_argument(
        "--to-order",
        nargs="+",
        default=["1:1.0", f"{ToOrder().best_of}:{ToOrder().temperature}"],
        metavar="K:T",
        help="generation: best of K decodings, the prior at "
        "temperature T (molvae.model.ToOrder), one row each (default: %(default)s)",
    )
    p.add_argument("--models", nargs="+", default=["default", "moses-250k", "zinc250k-props",
                                                   "conditional"],
                   help="likelihood: models (names or checkpoints)")  # fmt: skip
    p.add_argument("-k", type=int, default=50, help="likelihood: importance samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true", help="every part, tiny, with the default")
    a = p.parse_args(argv)
    a.targets = TARGETS
    a.to_order = [ToOrder(int(k), float(t)) for k, t in (x.split(":") for x in a.to_order)]
    parts = a.parts or ["prediction", "generation", "likelihood"]
    unknown = set(parts) - {"prediction", "generation", "likelihood", "probe"}
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}: choose prediction, generation, likelihood, "
                "probe")  # fmt: skip
    if a.smoke:
        a.n_molecules, a.fractions, a.epochs, a.max_steps, a.n_test = 300, [0.5], 1, 2, 20
        a.n, a.k, a.models = 8, 4, ["default"]
        a.targets, a.to_order = {"logp": [3.0]}, [ToOrder()]
    torch.set_num_threads(a.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    results = Path(a.out) / "results.jsonl"
    hw = hardware()
    if "prediction" in parts:
        prediction(a, results, hw)
    if "generation" in parts:
        if a.smoke:  # a conditional model of the smoke run's own
            a.model = str(Path(a.out) / "runs" / f"labels-{a.fractions[0]:g}" / "best.pt")
        generation(a, results, hw)
    if "likelihood" in parts:
        likelihood(a, results, hw)
    if "probe" in parts:
        probe(a, results, hw)
    rows = _done(results)
    text = []
    for part, render in (("prediction", prediction_table), ("generation", generation_table),
                         ("likelihood", likelihood_table), ("probe", probe_table)):  # fmt: skip
        mine = [r for r in rows if r["part"] == part]
        if mine:
            text += [f"## {part}", "", render(mine)]
    report = "\n".join(text) + f"\nHardware: {hw}\n"
    write_text(Path(a.out) / "results.md", report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
