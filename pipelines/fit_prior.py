"""Choose a learned latent prior for a model on held-out molecules, and write it into a checkpoint.

    python pipelines/fit_prior.py                      # the bundled model: candidates, table, prior
    python pipelines/fit_prior.py --smoke              # seconds; what the tests run
    python pipelines/fit_prior.py --candidates "posterior:smoothing=1.5" "flow:temperature=0.9"

Protocol (issue 15, part 1): encode ``--n-fit`` random training molecules (posterior means and
variances) and ``--n-heldout`` others; fit each candidate prior (`molvae.model.prior`) to the
fit set; draw ``--n-samples`` latents, decode them raw (no grammar, sampled at temperature 1, as
MOSES), and measure validity, uniqueness, novelty against all of ``--data`` and the FCD against
the first ``--n-reference`` molecules of ``--test``; the held-out molecules' mean log density
under the prior (``heldout_logp``) says how well it generalizes. N(0, I) is the baseline row.
The chosen prior is the candidate with the lowest FCD among those with novelty >=
``--min-novelty`` (a prior that memorizes the training codes reproduces the aggregate
posterior's novelty of about 0.4). It is written, with the training domain of all of ``--data``,
into ``--out`` (a new checkpoint; the bundled model is never overwritten). ``results.csv`` and
``results.md`` go to ``--results``. FCD on 5,000 samples is biased upward: compare rows, not
with the 30,000-sample numbers of ``molvae evaluate``.

A candidate is ``kind:key=value,...`` with `PriorConfig` fields; candidates that differ only in
``temperature`` share one fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from molvae.chem import canonical
from molvae.data import read_smiles
from molvae.evaluation.metrics import fcd_score
from molvae.io import markdown_table, write_csv, write_text
from molvae.model import LatentCodec
from molvae.model.checkpoint import add_to_checkpoint
from molvae.model.domain import compute_domain
from molvae.model.prior import LatentPrior, PriorConfig, fit_prior
from molvae.resources import resolve_model
from molvae.runs.priors import encode_posteriors, sample_rows

CANDIDATES = [
    "gaussian",
    "posterior:smoothing=1.0,components=10000",  # the aggregate posterior: memorizes
    "posterior:smoothing=1.5,components=10000,max_scale=1",
    "posterior:smoothing=1.75,components=10000,max_scale=1",
    "posterior:smoothing=2.0,components=10000,max_scale=1",
    "posterior:smoothing=2.0,components=10000",
    "posterior:smoothing=2.5,components=10000,max_scale=1",
    "gmm:components=16,covariance=full",
    "gmm:components=16,covariance=full,temperature=0.8",
    "flow:flow=maf,hidden=256,epochs=30",
    "flow:flow=maf,hidden=256,epochs=30,temperature=0.9",
    "flow:flow=maf,hidden=256,epochs=30,smoothing=2.0,max_scale=1",
    "flow:flow=nsf,hidden=128,epochs=10",
]
SMOKE = ["gaussian", "posterior:smoothing=1.5,components=100", "gmm:components=2",
         "flow:flow=maf,transforms=1,hidden=16,epochs=2"]  # fmt: skip


# unsmoothed unless a candidate says otherwise
NEUTRAL = {"smoothing": 1.0, "max_scale": 0.0, "temperature": 1.0}


def parse_candidate(spec: str) -> PriorConfig | None:
    """``kind:key=value,...`` -> `PriorConfig` (``gaussian`` -> None, the N(0, I) baseline)."""
    kind, _, rest = spec.partition(":")
    if kind == "gaussian":
        return None
    base = PriorConfig(kind=kind)
    values = dict(NEUTRAL)  # a spec means the same whatever PriorConfig's defaults become
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if not hasattr(base, key):
            raise ValueError(f"candidate {spec!r}: PriorConfig has no field {key!r}")
        values[key] = type(getattr(base, key))(value)
    return PriorConfig(kind=kind, **values)


def _metrics(smiles: list[str], train: set[str], reference: list[str]) -> dict[str, float]:
    can = [canonical(s) for s in smiles]
    valid = [c for c in can if c]
    distinct = set(valid)
    out = {"valid": len(valid) / len(smiles), "unique": len(distinct) / max(1, len(valid))}
    out["novel"] = len(distinct - train) / max(1, len(distinct))
    out["fcd"] = fcd_score(valid, reference) if len(valid) > 1 else float("nan")
    return out


def evaluate_candidates(args, codec, fit, heldout, train_set, reference) -> pd.DataFrame:
    """One row per candidate: fit (shared across temperatures), sample, decode, measure."""
    rows, fits = [], {}
    for spec in args.candidates:
        cfg = parse_candidate(spec)
        t0 = time.perf_counter()
        prior: LatentPrior | None = None
        if cfg is not None:
            key = PriorConfig.from_dict({**cfg.to_dict(), "temperature": 1.0})
            if key not in fits:
                fits[key] = fit_prior(*fit, key)
            prior = fits[key].with_temperature(cfg.temperature)
        fit_s = time.perf_counter() - t0
        gen = torch.Generator().manual_seed(args.seed)
        if prior is not None:
            z = prior.sample(args.n_samples, gen)
        else:
            z = torch.randn(args.n_samples, codec.latent_dim, generator=gen)
        smiles = codec.decode(z, "sample", generator=gen)
        row = {"candidate": spec, **_metrics(smiles, train_set, reference)}
        logp = prior.log_prob(heldout) if prior else _std_normal_logp(heldout)
        row.update(heldout_logp=float(logp.mean()), fit_s=fit_s, s=time.perf_counter() - t0)
        rows.append(row)
        print("| " + " | ".join(_cell(v) for v in row.values()) + " |", flush=True)
        row["_prior"] = prior
    return pd.DataFrame(rows)


def _std_normal_logp(z: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def choose(table: pd.DataFrame, min_novelty: float) -> pd.Series | None:
    """The learned candidate with the lowest FCD among those novel enough (None if none is)."""
    ok = table[(table["novel"] >= min_novelty) & table["_prior"].notna()]
    return None if ok.empty else ok.loc[ok["fcd"].idxmin()]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.n_fit, args.n_heldout, args.n_samples, args.n_reference = 300, 100, 100, 100
        args.candidates = args.candidates or SMOKE
    args.candidates = args.candidates or CANDIDATES
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    codec = LatentCodec.from_checkpoint(resolve_model(args.model), "cpu", grammar=None)
    train = read_smiles(args.data)
    rows = sample_rows(len(train), args.n_fit + args.n_heldout, args.seed)
    fit = encode_posteriors(codec, [train[i] for i in rows[: args.n_fit]])
    heldout = encode_posteriors(codec, [train[i] for i in rows[args.n_fit :]])[0]
    pool = train if not args.smoke else train[:5000]
    train_set = {c for c in map(canonical, pool) if c}
    reference = read_smiles(args.test)[: args.n_reference]
    print(f"encoded {len(fit[0])} + {len(heldout)} molecules; novelty against {len(train_set)}",
          file=sys.stderr)  # fmt: skip
    print("| candidate | valid | unique | novel | fcd | heldout_logp | fit_s | s |")
    print("|---|---|---|---|---|---|---|---|")
    table = evaluate_candidates(args, codec, fit, heldout, train_set, reference)
    best = choose(table, args.min_novelty)
    shown = table.drop(columns="_prior")
    results = Path(args.results)
    write_csv(results / "results.csv", shown)
    note = "none reached the novelty bar" if best is None else f"chosen: `{best['candidate']}`"
    write_text(results / "results.md", markdown_table(shown) + f"\n\n{note}\n")
    print(f"\n{note} (novelty >= {args.min_novelty}, lowest FCD)")
    if best is not None and args.out:
        domain = compute_domain(pool, {"data": str(args.data)}, args.jobs)
        add_to_checkpoint(resolve_model(args.model), args.out, prior=best["_prior"], domain=domain)
        print(f"wrote {args.out} (prior {best['candidate']}, domain of {domain.n_molecules})")
    print(f"{time.perf_counter() - t0:.0f} s in all", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--data", default="zinc", help="training SMILES (default: %(default)s)")
    p.add_argument("--test", default="zinc-test", help="FCD reference (default: %(default)s)")
    p.add_argument("--candidates", nargs="*", default=None, help="default: the built-in list")
    for flag, value in (("--n-fit", 50_000), ("--n-heldout", 5_000), ("--n-samples", 5_000),
                        ("--n-reference", 10_000), ("--seed", 0), ("--threads", 1),
                        ("--jobs", 1)):  # fmt: skip
        p.add_argument(flag, type=int, default=value, help="(default: %(default)s)")
    p.add_argument("--min-novelty", type=float, default=0.8)
    p.add_argument("--out", default="runs/prior/model.pt", help="checkpoint to write ('' = none)")
    p.add_argument("--results", default="runs/prior", help="results.csv and results.md")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    return p


if __name__ == "__main__":
    sys.exit(main())
