"""Build the fused CPU kernel now (it otherwise builds on the first training step) and say where it
is, or why there is none (exit 1):

    python -m pea_deploy.pea.build_kernel
"""

from __future__ import annotations

import warnings

from . import cpu_kernels


def main() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the status line below says it once
        line = cpu_kernels.status()
    print(f"pea-deploy fused CPU kernel: {line}")
    return 0 if cpu_kernels.ops() is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
