"""Start a training command as N ranks on this machine with torchrun's own launcher
(torch.distributed.launcher, the engine behind `torchrun --standalone`), in this process, so a failed
rank ends as its one error line and its exit code, not a launcher traceback."""

from __future__ import annotations

import logging
import os
import sys
import uuid

from ..errors import ConfigError
from ..outcomes import ExitCode
from .distributed import DistContext, local_batch_size


def without_option(args: list[str], option: str) -> list[str]:
    """`args` without `option VALUE` / `option=VALUE` (the ranks must not launch ranks again)."""
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == option:
            skip = True
        elif not a.startswith(option + "="):
            kept.append(a)
    return kept


def launch_ranks(nproc: int, args: list[str], global_batch: int | None = None,
                 module: str = "pea_deploy.cli.train") -> int:
    """Run `python -m MODULE ARGS` as `nproc` ranks; returns the exit code of the run (the first
    failing rank's, which has already printed its error line)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc given inside a torchrun launch; drop one of them")
    if global_batch is not None:  # bad input fails here, once, before any rank starts
        local_batch_size(global_batch, DistContext(world_size=nproc))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.1)
    try:
        elastic_launch(config, sys.executable)("-m", module, *args)
    except ChildFailedError as e:
        return e.get_first_failure()[1].exitcode or int(ExitCode.FAILED)
    return int(ExitCode.OK)
