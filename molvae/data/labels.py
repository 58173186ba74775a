"""Labels for a semi-supervised conditional VAE: which molecules have which property values.

A label is a standardized property value the model is trained to predict and to decode from;
a molecule without one (NaN) is unlabelled and its value is inferred by q(y | x). Values come
from a user's CSV (``--labels``: a SMILES column and one column per property, empty cells
unlabelled) or are computed with RDKit for objective names (``logp``, ``qed``, ``sa``, ``mw``,
``tpsa``, ...; `molvae.chem.get_objective`). ``--label-fraction f`` keeps labels on a random
share f of the molecules only (the rest count as unlabelled), training and validation alike, so
a run shows what the model learns from that many measurements.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.chem import objectives
from molvae.data.errors import DataError
from molvae.data.filtering import FilterConfig, filter_smiles
from molvae.data.property_cache import check_names, compute_properties
from molvae.data.readers import read_table

log = logging.getLogger(__name__)


@dataclass
class LabelFile:
    """A labels CSV read and keyed by the canonical SMILES training uses."""

    path: str
    columns: list[str]  # the requested properties the file has
    values: dict[str, np.ndarray]  # canonical SMILES -> len(columns) float64, NaN = unlabelled
    skipped: dict[str, int] = field(default_factory=dict)  # rows left out, by reason

    def lookup(self, smiles: Sequence[str]) -> np.ndarray:
        """``len(smiles) x len(columns)``: each molecule's labels, NaN where it has none."""
        empty = np.full(len(self.columns), np.nan)
        if not len(smiles):
            return np.zeros((0, len(self.columns)))
        return np.stack([self.values.get(s, empty) for s in smiles])


def read_labels(
    path: str | Path, names: Sequence[str], config: FilterConfig | None = None
) -> LabelFile:
    """The columns of ``path`` named in ``names``, keyed by canonical SMILES (as the training data
    is filtered: ``config``). Cells that are empty or not numbers are unlabelled; a row whose
    SMILES does not parse is skipped and counted; a molecule listed twice keeps its first row.
    A file with none of the ``names`` as columns is a `DataError`."""
    df, col = read_table(path)
    columns = [n for n in names if n in df.columns]
    if not columns:
        raise DataError(
            f"{path}: none of the properties {list(names)} is a column "
            f"(columns: {', '.join(df.columns)})"
        )
    config = config or FilterConfig()
    values: dict[str, np.ndarray] = {}
    skipped: dict[str, int] = {}
    numbers = np.stack(
        [pd.to_numeric(df[c].replace("", np.nan), errors="coerce").to_numpy(float)
         for c in columns], axis=1,
    )  # fmt: skip
    for i, raw in enumerate(df[col]):
        kept, report = filter_smiles([raw], config=FilterConfig(
            canonicalize=config.canonicalize, largest_fragment=config.largest_fragment,
            max_tokens=config.max_tokens, dedupe=False,
        ))  # fmt: skip
        if not kept:
            reason = next(iter(report.dropped), "invalid")
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        row = np.where(np.isfinite(numbers[i]), numbers[i], np.nan)
        if kept[0] in values:
            skipped["duplicate"] = skipped.get("duplicate", 0) + 1
            continue
        values[kept[0]] = row
    if skipped:
        log.warning("%s: rows skipped: %s", path, skipped)
    return LabelFile(str(path), columns, values, skipped)


def label_matrix(
    smiles: Sequence[str],
    names: Sequence[str],
    labels: LabelFile | None = None,
    workers: int = 1,
    computed: np.ndarray | None = None,
) -> np.ndarray:
    """``len(smiles) x len(names)`` float32 labels: the file's columns looked up, the other
    names computed with RDKit (or taken from ``computed``, ``n x`` those names, e.g. a token
    cache's property files). NaN = unlabelled."""
    from_file = set(labels.columns) if labels is not None else set()
    rest = [n for n in names if n not in from_file]
    out = np.full((len(smiles), len(names)), np.nan, dtype=np.float32)
    if rest:
        values = computed if computed is not None else compute_properties(smiles, rest, workers)
        for j, n in enumerate(rest):
            out[:, list(names).index(n)] = values[:, j]
    if labels is not None:
        found = labels.lookup(smiles)
        for j, n in enumerate(labels.columns):
            out[:, list(names).index(n)] = found[:, j]
    return out


def computed_names(names: Sequence[str], labels: LabelFile | None) -> list[str]:
    """The names not read from the labels file: each must be an objective RDKit computes
    (``ValueError`` naming the file's columns otherwise)."""
    from_file = set(labels.columns) if labels is not None else set()
    rest = [n for n in names if n not in from_file]
    for n in rest:
        try:
            objectives.get_objective(n)
        except ValueError:
            where = f" nor a column of {labels.path}" if labels is not None else ""
            raise ValueError(
                f"property {n!r} is neither an objective molvae computes{where}"
            ) from None
    return check_names(rest) if rest else []


def keep_fraction(values: np.ndarray, fraction: float | None, seed: int = 0) -> np.ndarray:
    """``values`` with every label removed (NaN) but those of a random ``fraction`` of the rows
    (``round(fraction * n)`` rows, at least 1 when fraction > 0; seeded). None keeps all."""
    if fraction is None:
        return values
    if not 0.0 < fraction <= 1.0 or math.isnan(fraction):
        raise ValueError(f"label fraction must be in (0, 1], not {fraction}")
    n = len(values)
    keep = np.random.default_rng(seed).permutation(n)[: max(1, round(fraction * n))]
    out = np.full_like(values, np.nan)
    out[keep] = values[keep]
    return out
