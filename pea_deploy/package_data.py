"""Data files that ship inside the package (recipes, profiles), found the same way in a source
checkout, an editable install and an installed wheel.

`importlib.resources.files()` may return a MultiplexedPath (a namespace package such as the
remapped models/ folder); its `str()` is no directory, so files are listed with `iterdir()`, whose
children are real paths.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def packaged_files(package: str, suffix: str, fallback: Path | None = None) -> dict[str, Path]:
    """{stem: path} of the files ending in `suffix` in `package` (or `fallback` when the package is
    not importable, e.g. a source checkout that was never installed)."""
    try:
        children = list(resources.files(package).iterdir())
    except ModuleNotFoundError:
        if fallback is None:
            raise
        children = list(fallback.iterdir()) if fallback.is_dir() else []
    found = {Path(str(c)).name[: -len(suffix)]: Path(str(c)) for c in children if c.name.endswith(suffix)}
    return dict(sorted(found.items()))
