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

import numpy as np
import pandas as pd
import torch

from molvae.bo import BOConfig
from molvae.chem import (
    available_objectives,
    canonical,
    get_objective,
    largest_fragment,
    score_smiles,
)
from molvae.data import fetch_moses, read_latents, read_table
from molvae.evaluation import EvaluateConfig
from molvae.io import write_csv, write_npy
from molvae.model import GrammarConfig, LatentCodec, VAEConfig
from molvae.resources import resolve_model
from molvae.runs import OptimizeRunConfig, TrainRunConfig, evaluate_model, optimize, train_on_smiles
from molvae.train import TrainConfig


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
    }
    tc = _config(TrainConfig, overrides)
    result = train_on_smiles(run, tc, progress=not a.no_progress)
    print(f"best checkpoint: {result.best_path}\nlast checkpoint: {result.last_path}")


def _cmd_sample(a: argparse.Namespace) -> None:
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), a.device, _grammar(a))
    _, smiles = codec.sample(a.n, strategy=a.strategy, temperature=a.temperature, seed=a.seed)
    can = [canonical(s) for s in smiles]
    df = pd.DataFrame(
        {
            "smiles": smiles,
            "canonical": [c or "" for c in can],
            "valid": [c is not None for c in can],
        }
    )
    print(f"{int(df.valid.sum())}/{len(df)} valid", file=sys.stderr)
    _write_df(df, a.out)


def _encode_inputs(codec, path: str, column: str | None):
    """Canonicalize a file's SMILES and encode them; per-row status, never a crash."""

    df, col = read_table(path, column)
    raw = [str(s).strip() for s in df[col]]
    can = [canonical(largest_fragment(s) or "") if s else None for s in raw]
    enc = codec.encode([c or "" for c in can])
    status = [
        "invalid" if c is None else ("ok" if ok else reason)
        for c, ok, reason in zip(can, enc.ok, enc.reason, strict=True)
    ]
    return df, col, raw, can, enc, status


def _cmd_encode(a: argparse.Namespace) -> None:
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), device=a.device)
    _, _, raw, can, enc, status = _encode_inputs(codec, a.input, a.column)
    z = enc.z.numpy()
    info = pd.DataFrame({"smiles": raw, "canonical": [c or "" for c in can], "status": status})
    out = Path(a.out)
    if out.suffix == ".csv":
        zdf = pd.DataFrame(z, columns=[f"z{i}" for i in range(z.shape[1])])
        write_csv(out, pd.concat([info, zdf], axis=1))
    else:
        # as np.save does, a name without .npy gets it appended
        write_npy(out if out.suffix == ".npy" else out.with_name(out.name + ".npy"), z)
        write_csv(out.with_suffix(".status.csv"), info)
    print(f"encoded {len(raw)} rows ({_status_line(status)}) to {out}", file=sys.stderr)


def _cmd_decode(a: argparse.Namespace) -> None:
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), a.device, _grammar(a))
    z = read_latents(a.input, codec.latent_dim)
    finite = np.isfinite(z).all(axis=1)
    gen = torch.Generator().manual_seed(a.seed)
    decoded = codec.decode(
        torch.from_numpy(np.where(finite[:, None], z, 0.0)),
        strategy=a.strategy,
        temperature=a.temperature,
        beam_width=a.beam_width,
        generator=gen,
    )
    smiles = [s if ok else "" for s, ok in zip(decoded, finite, strict=True)]
    can = [canonical(s) if s else None for s in smiles]
    status = [
        "no_latent" if not ok else ("ok" if c else "invalid")
        for ok, c in zip(finite, can, strict=True)
    ]
    _write_df(
        pd.DataFrame({"smiles": smiles, "canonical": [c or "" for c in can], "status": status}),
        a.out,
    )


def _cmd_reconstruct(a: argparse.Namespace) -> None:
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), a.device, _grammar(a))
    _, _, raw, can, enc, status = _encode_inputs(codec, a.input, a.column)

    z = torch.nan_to_num(enc.z, nan=0.0)
    decoded = codec.decode(z, strategy=a.strategy)
    rec = [d if st == "ok" else "" for d, st in zip(decoded, status, strict=True)]
    rec_can = [canonical(r) if r else None for r in rec]
    match = [st == "ok" and rc == c for st, rc, c in zip(status, rec_can, can, strict=True)]
    df = pd.DataFrame(
        {
            "smiles": raw,
            "canonical": [c or "" for c in can],
            "status": status,
            "reconstructed": rec,
            "match": match,
        }
    )
    n_ok = sum(s == "ok" for s in status)
    print(
        f"reconstructed {sum(match)}/{n_ok} encodable molecules exactly ({_status_line(status)})",
        file=sys.stderr,
    )
    _write_df(df, a.out)


def _cmd_score(a: argparse.Namespace) -> None:
    if a.list:
        for name, desc in available_objectives().items():
            print(f"{name:12s} {desc}")
        return
    specs = a.objective or ["qed"]
    objectives = [get_objective(s) for s in specs]  # unknown names fail before any work
    df, col = read_table(a.input, a.column)
    smiles = [str(s).strip() for s in df[col]]
    for spec, obj in zip(specs, objectives, strict=True):
        res = score_smiles(smiles, spec, n_jobs=a.jobs)
        name = obj.name if len(specs) > 1 else "score"
        df[name] = res.scores
        df["status" if len(specs) == 1 else f"{name}_status"] = res.status
        print(f"{spec}: {_status_line(res.status)}", file=sys.stderr)
    _write_df(df, a.out)


def _cmd_evaluate(a: argparse.Namespace) -> None:
    cfg = EvaluateConfig(
        n_samples=a.n_samples,
        n_reconstruct=a.n_reconstruct,
        seed=a.seed,
        compute_fcd=not a.no_fcd,
        constrained=not a.unconstrained,
    )
    evaluate_model(
        a.model,
        a.out,
        test=a.test,
        train=a.train,
        config=cfg,
        strategy=a.strategy,
        device=a.device,
        max_reference=a.max_reference,
    )
    md = Path(a.out) / "metrics.md"
    print(md.read_text() if md.exists() else f"metrics in {a.out}")


def _cmd_optimize(a: argparse.Namespace) -> None:
    overrides = {
        "budget": a.budget,
        "batch_size": a.batch_size,
        "max_iterations": a.iterations,
        "n_init": a.n_init,
        "acquisition": a.acquisition,
        "seed": a.seed,
        "n_jobs": a.jobs,
        "trust_region": a.trust_region,
    }
    bo = _config(BOConfig, overrides)
    run = OptimizeRunConfig(
        model=a.model,
        objective=a.objective,
        data=a.data,
        out_dir=a.out,
        method=a.method,
        device=a.device,
        threads=a.threads,
        constrained=not a.unconstrained,
    )
    result = optimize(run, bo, progress=not a.no_progress)
    print(f"best {result.best_score:.4g}: {result.best_smiles}")
    print(f"report: {Path(a.out) / 'report' / 'summary.md'}")


def _cmd_fetch(a: argparse.Namespace) -> None:
    for split, path in fetch_moses(quiet=False).items():
        print(f"{split}: {path}")


COMMANDS = {
    "train": _cmd_train,
    "sample": _cmd_sample,
    "encode": _cmd_encode,
    "decode": _cmd_decode,
    "reconstruct": _cmd_reconstruct,
    "score": _cmd_score,
    "evaluate": _cmd_evaluate,
    "optimize": _cmd_optimize,
    "fetch-zinc": _cmd_fetch,
}
