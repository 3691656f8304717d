"""`pea-train [RECIPE] [--FIELD VALUE ...]`: a thin layer over `pea_deploy.train`.

Every recipe field is a flag (generated from the recipe dataclasses), so a flag overrides exactly
one field of the recipe file. Heavy imports happen inside the command so `--help` is instant.
"""

from __future__ import annotations

import sys

import click

from .errors import handle_errors
from .recipe_flags import recipe_options, recipe_overrides

PROG = "pea-train"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("recipe", required=False)
@click.option("--no-pea", is_flag=True, help="ReLU baseline (same as --mode relu)")
@click.option("--upper-limit", is_flag=True, help="train with Act only (same as --mode act)")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="continue the run in this directory from its last checkpoint")
@click.option("--list-recipes", is_flag=True, help="print the built-in recipes and exit")
@click.option("--nproc", type=int, help="train with N processes (torchrun + DistributedDataParallel: gloo on "
              "CPU, nccl on CUDA); batch_size stays the global batch")
@click.option("--stop-after-epoch", type=int,
              help="stop after this epoch (a resumable pause, e.g. for a time-limited job)")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar or per-epoch lines")
@recipe_options
@handle_errors(PROG)
def main(recipe, no_pea, upper_limit, resume_dir, list_recipes, nproc, stop_after_epoch, quiet, **overrides):
    """Train RECIPE (a TOML file or a built-in recipe name; default: the embedded default) with
    Progressive Ensemble Activations, a ReLU baseline (--no-pea) or the Act upper limit
    (--upper-limit). Writes checkpoints/, metrics.csv, history.png and summary.json to --out."""
    from ..errors import ConfigError
    from ..train import builtin_recipes, load_recipe, resume, train

    if list_recipes:
        for name, path in builtin_recipes().items():
            click.echo(f"{name:40s} {path}")
        return
    log = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    values = recipe_overrides(overrides)
    if nproc is not None:
        _launch_ranks(nproc, None if resume_dir else load_recipe(recipe).with_overrides(values))
    if no_pea and upper_limit:
        raise ConfigError("--no-pea and --upper-limit exclude each other")
    if no_pea or upper_limit:
        values["pea.mode"] = "relu" if no_pea else "act"
    if resume_dir:
        extra = sorted(k for k, v in values.items() if v is not None and k != "train.device")
        if recipe or extra:
            raise ConfigError("--resume continues a run with its own recipe; drop RECIPE and "
                              f"recipe flags ({', '.join(extra) or recipe})")
        summary = resume(resume_dir, device=values.get("train.device"), progress=not quiet and None,
                         log=log, until_epoch=stop_after_epoch)
        out = resume_dir
    else:
        r = load_recipe(recipe).with_overrides(values)
        out = r.train.out or f"runs/{r.name}"
        summary = train(r, out, progress=not quiet and None, log=log, until_epoch=stop_after_epoch)
    from ..metrics import METRIC_LABELS
    from ..train.distributed import context_from_env, shutdown

    ctx = context_from_env()
    shutdown(ctx)
    if not ctx.is_main:
        return
    metric = summary["metric"]
    label = METRIC_LABELS[metric.removeprefix("val_")]
    click.echo(f"final val {label} {summary['final_' + metric]:.2f}%  all alphas 1: "
               f"{summary['all_alphas_one']}  run: {out}  ({summary['wall_time_s']:.1f}s)")


def _launch_ranks(nproc: int, recipe) -> None:
    """Run `python -m pea_deploy.cli.train ARGS` (ARGS without --nproc) as N ranks with torchrun's
    own launcher (torch.distributed.launcher, the engine behind `torchrun --standalone`), in this
    process, so a failed rank ends as its one error line and its exit code, not a launcher traceback."""
    import logging
    import os
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from ..errors import ConfigError
    from ..train.distributed import DistContext, local_batch_size

    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc given inside a torchrun launch; drop one of them")
    if recipe is not None:  # bad input fails here, once, before any rank starts
        local_batch_size(recipe.data.batch_size, DistContext(world_size=nproc))
    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            args.append(a)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.1)
    try:
        elastic_launch(config, sys.executable)("-m", "pea_deploy.cli.train", *args)
    except ChildFailedError as e:  # the failing rank 0 has already printed its error line
        sys.exit(e.get_first_failure()[1].exitcode or 1)
    sys.exit(0)


if __name__ == "__main__":
    main()
