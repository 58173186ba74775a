"""The ``molvae`` verbs: each reads its flags, calls `molvae.runs` or the library, writes files.

Every verb reads and writes CSV (SMILES plus columns), JSON for metrics, or ``.npy`` for latents,
through `molvae.io`'s atomic writer.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import fields
from pathlib import Path

import torch

from molvae.bo import BOConfig, GradientConfig, read_campaign, write_report
from molvae.bo.store import CampaignResult, CampaignStore
from molvae.chem import (
    OracleCache,
    available_objectives,
    default_cache_path,
    get_objective,
    parse_constraints,
    score_smiles,
)
from molvae.chem.distributed import connect
from molvae.cli.editing import cmd_edit
from molvae.cli.latents import LATENT_COMMANDS
from molvae.data import fetch_moses, read_table
from molvae.evaluation import EvaluateConfig
from molvae.io import write_csv
from molvae.model import GrammarConfig, VAEConfig
from molvae.runs import OptimizeRunConfig, TrainRunConfig, evaluate_model, optimize, train_on_smiles
from molvae.train import FinetuneConfig, TrainConfig


def _grammar(a: argparse.Namespace) -> GrammarConfig | None:
    return None if a.unconstrained else GrammarConfig()


def _write_df(df, out: str | None) -> None:
    if out is None:
        df.to_csv(sys.stdout, index=False)
    else:
        write_csv(out, df)
        print(f"wrote {len(df)} rows to {out}", file=sys.stderr)


def _config(cls, overrides: dict):
    """``cls`` with the flags the user gave (None = not given, so the dataclass default holds)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in overrides.items() if v is not None and k in names})


def _status_line(statuses) -> str:
    counts = Counter(statuses)
    return ", ".join(f"{n} {k}" for k, n in counts.most_common())


def _reuse_line(res) -> str:
    computed = sum(not c and st != "invalid" for c, st in zip(res.cached, res.status, strict=True))
    spent = float(res.seconds.sum())
    took = f"{spent:.3g}" if spent < 100 else f"{spent:.0f}"  # never 1.63e+03 s
    return f"{sum(res.cached)} reused, {computed} computed in {took} s"


def _cmd_train(a: argparse.Namespace) -> None:
    # the model-size flags are named after VAEConfig's fields; None = not given
    model = {f.name: getattr(a, f.name) for f in fields(VAEConfig)
             if getattr(a, f.name, None) is not None}  # fmt: skip
    run = TrainRunConfig(
        data=a.data,
        out_dir=a.out,
        max_molecules=a.max_molecules,
        val_fraction=a.val_fraction,
        model=model,
        resume=a.resume,
        init_from=a.init_from,
        properties=list(a.properties),
        conditional=a.conditional,
        labels=a.labels,
        label_fraction=a.label_fraction,
    )
    overrides = {
        "epochs": a.epochs,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "seed": a.seed,
        "device": a.device,
        "max_steps_per_epoch": a.max_steps_per_epoch,
        "num_threads": a.threads,
        "beta_max": a.beta_max,
        "kl_schedule": a.kl_schedule,
        "kl_warmup_epochs": a.kl_warmup_epochs,
        "free_bits": a.free_bits,
        "adversary_weight": a.adversary_weight,
        "consistency_weight": a.consistency_weight,
        "checkpoint_minutes": a.checkpoint_minutes,
    }
    tc = _config(TrainConfig, overrides)
    result = train_on_smiles(run, tc, progress=not a.no_progress)
    print(f"best checkpoint: {result.best_path}\nlast checkpoint: {result.last_path}")


def _cmd_score(a: argparse.Namespace) -> None:
    if a.list:
        for name, desc in available_objectives().items():
            print(f"{name:12s} {desc}")
        return
    if a.input is None:
        # `--cache mols.csv` takes the file as the cache's PATH: say so instead of leaving a puzzle
        hint = f" ({a.cache!r} was taken as --cache's PATH: put the file first)" if a.cache else ""
        raise ValueError(f"a SMILES file to score is required (or --list for the objectives){hint}")
    specs = a.objective or ["qed"]
    objectives = [get_objective(s) for s in specs]  # unknown names fail before any work
    parse_constraints(a.constraint)
    cache = None if a.cache is None else OracleCache(a.cache or None)  # a bad file: one line
    cluster = connect(a.scheduler) if a.scheduler else None  # unreachable: one line
    executor = cluster.executor if cluster is not None else None
    try:
        df, col = read_table(a.input, a.column)
        smiles = [str(s).strip() for s in df[col]]
        for spec, obj in zip(specs, objectives, strict=True):
            res = score_smiles(smiles, spec, n_jobs=a.jobs, constraints=a.constraint, cache=cache,
                               executor=executor)  # fmt: skip
            name = obj.name if len(specs) > 1 else "score"
            df[name] = res.scores
            df["status" if len(specs) == 1 else f"{name}_status"] = res.status
            if a.constraint:  # the same for every objective: the constraints missed
                df["missed"] = [e if st == "infeasible" else ""
                                for e, st in zip(res.error, res.status, strict=True)]  # fmt: skip
            reuse = "" if cache is None else f"; {_reuse_line(res)} ({cache.path})"
            print(f"{spec}: {_status_line(res.status)}{reuse}", file=sys.stderr)
    finally:
        if cache is not None:
            cache.close()
        if cluster is not None:
            cluster.close()
    _write_df(df, a.out)


def _cmd_cache(a: argparse.Namespace) -> None:
    path = Path(a.cache).expanduser() if a.cache else default_cache_path()
    if a.cache_command == "stats" and not path.exists():
        print(f"no oracle cache at {path} yet (molvae score --cache creates it)")
        return
    with OracleCache(path, create=False) as cache:  # a missing, foreign or damaged file: one line
        if a.cache_command == "export":
            df = cache.export(a.out, objective=a.objective)
            print(f"wrote {len(df)} rows to {a.out}", file=sys.stderr)
            return
        if a.cache_command == "backup":
            rows = int(cache.stats()["rows"].sum())
            print(f"copied {rows} rows to {cache.backup(a.out)}", file=sys.stderr)
            return
        stats = cache.stats()
    print(f"oracle cache: {path} ({path.stat().st_size / 1e6:.3g} MB)")
    if len(stats):
        print(stats.to_string(index=False))
    # hits are not counted (lookups stay read-only), so this is what one reuse of each row saves
    print(f"total: {int(stats['rows'].sum())} rows, {float(stats['seconds'].sum()):.1f} s of "
          "objective time stored (each reuse of a row saves its seconds)")  # fmt: skip


def _cmd_evaluate(a: argparse.Namespace) -> None:
    decodings = {"both": ("raw", "grammar"), "raw": ("raw",), "grammar": ("grammar",)}
    cfg = EvaluateConfig(
        n_samples=a.n_samples,
        n_reconstruct=a.n_reconstruct,
        n_recon_attempts=a.recon_attempts,
        seed=a.seed,
        decodings=("raw",) if a.unconstrained else decodings[a.decoding],
        prior=a.prior,
        compute_fcd=not a.no_fcd,
        compute_filters=not a.no_filters,
        n_jobs=a.jobs,
        cache=not a.no_cache,
        n_likelihood=a.n_likelihood,
        iwae_samples=a.iwae_samples,
    )
    if a.threads:
        torch.set_num_threads(a.threads)
    evaluate_model(
        a.model,
        a.out,
        test=a.test,
        train=a.train,
        config=cfg,
        strategy=a.strategy,
        device=a.device,
        max_reference=a.max_reference,
        test_scaffolds=a.test_scaffolds,
        recon_set=a.recon_set,
    )
    md = Path(a.out) / "metrics.md"
    print(md.read_text() if md.exists() else f"metrics in {a.out}")


def _cmd_optimize(a: argparse.Namespace) -> None:
    overrides = {
        "budget": a.budget,
        "batch_size": a.batch_size,
        "max_iterations": a.iterations,
        "n_init": a.n_init,
        "init_pool": a.init_pool,
        "free_pool": a.free_pool,
        "acquisition": a.acquisition,
        "seed": a.seed,
        "n_jobs": a.jobs,
        "trust_region": a.trust_region,
        "constraint_model": a.constraint_model,
        "surrogate": a.surrogate,
        "vae_neighbours": a.vae_neighbours,
        "fp_kind": a.fp_kind,
        "known_part": a.known_part,
        "max_heavy_atoms": a.max_heavy_atoms,
        "retrain_every": a.retrain_every,
        "retrain_k": a.retrain_k,
        "async_workers": a.async_calls or None,  # --async alone: OptimizeRunConfig sizes it
        "n_objectives": len(a.objective or [None]),
        "ref_point": a.ref_point,
    }
    bo = _config(BOConfig, overrides)
    run = OptimizeRunConfig(
        model=a.model,
        objective=(a.objective or ["qed"])[0] if len(a.objective or []) <= 1 else a.objective,
        data=a.data,
        out_dir=a.out,
        method=a.method,
        device=a.device,
        threads=a.threads,
        constrained=not a.unconstrained,
        prior=a.prior,
        constraints=list(a.constraint),
        init_data=a.init_data,
        init_score_column=a.init_score_column,
        scheduler=a.scheduler,
        cache=a.cache,
        async_bo=a.async_calls is not None,
    )
    gradient = GradientConfig(steps=a.steps, step_size=a.step_size, n_starts=a.starts,
                              substep_growth=a.substep_growth)  # fmt: skip
    finetune = FinetuneConfig(steps=a.retrain_steps, batch_size=a.retrain_batch_size,
                              lr=a.retrain_lr)  # fmt: skip
    result = optimize(run, bo, progress=not a.no_progress, gradient=gradient, finetune=finetune)
    if result.config.n_objectives > 1:
        _print_front(result)
    elif result.best_smiles is None:  # nothing scored ok: say why instead of "best nan: None"
        counts = result.history["status"].value_counts().to_dict()
        print(f"best: none (no molecule scored ok; statuses {counts})")
    else:
        print(f"best {result.best_score:.4g}: {result.best_smiles}")
    print(f"stopped: {result.stop_reason}")
    print(f"report: {Path(a.out) / 'report' / 'index.html'} (and summary.md)")
    c = result.oracle_counts()
    print(f"oracle calls: {c['calls']} of {c['budget']} (pool {c['pool']}, proposals "
          f"{c['proposals']}); free: {c['free_data'] + c['free_pool']}")  # fmt: skip


def _print_front(result: CampaignResult) -> None:
    """A multi-objective campaign's last lines: the hypervolume and the Pareto set's size."""
    state = CampaignStore(result.out_dir).read_state() or {}
    ref = state.get("ref_point")
    print(
        f"pareto set: {len(state.get('pareto', []))} molecules; hypervolume "
        f"{state.get('hypervolume', float('nan')):.4g} above reference point {ref}"
    )


def _cmd_report(a: argparse.Namespace) -> None:
    result = read_campaign(a.campaign)  # a directory that is no campaign: one line
    files = write_report(result, top_k=result.config.top_k, smarts=a.smarts)
    for name, path in files.items():
        print(f"{name}: {path}")


def _cmd_fetch(a: argparse.Namespace) -> None:
    for split, path in fetch_moses(quiet=False).items():
        print(f"{split}: {path}")


COMMANDS = {
    "train": _cmd_train,
    **LATENT_COMMANDS,  # sample, encode, decode, reconstruct, fit-prior
    "edit": cmd_edit,
    "score": _cmd_score,
    "cache": _cmd_cache,
    "evaluate": _cmd_evaluate,
    "optimize": _cmd_optimize,
    "report": _cmd_report,
    "fetch-zinc": _cmd_fetch,
}
