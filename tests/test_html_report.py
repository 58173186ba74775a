"""The HTML campaign report (``report/index.html``): one offline file, escaped, its substructure
flags, the ``molvae report`` verb, and the page in a real headless Chromium (Selenium)."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, load_pipeline

import molvae
from molvae.bo import BOConfig, CampaignStore, random_search, write_html_report, write_report
from molvae.bo import depictions as depictions_module
from molvae.bo.latent_map import pca_2d
from molvae.bo.substructures import COMMON_SUBSTRUCTURES, substructure_flags, substructures
from molvae.cli import main

sys.path.insert(0, str(Path(__file__).parent))
import bo_fakes as F

torch.set_num_threads(1)

WEIRD = 'C<script>alert("x")</script>&amp;<b>'  # a decoder may write anything
OBJECTIVE = '<b>objective & "co"</b>'
# (canonical SMILES, score, iteration, status): 20 molecules scored, and rows that are not
MOLECULES = [
    ("c1ccccc1", 1.0, 0, "ok"), ("Cc1ccccc1", 2.0, 0, "ok"), ("C1CCCCC1", 1.5, 0, "ok"),
    ("c1ccncc1", 0.5, 0, "ok"), ("CC(=O)NC", 3.0, 0, "ok"), ("OC(=O)c1ccccc1", 4.0, 0, "ok"),
    ("CCO", 2.5, 1, "infeasible"), ("CCN", math.nan, 1, "failed"), ("", math.nan, 1, "invalid"),
    ("CCO", 2.5, 1, "duplicate"), (WEIRD, 0.1, 1, "ok"), ("CS(N)(=O)=O", 5.0, 1, "ok"),
    ("ClCCBr", 4.5, 1, "ok"), ("CCOC(C)=O", 3.5, 1, "ok"), ("N#CCc1ccccc1", 6.0, 2, "ok"),
    ("O=[N+]([O-])c1ccccc1", 5.5, 2, "ok"), ("CC(C)=O", 0.2, 2, "ok"), ("CCCCCC", 0.3, 2, "ok"),
    ("Oc1ccccc1", 6.5, 2, "ok"), ("FC(F)(F)c1ccccc1", 7.0, 3, "ok"), ("CC=CC", 0.4, 3, "ok"),
    ("c1ccc2ccccc2c1", 7.5, 3, "ok"), ("NC(=O)N", 0.6, 3, "ok"),
]  # fmt: skip
N_SCORED = 20  # unique canonical SMILES scored ok or infeasible
DATA_BLOCK = re.compile(r'<script type="application/json" id="molvae-data">(.*?)</script>', re.S)


def make_campaign(out: Path) -> Path:
    """A campaign directory written through `CampaignStore`: 3 latent dimensions, a trust
    region that restarts around benzene after iteration 2, run metadata with markup in it."""
    store = CampaignStore(out, writer=True)
    store.write_config({"kind": "bo", "config": asdict(BOConfig(budget=40, batch_size=8)),
                        "metadata": {"run": {"objective": OBJECTIVE},
                                     "objective_description": "a <test> objective"}})  # fmt: skip
    rows = [{"iteration": it, "index": i, "source": "init" if it == 0 else "bo", "smiles": can,
             "canonical": can, "score": score, "status": status, "valid_fraction": 1.0,
             "z": [0.1 * i, math.sin(i), score if math.isfinite(score) else 0.0]}
            for i, (can, score, it, status) in enumerate(MOLECULES)]  # fmt: skip
    store.append_rows(rows, 3)
    records = [{"iteration": t, "source": "bo", "q": 8, "n_ok": 5, "n_new": 6, "new_rate": 0.75,
                "duplicate_rate": 0.125, "invalid_rate": 0.125, "best": 7.5, "tr_length": 0.8,
                "tr_restarted": t == 2, "tr_center": "c1ccccc1" if t >= 2 else None,
                "wall_s": 1.0} for t in (1, 2, 3)]  # fmt: skip
    store.write_state({"iteration": 3, "iterations": records, "oracle_calls": 21, "budget": 40})
    return out


def page_data(html: str) -> dict:
    match = DATA_BLOCK.search(html)
    assert match is not None
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Path:
    out = make_campaign(tmp_path_factory.mktemp("html") / "handmade")
    write_html_report(out, smarts=["[#7]"], page_size=8)
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """A small random-search campaign of the fake decoder, its report written by the loop."""
    cfg = BOConfig(surrogate="latent", budget=20, batch_size=5, init_pool=8, n_decode_attempts=2,
                   seed=0, top_k=5)  # fmt: skip
    out = tmp_path_factory.mktemp("html") / "real"
    random_search(cfg, F.decode, F.prior, F.Objective(), out, init_smiles=F.DATA,
                  encode_fn=F.encode, canonical_fn=F.canonical, progress=False)  # fmt: skip
    return out


def test_the_loop_writes_one_offline_file(real) -> None:
    html = (real / "report" / "index.html").read_text()
    assert sorted(p.name for p in (real / "report").iterdir()) == [
        "depictions.json", "index.html", "substructures.json", "summary.md",
        "top_molecules.png", "trace.png",
    ]  # fmt: skip
    # nothing to load: no remote or protocol-relative src/href/url, no external script or sheet
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//|@import", html, re.I)
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*stylesheet", html, re.I)
    assert "default-src 'none'" in html  # the page forbids itself any request
    assert '<polyline class="trace"' in html and "PC1 (" in html and "<table>" in html


def test_one_svg_per_embedded_molecule(handmade, tmp_path) -> None:
    html = (handmade / "report" / "index.html").read_text()
    data = page_data(html)
    assert len(data["mols"]) == N_SCORED
    drawn = [m for m in data["mols"] if m[5] >= 0]
    assert len(drawn) == N_SCORED - 1  # all but the SMILES RDKit cannot parse
    assert sorted(m[5] for m in drawn) == list(range(len(data["pics"])))
    assert all(p.startswith("<svg") and p.count("<svg") == 1 for p in data["pics"])
    assert [m[5] for m in data["mols"] if m[0] == WEIRD] == [-2]
    # a cap: only the 3 best are drawn, and the page says so
    capped = write_html_report(make_campaign(tmp_path / "c"), max_pictures=3).read_text()
    data = page_data(capped)
    assert len(data["pics"]) == 3 and sum(m[5] == -1 for m in data["mols"]) == N_SCORED - 3
    assert {m[0] for m in data["mols"] if m[5] >= 0} == {"c1ccc2ccccc2c1", "FC(F)(F)c1ccccc1",
                                                        "Oc1ccccc1"}  # fmt: skip
    assert "embedded for the 3 best molecules only" in capped


def test_strings_are_escaped(handmade) -> None:
    html = (handmade / "report" / "index.html").read_text()
    assert "<script>alert" not in html and "<b>" not in html
    assert html.count("<script") == 2  # the data block and the page's own script
    assert "&lt;b&gt;objective &amp; &quot;co&quot;&lt;/b&gt;" in html
    assert "a &lt;test&gt; objective" in html
    assert WEIRD in [m[0] for m in page_data(html)["mols"]]  # the data keeps it exactly


def test_substructure_flags() -> None:
    patterns = substructures(["[OX2H]"])
    names = [p.name for p in patterns]
    benzene, ring, pyridine = (names.index(n) for n in ("benzene ring", "non-aromatic ring",
                                                        "pyridine ring"))  # fmt: skip
    flags = substructure_flags(["Cc1ccccc1", "C1CCCCC1", "c1ccncc1", "CCO", "not a smiles"],
                               patterns)  # fmt: skip
    assert benzene in flags[0] and benzene not in flags[1] and benzene not in flags[2]
    assert ring in flags[1] and ring not in flags[0] and pyridine in flags[2]
    user = len(patterns) - 1
    assert patterns[user].user and user in flags[3] and user not in flags[0]
    assert flags[4] == []
    assert 15 <= len(COMMON_SUBSTRUCTURES) <= 30


def test_page_flags_and_user_smarts(handmade) -> None:
    html = (handmade / "report" / "index.html").read_text()
    data = page_data(html)
    names = [p.name for p in substructures(["[#7]"])]
    flagged = {m[0]: set(m[6]) for m in data["mols"]}
    assert names.index("benzene ring") in flagged["Cc1ccccc1"]
    assert names.index("benzene ring") not in flagged["C1CCCCC1"]
    assert names.index("[#7]") in flagged["c1ccncc1"] and names.index("[#7]") in flagged["CC(=O)NC"]
    assert "[#7] (yours) (" in html


def test_invalid_smarts_is_a_clear_error(handmade, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"invalid SMARTS 'C\(\(': RDKit cannot parse it"):
        substructures(["C(("])
    out = make_campaign(tmp_path / "c")
    for write in (write_html_report, write_report):
        with pytest.raises(ValueError, match="invalid SMARTS"):
            write(out, smarts=["c1ccccc1", "C(("])
    assert not (out / "report").exists()  # refused before anything was written


def test_pictures_are_drawn_once(handmade, tmp_path, monkeypatch) -> None:
    out = make_campaign(tmp_path / "c")
    calls = []
    real_depict = depictions_module.depict
    monkeypatch.setattr(depictions_module, "depict", lambda s, size: calls.append(s)
                        or real_depict(s, size))  # fmt: skip
    first = write_html_report(out).read_text()
    assert len(calls) == N_SCORED and (out / "report" / "depictions.json").exists()
    calls.clear()
    assert page_data(write_html_report(out).read_text())["pics"] == page_data(first)["pics"]
    assert calls == []  # every picture came from the cache


def test_latent_map_and_centres(handmade) -> None:
    html = (handmade / "report" / "index.html").read_text()
    assert html.count('<path class="centre"') == 3  # one per iteration
    assert "trust-region centre after each iteration" in html
    assert "iteration 2: c1ccccc1" in html  # restarted around benzene
    z = np.random.default_rng(0).standard_normal((50, 4)) * [3.0, 2.0, 1.0, 0.5]
    xy, explained = pca_2d(z)
    s = np.linalg.svd(z - z.mean(axis=0), compute_uv=False)
    assert np.allclose((xy**2).sum(axis=0), s[:2] ** 2)  # the first two principal axes
    assert np.allclose(explained, s[:2] ** 2 / (s**2).sum())


def test_report_verb_rebuilds_the_report(real, capsys) -> None:
    (real / "report" / "index.html").unlink()
    (real / "report" / "summary.md").unlink()
    assert main(["report", str(real), "--smarts", "c1ccncc1", "--smarts", "C(=O)O"]) == 0
    out = capsys.readouterr().out
    assert f"html: {real / 'report' / 'index.html'}" in out
    html = (real / "report" / "index.html").read_text()
    assert "c1ccncc1 (yours)" in html and "C(=O)O (yours)" in html
    assert (real / "report" / "summary.md").exists()


@pytest.mark.parametrize("config", [None, '{"epochs": 3}', "{not json"])
def test_report_verb_refuses_a_directory_that_is_no_campaign(tmp_path, capsys, config) -> None:
    if config is not None:
        (tmp_path / "config.json").write_text(config)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("molvae report: error: ") and err.count("\n") == 1, err
    assert "not a campaign directory" in err and "Traceback" not in err
    assert not (tmp_path / "report").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "missing").exists()


def test_public_api() -> None:
    assert molvae.write_html_report is write_html_report


def test_write_time_benchmark_smoke(tmp_path) -> None:
    bench = load_pipeline("html_report_time", ROOT / "pipelines" / "benchmarks")
    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    row = pd.read_csv(tmp_path / "results.csv").iloc[0]
    assert row["molecules"] == 60 and row["warm_s"] > 0 and row["index_html_mb"] > 0


# -- a real browser -------------------------------------------------------------------------
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _browser_or_skip():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium (pip install selenium)")
    if missing:
        why = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)  # on CI a missing browser is a broken setup, not a skip
        pytest.skip(why)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1600"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = _browser_or_skip()
    yield driver
    driver.quit()


def _open(driver, path: Path) -> list[dict]:
    """Open ``path``; the console entries so far."""
    driver.get(path.resolve().as_uri())
    return driver.get_log("browser")


def _requests(driver) -> set[str]:
    events = (json.loads(e["message"])["message"] for e in driver.get_log("performance"))
    return {e["params"]["request"]["url"] for e in events
            if e["method"] == "Network.requestWillBeSent"}  # fmt: skip


def _cells(driver) -> list[tuple[str, float, int]]:
    from selenium.webdriver.common.by import By

    return [(c.find_element(By.TAG_NAME, "code").text, float(c.get_attribute("data-score")),
             int(c.get_attribute("data-iteration")))
            for c in driver.find_elements(By.CSS_SELECTOR, "#grid .cell")]  # fmt: skip


def _severe(entries: list[dict]) -> list[dict]:
    return [e for e in entries if e["level"] == "SEVERE"]


def test_browser_shows_pictures_offline_without_errors(browser, real) -> None:
    from selenium.webdriver.common.by import By

    logs = _open(browser, real / "report" / "index.html")
    pics = browser.find_elements(By.CSS_SELECTOR, "#grid .cell .pic svg")
    assert sum(p.is_displayed() for p in pics) > 0
    assert _requests(browser) == {(real / "report" / "index.html").resolve().as_uri()}
    assert _severe(logs + browser.get_log("browser")) == []


def test_browser_sorts_filters_and_pages(browser, handmade) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    data = page_data((handmade / "report" / "index.html").read_text())
    logs = _open(browser, handmade / "report" / "index.html")
    count = browser.find_element(By.ID, "count")
    first = _cells(browser)  # 8 a page, best first
    assert len(first) == 8 and first[0][1] == max(m[1] for m in data["mols"])
    assert f"of {N_SCORED} shown" in count.text and "page 1 of 3" in count.text
    Select(browser.find_element(By.ID, "sort")).select_by_value("score-asc")
    scores = [c[1] for c in _cells(browser)]
    assert scores == sorted(scores) and scores[0] == min(m[1] for m in data["mols"])
    Select(browser.find_element(By.ID, "sort")).select_by_value("iteration-desc")
    page_1 = _cells(browser)
    assert page_1[0][2] == 3 and [c[2] for c in page_1] == sorted(
        (c[2] for c in page_1), reverse=True
    )
    browser.find_element(By.ID, "next").click()
    page_2 = _cells(browser)
    assert "page 2 of 3" in count.text and max(c[2] for c in page_2) <= page_1[-1][2]
    assert not {c[0] for c in page_1} & {c[0] for c in page_2}
    text = browser.find_element(By.ID, "text")
    text.send_keys("c1ccccc1")  # back to page 1, molecules whose SMILES has the text
    shown = _cells(browser)
    assert 0 < len(shown) < N_SCORED and all("c1ccccc1" in c[0] for c in shown)
    text.send_keys(Keys.CONTROL, "a")
    text.send_keys(Keys.BACKSPACE)
    assert f"of {N_SCORED} shown" in count.text
    benzene = [p.name for p in substructures(["[#7]"])].index("benzene ring")
    expected = {m[0] for m in data["mols"] if benzene in m[6]}
    Select(browser.find_element(By.ID, "sub")).select_by_value(str(benzene))
    assert f"of {len(expected)} shown" in count.text and {c[0] for c in _cells(browser)} <= expected
    Select(browser.find_element(By.ID, "sub-mode")).select_by_value("without")
    assert f"of {N_SCORED - len(expected)} shown" in count.text
    assert not {c[0] for c in _cells(browser)} & expected
    button = browser.find_element(By.CSS_SELECTOR, "#grid .cell button.copy")
    button.click()
    # the clipboard answers asynchronously (the page falls back after 1 s at most);
    # the label reverts after 1.5 s, the data-copied attribute keeps the outcome
    WebDriverWait(browser, 5).until(lambda _: button.get_attribute("data-copied"))
    assert button.get_attribute("data-copied") in ("yes", "no")
    assert _severe(logs + browser.get_log("browser")) == []
