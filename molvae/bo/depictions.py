"""2-D depictions of molecules as small inline SVG (RDKit's MolDraw2DSVG), cached on disk.

Drawing is the slow part of the HTML report (about 1 ms a molecule), and a campaign's molecules
never change, so the SVG of each canonical SMILES is kept in a JSON file beside the report and
only new molecules are drawn when the report is written again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from rdkit import Chem, RDLogger, rdBase
from rdkit.Chem.Draw import rdMolDraw2D

from molvae.io import read_json, write_text

SIZE = (200, 150)
BOND_LENGTH = 24  # pixels: small molecules stay small; large ones still shrink to fit
CACHE_FORMAT = 3
_OPEN = re.compile(r"^.*?<svg[^>]*>", re.S)  # XML declaration and RDKit's <svg ...> tag
_NOISE = re.compile(r"<!--.*?-->| class='[^']*'", re.S)
_BETWEEN = re.compile(r"\s*(/?>)\s*")
_PATH = re.compile(r"d='([^']*)'")
_STYLE = re.compile(r"style='([^']*)'")


def _compact_path(match: re.Match) -> str:
    d = re.sub(r"\s*([A-Za-z,])\s*", r"\1", match.group(1))
    return "d='" + re.sub(r"\s+", " ", d).strip() + "'"


def depict(smiles: str, size: tuple[int, int] = SIZE) -> str:
    """The SVG of ``smiles`` (no XML header, comments, atom classes or spare spaces), or ""
    when RDKit cannot parse or draw it."""
    RDLogger.DisableLog("rdApp.*")
    params = Chem.SmilesParserParams()
    params.allowCXSMILES = False  # no atom labels from the string: only chemistry is drawn
    mol = Chem.MolFromSmiles(smiles, params) if smiles else None
    if mol is None:
        return ""
    # labels as <text> (the page's sans-serif), not FreeType glyph outlines: 40% smaller files
    drawer = rdMolDraw2D.MolDraw2DSVG(size[0], size[1], -1, -1, True)
    options = drawer.drawOptions()
    options.clearBackground = False
    options.fixedBondLength = BOND_LENGTH
    try:
        rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol)
    except (RuntimeError, ValueError):  # RDKit refuses a few exotic valences or coordinates
        return ""
    drawer.FinishDrawing()
    # about a third smaller: one short opening tag, no comments or atom classes, tight paths
    w, h = size
    svg = _OPEN.sub(f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' "
                    f"viewBox='0 0 {w} {h}'>", drawer.GetDrawingText(), count=1)  # fmt: skip
    return _BETWEEN.sub(r"\1", _PATH.sub(_compact_path, _NOISE.sub("", svg))).strip()


def _cache_key(size: tuple[int, int]) -> dict:
    # a cache drawn at another size, bond length or by another RDKit is drawn again
    return {"format": CACHE_FORMAT, "size": list(size), "bond_length": BOND_LENGTH,
            "rdkit": rdBase.rdkitVersion}  # fmt: skip


def _read_cache(path: Path, size: tuple[int, int]) -> dict[str, str]:
    try:
        stored = read_json(path)
    except (ValueError, OSError):  # a damaged cache is only lost time: draw again
        return {}
    if not isinstance(stored, dict) or stored.get("key") != _cache_key(size):
        return {}
    svgs = stored.get("svg")
    return svgs if isinstance(svgs, dict) else {}


def depictions(
    smiles: Sequence[str], cache: str | Path | None = None, size: tuple[int, int] = SIZE
) -> dict[str, str]:
    """SMILES -> `depict` SVG ("" when it cannot be drawn) of each of ``smiles``.

    With ``cache`` (a JSON file), molecules drawn before are read from it and it is rewritten
    with exactly these molecules when any was new, so it never outgrows one report.
    """
    wanted = list(dict.fromkeys(smiles))
    known = _read_cache(Path(cache), size) if cache is not None else {}
    out = {s: known[s] if s in known else depict(s, size) for s in wanted}
    if cache is not None and (set(out) != set(known) or not Path(cache).exists()):
        payload = {"key": _cache_key(size), "svg": out}
        write_text(cache, json.dumps(payload, separators=(",", ":")) + "\n")
    return out


def shared_styles(svgs: Sequence[str], prefix: str = "s") -> tuple[list[str], dict[str, str]]:
    """``svgs`` with each ``style='...'`` replaced by a class (``prefix`` + number), and the
    classes' declarations: the same few styles repeat on every bond, so a page of many pictures
    is about half the size with one stylesheet."""
    classes: dict[str, str] = {}

    def to_class(match: re.Match) -> str:
        name = classes.setdefault(match.group(1), f"{prefix}{len(classes)}")
        return f"class='{name}'"

    out = [_STYLE.sub(to_class, svg) for svg in svgs]
    return out, {name: style for style, name in classes.items()}
