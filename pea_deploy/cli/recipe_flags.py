"""Every recipe field as a command-line flag (kebab-case), generated from the recipe dataclasses:
shared by pea-train and pea-compare, so a flag means the same in both."""

from __future__ import annotations

from dataclasses import MISSING, fields

import click

from ..train.recipe import SECTIONS, field_kind


class RegistryChoice(click.Choice):
    """click.Choice over a registry's names, read when a value is checked or help is shown, so
    names registered by plug-ins count."""

    def __init__(self, registry):
        self.registry = registry
        super().__init__(())

    @property
    def choices(self):
        return self.registry.names()

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns it; the registry is the source
        pass

    def convert(self, value, param, ctx):
        from ..registry import is_reference

        if self.registry.references and is_reference(value):  # e.g. --model my_pkg.nets:build
            return value
        return super().convert(value, param, ctx)


def json_object(ctx, param, value):
    if value is None:
        return None
    import json

    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"expected a JSON object such as '{{\"width\": 0.5}}': {e.msg}") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter(f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


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
            if isinstance(default, dict):
                opt = click.option(f"--{flag}", dest, default=None, callback=json_object, help=help_)
            elif isinstance(default, bool):
                opt = click.option(f"--{flag}/--no-{flag}", dest, default=None, help=help_)
            elif isinstance(default, list):
                kind = float if f.name == "lr_steps" else str
                if choices is not None:
                    help_ = f"{help_}: {', '.join(choices.names())}"
                opt = click.option(f"--{flag}", dest, default=None, callback=list_of(kind), help=help_)
            else:
                kind = RegistryChoice(choices) if choices is not None else field_kind(f)
                opt = click.option(f"--{flag}", dest, type=kind, default=None, help=help_)
            fn = opt(fn)
    return fn


def recipe_overrides(options: dict) -> dict:
    """click's `section__field` keyword arguments -> recipe override keys `section.field`."""
    return {k.replace("__", "."): v for k, v in options.items()}
