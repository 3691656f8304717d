"""The wheel must carry every subpackage: pyproject lists them explicitly (models/ is remapped)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "pea_deploy").rglob("__init__.py")}
    assert found - listed == set()


def test_console_scripts_point_at_cli_modules():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"pea-train", "pea-compare", "pea-export", "pea-verify-ops"}
    for target in scripts.values():
        module = target.split(":")[0]
        assert (ROOT / (module.replace(".", "/") + ".py")).exists()
