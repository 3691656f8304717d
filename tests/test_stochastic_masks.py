"""The stochastic ensemble's per-element draws (pea/bernoulli.py, the ATen form; the fused CPU
kernel's own draws are tests/test_cpu_kernels.py's): exact
Bernoulli(alpha) shares, independence across elements, layers and steps, exact picks and gradients,
1 bit per element kept for backward, and reproducible from the global RNG state.

Statistical bounds are 6 standard deviations of the binomial count: a correct generator fails one
of them with probability below 1e-8, and every test seeds the generator, so each run is identical
on every machine (integer draws and byte compares have no float rounding to vary)."""

import math

import pytest
import torch
from torch import nn

from pea_deploy.pea import StochasticEnsemble, stochastic_ensemble, smooth_activation, target_activation
from pea_deploy.pea import bernoulli
from test_ensemble import _saved_bytes


def _within(count: int, n: int, p: float, sigmas: float = 6.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1 / 3, 0.999])
def test_share_of_ones_is_alpha(alpha):
    torch.manual_seed(0)
    n = 1 << 22
    mask = bernoulli.draw_mask(n, alpha)[:n]
    assert int(mask.max()) <= 1
    assert _within(int(mask.sum()), n, alpha)


def test_ties_are_settled_with_the_fraction_below_one_256th():
    """alpha = 0.5/256 has whole part 0: every 1 comes from the tie rule (byte == 0, then a float64
    draw below 0.5). Without the rule the share would be 0, with a coin-flip-free rule 1/256."""
    torch.manual_seed(1)
    n = 1 << 22
    alpha = 0.5 / 256
    assert bernoulli.split_threshold(alpha) == (0, 0.5)
    mask = bernoulli.draw_mask(n, alpha)[:n]
    assert _within(int(mask.sum()), n, alpha)


def test_neighbours_layers_and_steps_are_independent():
    """Neighbouring elements share a 64-bit word; consecutive draws (the next layer, the next step)
    follow in the generator's stream. Each pair must agree as independent coins do."""
    torch.manual_seed(2)
    n, alpha = 1 << 21, 0.3
    first = bernoulli.draw_mask(n, alpha)[:n].bool()
    second = bernoulli.draw_mask(n, alpha)[:n].bool()
    both = alpha * alpha
    assert _within(int((first & second).sum()), n, both), "two draws are correlated"
    assert _within(int((first[:-1] & first[1:]).sum()), n - 1, both), "neighbours are correlated"
    assert _within(int((first[:-8] & first[8:]).sum()), n - 8, both), "word-aligned lanes are correlated"


def test_pack_unpack_round_trip_every_byte():
    values = torch.arange(256, dtype=torch.uint8)
    bits = bernoulli.unpack(values).view(256, 8)
    expected = torch.tensor([[(v >> i) & 1 for i in range(8)] for v in range(256)], dtype=torch.uint8)
    assert torch.equal(bits, expected)
    assert torch.equal(bernoulli.pack(bits.reshape(-1)), values)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("act,target", [("gelu", "relu"), ("mish", "relu6"), ("elu", "relu")])
def test_each_element_is_exactly_one_branch_with_its_gradient(act, target, layout):
    """Spans several chunks. Every output element equals T(x) bit for bit or Act(x) to float64
    rounding (the fused CPU kernel computes Act with at::vec at this CPU's vector width, ATen's
    kernel at the width ATen dispatched: Sleef's 1-ulp functions may round differently between
    widths, 1e-12 is a thousand ulps), and its gradient is that branch's derivative."""
    torch.manual_seed(3)
    x = torch.randn(2, 8, 160, 160, dtype=torch.float64) * 3
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    a, t = smooth_activation(act), target_activation(target)
    xa = x.clone().requires_grad_(True)
    y = stochastic_ensemble(xa, 0.4, a, t)
    g = torch.randn_like(x)
    y.backward(g)
    from_target, from_act = y == t.fn(x), torch.isclose(y, a.fn(x), rtol=1e-12, atol=1e-12)
    assert torch.all(from_target | from_act)
    picked = from_target & ~from_act
    undecided = from_target & from_act
    share = picked.sum().item() / (~undecided).sum().item()
    assert abs(share - 0.4) < 0.01  # 800k decided elements: 6 sigma is 0.0033
    want = torch.where(picked, t.vjp(g, x), a.vjp(g, x))
    decided = ~undecided
    torch.testing.assert_close(xa.grad[decided], want[decided], rtol=1e-12, atol=1e-12)


def test_draws_follow_the_global_generator_state():
    """Same seed, same picks; a restored RNG state (what a resumed run loads) replays them."""
    x = torch.randn(4, 16, 33, 33)
    m = StochasticEnsemble("gelu", "relu").train()
    m.set_alpha(0.45)
    torch.manual_seed(4)
    first = m(x)
    state = torch.get_rng_state()
    second = m(x)
    torch.set_rng_state(state)
    assert torch.equal(m(x), second)
    assert not torch.equal(first, second), "the next call draws a new mask"
    torch.manual_seed(4)
    assert torch.equal(m(x), first)


def test_keeps_one_bit_per_element_for_backward():
    x = torch.randn(32, 16, 8, 8, requires_grad=True)
    m = StochasticEnsemble("swish", "relu").train()
    m.set_alpha(0.5)
    count, nbytes = _saved_bytes(m, x)
    # x, its mask packed 1 bit per element, and the 0-d alpha (4 bytes) and seed (8 bytes) of the op
    assert nbytes == x.numel() * 4 + x.numel() // 8 + 4 + 8


def test_endpoints_draw_nothing():
    """At alpha 0 and 1 no element can take the other branch: the RNG must not advance (a run's
    random stream before and after the transition is then the plain net's)."""
    x = torch.randn(8, 4, 5, 5)
    m = StochasticEnsemble("gelu", "relu").train()
    for alpha, want in ((0.0, nn.functional.gelu(x)), (1.0, torch.relu(x))):
        m.set_alpha(alpha)
        state = torch.get_rng_state()
        assert torch.equal(m(x), want)
        assert torch.equal(torch.get_rng_state(), state)
