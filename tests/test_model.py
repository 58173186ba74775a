from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from molvae.data.batching import PadCollate
from molvae.data.tokens import Vocab
from molvae.model import MolVAE, VAEConfig, kl_divergence
from molvae.model.decoding import mask_specials

TINY = {"emb_dim": 16, "enc_hidden": 32, "latent_dim": 8, "dec_hidden": 32, "dec_layers": 2}


def batch(vocab: Vocab, smiles: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    x, lengths, _ = PadCollate(vocab.pad_id)(
        [(i, np.array(vocab.encode(s))) for i, s in enumerate(smiles)]
    )
    return x, lengths


def tiny_model(vocab: Vocab, seed: int = 0, **kw) -> MolVAE:
    torch.manual_seed(seed)
    return MolVAE(VAEConfig(len(vocab), **{**TINY, **kw}))


def test_config_dict_round_trip() -> None:
    c = VAEConfig(40, latent_dim=12, property_dim=3)
    assert VAEConfig.from_dict(c.to_dict()) == c
    assert all(isinstance(v, (int, float)) for v in c.to_dict().values())
    with pytest.raises(TypeError):
        VAEConfig.from_dict({**c.to_dict(), "bogus": 1})


@pytest.mark.parametrize("property_dim", [0, 2])
def test_forward_shapes_and_finite_losses(zinc_small, property_dim) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab, property_dim=property_dim).train()
    x, lengths = batch(vocab, zinc_small)
    props = torch.randn(len(zinc_small), 2) if property_dim else None
    out = model(x, lengths, props)
    b, t = x.shape
    assert out.logits.shape == (b, t - 1, len(vocab))
    assert out.mu.shape == out.logvar.shape == out.z.shape == (b, 8)
    for loss in (out.recon, out.kl, out.prop_loss):
        assert loss.shape == () and torch.isfinite(loss)
    assert (out.prop_loss > 0) == bool(property_dim)
    assert int(out.n_tokens) == int((lengths - 1).sum())
    assert 0 <= int(out.n_correct) <= int(out.n_tokens)
    # recon is the per-molecule sum of token cross-entropies, averaged over molecules
    logp = torch.log_softmax(out.logits, -1)
    target = x[:, 1:]
    ce = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * (target != 0)
    assert torch.allclose(out.recon, ce.sum(1).mean(), atol=1e-4)
    (out.recon + out.kl + out.prop_loss).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_padding_does_not_change_the_encoding(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    x, lengths = batch(vocab, zinc_small)
    mu, _ = model.encode(x, lengths)
    mu0, _ = model.encode(x[:1, : int(lengths[0])], lengths[:1])
    assert torch.allclose(mu[0], mu0[0], atol=1e-5)


def test_kl_matches_hand_computed_value() -> None:
    mu = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    logvar = torch.tensor([[0.0, 0.0], [math.log(2.0), 0.0]])
    # 0.5 * sum(mu^2 + var - 1 - log var): row 2 = 0.5 * ((1 + 2 - 1 - ln2) + (4 + 1 - 1 - 0))
    expected = torch.tensor([0.0, 0.5 * (2.0 - math.log(2.0) + 4.0)])
    assert torch.allclose(kl_divergence(mu, logvar), expected)


@pytest.mark.slow
def test_tiny_model_overfits_one_batch(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab, enc_hidden=64, dec_hidden=64)
    x, lengths = batch(vocab, zinc_small)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(150):
        out = model(x, lengths)
        opt.zero_grad()
        (out.recon + 0.01 * out.kl).backward()
        opt.step()
    model.eval()
    mu, _ = model.encode(x, lengths)
    for strategy in ("greedy", "beam"):
        ids = model.decode(mu, strategy, beam_width=3)
        assert [vocab.decode(r) for r in ids.tolist()] == zinc_small, strategy


def check_rows(ids: torch.Tensor, vocab_size: int, eos: int = 2, pad: int = 0) -> None:
    """Every row: valid ids without pad, then (if it ended) one eos, then only pad."""
    assert ids.dtype == torch.long
    assert ((ids >= 0) & (ids < vocab_size)).all()
    for row in ids.tolist():
        if eos in row:
            k = row.index(eos)
            assert pad not in row[:k]
            assert all(t == pad for t in row[k + 1 :])
        else:
            assert pad not in row


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_decode_rows_end_with_eos_then_pad(zinc_small, strategy) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    z = model.sample_prior(6, generator=torch.Generator().manual_seed(1))
    ids = model.decode(z, strategy, max_len=30, beam_width=3)
    assert ids.shape[0] == 6 and ids.shape[1] <= 30
    check_rows(ids, len(vocab))


def test_decode_stops_as_soon_as_every_row_ended(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    with torch.no_grad():
        # a huge eos bias makes every row end at the first step
        model.out.bias[vocab.eos_id] = 100.0
    z = torch.randn(4, 8)
    for strategy in ("greedy", "sample", "beam"):
        ids = model.decode(z, strategy, max_len=50)
        assert ids.tolist() == [[vocab.eos_id]] * 4, strategy


def test_decode_without_eos_runs_to_max_len(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    with torch.no_grad():
        model.out.bias[vocab.eos_id] = -100.0
    ids = model.decode(torch.randn(3, 8), "greedy", max_len=7)
    assert ids.shape == (3, 7) and not (ids == vocab.eos_id).any()


def test_seeded_sampling_is_reproducible(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    z = model.sample_prior(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(z, model.sample_prior(5, generator=torch.Generator().manual_seed(3)))
    a = model.decode(z, "sample", generator=torch.Generator().manual_seed(7), max_len=40)
    b = model.decode(z, "sample", generator=torch.Generator().manual_seed(7), max_len=40)
    c = model.decode(z, "sample", generator=torch.Generator().manual_seed(8), max_len=40)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_beam_width_one_equals_greedy(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    # fp32: bf16 rounding depends on the batch shape, which differs between the two searches
    beam = model.decode(z, "beam", beam_width=1, amp=False)
    assert torch.equal(beam, model.decode(z, "greedy", amp=False))


def test_each_row_decodes_as_if_alone(zinc_small) -> None:
    """Ended rows leave the batch; the others must carry on exactly as they would alone."""
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    with torch.no_grad():
        model.out.bias[vocab.eos_id] = 0.4  # rows end at different steps (1, 2, 5, 40, ...)
    z = 3 * torch.randn(8, 8, generator=torch.Generator().manual_seed(2))
    both = model.decode(z, "greedy", max_len=40, amp=False)
    lengths = (both != vocab.pad_id).sum(1)
    assert len(set(lengths.tolist())) > 1  # the batch really shrank along the way
    for i in range(len(z)):
        alone = model.decode(z[i : i + 1], "greedy", max_len=40, amp=False)[0]
        assert torch.equal(both[i, : len(alone)], alone)
        assert (both[i, len(alone) :] == vocab.pad_id).all()


def test_beam_never_scores_below_greedy(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))

    def logprob(ids: torch.Tensor) -> torch.Tensor:
        x = torch.cat([torch.full((len(ids), 1), vocab.bos_id), ids], 1)
        lengths = (ids != vocab.pad_id).sum(1)  # decoder inputs: bos + all but the last token
        logits = model.decoder_logits(x[:, :-1], lengths, z)
        lp = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        return (lp * (ids != vocab.pad_id)).sum(1)

    with torch.no_grad():
        greedy = model.decode(z, "greedy", max_len=30, amp=False)
        beam = model.decode(z, "beam", beam_width=4, max_len=30, amp=False)
        # only compare rows where both finished, so both are complete sequences
        done = (greedy == vocab.eos_id).any(1) & (beam == vocab.eos_id).any(1)
        t = max(greedy.shape[1], beam.shape[1])
        g = torch.nn.functional.pad(greedy, (0, t - greedy.shape[1]))
        b = torch.nn.functional.pad(beam, (0, t - beam.shape[1]))
        assert (logprob(b)[done] >= logprob(g)[done] - 1e-4).all()


def test_padded_decoder_equals_packed_on_real_positions(zinc_small) -> None:
    """The decoder runs unpacked for speed; logits at non-pad targets must match the packed GRU."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    x, lengths = batch(vocab, zinc_small)
    z = torch.randn(len(zinc_small), TINY["latent_dim"])
    x_in, n = x[:, :-1], lengths - 1
    fast = model.decoder_logits(x_in, n, z)
    inp = model.step_input(x_in, z)
    packed = pack_padded_sequence(inp, n, batch_first=True, enforce_sorted=False)
    out, _ = model.decoder_rnn(packed, model.init_hidden(z))
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x_in.shape[1])
    ref = model.out(out)
    mask = x[:, 1:] != vocab.pad_id
    assert mask.sum() == int(n.sum())
    assert torch.allclose(fast[mask], ref[mask], atol=1e-5)


def test_fast_bf16_only_where_hardware_has_it(monkeypatch) -> None:
    from molvae.model import device as model_mod

    assert model_mod.fast_bf16(torch.device("cuda"))
    assert not model_mod.fast_bf16(torch.device("meta"))
    model_mod.fast_bf16.cache_clear()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert not model_mod.fast_bf16(torch.device("cpu"))
    model_mod.fast_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert model_mod.fast_bf16(torch.device("cpu"))
    model_mod.fast_bf16.cache_clear()
    # the same CPU with its kernels capped at AVX2 (how the tests mimic an AVX2-only machine)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not model_mod.fast_bf16(torch.device("cpu"))
    model_mod.fast_bf16.cache_clear()
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not model_mod.fast_bf16(torch.device("cpu"))
    model_mod.fast_bf16.cache_clear()


class Refuse:
    """A constraint that refuses given tokens, optionally only after a given prefix."""

    def __init__(self, tokens: set[int], after: list[int] | None = None):
        self.tokens, self.after = tokens, after

    def allows(self, prefix, token: int) -> bool:
        if self.after is not None and list(prefix) != self.after:
            return True
        return token not in self.tokens


def test_constraint_that_allows_everything_changes_nothing_greedy(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    with torch.no_grad():
        model.out.bias[vocab.eos_id] = 0.4  # rows of different lengths
    z = 3 * torch.randn(8, 8, generator=torch.Generator().manual_seed(2))
    free = model.decode(z, "greedy", max_len=40, amp=False)
    anything = Refuse(set())
    assert torch.equal(model.decode(z, "greedy", max_len=40, amp=False, constraint=anything), free)


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_refused_tokens_are_never_emitted(zinc_small, strategy) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    free = model.decode(z, strategy, max_len=30, generator=torch.Generator().manual_seed(1))
    common = torch.bincount(free[free > vocab.unk_id]).argmax().item()  # the most used token
    ids = model.decode(z, strategy, max_len=30, generator=torch.Generator().manual_seed(1),
                       constraint=Refuse({common}))  # fmt: skip
    assert (free == common).any()
    assert not (ids == common).any()
    check_rows(ids, len(vocab))


def test_constrained_sampling_is_seeded(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    rule = Refuse({vocab.index["C"]})

    def draw(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return model.decode(z, "sample", max_len=30, generator=gen, constraint=rule)

    assert torch.equal(draw(7), draw(7)) and not torch.equal(draw(7), draw(8))


def test_a_dead_end_undoes_the_previous_token(zinc_small) -> None:
    """Nothing allowed after the greedy two-token prefix: the decoder must back up one token and
    take its next best choice there, keeping the first token."""
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    z = torch.randn(1, 8, generator=torch.Generator().manual_seed(4))
    free = model.decode(z, "greedy", max_len=30, amp=False)[0].tolist()
    assert len(free) > 3 and vocab.eos_id not in free[:2]
    dead_end = Refuse(set(range(len(vocab))), after=free[:2])
    ids = model.decode(z, "greedy", max_len=30, amp=False, constraint=dead_end)[0].tolist()
    with torch.no_grad():  # the second token's distribution, to find the runner-up
        h = model.init_hidden(z)
        tok = torch.tensor([[vocab.bos_id], [free[0]]]).T
        o, _ = model.decoder_rnn(model.step_input(tok, z), h)
        logits = mask_specials(model.config, model.out(o[:, -1]))[0]
    runner_up = logits.topk(2).indices[1].item()
    assert ids[0] == free[0] and ids[1] == runner_up != free[1]


def test_rows_with_no_way_out_come_back_without_eos(zinc_small) -> None:
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    nothing = Refuse(set(range(len(vocab))))
    for strategy in ("greedy", "sample"):
        ids = model.decode(z, strategy, max_len=20, constraint=nothing)
        assert not (ids == vocab.eos_id).any() and (ids == vocab.pad_id).all()


def test_min_mass_backs_out_of_steps_the_model_finds_unlikely(zinc_small) -> None:
    """Refusing the greedy second token leaves the rest of that step's mass; a min_mass above
    it turns the step into a dead end, so the first token changes too."""
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    with torch.no_grad():
        model.out.bias[vocab.index["C"]] = 8.0  # "C" takes nearly all mass at every step
    z = torch.randn(1, 8, generator=torch.Generator().manual_seed(0))
    c = vocab.index["C"]
    rule = Refuse({c}, after=[c])  # no "CC"
    kept = model.decode(z, "greedy", max_len=10, amp=False, constraint=rule)[0].tolist()
    backed = model.decode(z, "greedy", max_len=10, amp=False, constraint=rule, min_mass=0.5)
    assert kept[:1] == [c] and kept[1] != c
    assert backed[0, 0].item() != c


class _Rule:
    """A token constraint from a rule ``allow(prefix, token)``, counting how often it is asked."""

    def __init__(self, allow) -> None:
        self.allow, self.calls = allow, 0

    def allows(self, prefix, token) -> bool:
        self.calls += 1
        return self.allow(prefix, token)


def test_max_len_counts_eos_in_raw_and_constrained_decoding(zinc_small) -> None:
    """``max_len`` tokens with eos included: a row that has not ended by then comes back with
    exactly ``max_len`` tokens and no eos, constrained or raw; eos as the ``max_len``-th token
    still ends the row."""
    vocab = Vocab.build(zinc_small)
    model = tiny_model(vocab).eval()
    z, n = torch.randn(3, 8), 7
    with torch.no_grad():
        model.out.bias[vocab.eos_id] = -100.0  # the raw decoder never ends by itself
    raw = model.decode(z, "greedy", max_len=n)
    no_eos = _Rule(lambda prefix, tok: tok != vocab.eos_id)
    constrained = model.decode(z, "greedy", max_len=n, constraint=no_eos)
    assert raw.shape == constrained.shape == (3, n)
    assert not (raw == vocab.eos_id).any() and not (constrained == vocab.eos_id).any()
    assert torch.equal(raw, constrained)  # the rule only refused what greedy never chose

    with torch.no_grad():
        model.out.bias[vocab.eos_id] = 100.0  # eos wherever the rule allows it
    last = _Rule(lambda prefix, tok: (tok == vocab.eos_id) == (len(prefix) == n - 1))
    ids = model.decode(z, "greedy", max_len=n, constraint=last)
    assert ids.shape == (3, n) and (ids[:, -1] == vocab.eos_id).all()
    assert not (ids[:, :-1] == vocab.eos_id).any()


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_constrained_row_is_given_up_at_its_refusal_budget(strategy) -> None:
    """A row that is refused every token is given up after exactly ``4 * max_len`` refusals
    (tokens refused and tokens undone count alike), with no eos."""
    torch.manual_seed(0)
    model = MolVAE(VAEConfig(40, **TINY, max_len=3)).eval()  # 38 tokens > the budget of 12
    nothing = _Rule(lambda prefix, tok: False)
    ids = model.decode(torch.randn(1, 8), strategy, constraint=nothing, min_mass=0.0,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert nothing.calls == 4 * 3
    assert not (ids == model.config.eos_id).any()
