"""Every recipe field as a command-line flag (kebab-case), generated from the recipe dataclasses:
shared by pea-train and pea-compare, so a flag means the same in both."""

from __future__ import annotations

from dataclasses import MISSING, fields

import click

from ..train.recipe import SECTIONS, field_kind


def list_of(kind):
    def parse(ctx, param, value):
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        try:
            return [kind(v) for v in items]
        except ValueError:
            raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from None
    return parse


def recipe_options(fn):
    """Add one option per recipe field (kebab-case), each defaulting to None = "keep the recipe's"."""
    for section, cls in reversed(list(SECTIONS.items())):
        for f in reversed(fields(cls)):
            flag = f.metadata.get("flag") or f.name.replace("_", "-")
            dest = f"{section}__{f.name}"
            default = f.default if f.default is not MISSING else f.default_factory()
            help_ = f.metadata["help"]
            choices = f.metadata.get("choices")
            if isinstance(default, bool):
                opt = click.option(f"--{flag}/--no-{flag}", dest, default=None, help=help_)
            elif isinstance(default, list):
                kind = float if f.name == "lr_steps" else str
                opt = click.option(f"--{flag}", dest, default=None, callback=list_of(kind), help=help_)
            else:
                kind = click.Choice(choices) if choices else field_kind(f)
                opt = click.option(f"--{flag}", dest, type=kind, default=None, help=help_)
            fn = opt(fn)
    return fn


def recipe_overrides(options: dict) -> dict:
    """click's `section__field` keyword arguments -> recipe override keys `section.field`."""
    return {k.replace("__", "."): v for k, v in options.items()}
