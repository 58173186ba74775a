"""SMILES tokenizer and vocabulary.

Knows nothing of torch or RDKit: strings in, integer ids out.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from molvae.io import write_text

# Bracket atoms are one token; two-letter organic-subset atoms (Cl, Br) before their first
# letter; %nn two-digit ring closures; any other single character is a token of its own, so
# detokenize(tokenize(s)) == s holds for every string, valid SMILES or not.
SMILES_REGEX = re.compile(r"(\[[^\[\]]*\]|Br|Cl|%\d{2}|.)", re.DOTALL)

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


def tokenize(smiles: str) -> list[str]:
    """Split a SMILES string into tokens; ``"".join(tokenize(s)) == s`` always."""
    return SMILES_REGEX.findall(smiles)


class Vocab:
    """Token <-> id map with pad=0, bos=1, eos=2, unk=3 followed by data tokens (sorted)."""

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with the special tokens {SPECIALS}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary must not repeat a token")
        self.tokens: list[str] = tokens
        self.index: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    @classmethod
    def build(cls, smiles: Iterable[str], min_count: int = 1) -> Vocab:
        """Build a vocabulary from the tokens of ``smiles`` seen at least ``min_count`` times."""
        counts: Counter[str] = Counter()
        for s in smiles:
            counts.update(tokenize(s))
        data_tokens = sorted(t for t, c in counts.items() if c >= min_count and t not in SPECIALS)
        return cls([*SPECIALS, *data_tokens])

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"

    def unknown_tokens(self, smiles: str) -> list[str]:
        """Tokens of ``smiles`` that are not in the vocabulary (empty when it is encodable)."""
        return [t for t in tokenize(smiles) if t not in self.index]

    def encode(self, smiles: str, add_bos_eos: bool = True) -> list[int]:
        """SMILES -> ids (``[bos, ..., eos]`` by default); unknown tokens map to ``unk``."""
        ids = [self.index.get(t, self.unk_id) for t in tokenize(smiles)]
        return [self.bos_id, *ids, self.eos_id] if add_bos_eos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """ids -> SMILES: stops at the first ``eos``, skips ``pad``/``bos``, drops ``unk``."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id, self.unk_id) or not 0 <= i < len(self.tokens):
                continue
            out.append(self.tokens[i])
        return "".join(out)

    def to_json(self) -> str:
        return json.dumps({"tokens": self.tokens})

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        return cls(json.loads(text)["tokens"])

    def save(self, path: str | Path) -> None:
        write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_json(Path(path).read_text())
