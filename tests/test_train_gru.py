"""The fused GRU (`molvae.model.gru`) computes what nn.GRU computes, forward and backward, and a
run trained through it resumes bit-identically like any other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from molvae.data import Vocab
from molvae.data.batching import collate
from molvae.model import MolVAE, VAEConfig
from molvae.model.gru import Recurrence, gru_final_states, gru_layers
from molvae.train import TrainConfig, train
from molvae.train.memory import use_fused_rnn

F64 = torch.float64


def _grads(out, inputs, g):
    return torch.autograd.grad((out * g).sum(), inputs)


def test_recurrence_gradients_are_exact() -> None:
    torch.manual_seed(0)
    args = [torch.randn(5, 3, 6, dtype=F64, requires_grad=True),  # gi: T x B x 3H
            torch.randn(6, dtype=F64, requires_grad=True),  # b_ih
            torch.randn(3, 2, dtype=F64, requires_grad=True),  # h0
            torch.randn(6, 2, dtype=F64, requires_grad=True),  # w_hh
            torch.randn(6, dtype=F64, requires_grad=True)]  # fmt: skip
    assert torch.autograd.gradcheck(Recurrence.apply, args)


def test_layers_equal_nn_gru_with_a_constant_extra_input() -> None:
    torch.manual_seed(0)
    T, B, inp, extra, H = 6, 4, 5, 3, 4
    rnn = nn.GRU(inp + extra, H, num_layers=2).to(F64)
    x = torch.randn(T, B, inp, dtype=F64, requires_grad=True)
    e = torch.randn(B, extra, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, B, H, dtype=F64)
    want, _ = rnn(torch.cat([x, e.unsqueeze(0).expand(T, -1, -1)], -1), h0)
    got = gru_layers(rnn, x, h0, e)
    torch.testing.assert_close(got, want)
    g = torch.randn_like(want)
    params = [x, e, *rnn.parameters()]
    for a, b in zip(_grads(got, params, g), _grads(want, params, g), strict=True):
        torch.testing.assert_close(a, b)


def test_bidirectional_final_states_equal_a_packed_nn_gru() -> None:
    torch.manual_seed(1)
    rnn = nn.GRU(3, 4, bidirectional=True).to(F64)
    lengths = torch.tensor([6, 2, 5, 1])
    x = torch.randn(6, 4, 3, dtype=F64, requires_grad=True)
    _, h = rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
    want = torch.cat([h[0], h[1]], -1)
    got = gru_final_states(rnn, x, lengths)
    torch.testing.assert_close(got, want)
    g = torch.randn_like(want)
    params = [x, *rnn.parameters()]
    for a, b in zip(_grads(got, params, g), _grads(want, params, g), strict=True):
        torch.testing.assert_close(a, b)


@pytest.fixture
def data(zinc_small):
    smiles = zinc_small * 4
    vocab = Vocab.build(smiles)
    ids = [np.array(vocab.encode(s)) for s in smiles]
    mcfg = VAEConfig(len(vocab), emb_dim=8, enc_hidden=16, latent_dim=4, dec_hidden=16,
                     dec_layers=2, max_len=60)  # fmt: skip
    return vocab, ids, mcfg


def test_model_forward_and_gradients_match(data) -> None:
    _, ids, mcfg = data
    x, lengths, _ = collate(ids, range(8))
    torch.manual_seed(0)
    native = MolVAE(mcfg).eval()
    fused = MolVAE(mcfg).eval()
    fused.load_state_dict(native.state_dict())
    fused.fused_rnn = True
    a, b = native(x, lengths), fused(x, lengths)
    for name in ("recon", "kl", "mu", "logits"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=1e-5, rtol=1e-5)
    a.recon.backward()
    b.recon.backward()
    for (k, p), q in zip(native.named_parameters(), fused.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=k)


def test_training_through_either_kernel_agrees(tmp_path, data) -> None:
    vocab, ids, mcfg = data
    hist = {}
    for rnn in ("native", "fused"):
        cfg = TrainConfig(epochs=2, batch_size=8, device="cpu", amp=False, rnn=rnn,
                          lr_warmup_steps=2, val_recon_samples=4)  # fmt: skip
        res = train(mcfg, cfg, vocab.tokens, ids, ids[:8], tmp_path / rnn, progress=False)
        hist[rnn] = res.history
    for col in ("train_loss", "val_loss", "val_token_acc"):
        np.testing.assert_allclose(hist["fused"][col], hist["native"][col], rtol=1e-3)


def test_rnn_setting() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_fused_rnn(TrainConfig(), cpu) and not use_fused_rnn(TrainConfig(), cuda)
    assert not use_fused_rnn(TrainConfig(rnn="native"), cpu)
    with pytest.raises(ValueError, match="unknown rnn"):
        use_fused_rnn(TrainConfig(rnn="fast"), cpu)


def test_under_bf16_autocast_products_are_bf16_and_states_fp32(data) -> None:
    _, ids, mcfg = data
    x, lengths, _ = collate(ids, range(8))
    torch.manual_seed(0)
    native = MolVAE(mcfg).eval()
    fused = MolVAE(mcfg).eval()
    fused.load_state_dict(native.state_dict())
    fused.fused_rnn = fused.fused_bf16 = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = native(x, lengths), fused(x, lengths)
    torch.testing.assert_close(b.recon, a.recon, rtol=2e-2, atol=0)
    b.recon.backward()
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in fused.parameters() if p.grad is not None)  # fmt: skip
    fused.fused_bf16 = False  # the default under autocast: nn.GRU
    with torch.autocast("cpu", dtype=torch.bfloat16):
        c = fused(x, lengths)
    torch.testing.assert_close(c.recon, a.recon)
