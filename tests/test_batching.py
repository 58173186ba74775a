from __future__ import annotations

import numpy as np
import torch

from molvae.data.batching import BucketBatchSampler, PadCollate, make_loader, padding_fraction


def random_ids(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.array([1, *rng.integers(4, 20, size=k), 2]) for k in rng.integers(3, 60, size=n)]


def test_every_index_exactly_once_per_epoch() -> None:
    lengths = np.random.default_rng(0).integers(5, 50, size=1003)
    sampler = BucketBatchSampler(lengths, batch_size=16, seed=3, chunk_batches=4)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 63
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(1003))
        assert sum(len(b) < 16 for b in batches) == 1


def test_epochs_differ_and_repeat_with_seed() -> None:
    lengths = np.arange(500) % 37
    a = BucketBatchSampler(lengths, 10, seed=1)
    b = BucketBatchSampler(lengths, 10, seed=1)
    a.set_epoch(2)
    b.set_epoch(2)
    assert a.batches() == b.batches()
    b.set_epoch(3)
    assert a.batches() != b.batches()


def test_bucketing_cuts_padding() -> None:
    lengths = np.random.default_rng(1).integers(10, 80, size=5000)
    bucketed = BucketBatchSampler(lengths, 64, seed=0).batches()
    plain = BucketBatchSampler(lengths, 64, shuffle=False).batches()
    assert padding_fraction(lengths, bucketed) < 0.1 < padding_fraction(lengths, plain)


def test_padding_fraction_golden() -> None:
    # batch [3, 5]: padded to 5 -> 10 slots, 2 pads; batch [4]: no pad -> 2 / 14
    assert padding_fraction([3, 5, 4], [[0, 1], [2]]) == 2 / 14


def test_drop_last_keeps_only_full_batches() -> None:
    sampler = BucketBatchSampler(np.ones(105), 10, seed=0, chunk_batches=3, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10
    assert all(len(b) == 10 for b in batches)


def test_collate_pads_with_pad_id_and_keeps_indices() -> None:
    items = [(7, np.array([1, 5, 2])), (3, np.array([1, 5, 6, 7, 2]))]
    x, lengths, idx = PadCollate(pad_id=0)(items)
    assert x.tolist() == [[1, 5, 2, 0, 0], [1, 5, 6, 7, 2]]
    assert lengths.tolist() == [3, 5] and idx.tolist() == [7, 3]
    assert x.dtype == lengths.dtype == torch.long


def test_loader_yields_the_arrays_it_was_given() -> None:
    ids = random_ids(100)
    loader = make_loader(ids, batch_size=16, seed=0)
    seen = set()
    for x, lengths, idx in loader:
        for row, i in enumerate(idx.tolist()):
            assert x[row, : lengths[row]].tolist() == ids[i].tolist()
            assert (x[row, lengths[row] :] == 0).all()
            seen.add(i)
    assert seen == set(range(100))
