from __future__ import annotations

import gzip

import pytest

from molvae.data import (
    DataError,
    FilterConfig,
    Vocab,
    data_dir,
    encode_all,
    filter_smiles,
    load_smiles,
    read_smiles,
    read_table,
    resolve_data,
    split,
)


def test_bundled_data_present() -> None:
    assert (data_dir() / "zinc" / "train.csv.gz").exists()
    assert resolve_data("zinc-test").name == "test.csv.gz"
    head = read_smiles("zinc")[:2]
    assert head == ["CC1Oc2ccc(Cl)cc2N(CC(O)CO)C1=O", "CCOC(=O)c1cncn1C1CCCc2ccccc21"]


def test_bad_lines_are_counted_and_skipped(tmp_path, zinc_small) -> None:
    path = tmp_path / "mixed.smi"
    bad = ["not_a_smiles", "", "C1CC", "CC(C)(C)(C)(C)C"]
    lines = [zinc_small[0], *bad, zinc_small[1] + " name-2"]
    path.write_text("\n".join(lines) + "\n")
    kept, report = load_smiles(path)
    assert len(kept) == 2
    assert report.total == 6 and report.kept == 2
    assert report.dropped == {"invalid": 3, "empty": 1}
    assert "dropped 4" in report.summary()


def test_filter_canonicalizes_strips_salts_and_dedupes(zinc_small) -> None:
    kept, report = filter_smiles(
        ["OCC", "C(O)C", "CC(=O)[O-].[Na+]", "c1ccccc1"], config=FilterConfig(dedupe=True)
    )
    assert kept == ["CCO", "CC(=O)[O-]", "c1ccccc1"]
    assert report.dropped == {"duplicate": 1}


def test_filter_length_and_vocab(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    long = "C" * 80
    kept, report = filter_smiles(
        [zinc_small[2], long, "CC[Se]CC"], vocab=vocab, config=FilterConfig(max_tokens=60)
    )
    assert kept == [zinc_small[2]]
    assert report.dropped == {"too_long": 1, "unknown_tokens": 1}


def test_csv_column_detection(tmp_path, zinc_small) -> None:
    path = tmp_path / "mols.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("id,SMILES,activity\n")
        for i, s in enumerate(zinc_small[:3]):
            fh.write(f"m{i},{s},{i * 0.5}\n")
    df, col = read_table(path)
    assert col == "SMILES" and list(df["id"]) == ["m0", "m1", "m2"]
    assert read_smiles(path) == zinc_small[:3]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.smi", b"", "empty"),
        ("blank.csv", b"\n\n  \n", "empty"),
        ("nocol.csv", b"a,b\n1,2\n", "no 'smiles' column"),
        ("binary.smi", bytes(range(256)) * 4, "binary"),
    ],
)
def test_unusable_files_raise_one_clear_error(tmp_path, name, content, message) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_smiles(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_names_known_datasets(tmp_path) -> None:
    with pytest.raises(DataError, match="zinc-full"):
        resolve_data(tmp_path / "nope.smi")


def test_non_utf8_line_is_counted_not_fatal(tmp_path) -> None:
    path = tmp_path / "latin.smi"
    path.write_bytes(b"CCO\nC\xe9C\nc1ccccc1\n")
    kept, report = load_smiles(path)
    assert kept == ["CCO", "c1ccccc1"] and report.dropped == {"invalid": 1}


def test_split_is_seeded_and_disjoint() -> None:
    items = list(range(100))
    a_train, a_val = split(items, 0.1, seed=3)
    b_train, b_val = split(items, 0.1, seed=3)
    assert (a_train, a_val) == (b_train, b_val)
    assert len(a_val) == 10 and sorted(a_train + a_val) == items


def test_encode_all_matches_vocab(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    arrays = encode_all(zinc_small, vocab)
    assert [list(a) for a in arrays] == [vocab.encode(s) for s in zinc_small]
