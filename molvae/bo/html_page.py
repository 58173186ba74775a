"""The HTML report's fixed parts: stylesheet, script and the page around the generated body.

Everything is inline and the page forbids itself any network request (Content-Security-Policy
``default-src 'none'``), so it opens offline and the same anywhere. The script is vanilla
JavaScript: it reads the molecules from a JSON block and draws only the page of the grid shown.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:")  # fmt: skip

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1280px;
 padding:0 16px 48px;color:#1b1b1b;background:#fff}
h1{font-size:22px;margin:18px 0 6px}h2{font-size:18px;margin:28px 0 8px;
 border-bottom:1px solid #ddd;padding-bottom:4px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
.facts dt{color:#555}.facts dd{margin:0;overflow-wrap:anywhere}
nav a{margin-right:12px}.note{color:#444;max-width:900px}
.controls{display:flex;flex-wrap:wrap;gap:8px 18px;align-items:center;margin:8px 0}
.controls input[type=search]{width:220px}
.pager{display:flex;gap:12px;align-items:center;margin:8px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(214px,1fr));gap:8px}
.cell{border:1px solid #ddd;border-radius:6px;padding:6px;display:flex;flex-direction:column;
 gap:4px;background:#fff}
.cell.infeasible{border-color:#d08a00;background:#fffaf0}
.pic{width:200px;height:150px;margin:0 auto;display:flex;align-items:center;
 justify-content:center;color:#888;font-size:12px;text-align:center}
.pic svg{width:200px;height:150px}
.cell code{overflow-wrap:anywhere}.meta{color:#444;font-size:12px}
.cell button{align-self:flex-start;font-size:12px}
.empty{color:#666;padding:12px}
.chart{max-width:100%;height:auto;font-size:11px;fill:#333}
.chart .frame{fill:none;stroke:#999}.chart .gridline{stroke:#eee}
.chart .trace{fill:none;stroke:#1f5fa8;stroke-width:2}.chart .gain{fill:#1f5fa8}
.chart .dominated{fill:#bbb}
.chart .mark{stroke:#888;stroke-dasharray:4 3}.chart .mark-label{fill:#666}
.chart .centre{stroke:#d62728;stroke-width:2.2;fill:none}
.chart .centre-path{fill:none;stroke:#d62728;stroke-width:1;stroke-opacity:.5}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ddd;padding:2px 6px;
 text-align:right;white-space:nowrap}th{background:#f4f4f4;position:sticky;top:0}
td.text{text-align:left}
"""

# Rows of the JSON block: [smiles, score, iteration, status, source, picture, substructures];
# picture is an index into "pics", -1 beyond the cap of pictures, -2 when RDKit cannot draw it.
JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("molvae-data").textContent);
  var mols = data.mols, perPage = data.perPage, page = 0;
  var el = function (id) { return document.getElementById(id); };
  var controls = { sort: el("sort"), text: el("text"), sub: el("sub"), mode: el("sub-mode") };

  function keep(m) {
    var text = controls.text.value.trim();
    if (text && m[0].indexOf(text) < 0) return false;
    if (controls.sub.value === "") return true;
    var has = m[6].indexOf(Number(controls.sub.value)) >= 0;
    return controls.mode.value === "with" ? has : !has;
  }

  function order(a, b) {
    switch (controls.sort.value) {
      case "score-asc": return a[1] - b[1] || a[2] - b[2];
      case "iteration-asc": return a[2] - b[2] || b[1] - a[1];
      case "iteration-desc": return b[2] - a[2] || b[1] - a[1];
      default: return b[1] - a[1] || a[2] - b[2];
    }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }

  function copy(text, button) {
    function done(ok) {
      button.textContent = ok ? "copied" : "copy failed: select the SMILES";
      button.setAttribute("data-copied", ok ? "yes" : "no");  // the last outcome, kept
      window.setTimeout(function () { button.textContent = "copy SMILES"; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      // A browser may leave the promise pending (a permission prompt nobody
      // answers, a headless session): fall back after a second, answer once.
      var settled = false;
      function once(ok) { if (!settled) { settled = true; done(ok); } }
      var timer = window.setTimeout(function () { once(fallbackCopy(text)); }, 1000);
      navigator.clipboard.writeText(text).then(
        function () { window.clearTimeout(timer); once(true); },
        function () { window.clearTimeout(timer); once(fallbackCopy(text)); });
    } else {
      done(fallbackCopy(text));
    }
  }

  function cell(m) {
    var div = document.createElement("div");
    div.className = "cell" + (m[3] === "infeasible" ? " infeasible" : "");
    div.dataset.score = m[1];
    div.dataset.iteration = m[2];
    var pic = document.createElement("div");
    pic.className = "pic";
    if (m[5] >= 0) pic.innerHTML = data.pics[m[5]];  // RDKit's SVG, drawn when written
    else pic.textContent = m[5] === -1 ? "no picture: beyond the " + data.maxPictures +
      " best molecules" : "RDKit cannot draw this SMILES";
    var smiles = document.createElement("code");
    smiles.textContent = m[0];
    var meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = "score " + Number(m[1]).toPrecision(4) + " \u00b7 iteration " + m[2] +
      " \u00b7 " + m[3] + " \u00b7 " + m[4];
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "copy SMILES";
    button.addEventListener("click", function () { copy(m[0], button); });
    div.append(pic, smiles, meta, button);
    return div;
  }

  function render() {
    var rows = mols.filter(keep).sort(order);
    var pages = Math.max(1, Math.ceil(rows.length / perPage));
    page = Math.min(Math.max(page, 0), pages - 1);
    var start = page * perPage, shown = rows.slice(start, start + perPage);
    var grid = el("grid");
    grid.replaceChildren.apply(grid, shown.map(cell));
    if (!shown.length) {
      var empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = mols.length ? "No molecule matches these filters."
        : "No molecule has been scored yet.";
      grid.append(empty);
    }
    el("count").textContent = (rows.length ? (start + 1) + "\u2013" + (start + shown.length)
      : "0") + " of " + rows.length + " shown (" + mols.length + " scored molecules)" +
      ", page " + (page + 1) + " of " + pages;
    el("prev").disabled = page === 0;
    el("next").disabled = page >= pages - 1;
  }

  function reset() { page = 0; render(); }
  controls.sort.addEventListener("change", reset);
  controls.sub.addEventListener("change", reset);
  controls.mode.addEventListener("change", reset);
  controls.text.addEventListener("input", reset);
  el("prev").addEventListener("click", function () { page -= 1; render(); });
  el("next").addEventListener("click", function () { page += 1; render(); });
  render();
})();
"""


def json_block(payload: Any) -> str:
    """``payload`` as JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` escaped,
    so no string in it (a SMILES, an SVG) can close the element."""
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(title: str, body: str, payload: Any, extra_css: str = "") -> str:
    """The whole document: ``body`` (HTML, escaped by its maker), ``payload`` for the script."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}{extra_css}</style>\n</head>\n<body>\n"
        f"{body}\n"
        f'<script type="application/json" id="molvae-data">{json_block(payload)}</script>\n'
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )
