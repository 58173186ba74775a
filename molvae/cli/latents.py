"""The latent-space verbs: ``sample``, ``encode``, ``decode``, ``reconstruct``, ``fit-prior``.

Their flags (`add_latent_verbs`) and what they do (`LATENT_COMMANDS`). ``encode`` and
``reconstruct`` give every molecule a ``domain`` column ("" inside the training data's domain,
else why not) and print a one-line summary of the molecules outside it.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.chem import canonical, largest_fragment, score_smiles
from molvae.cli.args import (
    CSV_OUT,
    add_condition,
    add_grammar,
    add_model,
    add_out,
    add_to_order,
    default,
    parse_conditions,
    to_order,
)
from molvae.data import read_latents, read_table
from molvae.io import write_csv, write_npy
from molvae.model import GrammarConfig, LatentCodec
from molvae.model.codec import PRIORS
from molvae.model.domain import domain_summary
from molvae.model.prior import PriorConfig
from molvae.resources import resolve_model
from molvae.runs.priors import fit_prior_run


def add_latent_verbs(sub: Any) -> None:
    """Add the verbs' parsers to the ``molvae`` subparsers ``sub``."""
    p = sub.add_parser("sample", help="decode samples from the prior")
    add_model(p)
    p.add_argument("-n", type=int, default=100, help="number of samples (default: %(default)s)")
    p.add_argument("--strategy", choices=["greedy", "sample", "beam"], default="greedy")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--prior",
        choices=PRIORS,
        default="auto",
        help="latent prior: the checkpoint's learned prior, N(0, I), or auto = learned when the "
        "checkpoint has one (default: %(default)s)",
    )
    add_condition(p, "generate to order (conditional models; the others from p(y) given these)")
    add_to_order(p)
    add_grammar(p)
    add_out(p, None, CSV_OUT)

    p = sub.add_parser("encode", help="SMILES file -> latent means (.npy or .csv)")
    add_model(p)
    p.add_argument("input", help="SMILES file (.smi/.txt/.csv, optionally .gz)")
    p.add_argument("--column", default=None, help="SMILES column of a CSV")
    add_out(p, "latents.npy", ".npy (n x d, NaN rows where not encodable, plus a .status.csv) "
            "or .csv (smiles, status, domain, z0..)")  # fmt: skip

    p = sub.add_parser("decode", help="latents (.npy or .csv with z0.. columns) -> SMILES")
    add_model(p)
    p.add_argument("input", help=".npy (n x d) or .csv with z0..z{d-1} columns")
    p.add_argument("--strategy", choices=["greedy", "sample", "beam"], default="greedy")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--beam-width", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    add_grammar(p)
    add_out(p, None, CSV_OUT)

    p = sub.add_parser("reconstruct", help="encode then decode each molecule of a SMILES file")
    add_model(p)
    p.add_argument("input")
    p.add_argument("--column", default=None)
    p.add_argument("--strategy", choices=["greedy", "beam"], default="greedy")
    add_grammar(p)
    add_out(p, None, CSV_OUT)
    _fit_prior_parser(sub)


def _fit_prior_parser(sub: Any) -> None:
    p = sub.add_parser(
        "fit-prior",
        help="fit a learned latent prior (and record the training domain) into a new checkpoint",
    )
    p.add_argument("model", help="checkpoint file, or 'default' for the bundled model")
    p.add_argument("--out", "-o", required=True, help="the new checkpoint file")
    p.add_argument("--data", default="zinc", help="training SMILES (default: %(default)s)")
    p.add_argument(
        "--n-molecules",
        type=int,
        default=50_000,
        help="training molecules the prior is fitted to (default: %(default)s)",
    )
    p.add_argument(
        "--kind", choices=["flow", "gmm", "posterior"], default=default(PriorConfig, "kind")
    )
    flags = (("smoothing", float), ("max_scale", float), ("temperature", float),
             ("components", int), ("transforms", int), ("hidden", int), ("epochs", int),
             ("seed", int))  # fmt: skip
    for name, typ in flags:
        p.add_argument(f"--{name.replace('_', '-')}", type=typ, default=default(PriorConfig, name),
                       help="(default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--covariance", choices=["full", "diag"], default=default(PriorConfig, "covariance")
    )
    p.add_argument("--flow", choices=["maf", "nsf"], default=default(PriorConfig, "flow"))
    p.add_argument("--no-domain", action="store_true", help="do not record the training domain")
    p.add_argument("--domain-data", action="append", metavar="DATA",
                   help="compute the domain from these molecules instead of --data (repeatable: "
                        "a model trained on a mix)")  # fmt: skip
    p.add_argument("--device", default="cpu", help="where molecules are encoded (default: cpu)")
    p.add_argument("--jobs", type=int, default=1, help="processes computing the domain")


def grammar_config(a: argparse.Namespace) -> GrammarConfig | None:
    return None if a.unconstrained else GrammarConfig()


def write_df(df: pd.DataFrame, out: str | None) -> None:
    if out is None:
        df.to_csv(sys.stdout, index=False)
    else:
        write_csv(out, df)
        print(f"wrote {len(df)} rows to {out}", file=sys.stderr)


def status_line(statuses: list[str]) -> str:
    return ", ".join(f"{n} {k}" for k, n in Counter(statuses).most_common())


def _cmd_sample(a: argparse.Namespace) -> None:
    condition, _ = parse_conditions(a.condition)
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), a.device, grammar_config(a))
    _, smiles = codec.sample(
        a.n, strategy=a.strategy, temperature=a.temperature, seed=a.seed, prior=a.prior,
        condition=condition or None, to_order=to_order(a),
    )  # fmt: skip
    can = [canonical(s) for s in smiles]
    df = pd.DataFrame({"smiles": smiles, "canonical": [c or "" for c in can],
                       "valid": [c is not None for c in can]})  # fmt: skip
    which = "learned" if a.prior != "gaussian" and codec.prior is not None else "N(0, I)"
    print(f"{int(df.valid.sum())}/{len(df)} valid (prior: {which})", file=sys.stderr)
    for name, target in condition.items():
        df[name] = computed(name, can)
        got = df[name].dropna()
        print(f"{name}: asked {target:g}, generated mean {got.mean():.3g} (median "
              f"{got.median():.3g}, {len(got)} molecules)", file=sys.stderr)  # fmt: skip
    write_df(df, a.out)


def computed(name: str, smiles: list[str | None]) -> list[float]:
    """Property ``name`` of each molecule; NaN where it cannot be computed or ``name`` is no
    objective molvae computes (a labels file's own column)."""
    try:
        return score_smiles([s or "" for s in smiles], name).scores.tolist()
    except ValueError:
        return [float("nan")] * len(smiles)


def encode_inputs(codec: LatentCodec, path: str, column: str | None):
    """Canonicalize a file's SMILES and encode them; per-row status and domain, never a crash."""
    df, col = read_table(path, column)
    raw = [str(s).strip() for s in df[col]]
    can = [canonical(largest_fragment(s) or "") if s else None for s in raw]
    enc = codec.encode([c or "" for c in can])
    status = [
        "invalid" if c is None else ("ok" if ok else reason)
        for c, ok, reason in zip(can, enc.ok, enc.reason, strict=True)
    ]
    return raw, can, enc, status


def print_domain(codec: LatentCodec, domain: list[str]) -> None:
    if codec.domain is None:
        print("training domain unknown: this checkpoint does not record it", file=sys.stderr)
    elif line := domain_summary(domain):
        print(line, file=sys.stderr)


def _cmd_encode(a: argparse.Namespace) -> None:
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), device=a.device)
    raw, can, enc, status = encode_inputs(codec, a.input, a.column)
    z = enc.z.numpy()
    info = pd.DataFrame(
        {"smiles": raw, "canonical": [c or "" for c in can], "status": status, "domain": enc.domain}
    )
    out = Path(a.out)
    if out.suffix == ".csv":
        zdf = pd.DataFrame(z, columns=[f"z{i}" for i in range(z.shape[1])])
        write_csv(out, pd.concat([info, zdf], axis=1))
    else:
        # as np.save does, a name without .npy gets it appended
        write_npy(out if out.suffix == ".npy" else out.with_name(out.name + ".npy"), z)
        write_csv(out.with_suffix(".status.csv"), info)
    print(f"encoded {len(raw)} rows ({status_line(status)}) to {out}", file=sys.stderr)
    print_domain(codec, enc.domain)


def _cmd_decode(a: argparse.Namespace) -> None:
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), a.device, grammar_config(a))
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
    write_df(
        pd.DataFrame({"smiles": smiles, "canonical": [c or "" for c in can], "status": status}),
        a.out,
    )


def _cmd_reconstruct(a: argparse.Namespace) -> None:
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), a.device, grammar_config(a))
    raw, can, enc, status = encode_inputs(codec, a.input, a.column)
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
            "domain": enc.domain,
            "reconstructed": rec,
            "match": match,
        }
    )
    n_ok = sum(s == "ok" for s in status)
    print(
        f"reconstructed {sum(match)}/{n_ok} encodable molecules exactly ({status_line(status)})",
        file=sys.stderr,
    )
    print_domain(codec, enc.domain)
    write_df(df, a.out)


def _cmd_fit_prior(a: argparse.Namespace) -> None:
    config = PriorConfig(
        kind=a.kind,
        smoothing=a.smoothing,
        max_scale=a.max_scale,
        temperature=a.temperature,
        components=a.components,
        covariance=a.covariance,
        flow=a.flow,
        transforms=a.transforms,
        hidden=a.hidden,
        epochs=a.epochs,
        seed=a.seed,
    )
    res = fit_prior_run(
        a.model,
        a.out,
        a.data,
        config,
        a.n_molecules,
        not a.no_domain,
        a.device,
        a.jobs,
        a.domain_data,
    )
    print(f"fitted a {config.kind} prior to {res.n_molecules} molecules in {res.seconds:.0f} s")
    if res.domain is not None:
        d = res.domain
        print(f"training domain of {d.n_molecules} molecules: elements {','.join(d.elements)}, "
              f"charges {d.charges}, at most {d.max_tokens} tokens")  # fmt: skip
    print(f"wrote {res.path}")


LATENT_COMMANDS = {
    "sample": _cmd_sample,
    "encode": _cmd_encode,
    "decode": _cmd_decode,
    "reconstruct": _cmd_reconstruct,
    "fit-prior": _cmd_fit_prior,
}
