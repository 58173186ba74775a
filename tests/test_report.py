"""Tests of molvae.bo.report on a tiny random-search campaign with real SMILES."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from molvae.bo import BOConfig
from molvae.bo.loop import random_search
from molvae.bo.report import best_so_far, compare_traces, write_report
from molvae.bo.store import load_campaign

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    cfg = BOConfig(surrogate="latent",
                   budget=10, batch_size=5, n_init=6, init_pool=20, init_top=2, free_pool=True,
                   n_decode_attempts=2, seed=0, top_k=5)  # fmt: skip
    out = tmp_path_factory.mktemp("rep") / "campaign"
    random_search(
        cfg, F.decode, F.prior, F.Objective(), out, init_smiles=F.DATA, encode_fn=F.encode,
        canonical_fn=F.canonical, progress=False, report=False, metadata={"model": "fake"},
    )  # fmt: skip
    return out


def test_best_so_far_counts_charged_oracle_calls():
    h = pd.DataFrame({
        "iteration": [0, 0, 1, 1, 1, 1, 2],
        "status": ["ok", "ok", "invalid", "ok", "duplicate", "failed", "ok"],
        "score": [1.0, 3.0, np.nan, 2.0, 3.0, np.nan, 5.0],
    })  # fmt: skip
    trace = best_so_far(h)  # a charged pool: every call counts, failed ones too
    assert trace["evaluations"].tolist() == [1, 2, 3, 4, 5]
    assert trace["best"].tolist() == [1.0, 3.0, 3.0, 3.0, 5.0]
    assert trace["iteration"].tolist() == [0, 0, 1, 1, 2]
    free = best_so_far(h, free_pool=True)  # the pool cost nothing, nor did a failed proposal
    assert free["evaluations"].tolist() == [0, 0, 1, 1, 2]
    assert free["best"].tolist() == [1.0, 3.0, 3.0, 3.0, 5.0]
    data = best_so_far(h.assign(source=["data", "init", "bo", "bo", "bo", "bo", "bo"]))
    assert data["evaluations"].tolist() == [0, 1, 2, 3, 4]  # init data cost nothing


def test_write_report_files_and_images(campaign):
    files = write_report(campaign, top_k=4)
    assert set(files) == {"trace", "top_molecules", "summary", "html"}
    assert all(p.parent == campaign / "report" and p.stat().st_size > 0 for p in files.values())
    for name in ("trace", "top_molecules"):
        with Image.open(files[name]) as im:
            im.verify()
        with Image.open(files[name]) as im:
            assert im.format == "PNG" and im.size[0] > 100
    with Image.open(files["top_molecules"]) as im:  # 4 molecules in one row of 250 px cells
        assert im.size == (4 * 250, 250)
    res = load_campaign(campaign)
    text = files["summary"].read_text()
    assert f"{res.best_score:.4f}" in text and str(res.best_smiles) in text
    assert "![trace](trace.png)" in text and "![top_molecules](top_molecules.png)" in text
    assert "| ok |" in text and "wall_s" in text and "model: fake" in text
    for can in res.top["canonical"].head(4):
        assert f"| {can} |" in text


def test_compare_traces_writes_png(campaign, tmp_path):
    res = load_campaign(campaign)
    path = compare_traces({"random": res, "again": res}, tmp_path / "cmp" / "traces.png")
    with Image.open(path) as im:
        im.verify()
    assert path.exists()
