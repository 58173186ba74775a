"""Molecules a user already measured (``init_data``): read, pinned, and turned into free rows of
the initial design (source ``"data"``), never scored again (`molvae.bo.accounting`).

A CSV file (optionally ``.gz``) or DataFrame with a ``smiles``/``SMILES`` column, a score column
and optionally ``status`` (ok, infeasible or failed). A missing or non-numeric score makes the
row ``failed``; an invalid SMILES is left out with one warning line, never a traceback.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo.accounting import CALLED, DATA_SOURCE
from molvae.bo.config import CanonicalFn, EncodeFn, SlackFn
from molvae.io import file_sha256

log = logging.getLogger(__name__)

InitData = pd.DataFrame | str | Path
"""Molecules already measured: a DataFrame or CSV file (`read_init_data`)."""
INIT_DATA_STATUSES = CALLED  # what a row of init data may say (ok, infeasible, failed)


def read_init_data(source: pd.DataFrame | str | Path, score_column: str = "score") -> pd.DataFrame:
    """Molecules already measured, as columns ``smiles``, ``score`` (float, NaN where missing or
    not a number) and ``status`` ("" where not given).

    ``source``: a DataFrame, or a CSV file (optionally ``.gz``), with a ``smiles``/``SMILES``
    column, the ``score_column`` and optionally ``status`` (ok, infeasible or failed).
    """
    df, name = source, "init_data"
    if not isinstance(source, pd.DataFrame):
        name = str(source)
        try:  # .gz by its suffix
            df = pd.read_csv(source, dtype=str, keep_default_na=False)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise ValueError(f"{name}: not a readable CSV file ({e})".splitlines()[0]) from None
    col = next((c for c in ("smiles", "SMILES") if c in df.columns), None)
    if col is None:
        raise ValueError(f"{name}: no 'smiles' column (columns: {', '.join(map(str, df))})")
    if score_column not in df.columns:
        raise ValueError(f"{name}: no {score_column!r} score column "
                         f"(columns: {', '.join(map(str, df.columns))})")  # fmt: skip
    status = (df["status"].fillna("").astype(str).str.strip().str.lower()
              if "status" in df.columns else pd.Series("", index=df.index))  # fmt: skip
    bad = sorted(set(status) - {"", *INIT_DATA_STATUSES})
    if bad:
        raise ValueError(f"{name}: status must be one of {', '.join(INIT_DATA_STATUSES)}, "
                         f"not {bad[0]!r}")  # fmt: skip
    return pd.DataFrame({
        "smiles": df[col].fillna("").astype(str).str.strip().to_numpy(),
        "score": pd.to_numeric(df[score_column], errors="coerce").to_numpy(dtype=float),
        "status": status.to_numpy(),
    })  # fmt: skip


def data_rows(
    data: pd.DataFrame,
    canonical_fn: CanonicalFn,
    encode_fn: EncodeFn,
    slack_fn: SlackFn | None = None,
) -> list[dict[str, Any]]:
    """The init data's rows of the initial design (source ``"data"``, indexed from 0): each
    valid molecule once, encoded, at no oracle cost. A row without a status is ok where its
    score is a number (infeasible where ``slack_fn`` says a constraint misses), else failed.
    Invalid SMILES and repeats are left out, with one warning line."""
    cans = [canonical_fn(s) if s else None for s in data["smiles"]]
    seen: set[str] = set()
    keep = []
    for i, can in enumerate(cans):
        if can and can not in seen:
            seen.add(can)
            keep.append(i)
    n_invalid = sum(c is None for c in cans)
    if n_invalid or len(keep) + n_invalid < len(cans):
        log.warning("init data: %d rows with an invalid SMILES and %d repeats left out; "
                    "%d molecules used", n_invalid, len(cans) - n_invalid - len(keep),
                    len(keep))  # fmt: skip
    if not keep:
        return []
    rows = data.iloc[keep]
    canon = [cans[i] for i in keep]
    scores = rows["score"].to_numpy(dtype=float)
    status = rows["status"].to_numpy(dtype=object).copy()
    missing = status == ""
    status[missing] = "ok"
    if slack_fn is not None and missing.any():
        idx = np.flatnonzero(missing)
        slack = np.asarray(slack_fn([canon[i] for i in idx]), dtype=float)
        status[idx[(slack > 0).any(axis=1)]] = "infeasible"
    status = np.where(np.isfinite(scores) | (status == "failed"), status, "failed")
    scores = np.where(status == "failed", np.nan, scores)
    z = encode_fn(canon).detach().to("cpu", torch.float64).numpy()
    return [
        {"iteration": 0, "index": j, "source": DATA_SOURCE, "smiles": smi, "canonical": can,
         "score": float(s), "status": str(st), "valid_fraction": 1.0, "z": zj}
        for j, (smi, can, s, st, zj) in enumerate(zip(rows["smiles"], canon, scores, status, z,
                                                       strict=True))
    ]  # fmt: skip


def pin_init_data(
    metadata: dict | None, init_data: InitData | None, data: pd.DataFrame | None
) -> dict | None:
    """``metadata`` with the init data pinned (``init_data_sha256``: the file's bytes, or the
    DataFrame's rows), unless the caller pinned it already."""
    if data is None:
        return metadata
    pinned = dict((metadata or {}).get("pinned", {}))
    if "init_data_sha256" not in pinned:
        if isinstance(init_data, pd.DataFrame):
            digest = hashlib.sha256(data.to_csv(index=False).encode()).hexdigest()
        else:
            digest = file_sha256(init_data)
        pinned["init_data_sha256"] = digest
    return {**(metadata or {}), "pinned": pinned}
