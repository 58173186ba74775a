"""What grammar-constrained decoding buys and costs: validity, diversity and speed of prior samples.

    python pipelines/benchmarks/grammar_decoding.py             # default model, 5,000 latents
    python pipelines/benchmarks/grammar_decoding.py --smoke     # seconds
    python pipelines/benchmarks/grammar_decoding.py --prior learned --quality   # + properties, FCD

Decodes the same latents (``z ~ N(0, I)``, or the model's learned prior with ``--prior learned``)
with the bundled model (or ``--model``), greedy and sampled at temperature 1, three ways: from
the raw distribution (``raw``), every row through the SMILES grammar (``grammar``:
`GrammarConfig` with ``raw_first=False``), and raw first with the grammar only for the rows it
refuses (``raw-first``: `GrammarConfig.raw_first`, ``--raw-tries`` raw draws per sampled row);
`GrammarConfig` defaults otherwise, unless ``--min-mass``, ``--backtrack`` given. The three
alternate (``--reps`` rounds, times summed), so a machine shared with other work slows all
alike; ``ratio`` is molecules/s over raw molecules/s of the same strategy (``cpu_ratio``: the
same in CPU seconds of this process, all its threads counted; on a machine busy with other
work, wall-clock times of multi-threaded runs swing widely, CPU times much less). ``gave_up``
counts rows that found no valid way out (returned without eos); ``valid`` is RDKit's verdict on
every string. ``eos_rdkit_checked`` is how many times per molecule a string asked to end (or,
raw first, was checked) and passed the grammar's own checks, so RDKit parsed it;
``rdkit_refused`` the share of those RDKit rejected, ``ring_refused`` the share the ring size
cap did. ``--quality`` adds a second table over the valid molecules of each run: the share with
a ring of 7 or more atoms, mean and standard deviation of logP, QED and SA score, and the FCD to
the bundled MOSES test split (ChemNet statistics cached after the first run).
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
from molvae.grammar.smiles import GrammarConfig
from molvae.grammar.tables import tables_for
from molvae.io import markdown_table
from molvae.model import LatentCodec
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


def summary(strings: list[str], seconds: list, eos: Counter, decoding: str, strategy: str) -> dict:
    valid = [c for c in map(canonical, strings) if c]
    checked = eos["rdkit_checked"]
    grammar = decoding != "raw"
    # a row ends with eos unless it was given up or ran to max_len; constrained rows that end are
    # valid, so the invalid ones among them are the rows given up
    return {
        "decoding": decoding,
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


def decodings(grammar: GrammarConfig) -> dict[str, GrammarConfig | None]:
    """The codec's ``grammar`` setting of each decoding compared."""
    return {
        "raw": None,
        "grammar": replace(grammar, raw_first=False),
        "raw-first": replace(grammar, raw_first=True),
    }


def compare(codec, z, strategy: str, grammar: GrammarConfig, reps: int, batch_size) -> list:
    """Raw, grammar and raw-first decoding of ``z``, alternating ``reps`` times: table rows
    (and the last strings of each, under ``"strings"``)."""
    setups = decodings(grammar)
    seconds = {d: [0.0, 0.0] for d in setups}
    kept: dict = {}
    for _ in range(reps):
        for d, g in setups.items():
            kw = {"batch_size": batch_size} if g is not None and batch_size else {}
            strings, (wall, cpu), eos = run(codec, z, strategy, g, **kw)
            seconds[d][0] += wall / reps
            seconds[d][1] += cpu / reps
            kept[d] = (strings, kept.get(d, (None, Counter()))[1] + eos)
    rows = [summary(kept[d][0], seconds[d], kept[d][1], d, strategy) for d in setups]
    for r in rows:
        r["eos_rdkit_checked"] /= reps
        r["ratio"] = r["mol_per_s"] / rows[0]["mol_per_s"]
        r["cpu_ratio"] = rows[0]["cpu_s"] / r["cpu_s"]
        r["strings"] = kept[r["decoding"]][0]
    return rows


def quality(rows: list[dict]) -> pd.DataFrame:
    """Per run, over its valid molecules: large rings, logP, QED and SA score, and the FCD to the
    bundled MOSES test split."""
    from molvae.chem import parse
    from molvae.data import read_smiles
    from molvae.evaluation.chemnet import chemnet, fcd_statistics, frechet_distance
    from molvae.evaluation.metrics import property_stats
    from molvae.evaluation.reference import reference_stats

    ref = reference_stats("MOSES test", read_smiles("zinc-test"), "MOSES test split", fcd=True)
    out = []
    for r in rows:
        valid = [c for c in map(canonical, r["strings"]) if c]
        mols = [parse(s) for s in valid]  # kept: a ring info does not keep its molecule alive
        rings = [max(map(len, m.GetRingInfo().AtomRings()), default=0) for m in mols]
        props = property_stats(valid)
        mu, sigma = fcd_statistics(chemnet("cpu").activations(valid))
        q = {"decoding": r["decoding"], "strategy": r["strategy"], "valid": r["valid"],
             "ring7_share": sum(n >= 7 for n in rings) / max(len(valid), 1)}  # fmt: skip
        for name in ("logP", "QED", "SAS"):
            q[f"{name}_mean"], q[f"{name}_std"] = props.loc[name, "mean"], props.loc[name, "std"]
        q["fcd"] = frechet_distance(mu, sigma, ref.fcd_mu, ref.fcd_sigma)
        out.append(q)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("-n", type=int, default=5000, help="latents (default: %(default)s)")
    p.add_argument("--prior", choices=("gaussian", "learned"), default="gaussian")
    p.add_argument("--min-mass", type=float, default=None)
    p.add_argument("--backtrack", type=int, default=None)
    p.add_argument("--raw-tries", type=int, default=None, help="raw draws per sampled row")
    p.add_argument("--reps", type=int, default=2, help="raw/grammar alternations")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per grammar decoding call (default: the codec's)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quality", action="store_true", help="properties and FCD of the samples")
    p.add_argument("--smoke", action="store_true", help="200 latents, one round")
    p.add_argument("--out", default="runs/benchmarks/grammar_decoding")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    n, reps = (200, 1) if a.smoke else (a.n, a.reps)
    changes = {"min_mass": a.min_mass, "backtrack": a.backtrack, "raw_tries": a.raw_tries}
    grammar = replace(GrammarConfig(), **{k: v for k, v in changes.items() if v is not None})

    codec = LatentCodec.from_checkpoint(resolve_model(a.model), device="cpu")
    gen = torch.Generator().manual_seed(0)
    if a.prior == "learned":
        z = codec.sample_latents(n, "learned", generator=gen)
    else:
        z = torch.randn(n, codec.latent_dim, generator=gen)
    rows = [
        r for s in ("greedy", "sample") for r in compare(codec, z, s, grammar, reps, a.batch_size)
    ]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    text = "# Grammar-constrained decoding\n\n"
    if a.quality:
        q = quality(rows)
        q.to_csv(out / "quality.csv", index=False)
        text += markdown_table(q) + "\n\n"
    df = pd.DataFrame([{k: v for k, v in r.items() if k != "strings"} for r in rows])
    df.to_csv(out / "results.csv", index=False)
    ratios = ", ".join(
        f"{r['strategy']} {r['decoding']} {r['ratio']:.2f} (CPU time {r['cpu_ratio']:.2f})"
        for r in rows
        if r["decoding"] != "raw"
    )
    text += (
        markdown_table(df)
        + f"\n\nMolecules/s over raw: {ratios}\n"
        + f"\nModel `{a.model}`, {a.prior} prior, grammar {grammar}; {n} latents, {reps} "
        f"alternation(s); {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}\n"
    )
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
