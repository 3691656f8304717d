"""Run by tests/test_ensemble_ops.py in a child process with TRITON_INTERPRET=1 (Triton reads it
when a kernel is decorated, so it must be set before pea_deploy imports triton): the ensembles'
Triton kernels on CPU tensors against their ATen form. Prints one line per failed case and exits 1
if any; prints the number of cases checked otherwise.

Tolerances: the interpreter has no libdevice, so its GELU/SiLU/Mish/ELU come from numpy's
exp/erf/log and identities (tanh(y) = 1 - 2 / (e^2y + 1), log1p(e) = log(1 + e)): a few float32
ulps from ATen's, whatever the CPU; 1e-5 absolute for |x| <= 12 covers them. bfloat16 stores 8
mantissa bits: the kernel rounds once (float32 math), the ATen form rounds Act and T to bfloat16
before blending, so the two differ by at most one bfloat16 ulp of the output (at most 2^-7 * |y|;
1e-3 more near zero). A wrong pick of the stochastic draw costs |Act(x) - T(x)|, up to 0.17 at these
inputs: far above both tolerances, so the stochastic rows show the masks agree element for element.
"""

from __future__ import annotations

import os
import sys

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"

import torch  # noqa: E402

from pea_deploy.pea import ensemble_aten as aten  # noqa: E402
from pea_deploy.pea import ensemble_triton as tri  # noqa: E402


def cases():
    torch.manual_seed(0)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 0.05)):
        for channels_last in (False, True):
            x = (torch.rand(2, 3, 5, 7) * 24 - 12).to(dtype)  # |x| <= 12, odd sizes: a partial block
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            g = torch.randn_like(x)
            seed = torch.tensor(-0x1234_5678_9ABC_DEF0, dtype=torch.int64)  # both 32-bit key halves used
            for alpha in (0.0, 0.3, 1.0):
                a = torch.tensor(alpha)
                for act in aten.SMOOTH:
                    for tgt in aten.TARGETS:
                        yield dtype, tol, channels_last, x, g, seed, a, act, tgt


def main() -> int:
    failures, checked = [], 0
    for dtype, tol, channels_last, x, g, seed, a, act, tgt in cases():
        name = f"{dtype} {'channels-last' if channels_last else 'contiguous'} alpha={float(a):g} act={act} target={tgt}"
        pairs = {
            "weighted forward": (tri.weighted(x, a, act, tgt), aten.weighted(x, a, act, tgt)),
            "weighted backward": (tri.weighted_backward(g, x, a, act, tgt), aten.weighted_backward(g, x, a, act, tgt)),
            "stochastic forward": (tri.stochastic(x, a, seed, act, tgt), aten.stochastic(x, a, seed, act, tgt)),
            "stochastic backward": (tri.stochastic_backward(g, x, a, seed, act, tgt),
                                    aten.stochastic_backward(g, x, a, seed, act, tgt)),
        }
        for what, (got, want) in pairs.items():
            checked += 1
            if got.dtype != x.dtype or got.stride() != x.stride():
                failures.append(f"{name} {what}: dtype {got.dtype} strides {got.stride()}, want x's")
            # float32: absolute; bfloat16: one ulp of the output, 2^-7 relative (+ tol near zero)
            bound = tol if dtype == torch.float32 else tol + 2.0 ** -7 * want.float().abs()
            err = ((got.float() - want.float()).abs() - bound).max().item()
            if not err <= 0:
                failures.append(f"{name} {what}: error {err:.3g} beyond the tolerance")
        target = aten.target(tgt)
        if float(a) == 1.0:  # the target is exact in any implementation: bit for bit
            for what, got, want in (("weighted", pairs["weighted forward"][0], target.fn(x)),
                                    ("stochastic", pairs["stochastic forward"][0], target.fn(x)),
                                    ("weighted backward", pairs["weighted backward"][0], target.vjp(g, x)),
                                    ("stochastic backward", pairs["stochastic backward"][0], target.vjp(g, x))):
                checked += 1
                if not torch.equal(got, want):
                    failures.append(f"{name} {what}: not bit for bit the target at alpha 1")
        if float(a) == 0.0:  # both variants compute the same Act alone
            checked += 1
            if not torch.equal(pairs["weighted forward"][0], pairs["stochastic forward"][0]):
                failures.append(f"{name}: weighted and stochastic differ at alpha 0")
    for line in failures:
        print(line)
    print(f"{checked} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
