"""Property-based fuzzing (hypothesis): tokenizer, SMILES readers, scoring, the codec, ``molvae
score``. Random input either works or fails in the one documented way, never with a traceback."""

from __future__ import annotations

import contextlib
import gzip
import io

import numpy as np
import pandas as pd
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from molvae.chem import score_smiles
from molvae.cli import main
from molvae.data import DataError, filter_smiles, read_smiles
from molvae.data.tokens import Vocab, tokenize
from molvae.model import LatentCodec, MolVAE, VAEConfig

FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# Text that looks like SMILES often enough to reach RDKit's deeper paths, and anything at all.
SMILES_CHARS = "CNOSPFIclnosBr[]()=#@+-123456789%/\\.*Hae:~ \t"
smiles_like = st.text(alphabet=SMILES_CHARS, max_size=60)
any_text = st.text(max_size=80)
STATUSES = {"ok", "invalid", "failed"}


@FAST
@given(st.one_of(any_text, smiles_like))
@example("[Cl-].[Na+]")
@example("C%12CC%12[13CH3]")
@example("[unclosed")
def test_tokenize_and_vocab_round_trip_any_text(s: str) -> None:
    tokens = tokenize(s)
    assert "".join(tokens) == s
    vocab = Vocab.build([s])
    ids = vocab.encode(s)
    assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id and vocab.unk_id not in ids
    assert vocab.decode(ids) == s
    assert Vocab.from_json(vocab.to_json()) == vocab


SUFFIXES = [".smi", ".txt", ".csv", ".tsv", ".csv.gz", ".smi.gz", ""]


@FAST
@given(
    payload=st.one_of(
        st.binary(max_size=300), any_text.map(str.encode), smiles_like.map(str.encode)
    ),
    suffix=st.sampled_from(SUFFIXES),
    gz=st.booleans(),
    header=st.sampled_from([b"", b"smiles\n", b"SMILES,id\n", b"x,y\n"]),
)
def test_readers_raise_only_data_error(tmp_path_factory, payload, suffix, gz, header) -> None:
    raw = header + payload
    path = tmp_path_factory.mktemp("fuzz") / f"in{suffix}"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    try:
        smiles = read_smiles(path)
    except DataError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert all(isinstance(s, str) for s in smiles)
    kept, report = filter_smiles(smiles)
    assert report.kept == len(kept) and report.kept + report.n_dropped == len(smiles)


@FAST
@given(position=st.integers(min_value=10), flip=st.integers(min_value=1, max_value=255))
def test_corrupt_gzip_raises_data_error(tmp_path_factory, position, flip) -> None:
    good = bytearray(gzip.compress(b"CCO\nc1ccccc1\nCC(=O)O\n" * 40))
    good[position % len(good)] ^= flip  # zlib.error, BadGzipFile, EOFError or a CRC failure
    path = tmp_path_factory.mktemp("gz") / "in.smi.gz"
    path.write_bytes(bytes(good))
    try:
        smiles = read_smiles(path)
    except DataError as exc:
        assert "cannot read the file" in str(exc) or "binary" in str(exc)
        return
    assert all(isinstance(s, str) for s in smiles)


@FAST
@given(st.lists(st.one_of(smiles_like, any_text), max_size=8))
@example(["C1CC", "", "c1ccccc1", "[Na+].[Cl-]", "C" * 300, "\x00", "[Fe+8]"])
def test_score_smiles_never_raises(smiles: list[str]) -> None:
    for objective in ("qed", "plogp", "similarity:c1ccccc1"):
        res = score_smiles(smiles, objective)
        assert len(res) == len(smiles) and set(res.status) <= STATUSES
        assert np.array_equal(np.isfinite(res.scores), res.ok)


@settings(max_examples=25, deadline=None, database=None)
@given(st.lists(st.one_of(smiles_like, any_text), min_size=1, max_size=6))
def test_molvae_score_on_random_files(tmp_path_factory, smiles: list[str]) -> None:
    path = tmp_path_factory.mktemp("score") / "in.smi"
    path.write_text("\n".join(s.replace("\r", " ") for s in smiles), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["score", "-O", "qed", str(path)])
    if rc == 2:  # only whitespace (an empty file) or a NUL byte (a binary file)
        msg = err.getvalue().strip()
        assert msg.startswith("molvae score: error:") and "\n" not in msg
        text = "".join(smiles)
        assert not text.strip() or "\x00" in text
        return
    assert rc == 0
    df = pd.read_csv(io.StringIO(out.getvalue()), keep_default_na=False, dtype=str)
    assert set(df["status"]) <= STATUSES


_CODEC: list[LatentCodec] = []


def _codec() -> LatentCodec:
    """An untrained tiny model: encoding must not care what the weights are."""
    if not _CODEC:
        torch.manual_seed(0)
        vocab = Vocab.build(["CC(=O)Oc1ccccc1C(=O)O", "C[NH3+]Cl"])
        cfg = VAEConfig(vocab_size=len(vocab), emb_dim=8, enc_hidden=8, latent_dim=4,
                        dec_hidden=8, dec_layers=1, max_len=24)  # fmt: skip
        _CODEC.append(LatentCodec(MolVAE(cfg), vocab))
    return _CODEC[0]


@FAST
@given(st.lists(st.one_of(smiles_like, any_text), max_size=6))
def test_codec_encode_reports_every_row(smiles: list[str]) -> None:
    enc = _codec().encode(smiles)
    assert enc.z.shape == (len(smiles), 4) and len(enc.reason) == len(smiles)
    for ok, reason, row in zip(enc.ok, enc.reason, enc.z, strict=True):
        assert ok == (reason == "") == bool(torch.isfinite(row).all())
        assert ok or reason in ("empty", "too_long") or reason.startswith("unknown_tokens:")
