"""`pea-train [RECIPE] [--FIELD VALUE ...]`: a thin layer over `pea_deploy.train`.

Every recipe field is a flag (generated from the recipe dataclasses), so a flag overrides exactly
one field of the recipe file. Heavy imports happen inside the command so `--help` is instant.
"""

from __future__ import annotations

import sys

import click

from ..outcomes import exit_codes_help
from .errors import handle_errors
from .recipe_flags import recipe_options, recipe_overrides

PROG = "pea-train"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               epilog=exit_codes_help(PROG))
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
        from ..train.launch import launch_ranks, without_option

        batch = None if resume_dir else load_recipe(recipe).with_overrides(values).data.batch_size
        sys.exit(launch_ranks(nproc, without_option(sys.argv[1:], "--nproc"), batch))
    if no_pea and upper_limit:
        raise ConfigError("--no-pea and --upper-limit exclude each other")
    if no_pea or upper_limit:
        values["pea.mode"] = "relu" if no_pea else "act"
    if resume_dir:
        extra = sorted(k for k, v in values.items() if v is not None and k not in ("train.device", "data.workers"))
        if recipe or extra:
            raise ConfigError("--resume continues a run with its own recipe; drop RECIPE and "
                              f"recipe flags ({', '.join(extra) or recipe})")
        summary = resume(resume_dir, device=values.get("train.device"), progress=not quiet and None,
                         log=log, until_epoch=stop_after_epoch, workers=values.get("data.workers"))
        out = resume_dir
    else:
        r = load_recipe(recipe).with_overrides(values)
        out = r.train.out or f"runs/{r.name}"
        summary = train(r, out, progress=not quiet and None, log=log, until_epoch=stop_after_epoch)
    from ..metrics import METRIC_LABELS
    from ..train.distributed import context_from_env

    if not context_from_env().is_main:
        return
    metric = summary["metric"]
    label = METRIC_LABELS[metric.removeprefix("val_")]
    click.echo(f"final val {label} {summary['final_' + metric]:.2f}%  all alphas 1: "
               f"{summary['all_alphas_one']}  run: {out}  ({summary['wall_time_s']:.1f}s)")


if __name__ == "__main__":
    main()
