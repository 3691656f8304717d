"""What pea-export and pea-verify-ops share: the target flags and the command line they report."""

from __future__ import annotations

import shlex
import sys

import click


def target_options(fn):
    """--target NAME | --profile FILE (exactly one; see resolve_profile)."""
    fn = click.option("--profile", "profile_file", type=click.Path(dir_okay=False),
                      help="your own profile TOML file (same schema as the built-in ones)")(fn)
    return click.option("--target", help="built-in profile name (see pea-verify-ops --list-targets)")(fn)


def resolve_profile(target: str | None, profile_file: str | None):
    from ..errors import ConfigError
    from ..verify import load_profile, load_profile_file

    if bool(target) == bool(profile_file):
        raise ConfigError("give exactly one of --target NAME or --profile FILE")
    return load_profile(target) if target else load_profile_file(profile_file)


def command_line(prog: str) -> str:
    """This invocation as a shell-quoted line, for the verdict line and reports."""
    return " ".join(shlex.quote(a) for a in [prog, *sys.argv[1:]])
