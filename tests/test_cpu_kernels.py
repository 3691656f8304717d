"""The fused CPU kernel (pea/kernels/, built by pea/cpu_kernels.py): Philox against Random123's
known answers, the documented element-to-draw mapping, the same masks from the AVX-512, AVX2 and
scalar builds and for any thread count, exact Bernoulli(alpha) shares and independence, the tie
rule, agreement with the ATen form, and the fallback when no kernel can be built.

Statistical bounds are 6 standard deviations of the binomial count (a correct generator fails one
with probability below 1e-8); the keys are fixed or seeded, so each run draws the same bits on every
machine (Philox is integer arithmetic)."""

import contextlib
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from pea_deploy.pea import (bernoulli, cpu_kernels, ensemble, smooth_activation, stochastic_ensemble,
                            target_activation)

pytestmark = pytest.mark.skipif(cpu_kernels.compiler() is None, reason="no C++ compiler: the ATen form runs")

KEY = 0x1234567890ABCDEF
RELU, GIVEN = 0, 0


def _ops():
    ops = cpu_kernels.ops()
    assert ops is not None, cpu_kernels.status()  # a compiler is present: the build must work
    return ops


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _within(count: int, n: int, p: float, sigmas: float = 6.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def _mask(n: int, alpha: float, key: int = KEY) -> torch.Tensor:
    """The kernel's draws for n elements as 0/1 floats: y starts at 0, the target of x = 1 is 1."""
    y, x = torch.zeros(n), torch.ones(n)
    packed = torch.empty(bernoulli.packed_size(n), dtype=torch.uint8)
    _ops().stochastic_pick_(y, x, packed, GIVEN, _signed(key), *bernoulli.philox_thresholds(alpha), RELU)
    return y


# Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter[4], key[2] -> result[4]
KAT = [([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
       ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
       ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1])]


@pytest.mark.parametrize("counter,key,want", KAT)
def test_philox_block_matches_random123(counter, key, want):
    assert [v & 0xFFFFFFFF for v in _ops().philox4x32_10(counter, key)] == want


def _reference_draws(n: int, key: int) -> list[int]:
    """Element i's 16-bit draw as ensembles.cpp documents it: half i % 2 (low first) of 32-bit draw
    i / 2 % 64 of group i / 128, whose draw 16 * k + j is output k of Philox block (16 * group + j)."""
    draws = []
    for group in range((n + 127) // 128):
        out = [0] * 64
        for j in range(16):
            block = _ops().philox4x32_10([16 * group + j, 0, 0, 0], [key & 0xFFFFFFFF, key >> 32])
            for k in range(4):
                out[16 * k + j] = block[k] & 0xFFFFFFFF
        draws += [(out[e // 2] >> (16 * (e % 2))) & 0xFFFF for e in range(128)]
    return draws[:n]


def test_every_element_draws_as_documented():
    """1000 elements (not a whole number of words): the vectorised draw, compare and pack of this
    machine's build give, element by element, what the KAT-checked block function gives."""
    n, alpha = 1000, 0.3
    threshold, _ = bernoulli.philox_thresholds(alpha)
    want = torch.tensor([float(d < threshold) for d in _reference_draws(n, KEY)])
    assert torch.equal(_mask(n, alpha), want)


def test_avx2_and_scalar_builds_draw_the_same_masks(tmp_path):
    """The Philox rounds have an AVX-512, an AVX2 and a scalar path (philox.h) and at::vec is built for
    whichever: each build, in its own process, gives this build's mask bit for bit."""
    flags = cpu_kernels._cpu_flags().split()
    marches = ["x86-64"] + (["haswell"] if {"avx2", "fma", "f16c"} <= set(flags) else [])
    if "avx" not in flags and "sse2" not in flags:
        pytest.skip("not an x86 CPU")
    env = dict(os.environ, PEA_DEPLOY_CACHE=str(tmp_path))
    script = textwrap.dedent(f"""
        import sys, torch
        from pea_deploy.pea import bernoulli, cpu_kernels
        torch.ops.load_library(str(cpu_kernels.build_library(cpu_kernels.compiler(), sys.argv[1])))
        ops = torch.ops.pea_deploy
        n = 100_003
        y, x = torch.zeros(n), torch.ones(n)
        packed = torch.empty(bernoulli.packed_size(n), dtype=torch.uint8)
        ops.stochastic_pick_(y, x, packed, 0, {_signed(KEY)}, *bernoulli.philox_thresholds(0.3), 0)
        print(ops.capability(), packed.numpy().tobytes().hex())
    """)
    here = subprocess.run([sys.executable, "-c", script, "native"], capture_output=True, text=True, env=env)
    assert here.returncode == 0, here.stderr[-2000:]
    native = here.stdout.split()[1]
    for march in marches:
        done = subprocess.run([sys.executable, "-c", script, march], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        capability, packed = done.stdout.split()
        assert capability == ("AVX2" if march == "haswell" else "DEFAULT")
        assert packed == native, f"the {capability} build draws other bits"


def test_masks_do_not_depend_on_the_thread_count():
    n = 1 << 20  # many tasks per thread
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _mask(n, 0.4)
        torch.set_num_threads(max(2, before))
        many = _mask(n, 0.4)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, many)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1 / 3, 0.999, 1e-4])
def test_share_of_ones_is_alpha(alpha):
    n = 1 << 22
    assert _within(int(_mask(n, alpha).sum()), n, alpha)


def test_neighbours_layers_and_steps_are_independent():
    """Elements share 32-bit draws (pairs), Philox blocks (8 elements) and draw groups (128); the
    next call (the next layer, the next step) draws a new key. Each pair agrees as independent
    coins do."""
    n, alpha = 1 << 21, 0.3
    torch.manual_seed(2)
    first = _mask(n, alpha, bernoulli.draw_key() % (1 << 64)).bool()
    second = _mask(n, alpha, bernoulli.draw_key() % (1 << 64)).bool()
    both = alpha * alpha
    assert _within(int((first & second).sum()), n, both), "two calls are correlated"
    for lag in (1, 2, 8, 16, 64, 128):
        assert _within(int((first[:-lag] & first[lag:]).sum()), n - lag, both), f"elements {lag} apart correlate"


def test_a_tie_is_settled_by_the_fraction():
    """Element 0's 16-bit draw made the threshold: the element is 1 exactly when its own 64-bit draw
    (Philox block (0, 0, 1, 0)) is below the tie threshold; checked on both sides of that draw."""
    draw = _reference_draws(1, KEY)[0]
    block = _ops().philox4x32_10([0, 0, 1, 0], [KEY & 0xFFFFFFFF, KEY >> 32])
    settle = ((block[1] & 0xFFFFFFFF) << 32) | (block[0] & 0xFFFFFFFF)
    for tie_threshold, want in ((settle, 0.0), (settle + 1, 1.0)):
        y, x = torch.zeros(64), torch.ones(64)
        packed = torch.empty(8, dtype=torch.uint8)
        _ops().stochastic_pick_(y, x, packed, GIVEN, _signed(KEY), draw, _signed(tie_threshold), RELU)
        assert y[0].item() == want
        assert (packed[0].item() & 1) == want


def test_thresholds_are_exact_for_float32_alphas():
    """A float32 alpha times 2^16 splits exactly into whole and fraction * 2^64 (integers)."""
    alpha = float(torch.tensor(1 / 3, dtype=torch.float32))
    whole, tie = bernoulli.philox_thresholds(alpha)
    assert whole == math.floor(alpha * 65536)
    assert (whole + (tie % (1 << 64)) / 2.0 ** 64) / 65536 == pytest.approx(alpha, rel=1e-15)


# float64: both forms compute the same formulas with Sleef's 1-ulp functions, possibly at different
# vector widths (AVX2/AVX-512): only rounding differs, far below 1e-12.
# float32: both GELUs are vector polynomial approximations whose error does not depend on the CPU or
# the vector width: the kernel's (Abramowitz-Stegun erf, 20-ulp exp) is within 4.7e-7 of float64 on
# |x| <= 6, F.gelu within 1.2e-6, so they differ by under 1.7e-6 (beyond 6 both are x or 0 up to
# rounding, which the rtol term covers). SiLU, Mish and
# ELU use the same formulas as ATen, differing at most by exp's ulps between widths (rtol 3e-6).
_TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=3e-6, atol=2e-6)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["relu", "relu6"])
@pytest.mark.parametrize("act", ["gelu", "silu", "mish", "elu", "swish-1.5"])
def test_weighted_kernel_matches_the_aten_form(act, target, dtype):
    """Values and gradients, channels_last included (swish with beta 1.5: an activation the kernel
    does not compute itself, passed in computed)."""
    name, beta = (act.split("-") + ["1"])[:2]
    a, t = smooth_activation(name, float(beta)), target_activation(target)
    torch.manual_seed(5)
    x = (torch.randn(4, 8, 40, 40, dtype=dtype) * 2.5).clamp(-8, 8).to(memory_format=torch.channels_last)
    g = torch.randn_like(x)
    results = []
    for off in (False, True):
        xr = x.clone().requires_grad_(True)
        with cpu_kernels.disabled() if off else contextlib.nullcontext():
            y = ensemble(xr, 0.37, a, t)
            y.backward(g)
        results.append((y.detach(), xr.grad))
    (y, grad), (y_aten, grad_aten) = results
    assert _ops() is not None
    torch.testing.assert_close(y, y_aten, **_TOL[dtype])
    torch.testing.assert_close(grad, grad_aten, **_TOL[dtype])
    assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("act", ["gelu", "mish", "swish-1.5"])
def test_stochastic_kernel_picks_exactly_one_branch(act):
    """Where the mask says target, the value and gradient are exactly the target's; elsewhere Act's
    within the float32 bounds above."""
    name, beta = (act.split("-") + ["1"])[:2]
    a, t = smooth_activation(name, float(beta)), target_activation("relu")
    torch.manual_seed(6)
    x = (torch.randn(2, 16, 64, 64) * 2.5).clamp(-8, 8).requires_grad_(True)
    g = torch.randn_like(x)
    y = stochastic_ensemble(x, 0.4, a, t)
    y.backward(g)
    target_hit = y == t.fn(x.detach())
    act_hit = torch.isclose(y, a.fn(x.detach()), **_TOL[torch.float32])
    assert torch.all(target_hit | act_hit)
    decided = (t.fn(x.detach()) - a.fn(x.detach())).abs() > 1e-3
    picked = target_hit & decided
    assert _within(int(picked.sum()), int(decided.sum()), 0.4)
    torch.testing.assert_close(x.grad[picked], t.vjp(g, x.detach())[picked], rtol=0, atol=0)
    torch.testing.assert_close(x.grad[~target_hit], a.vjp(g, x.detach())[~target_hit], **_TOL[torch.float32])


def test_without_a_working_compiler_the_aten_form_runs(tmp_path):
    """CXX names a compiler that fails: one warning says so, and training steps still run."""
    env = dict(os.environ, PEA_DEPLOY_CACHE=str(tmp_path), CXX="false")
    script = textwrap.dedent("""
        import torch
        from pea_deploy.pea import StochasticEnsemble, cpu_kernels
        m = StochasticEnsemble("gelu", "relu").train()
        m.set_alpha(0.5)
        x = torch.randn(4, 8, 16, 16, requires_grad=True)
        m(x).sum().backward()
        m(x).sum().backward()
        print(cpu_kernels.status())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("unavailable: false failed")
    assert done.stderr.count("fused CPU ensemble kernel unavailable") == 1
