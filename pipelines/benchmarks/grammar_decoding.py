"""What grammar-constrained decoding buys and costs: validity, diversity and speed of prior samples.

    python pipelines/benchmarks/grammar_decoding.py             # default model, 5,000 latents
    python pipelines/benchmarks/grammar_decoding.py --smoke     # seconds

Decodes the same ``z ~ N(0, I)`` latents with the bundled model (or ``--model``), greedy and
sampled at temperature 1, once from the raw distribution and once through the SMILES grammar
(`molvae.model.grammar`; `GrammarConfig` defaults unless ``--min-mass``, ``--backtrack`` given).
Raw and grammar runs alternate (``--reps`` rounds, times summed), so a machine shared with other
work slows both alike; ``ratio`` is grammar molecules/s over raw molecules/s of the same
strategy (``cpu_ratio``: the same in CPU seconds of this process, all its threads counted; on
a machine busy with other work, wall-clock times of multi-threaded runs swing widely, CPU times
much less). ``gave_up`` counts rows that found no valid way out (returned without eos); ``valid``
is RDKit's verdict on every string. ``eos_rdkit_checked`` is how many times per molecule a
string asked to end and passed the grammar's own checks, so RDKit parsed it; ``rdkit_refused``
the share of those RDKit rejected, ``ring_refused`` the share the ring size cap did.
Distribution quality (FCD) is ``molvae evaluate``'s job, with and without ``--unconstrained``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from molvae.chem import canonical
from molvae.io import markdown_table
from molvae.model import LatentCodec
from molvae.model.grammar import GrammarConfig
from molvae.model.grammar_tables import tables_for
from molvae.resources import resolve_model


def run(
    codec: LatentCodec, z: torch.Tensor, strategy: str, grammar: GrammarConfig | None, **kw
) -> tuple[list[str], tuple[float, float], Counter]:
    """The strings, the (wall, CPU) seconds, and the grammar's eos counts of one run."""
    codec.grammar = grammar
    stats = tables_for(codec.vocab.tokens).stats
    before = Counter(stats)
    t0, c0 = time.perf_counter(), time.process_time()
    strings = codec.decode(z, strategy, generator=torch.Generator().manual_seed(1), **kw)
    seconds = (time.perf_counter() - t0, time.process_time() - c0)
    return strings, seconds, Counter(stats) - before


def summary(strings: list[str], seconds: list, eos: Counter, grammar, strategy: str) -> dict:
    valid = [c for c in map(canonical, strings) if c]
    checked = eos["rdkit_checked"]
    # a row ends with eos unless it was given up or ran to max_len; constrained rows that end are
    # valid, so the invalid ones among them are the rows given up
    return {
        "decoding": "grammar" if grammar else "raw",
        "strategy": strategy,
        "molecules": len(strings),
        "valid": len(valid) / len(strings),
        "unique_valid": len(set(valid)) / max(len(valid), 1),
        "gave_up": len(strings) - len(valid) if grammar else float("nan"),
        "mean_length": sum(map(len, strings)) / len(strings),
        "seconds": seconds[0],
        "mol_per_s": len(strings) / seconds[0],
        "cpu_s": seconds[1],
        "eos_rdkit_checked": checked / len(strings) if grammar else float("nan"),
        "rdkit_refused": eos["rdkit_refused"] / checked if checked else float("nan"),
        "ring_refused": eos["ring_refused"] / checked if checked else float("nan"),
    }


def compare(codec, z, strategy: str, grammar: GrammarConfig, reps: int, batch_size) -> list:
    """Raw and grammar decoding of ``z``, alternating ``reps`` times: two table rows."""
    seconds = {None: [0.0, 0.0], grammar: [0.0, 0.0]}
    kept: dict = {}
    for _ in range(reps):
        for g in (None, grammar):
            kw = {"batch_size": batch_size} if g is not None and batch_size else {}
            strings, (wall, cpu), eos = run(codec, z, strategy, g, **kw)
            seconds[g][0] += wall / reps
            seconds[g][1] += cpu / reps
            kept[g] = (strings, kept.get(g, (None, Counter()))[1] + eos)
    rows = [summary(kept[g][0], seconds[g], kept[g][1], g, strategy) for g in (None, grammar)]
    for r in rows:
        r["eos_rdkit_checked"] /= reps
    rows[1]["ratio"] = rows[1]["mol_per_s"] / rows[0]["mol_per_s"]
    rows[1]["cpu_ratio"] = rows[0]["cpu_s"] / rows[1]["cpu_s"]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("-n", type=int, default=5000, help="latents (default: %(default)s)")
    p.add_argument("--min-mass", type=float, default=None)
    p.add_argument("--backtrack", type=int, default=None)
    p.add_argument("--reps", type=int, default=2, help="raw/grammar alternations")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per grammar decoding call (default: the codec's)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--smoke", action="store_true", help="200 latents, one round")
    p.add_argument("--out", default="runs/benchmarks/grammar_decoding")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    n, reps = (200, 1) if a.smoke else (a.n, a.reps)
    grammar = GrammarConfig()
    if a.min_mass is not None:
        grammar = replace(grammar, min_mass=a.min_mass)
    if a.backtrack is not None:
        grammar = replace(grammar, backtrack=a.backtrack)

    codec = LatentCodec.from_checkpoint(resolve_model(a.model), device="cpu")
    z = torch.randn(n, codec.latent_dim, generator=torch.Generator().manual_seed(0))
    rows = [
        r for s in ("greedy", "sample") for r in compare(codec, z, s, grammar, reps, a.batch_size)
    ]
    df = pd.DataFrame(rows)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False)
    ratios = ", ".join(
        f"{r['strategy']} {r['ratio']:.2f} (CPU time {r['cpu_ratio']:.2f})" for r in rows[1::2]
    )
    text = (
        "# Grammar-constrained decoding\n\n"
        + markdown_table(df)
        + f"\n\nGrammar / raw molecules/s: {ratios}\n"
        + f"\nModel `{a.model}`, grammar {grammar}; {n} latents, {reps} alternation(s); "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}\n"
    )
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
