"""`pea-verify-ops --target PROFILE MODEL...`: a thin layer over `pea_deploy.verify`.
Exit codes: pea_deploy.outcomes.MEANINGS["pea-verify-ops"] (also in --help)."""

from __future__ import annotations

import sys

import click

from ..outcomes import exit_codes_help
from .errors import handle_errors, one_line
from .target_flags import command_line, resolve_profile, target_options

PROG = "pea-verify-ops"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               epilog=exit_codes_help(PROG))
@click.argument("models", nargs=-1, type=click.Path(dir_okay=True))
@target_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit", "sarif"]), default="text",
              show_default=True, help="report format")
@click.option("--output", type=click.Path(dir_okay=False),
              help="write the report to this file (atomically) instead of stdout")
@click.option("--list-targets", is_flag=True, help="print the built-in profiles and exit")
@click.option("--describe", is_flag=True,
              help="print the target's supported operators, limits and rules as Markdown and exit")
@click.option("--compiler/--no-compiler", default=None,
              help="TFLite on an Ethos-U target: let Vela decide where each operator runs instead of the "
                   "profile's limits [default: when Vela is installed]")
@handle_errors(PROG)
def main(models, target, profile_file, fmt, output, list_targets, describe, compiler):
    """Check ONNX/TFLite MODELs against an accelerator profile: only ReLU/ReLU6 activations (also
    when decomposed: Erf-GELU, Sigmoid*x, Softplus-Tanh-Mish), only the ops, dtypes and shapes the
    target runs."""
    from ..errors import ConfigError
    from ..outcomes import Verdict
    from ..verify import builtin_profiles, exit_code, load_profile_file, verify_models
    from ..verify.report import FORMATS, to_text, verdict_line

    if list_targets:
        for name, path in builtin_profiles().items():
            p = load_profile_file(path)
            click.echo(f"{p.name:12s} {p.description}\n{'':12s} based on: {p.based_on}")
        return
    profile = resolve_profile(target, profile_file)
    if describe:
        from ..verify.describe import describe_profile

        click.echo(describe_profile(profile), nl=False)
        return
    if not models:
        raise ConfigError("no MODEL given")
    reports = verify_models(models, profile, compiler)
    for r in reports:
        if r.verdict is Verdict.ERROR:
            click.echo(f"{PROG}: error: {r.path}: {one_line(r.error)}", err=True)
    command = command_line(PROG)
    text = to_text(reports, profile, command) if fmt == "text" else FORMATS[fmt](reports, profile)
    if output:
        from ..atomic import write_text

        try:
            write_text(output, text)
        except OSError as e:
            raise ConfigError(f"cannot write report {output}: {e.strerror}") from None
        click.echo(verdict_line(reports, profile, command))
    else:
        click.echo(text, nl=False)
    sys.exit(int(exit_code(reports)))


if __name__ == "__main__":
    main()
