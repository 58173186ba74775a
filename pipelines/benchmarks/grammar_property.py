"""The incremental grammar against its reference, partialsmiles, on many prefixes.

    python pipelines/benchmarks/grammar_property.py              # 100,000 prefixes (minutes)
    python pipelines/benchmarks/grammar_property.py --smoke      # 2,000 prefixes (seconds)

Every prefix of three kinds of strings is asked of both grammars with every token of the
bundled model's vocabulary (`molvae.grammar.reference.compare_grammars`): ZINC test
molecules; the same molecules broken by one to three random token edits; and strings the
bundled model samples without the grammar (temperature 1 and 1.5; most are valid, many are
not). A string is followed while the reference accepts it. The incremental grammar must never
refuse a token the reference allows (``forbids_allowed``) and must let no string end that RDKit
rejects (``ended_invalid``); ``allows_forbidden`` counts where it is more lenient (eos where RDKit
accepts what partialsmiles does not). Exit status 1 if either must-not count is above zero.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import pandas as pd
import torch

from molvae.data import read_smiles
from molvae.data.tokens import Vocab, tokenize
from molvae.grammar.reference import PartialSmilesGrammar, compare_grammars
from molvae.grammar.smiles import SmilesGrammar
from molvae.io import markdown_table
from molvae.model import GrammarConfig, LatentCodec
from molvae.resources import resolve_model

MUST_NOT = ("forbids_allowed", "ended_invalid")


def zinc_strings(vocab: Vocab, n: int, seed: int) -> list[str]:
    """``n`` ZINC test molecules (in the vocabulary), in a seeded random order."""
    smiles = [s for s in read_smiles("zinc-test") if s and not vocab.unknown_tokens(s)]
    random.Random(seed).shuffle(smiles)
    return smiles[:n]


def mutate(smiles: str, vocab: Vocab, rng: random.Random) -> str:
    """One to three random token edits (replace, insert, delete): mostly broken strings."""
    toks = tokenize(smiles)
    data = vocab.tokens[4:]
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(toks))
        op = rng.random()
        if op < 0.4:
            toks[i] = rng.choice(data)
        elif op < 0.7:
            toks.insert(i, rng.choice(data))
        elif len(toks) > 1:
            del toks[i]
    return "".join(toks)


def model_samples(codec: LatentCodec, n: int, seed: int) -> list[str]:
    """Strings the model writes without the grammar, at temperature 1 and 1.5."""
    codec.grammar = None
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, codec.latent_dim, generator=gen)
    half = n // 2
    out = codec.decode(z[:half], "sample", temperature=1.0, generator=gen)
    out += codec.decode(z[half:], "sample", temperature=1.5, generator=gen)
    return [s for s in out if s]


def run_source(name: str, strings: list[str], vocab: Vocab, limit: int) -> tuple[dict, dict]:
    """Compare both grammars (ring size cap as `GrammarConfig`) on the prefixes of
    ``strings``: (the table row, the disagreements by kind with examples)."""
    cap = GrammarConfig().max_ring_size
    fast, ref = SmilesGrammar(vocab, cap), PartialSmilesGrammar(vocab, cap)
    seqs = [vocab.encode(s, add_bos_eos=False) for s in strings]
    t0 = time.perf_counter()
    cmp = compare_grammars(fast, ref, seqs, limit=limit)
    row = {"source": name, "strings": len(strings), "prefixes": cmp.prefixes,
           "checks": cmp.checks, **{k: 0 for k in (*MUST_NOT, "allows_forbidden")},
           "fast_s": cmp.seconds["fast"], "reference_s": cmp.seconds["reference"],
           "wall_s": time.perf_counter() - t0}  # fmt: skip
    for kind, count in cmp.counts.items():
        row[kind.split(":")[0]] += count
    return row, {f"{name}/{k}": (v, cmp.examples[k]) for k, v in cmp.counts.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prefixes", type=int, default=100_000, help="in all (default: %(default)s)")
    p.add_argument("--model", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="2,000 prefixes")
    p.add_argument("--out", default="runs/benchmarks/grammar_property")
    a = p.parse_args(argv)
    total = min(a.prefixes, 2000) if a.smoke else a.prefixes
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), device="cpu")
    vocab, rng = codec.vocab, random.Random(a.seed)
    n = max(total // 30, 10)  # strings per source; a string gives about 35 prefixes
    zinc = zinc_strings(vocab, 2 * n, a.seed)
    sources = {
        "zinc": zinc[:n],
        "zinc, 1-3 random edits": [mutate(s, vocab, rng) for s in zinc[n:]],
        "model samples, no grammar": model_samples(codec, 2 * n, a.seed),
    }
    limits = {"zinc": total * 2 // 5, "zinc, 1-3 random edits": total * 3 // 10}
    rows, kinds = [], {}
    for name, strings in sources.items():
        limit = limits.get(name, total - sum(r["prefixes"] for r in rows))
        row, found = run_source(name, strings, vocab, limit)
        rows.append(row)
        kinds.update(found)
    df = pd.DataFrame(rows)
    df.loc[len(df)] = {"source": "all", **df.drop(columns="source").sum().to_dict()}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "results.csv", index=False)
    text = "# Incremental grammar against partialsmiles\n\n" + markdown_table(df)
    text += "\n\nDisagreements by kind (prefix + token):\n\n" + "\n".join(
        f"- {k}: {v} (e.g. {'; '.join(ex[:3])})" for k, (v, ex) in sorted(kinds.items())
    ) if kinds else "\n\nNo disagreements."  # fmt: skip
    text += f"\n\n{os.cpu_count()} CPUs, model `{a.model}`, seed {a.seed}\n"
    (out / "results.md").write_text(text)
    print(text)
    return int(bool(df.iloc[-1][list(MUST_NOT)].sum()))


if __name__ == "__main__":
    raise SystemExit(main())
