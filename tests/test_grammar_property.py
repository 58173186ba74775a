"""The incremental grammar held against partialsmiles, its reference, on a few thousand prefixes
(pipelines/benchmarks/grammar_property.py runs the same on 100,000).

On every prefix the reference accepts (of ZINC molecules, of ZINC molecules broken by random
edits, and of strings the bundled model writes without the grammar), every token is asked of
both: the incremental grammar must never refuse what the reference allows, may be more lenient
only at eos (RDKit accepts a few strings partialsmiles does not), and every string it lets end
must be a molecule RDKit accepts."""

from __future__ import annotations

import random

import pytest
from conftest import ROOT, load_pipeline

from molvae.grammar.reference import PartialSmilesGrammar, compare_grammars
from molvae.grammar.smiles import SmilesGrammar
from molvae.model import LatentCodec
from molvae.resources import resolve_model


@pytest.fixture(scope="module")
def bench():
    return load_pipeline("grammar_property", ROOT / "pipelines" / "benchmarks")


@pytest.fixture(scope="module")
def codec() -> LatentCodec:
    return LatentCodec.from_checkpoint(resolve_model("default"), device="cpu")


def strings(bench, codec: LatentCodec) -> dict[str, list[str]]:
    vocab, rng = codec.vocab, random.Random(1)
    zinc = bench.zinc_strings(vocab, 80, seed=1)
    broken = [
        "c1ccccc", "CC(C", "CC=", "c1cccc1", "c1ccs1", "CC(C)oC", "C1CC2CC1", "CC(=O)(=O)C",
        "c1ccc2ccccc2c1c", "C1=CC=CC=C1C(", "CBr(C)", "N1CCN(CC1", "O=C1NC(=O)c2ccccc21",
    ]  # fmt: skip
    return {
        "zinc": zinc[:40],
        "edited": [bench.mutate(s, vocab, rng) for s in zinc[40:]] + broken,
        "model": bench.model_samples(codec, 40, seed=1),
    }


def test_incremental_grammar_agrees_with_partialsmiles(bench, codec) -> None:
    vocab = codec.vocab
    fast, ref = SmilesGrammar(vocab, 8), PartialSmilesGrammar(vocab, 8)
    prefixes = 0
    for name, found in strings(bench, codec).items():
        seqs = [vocab.encode(s, add_bos_eos=False) for s in found]
        cmp = compare_grammars(fast, ref, seqs, limit=700)
        prefixes += cmp.prefixes
        wrong = {k: v for k, v in cmp.counts.items() if not k.startswith("allows_forbidden")}
        assert not wrong, (name, wrong, cmp.examples)
        lenient = {k for k in cmp.counts if k.startswith("allows_forbidden")}
        assert lenient <= {"allows_forbidden:eos"}, (name, cmp.examples)
    assert prefixes >= 2000  # 700 per source, when the strings have that many


def test_property_benchmark_smoke(bench, tmp_path, monkeypatch) -> None:
    """The 100,000-prefix script at smoke size: its table, and a clean exit."""
    monkeypatch.setattr(bench, "model_samples", lambda codec, n, seed: ["CC(C)O", "c1ccc", "C(("])
    assert bench.main(["--smoke", "--prefixes", "150", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "results.md").read_text()
    assert text.startswith("# Incremental grammar against partialsmiles")
    assert "| all |" in text
