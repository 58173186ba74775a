"""``molvae edit``: a conditional model's molecules with their z kept and properties changed
("this molecule, more lipophilic"), and the properties computed to show what changed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.chem import canonical
from molvae.cli.args import (
    CSV_OUT,
    add_condition,
    add_grammar,
    add_model,
    add_out,
    parse_conditions,
)
from molvae.cli.latents import (
    computed,
    encode_inputs,
    grammar_config,
    print_domain,
    status_line,
    write_df,
)
from molvae.model import LatentCodec
from molvae.resources import resolve_model


def add_edit_verb(sub: Any) -> None:
    """The ``edit`` parser."""
    p = sub.add_parser(
        "edit", help="conditional models: each molecule with its z kept and properties changed"
    )
    add_model(p)
    p.add_argument("input", help="SMILES file (.smi/.txt/.csv, optionally .gz)")
    p.add_argument("--column", default=None)
    p.add_argument("--strategy", choices=["greedy", "beam"], default="greedy")
    add_condition(p, "the change", relative=True)
    add_grammar(p)
    add_out(p, None, CSV_OUT)


def cmd_edit(a: argparse.Namespace) -> None:
    absolute, moves = parse_conditions(a.condition, relative=True)
    if not absolute and not moves:
        raise ValueError("edit needs at least one --condition NAME=VALUE or NAME+=DELTA")
    codec = LatentCodec.from_checkpoint(resolve_model(a.model), a.device, grammar_config(a))
    names = codec.condition_names
    if not names:
        codec.with_condition(torch.zeros(0, codec.latent_dim), absolute)  # the clear error
    raw, can, enc, status = encode_inputs(codec, a.input, a.column)
    z = torch.nan_to_num(enc.z, nan=0.0)
    z_new = codec.with_condition(z, absolute) if absolute else z
    if moves:
        z_new = codec.with_condition(z_new, moves, relative=True)
    ok = [st == "ok" for st in status]
    edited = [d if k else "" for d, k in zip(codec.decode(z_new, a.strategy), ok, strict=True)]
    ed_can = [canonical(e) if e else None for e in edited]
    before, after = codec.properties(z), codec.properties(z_new)
    df = pd.DataFrame({"smiles": raw, "canonical": [c or "" for c in can], "status": status,
                       "domain": enc.domain, "edited": edited})  # fmt: skip
    for j, name in enumerate(names):
        if name in absolute or name in moves:
            df[f"{name}_predicted"] = np.where(ok, before[:, j].numpy(), np.nan)
            df[f"{name}_asked"] = np.where(ok, after[:, j].numpy(), np.nan)
            df[f"{name}_before"] = computed(name, can)
            df[f"{name}_after"] = computed(name, ed_can)
    changed = sum(k and e is not None and e != c for k, e, c in zip(ok, ed_can, can, strict=True))
    n_valid = sum(e is not None for e in ed_can)
    print(f"edited {sum(ok)} encodable molecules: {n_valid} valid, {changed} changed "
          f"({status_line(status)})", file=sys.stderr)  # fmt: skip
    print_domain(codec, enc.domain)
    write_df(df, a.out)
