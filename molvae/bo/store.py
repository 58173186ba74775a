"""Campaign directory: crash-safe persistence of a BO or random-search campaign, read back.

Layout of ``out_dir``::

    config.json       resolved config + run metadata (written once; budget may grow)
    pool.csv          the scored and encoded initial pool (written once, atomically); with a
                      charged pool also the data molecules encoded, unscored, for the latent box
    evaluations.csv   one row per proposal, appended and fsynced row by row
    pending.json      the z of the batch being decoded/scored (exists only mid-iteration)
    in_flight.json    asynchronous BO: the proposals whose oracle calls are running, their
                      molecules chosen (exists only while some are)
    state.json        iteration, best, counts, per-iteration records (atomic rewrite)
    report/           plots and summary
    models/           weighted retraining: retrain_<k>.pt (model version k), latents_<k>.csv

JSON and CSV floats are written with ``repr`` so every latent vector round-trips exactly; a
resumed campaign therefore sees bit-identical history and proposes what the uninterrupted one did.
Every file is written through ``molvae.io`` except ``evaluations.csv``, appended and fsynced row by
row. ``load_campaign`` reads a directory into a ``CampaignResult`` (the report reads through it).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molvae.bo.accounting import oracle_call_counts
from molvae.bo.config import LEGACY_SETTINGS, BOConfig
from molvae.io import read_json, write_text

EVAL_COLUMNS = (
    "iteration",
    "index",
    "source",
    "smiles",
    "canonical",
    "score",
    "status",
    "valid_fraction",
)
STATUSES = ("ok", "invalid", "duplicate", "failed", "infeasible")
FORMAT = 1
# pandas 3 parses floats exactly by default (and deprecates the option); pandas 2 needs it.
_ROUND_TRIP = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def z_columns(dim: int) -> list[str]:
    """Latent column names ``z0 .. z{dim-1}``."""
    return [f"z{i}" for i in range(dim)]


def _fmt(value: Any) -> str:
    """CSV cell: floats by ``repr`` (exact round trip), NaN as empty."""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, str):
        # A decoder may emit anything; keep one row on one line so truncation repair stays simple.
        return value.replace("\r", " ").replace("\n", " ")
    return str(value)


def csv_line(cells: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_fmt(c) for c in cells])
    return buf.getvalue()


class CampaignStore:
    """Reads and writes one campaign directory; every write is atomic or an fsynced append."""

    def __init__(self, out_dir: str | Path, writer: bool = False, n_objectives: int = 1):
        self.dir = Path(out_dir)
        # several objectives: rows carry ``scores`` (M floats), written as ``score_<i>`` columns
        self.n_objectives = n_objectives
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "config.json"
        self.eval_path = self.dir / "evaluations.csv"
        self.state_path = self.dir / "state.json"
        self.pending_path = self.dir / "pending.json"
        self.in_flight_path = self.dir / "in_flight.json"
        self.pool_path = self.dir / "pool.csv"
        self.report_dir = self.dir / "report"
        if writer:  # a reader (e.g. a report of a live campaign) must never cut the file
            self._repair_evaluations()

    # -- JSON files -------------------------------------------------------------------------
    def _read_json(self, path: Path) -> dict[str, Any] | None:
        return read_json(path)

    def _write_json(self, path: Path, payload: dict[str, Any]) -> None:
        # indent=1 and NaN allowed: the format campaign directories have always had
        write_text(path, json.dumps(payload, indent=1, allow_nan=True) + "\n")

    def read_config(self) -> dict[str, Any] | None:
        """The stored ``config.json`` payload, or None for a new directory."""
        return self._read_json(self.config_path)

    def write_config(self, payload: dict[str, Any]) -> None:
        """Write ``config.json`` atomically."""
        self._write_json(self.config_path, {"format": FORMAT, **payload})

    def read_state(self) -> dict[str, Any] | None:
        """The stored ``state.json`` payload, or None before the first finished iteration."""
        return self._read_json(self.state_path)

    def write_state(self, payload: dict[str, Any]) -> None:
        """Rewrite ``state.json`` atomically."""
        self._write_json(self.state_path, payload)

    def read_pending(self) -> dict[str, Any] | None:
        """The batch in flight (``iteration``, ``z`` as lists, ``record``), or None."""
        return self._read_json(self.pending_path)

    def write_pending(self, payload: dict[str, Any]) -> None:
        """Persist the proposed batch before decoding or scoring any of it."""
        self._write_json(self.pending_path, payload)

    def clear_pending(self) -> None:
        """Remove ``pending.json`` once ``state.json`` records the finished iteration."""
        self.pending_path.unlink(missing_ok=True)

    def read_in_flight(self) -> list[dict[str, Any]]:
        """Asynchronous BO's proposals still running (each: ``iteration``, ``rows`` with the
        molecules chosen, ``record``), oldest first; [] when none."""
        payload = self._read_json(self.in_flight_path)
        return list(payload.get("proposals", [])) if payload else []

    def write_in_flight(self, proposals: Sequence[dict[str, Any]]) -> None:
        """Persist the proposals in flight (before their calls start); none: remove the file."""
        if proposals:
            self._write_json(self.in_flight_path, {"proposals": list(proposals)})
        else:
            self.in_flight_path.unlink(missing_ok=True)

    # -- evaluations.csv --------------------------------------------------------------------
    def _repair_evaluations(self) -> None:
        # A kill during an append can leave a partial last line: drop it (that row was not
        # finished, so it is redone on resume).
        if not self.eval_path.exists():
            return
        data = self.eval_path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.eval_path, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)
                fh.flush()
                os.fsync(fh.fileno())

    def append_rows(self, rows: Sequence[dict[str, Any]], dim: int) -> None:
        """Append finished proposals (dicts with EVAL_COLUMNS and ``z``: d floats; with several
        objectives ``scores``: M floats, NaN where absent), fsynced."""
        m = self.n_objectives
        extra = [f"score_{i}" for i in range(m)] if m > 1 else []
        if not self.eval_path.exists() or self.eval_path.stat().st_size == 0:
            write_text(self.eval_path, csv_line([*EVAL_COLUMNS, *extra, *z_columns(dim)]))
        with open(self.eval_path, "a", encoding="utf-8") as fh:
            for row in rows:
                vec = row.get("scores")
                vec = [math.nan] * len(extra) if vec is None else list(vec)[: len(extra)]
                cells = [row[c] for c in EVAL_COLUMNS] + [float(v) for v in vec]
                cells += [float(v) for v in row["z"]]
                fh.write(csv_line(cells))
                fh.flush()
                os.fsync(fh.fileno())

    def load_history(self) -> pd.DataFrame:
        """All recorded proposals as a DataFrame (empty with EVAL_COLUMNS if none)."""
        if not self.eval_path.exists() or self.eval_path.stat().st_size == 0:
            return empty_history(0)
        return read_table(self.eval_path)

    # -- pool.csv ---------------------------------------------------------------------------
    def write_pool(self, pool: pd.DataFrame) -> None:
        """Write the scored, encoded initial pool atomically."""
        buf = io.StringIO()
        buf.write(csv_line(list(pool.columns)))
        for row in pool.itertuples(index=False):
            buf.write(csv_line(list(row)))
        write_text(self.pool_path, buf.getvalue())

    def read_pool(self) -> pd.DataFrame | None:
        """The stored initial pool, or None."""
        return read_table(self.pool_path) if self.pool_path.exists() else None


def read_table(path: Path) -> pd.DataFrame:
    """Read a campaign CSV: strings stay strings, empty floats are NaN, floats round-trip.

    A partial last line (a write cut off by a kill, or one in progress) is ignored.
    """
    data = path.read_text(encoding="utf-8")
    data = data[: data.rfind("\n") + 1]
    header = next(csv.reader(io.StringIO(data)))
    text_cols = [c for c in header if c in ("source", "smiles", "canonical", "status")]
    float_cols = [c for c in header if c not in text_cols]
    df = pd.read_csv(
        io.StringIO(data),
        dtype={c: str for c in text_cols},
        keep_default_na=False,
        na_values={c: [""] for c in float_cols},
        **_ROUND_TRIP,
    )
    for c in ("iteration", "index"):
        if c in df.columns:
            df[c] = df[c].astype("int64")
    return df


def empty_history(dim: int) -> pd.DataFrame:
    """An empty history table with the evaluation columns and ``dim`` latent columns."""
    cols = [*EVAL_COLUMNS, *z_columns(dim)]
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def best_of(history: pd.DataFrame) -> tuple[float, str | None]:
    """(best score, its canonical SMILES) over rows scored ok; (NaN, None) if none."""
    ok = (
        history[(history["status"] == "ok") & np.isfinite(history["score"])] if len(history) else []
    )
    if len(ok) == 0:
        return math.nan, None
    i = ok["score"].to_numpy(dtype=float).argmax()
    return float(ok["score"].iloc[i]), str(ok["canonical"].iloc[i])


def known_scores(history: pd.DataFrame) -> dict[str, float]:
    """Canonical SMILES -> score (NaN if it failed) of every molecule seen, first row wins."""
    known: dict[str, float] = {}
    for can, score in zip(history.get("canonical", []), history.get("score", []), strict=False):
        if can and can not in known:
            known[can] = float(score)
    return known


def top_molecules(history: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` best unique molecules scored ok: canonical, score, iteration, source."""
    cols = ["canonical", "score", "iteration", "source"]
    if history.empty:
        return pd.DataFrame(columns=cols)
    ok = history[(history["status"] == "ok") & np.isfinite(history["score"])]
    top = ok.sort_values("score", ascending=False, kind="stable").drop_duplicates("canonical")
    return top[cols].head(k).reset_index(drop=True)


@dataclass
class CampaignResult:
    """A campaign's records: ``history`` has one row per proposal (``evaluations.csv``)."""

    history: pd.DataFrame
    best_smiles: str | None
    best_score: float
    top: pd.DataFrame  # canonical, score, iteration, source of the best unique molecules
    out_dir: Path
    iteration_times: list[float]
    iterations: pd.DataFrame  # one row per finished iteration (counts, timings, fallbacks)
    config: BOConfig
    kind: str  # "bo" or "random"
    metadata: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None  # why the campaign stopped (one line), None while it runs

    def oracle_counts(self) -> dict[str, int]:
        """`molvae.bo.accounting.oracle_call_counts` of this campaign, and its ``budget``."""
        pool = CampaignStore(self.out_dir).read_pool() if self.config.free_pool else None
        counts = oracle_call_counts(self.history, self.config.free_pool, pool)
        return {**counts, "budget": self.config.budget}


def load_campaign(out_dir: str | Path) -> CampaignResult:
    """Read a campaign directory (finished or not) into a ``CampaignResult``."""
    path = Path(out_dir)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no campaign in {path} (config.json is missing)")
    store = CampaignStore(path)
    stored = store.read_config() or {}
    cfg = BOConfig(**{**LEGACY_SETTINGS, **stored["config"]})
    history = store.load_history()
    state = store.read_state() or {"iterations": []}
    iterations = pd.DataFrame(state["iterations"])
    best, best_smiles = best_of(history)
    top = top_molecules(history, cfg.top_k)
    times = [float(r["wall_s"]) for r in state["iterations"]]
    return CampaignResult(
        history=history, best_smiles=best_smiles, best_score=best, top=top, out_dir=path,
        iteration_times=times, iterations=iterations, config=cfg,
        kind=stored.get("kind", "bo"), metadata=stored.get("metadata", {}),
        stop_reason=state.get("stop_reason"),
    )  # fmt: skip
