"""Recipes, the training run, checkpoints. Names are imported lazily (torch is heavy)."""

_EXPORTS = {
    "load_checkpoint": "checkpoint", "resolve_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "Trainer": "loop", "resume": "loop", "train": "loop", "build_model": "build", "load_data": "build",
    "task_for": "task", "Classification": "task", "Segmentation": "task",
    "DEFAULT_RECIPE": "recipe", "Recipe": "recipe", "builtin_recipes": "recipe", "load_recipe": "recipe",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
