"""The step loop of grammar-constrained decoding, in lanes that overlap GRU and bookkeeping.

The slots in flight (`molvae.grammar.constrained.ConstrainedState`) are split into lanes by slot
number. While one lane's decoder step runs in a worker thread (PyTorch releases the GIL), the
main thread chooses the tokens of the other lane; so on a machine with two cores the GRU and
the per-row grammar work run side by side instead of one after the other. Every choice, and
every draw of randomness, is made on the main thread in a fixed order (lane 0, lane 1, lane 0,
...), so results do not depend on timing and seeded runs repeat exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from molvae.grammar.constrained import ConstrainedState, advance

MIN_LANE_ROWS = 64  # below this many rows in flight, one lane (a thread would not pay)


@dataclass
class Lane:
    """The slots of one lane in flight, their decoder states ``layers x n x hidden`` and the
    tokens they feed next (``n x 1``); ``pending`` the step running for them."""

    index: int
    slots: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    h: Tensor | None = None
    tok: Tensor | None = None
    pending: Future | None = None


@dataclass
class Loop:
    """What the lanes share: the decoder step, the latents, the bookkeeping, the stored states.

    ``step(tok, z, h) -> (probs as float64 numpy, h)`` is one decoder step for a batch;
    ``init(z) -> h`` the decoder's first state; ``bos`` the start token; ``modes()`` the context
    managers the worker thread runs in (grad and autocast modes are per thread; entered once,
    so autocast keeps its cast weights from step to step).
    """

    st: ConstrainedState
    step: Callable[[Tensor, Tensor, Tensor], tuple[np.ndarray, Tensor]]
    init: Callable[[Tensor], Tensor]
    z: Tensor
    bos: int
    max_len: int
    n_lanes: int
    modes: Callable[[], list] = list
    hist: Tensor | None = None  # (ring * slots) x layers x hidden

    def run(self) -> None:
        """Decode every row of ``z`` (results in ``st.out_toks``/``out_len``/``out_ended``)."""
        lanes = [Lane(i) for i in range(self.n_lanes)]
        with ThreadPoolExecutor(1, initializer=_enter, initargs=(self.modes,)) as pool:
            while True:
                for lane in lanes:
                    if lane.pending is not None:
                        probs, h = lane.pending.result()
                        lane.pending = None
                        self._choose(lane, probs, h)
                    self._admit(lane)
                    if len(lane.slots):
                        rows = torch.as_tensor(self.st.slot_row[lane.slots], device=self.z.device)
                        args = (lane.tok, self.z[rows], lane.h)
                        lane.pending = _submit(pool if self.n_lanes > 1 else None, self.step, args)
                if all(lane.pending is None for lane in lanes):
                    return

    def _choose(self, lane: Lane, probs: np.ndarray, h: Tensor) -> None:
        """The lane's next tokens from its step's distributions; finished rows leave."""
        st, dev, slots = self.st, self.z.device, lane.slots
        ring = len(st.slot_pos)
        w = len(st.slot_row)
        if self.hist is None:  # entry p % ring * w + s: slot s's state before its p-th token
            self.hist = torch.zeros(ring * w, *h.shape[::2], dtype=h.dtype, device=dev)
        pos = st.length[slots]
        at = pos % ring * w + slots
        if _host(h):  # numpy's fancy assignment: a third of torch's time on the CPU
            self.hist.numpy()[at] = h.numpy().transpose(1, 0, 2)
        else:
            self.hist.index_copy_(0, torch.as_tensor(at, device=dev), h.transpose(0, 1))
        st.slot_pos[pos % ring, slots] = pos
        going = advance(st, slots, probs, st.batch.masks(slots), pos, self.max_len)
        st.finish(np.delete(slots, going))
        lane.h = _resume(st, self.hist, h, slots, pos, going)
        lane.slots = slots[going]
        last = st.toks[lane.slots, st.length[lane.slots] - 1]
        lane.tok = torch.as_tensor(last, device=dev)[:, None]

    def _admit(self, lane: Lane) -> None:
        """Start the next rows in the lane's free slots: they join at bos."""
        new = self.st.admit(lane.index, self.n_lanes)
        if not len(new):
            return
        dev = self.z.device
        h0 = self.init(self.z[torch.as_tensor(self.st.slot_row[new], device=dev)])
        bos = torch.full((len(new), 1), self.bos, dtype=torch.long, device=dev)
        if lane.h is None or not lane.h.shape[1]:
            lane.h, lane.tok = h0, bos
        else:
            lane.h, lane.tok = torch.cat([lane.h.to(h0.dtype), h0], 1), torch.cat([lane.tok, bos])
        lane.slots = np.concatenate([lane.slots, new])


def _enter(modes: Callable[[], list]) -> None:
    """Enter the worker thread's modes for its life (it ends with the decoding call)."""
    for mode in modes():
        mode.__enter__()


def _submit(pool: ThreadPoolExecutor | None, fn: Callable, args: tuple) -> Future:
    """``fn(*args)`` in the worker thread, or here and now without one."""
    if pool is not None:
        return pool.submit(fn, *args)
    done: Future = Future()
    done.set_result(fn(*args))
    return done


def _host(h: Tensor) -> bool:
    """Whether ``h`` can be handled as a numpy array (on the CPU, in a type numpy has)."""
    return h.device.type == "cpu" and h.dtype in (torch.float32, torch.float64)


def _resume(
    st: ConstrainedState, hist: Tensor, h: Tensor, slots: np.ndarray, pos: np.ndarray, going
) -> Tensor:
    """The decoder state each going slot continues from (``layers x going x hidden``): this
    step's, unless the row backed up, then the one stored before its new last token (``hist``
    as `Loop._choose` keeps it)."""
    dev, w = h.device, len(st.slot_row)
    last = st.length[slots[going]] - 1
    back = np.flatnonzero(last != pos[going])
    at = last[back] % len(st.slot_pos) * w + slots[going][back]
    if _host(h):
        out = h.numpy()[:, going]
        out[:, back] = hist.numpy()[at].transpose(1, 0, 2)
        return torch.from_numpy(out)
    out = h[:, torch.as_tensor(going, device=dev)]
    if len(back):
        out[:, torch.as_tensor(back, device=dev)] = hist[torch.as_tensor(at, device=dev)].transpose(
            0, 1
        )
    return out
