"""The ``molvae`` command: a thin layer over `molvae.runs` and the library.

Every verb reads and writes CSV (SMILES plus columns), JSON for metrics, or ``.npy`` for latents.
Expected failures (bad files, bad names, damaged checkpoints) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from dataclasses import fields
from pathlib import Path

DEFAULT_MODEL = "default"


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="checkpoint file, or 'default' for the bundled model (default: %(default)s)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")


def _add_grammar(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--unconstrained",
        action="store_true",
        help="decode the model's raw distribution, not through the SMILES grammar "
        "(more invalid strings; what MOSES-style benchmarks measure)",
    )


def _grammar(a: argparse.Namespace):
    from molvae.grammar import GrammarConfig

    return None if a.unconstrained else GrammarConfig()


def _add_out(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument("--out", "-o", default=default, help=f"{what} (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molvae",
        description="SMILES VAE on ZINC and Bayesian optimization in its latent space.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a VAE on a SMILES file or a ZINC set")
    p.add_argument(
        "--data",
        default="zinc",
        help="SMILES file, 'zinc' (bundled 250k subset) or 'zinc-full' (MOSES train, "
        "fetched once) (default: %(default)s)",
    )
    _add_out(p, "runs/molvae", "run directory: checkpoints, metrics.csv, config.json")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta-max", type=float, default=None, help="final KL weight")
    p.add_argument("--kl-schedule", choices=["linear", "sigmoid", "constant"], default=None)
    p.add_argument("--kl-warmup-epochs", type=float, default=None)
    p.add_argument("--max-molecules", type=int, default=None, help="use the first N molecules")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--max-steps-per-epoch", type=int, default=None, help="smoke runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL",
        help="fine-tune: start from this checkpoint's weights, size and vocabulary "
        "('default' = the bundled model)",
    )
    p.add_argument("--no-progress", action="store_true")
    for name, typ in [
        ("emb-dim", int),
        ("enc-hidden", int),
        ("enc-layers", int),
        ("latent-dim", int),
        ("dec-hidden", int),
        ("dec-layers", int),
        ("dropout", float),
        ("max-len", int),
    ]:
        p.add_argument(f"--{name}", type=typ, default=None, help="model size (VAEConfig)")

    p = sub.add_parser("sample", help="decode samples from the prior")
    _add_model(p)
    p.add_argument("-n", type=int, default=100, help="number of samples (default: %(default)s)")
    p.add_argument("--strategy", choices=["greedy", "sample", "beam"], default="greedy")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    _add_grammar(p)
    _add_out(p, None, "CSV file (default: standard output)")

    p = sub.add_parser("encode", help="SMILES file -> latent means (.npy or .csv)")
    _add_model(p)
    p.add_argument("input", help="SMILES file (.smi/.txt/.csv, optionally .gz)")
    p.add_argument("--column", default=None, help="SMILES column of a CSV")
    _add_out(
        p,
        "latents.npy",
        ".npy (n x d, NaN rows where not encodable, plus a .status.csv) "
        "or .csv (smiles, status, z0..)",
    )

    p = sub.add_parser("decode", help="latents (.npy or .csv with z0.. columns) -> SMILES")
    _add_model(p)
    p.add_argument("input", help=".npy (n x d) or .csv with z0..z{d-1} columns")
    p.add_argument("--strategy", choices=["greedy", "sample", "beam"], default="greedy")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--beam-width", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    _add_grammar(p)
    _add_out(p, None, "CSV file (default: standard output)")

    p = sub.add_parser("reconstruct", help="encode then decode each molecule of a SMILES file")
    _add_model(p)
    p.add_argument("input")
    p.add_argument("--column", default=None)
    p.add_argument("--strategy", choices=["greedy", "beam"], default="greedy")
    _add_grammar(p)
    _add_out(p, None, "CSV file (default: standard output)")

    p = sub.add_parser("score", help="add objective scores (and a status column) to a SMILES file")
    p.add_argument("input")
    p.add_argument(
        "--objective",
        "-O",
        action="append",
        default=None,
        help="objective name, similarity:SMILES or module:function; repeatable "
        "(default: qed); see --list",
    )
    p.add_argument("--column", default=None)
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--list", action="store_true", help="list the objectives and exit")
    _add_out(p, None, "CSV file (default: standard output)")

    p = sub.add_parser("evaluate", help="generation and reconstruction metrics of a model")
    _add_model(p)
    p.add_argument("--n-samples", type=int, default=30_000)
    p.add_argument("--n-reconstruct", type=int, default=1000)
    p.add_argument("--test", default="zinc-test", help="held-out SMILES (default: %(default)s)")
    p.add_argument("--train", default="zinc", help="training SMILES for novelty")
    p.add_argument(
        "--strategy",
        choices=["sample", "greedy"],
        default="sample",
        help="how prior samples are decoded (default: %(default)s, as MOSES)",
    )
    p.add_argument(
        "--max-reference",
        type=int,
        default=50_000,
        help="use the first N test molecules; novelty is against all of --train "
        "(default: %(default)s)",
    )
    p.add_argument("--no-fcd", action="store_true", help="skip the Frechet ChemNet Distance")
    p.add_argument("--seed", type=int, default=0)
    _add_grammar(p)
    _add_out(p, "runs/evaluate", "directory for metrics.json, metrics.md, histograms")

    p = sub.add_parser("optimize", help="Bayesian optimization (or random search) in latent space")
    _add_model(p)
    p.add_argument("--objective", default="qed", help="objective (default: %(default)s)")
    p.add_argument(
        "--budget",
        type=int,
        default=100,
        help="scored molecules proposed after the initial design (default: %(default)s)",
    )
    p.add_argument("--batch-size", "-q", type=int, default=25)
    p.add_argument("--iterations", type=int, default=None, help="cap on BO iterations")
    p.add_argument("--n-init", type=int, default=None, help="initial design size")
    p.add_argument("--acquisition", choices=["qlogei", "qucb", "ts"], default=None)
    p.add_argument(
        "--trust-region",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="TuRBO-style trust region around the incumbent (default: on)",
    )
    p.add_argument("--method", choices=["bo", "random"], default="bo")
    p.add_argument("--data", default="zinc", help="initial design pool")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="scoring processes")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (1 is fastest when other jobs share the CPU)",
    )
    p.add_argument("--no-progress", action="store_true")
    _add_grammar(p)
    _add_out(p, "campaigns/run", "campaign directory; an existing one is resumed")

    p = sub.add_parser("fetch-zinc", help="download and cache the full MOSES ZINC splits")
    return parser


# ---------------------------------------------------------------------------------------------


def _write_df(df, out: str | None) -> None:
    if out is None:
        df.to_csv(sys.stdout, index=False)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False)
        print(f"wrote {len(df)} rows to {out}", file=sys.stderr)


def _config(cls, overrides: dict):
    """``cls`` with the flags the user gave (None = not given, so the dataclass default holds)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in overrides.items() if v is not None and k in names})


def _status_line(statuses) -> str:
    counts = Counter(statuses)
    return ", ".join(f"{n} {k}" for k, n in counts.most_common())


def _cmd_train(a: argparse.Namespace) -> None:
    from molvae.runs import TrainRunConfig, train_on_smiles
    from molvae.train import TrainConfig

    model = {
        k.replace("-", "_"): getattr(a, k.replace("-", "_"))
        for k in [
            "emb-dim",
            "enc-hidden",
            "enc-layers",
            "latent-dim",
            "dec-hidden",
            "dec-layers",
            "dropout",
            "max-len",
        ]
        if getattr(a, k.replace("-", "_")) is not None
    }
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
    import pandas as pd

    from molvae.chem import canonical
    from molvae.codec import LatentCodec
    from molvae.runs import resolve_model

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
    from molvae.chem import canonical, largest_fragment
    from molvae.data import read_table

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
    import numpy as np
    import pandas as pd

    from molvae.codec import LatentCodec
    from molvae.runs import resolve_model

    codec = LatentCodec.from_checkpoint(resolve_model(a.model), device=a.device)
    _, _, raw, can, enc, status = _encode_inputs(codec, a.input, a.column)
    z = enc.z.numpy()
    info = pd.DataFrame({"smiles": raw, "canonical": [c or "" for c in can], "status": status})
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        zdf = pd.DataFrame(z, columns=[f"z{i}" for i in range(z.shape[1])])
        pd.concat([info, zdf], axis=1).to_csv(out, index=False)
    else:
        np.save(out, z)
        info.to_csv(out.with_suffix(".status.csv"), index=False)
    print(f"encoded {len(raw)} rows ({_status_line(status)}) to {out}", file=sys.stderr)


def _cmd_decode(a: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from molvae.chem import canonical
    from molvae.codec import LatentCodec, read_latents
    from molvae.runs import resolve_model

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
    import pandas as pd

    from molvae.chem import canonical
    from molvae.codec import LatentCodec
    from molvae.runs import resolve_model

    codec = LatentCodec.from_checkpoint(resolve_model(a.model), a.device, _grammar(a))
    _, _, raw, can, enc, status = _encode_inputs(codec, a.input, a.column)
    import torch

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
    from molvae.chem import available_objectives, get_objective, score_smiles
    from molvae.data import read_table

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
    from molvae.evaluation import EvaluateConfig
    from molvae.runs import evaluate_model

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
    from molvae.bo import BOConfig
    from molvae.runs import OptimizeRunConfig, optimize

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
    from molvae.data import fetch_moses

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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``molvae`` command; returns the exit status."""
    from molvae.data import DataError

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # OSError: a full disk, a read-only or missing directory; the user's to fix, not a bug
    expected: tuple[type[BaseException], ...] = (DataError, ValueError, OSError)
    try:
        from molvae.checkpoint import CheckpointError
        from molvae.train import TrainingDiverged

        expected = (*expected, CheckpointError, TrainingDiverged)
    except ImportError:  # pragma: no cover - only while the package is incomplete
        pass
    try:
        COMMANDS[args.command](args)
    except expected as exc:
        if args.verbose:
            raise
        print(f"molvae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"molvae {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
