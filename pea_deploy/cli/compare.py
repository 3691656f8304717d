"""`pea-compare [RECIPE] [--seeds N] [--acts ...] [--variants ...] [--transition-ends ...]`: the
paper's Table 4 on your data, a thin layer over `pea_deploy.compare`. Every recipe field is also a
flag (as in pea-train) and applies to every run. Run it again to continue a killed comparison."""

from __future__ import annotations

import click

from ..outcomes import exit_codes_help
from .errors import handle_errors
from .recipe_flags import list_of, recipe_options, recipe_overrides

PROG = "pea-compare"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               epilog=exit_codes_help(PROG))
@click.argument("recipe", required=False)
@click.option("--seeds", type=int, default=5, show_default=True,
              help="runs per setting (seeds 0..N-1; the paper averages 5)")
@click.option("--acts", default="gelu,swish,mish", show_default=True, callback=list_of(str),
              help="smooth activations (any registered: pea-train --help lists them): each gets an "
              "upper-limit row and PEA rows")
@click.option("--variants", callback=list_of(str), help="PEA variants, comma-separated  [default: every registered one]")
@click.option("--transition-ends", callback=list_of(float),
              help="epochs at which alpha reaches 1, comma-separated  [default: the recipe's]")
@click.option("--extras", callback=list_of(str),
              help="per method: plain, bn (BatchNorm re-estimation), bn+kd (and distillation from --init-from)  "
              "[default: all three with --acts keep, else plain]")
@click.option("-q", "--quiet", is_flag=True, help="print only the table")
@recipe_options
@handle_errors(PROG)
def main(recipe, seeds, acts, variants, transition_ends, extras, quiet, **overrides):
    """Train the ReLU baseline, PEA (each variant x Act x transition end) and the Act-only upper
    limit over SEEDS seeds; print the table (mean ± std top-1), the best PEA setting and the share of
    the baseline -> upper-limit gap it closes; write table.csv, runs.csv, table.md and chart.png to
    --out (default runs/compare-RECIPE)."""
    from ..compare import build_table, plan_settings, run_comparison, to_markdown, write_outputs
    from ..errors import ConfigError
    from ..train import load_recipe

    values = recipe_overrides(overrides)
    for key in ("pea.mode", "pea.act", "pea.variant", "pea.transition_end", "train.seed", "distill.enabled"):
        if values.get(key) is not None:
            raise ConfigError(f"--{key.split('.')[1].replace('_', '-')} is set per run by pea-compare; use "
                              f"--acts, --variants, --transition-ends or --seeds")
    base = {k: v for k, v in values.items() if k != "train.out"}
    if transition_ends:  # the base recipe must be valid too: give it the earliest asked-for end
        base["pea.transition_end"] = min(transition_ends)
    r = load_recipe(recipe).with_overrides(base)
    out = values.get("train.out") or f"runs/compare-{r.name}"
    settings = plan_settings(r, acts, variants, transition_ends, extras)
    log = (lambda msg: None) if quiet else (lambda msg: click.echo(f"{PROG}: {msg}", err=True))
    log(f"{len(settings)} settings x {seeds} seeds = {len(settings) * seeds} runs of {r.name} "
        f"({r.train.epochs} epochs each) in {out}")
    results = run_comparison(r, out, settings, seeds, log=log)
    table = build_table(results)
    title = f"{r.name}: {r.model.name} on {r.data.name}, {r.train.epochs} epochs, {seeds} seeds"
    paths = write_outputs(out, table, results, title)
    click.echo(to_markdown(table), nl=False)
    if not quiet:
        click.echo("\n".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
