"""Length-bucketed batches of token-id arrays for ``torch.utils.data.DataLoader``.

Sorting by length inside large random chunks keeps padding low while batch order stays random.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class IdDataset(Dataset):
    """Index -> (index, id array); the index lets the trainer look up per-molecule extras."""

    def __init__(self, ids: Sequence[np.ndarray]):
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        return i, self.ids[i]


class BucketBatchSampler(Sampler[list[int]]):
    """Yields lists of indices; similar lengths share a batch, batch order is shuffled per epoch.

    Each epoch permutes all indices with ``rng(seed, epoch)``, sorts every chunk of
    ``chunk_batches * batch_size`` indices by length, cuts it into batches and shuffles the
    batch order. ``shuffle=False`` gives the plain order cut into batches (for validation).
    Call :meth:`set_epoch` before iterating so epochs differ and resumes reproduce them.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        chunk_batches: int = 50,
        drop_last: bool = False,
    ):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.chunk_batches = chunk_batches
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """The batches of the current epoch, as lists of indices."""
        n, bs = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = np.arange(n)
            out = [order[i : i + bs].tolist() for i in range(0, n, bs)]
        else:
            rng = np.random.default_rng([self.seed, self.epoch])
            perm = rng.permutation(n)
            chunk = bs * self.chunk_batches
            out = []
            for s in range(0, n, chunk):
                part = perm[s : s + chunk]
                part = part[np.argsort(self.lengths[part], kind="stable")]
                out.extend(part[i : i + bs].tolist() for i in range(0, len(part), bs))
            rng.shuffle(out)
        if self.drop_last:
            out = [b for b in out if len(b) == bs]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        # chunks hold whole batches except the last, so the counts match plain slicing
        n, bs = len(self.lengths), self.batch_size
        return n // bs if self.drop_last else -(-n // bs)


class PadCollate:
    """Pads a list of (index, ids) to ``(x: batch x L, lengths: batch, idx: batch)`` LongTensors."""

    def __init__(self, pad_id: int = 0):
        self.pad_id = pad_id

    def __call__(self, items: list[tuple[int, np.ndarray]]) -> tuple[torch.Tensor, ...]:
        lengths = torch.tensor([len(a) for _, a in items], dtype=torch.long)
        x = torch.full((len(items), int(lengths.max())), self.pad_id, dtype=torch.long)
        for row, (_, a) in enumerate(items):
            x[row, : len(a)] = torch.as_tensor(a, dtype=torch.long)
        idx = torch.tensor([i for i, _ in items], dtype=torch.long)
        return x, lengths, idx


def sequence_lengths(ids: Sequence[np.ndarray]) -> np.ndarray:
    """Each id array's length; read from a token cache's offsets when ``ids`` has them."""
    lengths = getattr(ids, "lengths", None)
    if callable(lengths):
        return np.asarray(lengths(), dtype=np.int64)
    return np.fromiter((len(a) for a in ids), dtype=np.int64, count=len(ids))


def batch_sampler(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    seed: int = 0,
    batching: str = "bucket",
    bucket_chunk_batches: int = 50,
) -> BucketBatchSampler:
    """The training batches of one epoch after another, as `TrainConfig.batching` names them."""
    if batching != "bucket":
        raise ValueError(f"unknown batching {batching!r}")
    return BucketBatchSampler(lengths, batch_size, seed=seed, chunk_batches=bucket_chunk_batches)


def collate(
    ids: Sequence[np.ndarray], batch: Sequence[int], pad_id: int = 0
) -> tuple[torch.Tensor, ...]:
    """The batch of molecules ``batch`` (indices into ``ids``): (x, lengths, idx), as
    :class:`PadCollate` gives them."""
    return PadCollate(pad_id)([(int(i), ids[int(i)]) for i in batch])


def make_loader(
    ids: Sequence[np.ndarray],
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    pad_id: int = 0,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    chunk_batches: int = 50,
) -> DataLoader:
    """A DataLoader over id arrays with a :class:`BucketBatchSampler` (``loader.batch_sampler``)."""
    sampler = BucketBatchSampler(
        [len(a) for a in ids], batch_size, shuffle=shuffle, seed=seed, chunk_batches=chunk_batches
    )
    return DataLoader(
        IdDataset(ids),
        batch_sampler=sampler,
        collate_fn=PadCollate(pad_id),
        num_workers=num_workers,
        pin_memory=torch.device(device).type == "cuda",
    )


def padding_fraction(
    lengths: Sequence[int] | np.ndarray, batches: Iterable[Sequence[int]]
) -> float:
    """Padded tokens / all tokens when each batch is padded to its longest member."""
    lengths = np.asarray(lengths)
    padded = total = 0
    for b in batches:
        ls = lengths[np.asarray(b, dtype=np.int64)]
        total += int(ls.max()) * len(ls)
        padded += int(ls.max()) * len(ls) - int(ls.sum())
    return padded / total if total else 0.0
