"""What several verbs' parsers share: the config-default lookup and the common flags."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any

from molvae.model.vae_parts import DEFAULT_Y_KERNEL
from molvae.resources import DEFAULT_MODEL

CSV_OUT = "CSV file (default: standard output)"


def default(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{cls.__name__} has no field {name!r} with a default")


def param_default(fn: Any, name: str) -> Any:
    """The default of parameter ``name`` of function ``fn``."""
    return inspect.signature(fn).parameters[name].default


def add_model(p: argparse.ArgumentParser) -> None:
    """``--model`` and ``--device``."""
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="checkpoint file, or 'default' for the bundled model (default: %(default)s)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")


def add_grammar(p: argparse.ArgumentParser) -> None:
    """``--unconstrained``: decoding without the SMILES grammar."""
    p.add_argument(
        "--unconstrained",
        action="store_true",
        help="decode the model's raw distribution, not through the SMILES grammar "
        "(more invalid strings; what MOSES-style benchmarks measure)",
    )


def add_out(p: argparse.ArgumentParser, default_: str | None, what: str) -> None:
    """``--out``/``-o``."""
    p.add_argument("--out", "-o", default=default_, help=f"{what} (default: %(default)s)")


def add_constraint(p: Any, effect: str) -> None:
    """``--constraint``/``-C``, repeatable; ``effect``: what a constraint does in this verb."""
    p.add_argument("--constraint", "-C", action="append", default=[], metavar="SPEC",
                   help="'<property> <= <value>', '<property> >= <value>' (sa, mw, hbd, hba, "
                   "rotb, rings, heavy_atoms, nn_bonds, logp, qed, tpsa, ...), 'filters' or "
                   f"'alerts:brenk,pains' (also nih, zinc, chembl); {effect}; "
                   "repeatable")  # fmt: skip


def add_scheduler(p: argparse.ArgumentParser) -> None:
    """``--scheduler``: a Dask scheduler whose workers make the objective calls."""
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="score on this Dask cluster's workers, one molecule per task, instead of "
                   "local processes (--jobs); every worker needs molvae installed")  # fmt: skip


def add_async(p: argparse.ArgumentParser) -> None:
    """``--async [N]``: asynchronous BO with N oracle calls in flight."""
    p.add_argument("--async", dest="async_calls", nargs="?", type=int, const=0, default=None,
                   metavar="N",
                   help="asynchronous BO: keep N oracle calls running, propose a molecule as "
                   "each call returns, conditioned on those still running (default N: the "
                   "Dask cluster's worker threads with --scheduler, else --jobs)")  # fmt: skip


ORACLE_CACHE = (
    "an SQLite file; default $MOLVAE_ORACLE_CACHE, else oracle.sqlite in $MOLVAE_CACHE "
    "or ~/.cache/molvae"
)


def add_oracle_cache(p: argparse.ArgumentParser, what: str) -> None:
    """``--cache [PATH]``: reuse and store objective outcomes; ``what``: the verb's own effect."""
    p.add_argument(
        "--cache",
        nargs="?",
        const="",  # given without a value: the default file
        default=None,
        metavar="PATH",
        help=f"reuse and store objective outcomes in the oracle cache ({ORACLE_CACHE}); {what}; "
        "off unless given, since the built-in objectives take milliseconds at most: for slow "
        "ones (docking, simulations, assay models)",
    )


def add_condition(p: argparse.ArgumentParser, what: str, relative: bool = False) -> None:
    """``--condition NAME=VALUE`` (repeatable) for a conditional model's properties."""
    rel = " or NAME+=DELTA / NAME-=DELTA (moved from the molecule's own value)" if relative else ""
    p.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"{what}: a property of a conditional model set to VALUE (its units){rel}; "
        "repeat for several",
    )


def add_to_order(p: argparse.ArgumentParser) -> None:
    """``--best-of`` and ``--prior-temperature``: how `molvae sample` meets ``--condition``
    (`molvae.model.ToOrder`; defaults from it)."""
    from molvae.model.codec_sampling import ToOrder  # torch: only when a parser is built

    d = ToOrder()
    p.add_argument(
        "--best-of",
        type=int,
        default=d.best_of,
        metavar="K",
        help="with --condition: each molecule is the one of K decodings whose properties, as "
        "the model's q(y|x) reads them, are nearest those asked (1: no choice; default: "
        "%(default)s)",
    )
    p.add_argument(
        "--prior-temperature",
        type=float,
        default=d.temperature,
        metavar="T",
        help="with --condition: z drawn at T times the learned prior's component scales; "
        "higher: more novel molecules, further from the target (default: %(default)s)",
    )


def to_order(a: argparse.Namespace) -> Any:
    """`molvae.model.ToOrder` from the flags of `add_to_order` (a bad value: ``ValueError``)."""
    from molvae.model.codec_sampling import ToOrder

    return ToOrder(best_of=a.best_of, temperature=a.prior_temperature)


def parse_conditions(
    items: list[str], relative: bool = False
) -> tuple[dict[str, float], dict[str, float]]:
    """``["logp=3", "qed+=0.1"]`` -> (absolute values, relative moves); a malformed item is a
    ``ValueError`` that shows the form wanted."""
    absolute: dict[str, float] = {}
    moves: dict[str, float] = {}
    for item in items:
        text = item.replace(" ", "")
        for op, target, sign in (("+=", moves, 1.0), ("-=", moves, -1.0), ("=", absolute, 1.0)):
            if op in text:
                name, _, value = text.partition(op)
                if op != "=" and not relative:
                    raise ValueError(f"--condition {item!r}: only NAME=VALUE here")
                try:
                    number = float(value)
                except ValueError:
                    number = float("nan")
                if not name or number != number:
                    raise ValueError(f"--condition {item!r}: expected NAME=VALUE, e.g. logp=3.0")
                if name in absolute or name in moves:
                    raise ValueError(f"--condition: {name!r} given twice")
                target[name] = sign * number
                break
        else:
            raise ValueError(f"--condition {item!r}: expected NAME=VALUE, e.g. logp=3.0")
    return absolute, moves


def add_conditional_training(p: argparse.ArgumentParser) -> None:
    """``molvae train``'s flags for a semi-supervised conditional model."""
    p.add_argument(
        "--conditional",
        action="store_true",
        help="a semi-supervised conditional VAE on --properties (q(y|x), q(z|x,y), p(x|y,z)); "
        "fine-tuning an unconditional --init-from model works",
    )
    p.add_argument(
        "--labels",
        default=None,
        metavar="FILE.csv",
        help="conditional: measured labels, a SMILES column and property columns (empty cells "
        "= unlabelled); properties it lacks are computed with RDKit",
    )
    p.add_argument(
        "--label-fraction",
        type=float,
        default=None,
        metavar="F",
        help="conditional: keep labels on a random share F of the molecules only",
    )
    p.add_argument(
        "--y-hidden",
        type=int,
        default=None,
        metavar="K",
        help="conditional: q(y|x)'s mean adds a one-hidden-layer MLP of width K to its linear "
        "read of the encoder (fitted to what the linear probe leaves); 0 = linear only "
        "(default: 0, or the --init-from model's)",
    )
    p.add_argument(
        "--y-kernel",
        type=int,
        default=None,
        metavar="M",
        help="conditional: q(y|x)'s mean is a kernel ridge fit (linear + Gaussian kernel on the "
        "encoder's summary, M inducing molecules) where it predicts held-out labels better; "
        "read QED better than the linear q(y|x) from 2,375 and 47,500 labels; 0 = linear; not "
        f"with --y-hidden (default: {DEFAULT_Y_KERNEL} for a new q(y|x), else the --init-from "
        "model's)",
    )
