"""A GRU for teacher-forced training on the CPU, over the weights of an ``nn.GRU``.

PyTorch's CPU GRU builds its backward pass from per-step autograd nodes: every step's slice of
the input projections gets a zero-filled full-size gradient, gates are split and re-joined, and
each step computes its own small weight-gradient product. At the MOSES VAE's size that is about
a third of a training step (measured: `fill_`, `cat` and `copy_` next to the matrix products).
`Recurrence` is the same recurrence with its backward written out: the input projections of
all steps are one matrix product before the loop, the loop does one product per step forward
and one backward, and the weight gradient of the hidden-to-hidden matrix is one product over
all steps after it. The parameters are the ``nn.GRU``'s own (``weight_ih_l0``, ...), so
checkpoints are the same; results equal ``nn.GRU``'s up to float rounding (tested).

Gate order and equations are PyTorch's: ``r, z = sigmoid(W_i{r,z} x + b_i{r,z} + W_h{r,z} h +
b_h{r,z})``, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.
Tensors here are time-major (``T x B x ...``), so every step's slice is contiguous. The input
projections are computed with the gates in the order (n, r, z) and the gradients of a step are
kept as (n_in, r, z, n_hidden): then the input projections' gradient (n, r, z) and the hidden
product's (r, z, n) are both plain slices of one buffer, and one matrix-vector product gives
every bias gradient. tanh is computed as ``2 sigmoid(2x) - 1`` (3-4x faster on the CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _step_forward(
    g: Tensor, gh: Tensor, b_in: Tensor, h: Tensor, rz: Tensor, n: Tensor, out: Tensor
) -> None:
    """One step: gates into ``rz`` and ``n``, the new state into ``out`` (all ``B x ...``).
    ``g``: input projections (n, r, z), ``gh``: hidden projections with all r, z biases."""
    H = h.shape[1]
    torch.add(g[:, H:], gh[:, : 2 * H], out=rz).sigmoid_()
    a_n = torch.addcmul(g[:, :H], rz[:, :H], gh[:, 2 * H :], out=n).add_(b_in)
    a_n.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)  # tanh
    torch.sub(h, n, out=out).mul_(rz[:, H:]).add_(n)  # n + z (h - n)


def _step_backward(
    dh: Tensor, h_prev: Tensor, rz: Tensor, n: Tensor, ghn: Tensor, d: Tensor
) -> Tensor:
    """One step back: ``d`` (``B x 4H``) gets the gradients of (n_in, r, z, n_hidden) before
    their nonlinearities; returns the part of the previous state's gradient that does not go
    through ``W_hh`` (``dh * z``)."""
    H = n.shape[1]
    r, z = rz[:, :H], rz[:, H:]
    direct = dh * z
    da_n = torch.sub(dh, direct, out=d[:, :H])  # dh (1 - z)
    da_n.addcmul_(da_n * n, n, value=-1.0)  # * (1 - n^2): through tanh
    torch.mul(da_n, ghn, out=d[:, H : 2 * H]).mul_(torch.addcmul(r, r, r, value=-1.0))
    da_z = torch.sub(h_prev, n, out=d[:, 2 * H : 3 * H]).mul_(dh)
    da_z.mul_(torch.addcmul(z, z, z, value=-1.0))  # * z (1 - z)
    torch.mul(da_n, r, out=d[:, 3 * H :])
    return direct


class Recurrence(torch.autograd.Function):
    """``gi`` (``T x B x 3H``: input projections, gates (n, r, z), no bias), ``b_ih``, ``h0``
    (``B x H``), ``w_hh`` (``3H x H``), ``b_hh`` (biases in nn.GRU's order) -> every step's
    state ``T x B x H``, in ``h0``'s dtype. With ``low`` (bf16) the hidden-to-hidden products
    run in that dtype, as autocast runs nn.GRU's; states and gates stay in ``h0``'s dtype."""

    @staticmethod
    def forward(ctx, gi, b_ih, h0, w_hh, b_hh, low=None) -> Tensor:
        T, B, H3 = gi.shape
        H = H3 // 3
        out, n = h0.new_empty(T, B, H), h0.new_empty(T, B, H)  # states, candidates
        rz = h0.new_empty(T, B, 2 * H)  # the r and z gates
        gh = h0.new_empty(T, B, H3)  # W_hh h + biases (backward needs the n part)
        bias = b_hh + torch.cat([b_ih[: 2 * H], b_ih.new_zeros(H)])  # r, z input biases too
        b_in = b_ih[2 * H :]
        w_t = w_hh.t() if low is None else w_hh.t().to(low)
        h = h0
        for t in range(T):
            if low is None:
                torch.addmm(bias, h, w_t, out=gh[t])
            else:
                torch.add(torch.mm(h.to(low), w_t), bias, out=gh[t])
            _step_forward(gi[t], gh[t], b_in, h, rz[t], n[t], out[t])
            h = out[t]
        ctx.low = low
        ctx.save_for_backward(h0, w_hh, out, rz, n, gh)
        return out

    @staticmethod
    def backward(ctx, d_out: Tensor) -> tuple[Tensor | None, ...]:
        h0, w_hh, out, rz, n, gh = ctx.saved_tensors
        low = ctx.low
        T, B, H = out.shape
        d = h0.new_empty(T, B, 4 * H)  # (n_in, r, z, n_hidden) of every step
        w = w_hh if low is None else w_hh.to(low)
        dh = torch.zeros_like(h0)
        for t in range(T - 1, -1, -1):
            dh = dh + d_out[t]
            h_prev = out[t - 1] if t else h0
            direct = _step_backward(dh, h_prev, rz[t], n[t], gh[t, :, 2 * H :], d[t])
            if low is None:
                dh = torch.addmm(direct, d[t, :, H:], w)
            else:
                dh = direct.add_(torch.mm(d[t, :, H:].to(low), w))
        flat = d.view(T * B, 4 * H)
        h_prev_all = torch.cat([h0.unsqueeze(0), out[:-1]]).view(T * B, H)
        if low is None:
            d_w_hh = flat[:, H:].t().mm(h_prev_all)
        else:
            d_w_hh = flat[:, H:].to(low).t().mm(h_prev_all.to(low)).to(w_hh.dtype)
        sums = torch.mv(flat.t(), flat.new_ones(T * B))  # every bias gradient at once
        d_b_ih = torch.cat([sums[H : 3 * H], sums[:H]])
        return d[..., : 3 * H], d_b_ih, dh, d_w_hh, sums[H:], None


def _recur(x: Tensor, w_ih: Tensor, b_ih: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor,
           extra: Tensor | None = None) -> Tensor:  # fmt: skip
    """One GRU layer over time-major ``x`` (``T x B x I``) with input weights ``w_ih`` (the
    first ``I`` columns; ``extra``, ``B x I'``, meets the rest once per row). Under autocast
    the products run in bf16, the state in fp32, as in nn.GRU."""
    T, B, width = x.shape
    H = w_hh.shape[1]
    order = torch.cat([w_ih[2 * H :], w_ih[: 2 * H]])  # gates (n, r, z)
    gi = torch.mm(x.reshape(T * B, width), order[:, :width].t()).view(T, B, 3 * H)
    if extra is not None:
        gi = gi + torch.mm(extra, order[:, width:].t()).unsqueeze(0)
    with torch.autocast(x.device.type, enabled=False):
        low = gi.dtype if gi.dtype != h0.dtype else None
        return Recurrence.apply(gi, b_ih, h0, w_hh, b_hh, low)


def _layer_weights(rnn: nn.GRU, layer: int, suffix: str = "") -> tuple[Tensor, ...]:
    name = f"l{layer}{suffix}"
    return (getattr(rnn, f"weight_ih_{name}"), getattr(rnn, f"bias_ih_{name}"),
            getattr(rnn, f"weight_hh_{name}"), getattr(rnn, f"bias_hh_{name}"))  # fmt: skip


def gru_layers(
    rnn: nn.GRU, x: Tensor, h0: Tensor, extra: Tensor | None = None, training: bool = False
) -> Tensor:
    """A unidirectional multi-layer ``nn.GRU`` over time-major ``x`` (``T x B x I``) from
    ``h0`` (``layers x B x H``): the last layer's states ``T x B x H``. ``extra`` (``B x I'``)
    is an input the same at every step, appended to ``x``'s features as the GRU's last ``I'``
    inputs: its projection is computed once per row instead of once per step."""
    for layer in range(rnn.num_layers):
        w_ih, b_ih, w_hh, b_hh = _layer_weights(rnn, layer)
        x = _recur(x, w_ih, b_ih, h0[layer], w_hh, b_hh, extra if layer == 0 else None)
        if layer < rnn.num_layers - 1 and rnn.dropout and training:
            x = F.dropout(x, rnn.dropout, training=True)
    return x


def gru_final_states(rnn: nn.GRU, x: Tensor, lengths: Tensor) -> Tensor:
    """A one-layer bidirectional ``nn.GRU`` over time-major, padded ``x`` (``T x B x I``): the
    forward direction's state after each row's last token and the backward direction's after
    its first, ``B x 2H`` (what a packed sequence gives). The backward direction reads each row
    reversed within its length, so padding never enters a state that is kept."""
    T, B, _ = x.shape
    h0 = x.new_zeros(B, rnn.hidden_size)
    steps = torch.arange(T, device=x.device).unsqueeze(1)  # T x 1
    last = (lengths.to(x.device) - 1).clamp(min=0)
    rows = torch.arange(B, device=x.device)
    finals = []
    for suffix, seq in (("", x), ("_reverse", None)):
        if seq is None:  # row b reversed within its length; padding stays at the end
            src = torch.where(steps <= last, last - steps, steps)  # T x B
            seq = x.gather(0, src.unsqueeze(-1).expand_as(x))
        w_ih, b_ih, w_hh, b_hh = _layer_weights(rnn, 0, suffix)
        out = _recur(seq, w_ih, b_ih, h0, w_hh, b_hh)
        finals.append(out[last, rows])
    return torch.cat(finals, dim=-1)
