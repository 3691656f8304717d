"""The README and docs/ say only true things about the code base: every relative link (and its
#anchor) resolves, every repository path, module and `pea_deploy` name they mention exists, every
generated region equals the file a command wrote (and the quick ones are current), and the README's
first screen is what CI runs."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"(?<![\w./$-])((?:pea_deploy|models|tests|benchmarks|examples|docs|\.ci)/[\w.*/-]*)")
DOTTED = re.compile(r"(?<![\w./-])(pea_deploy(?:\.\w+)+)")
FROM_IMPORT = re.compile(r"^\s*from (pea_deploy[\w.]*) import ([\w, ]+)$", re.M)
# Names the docs mention that are not importable from a checkout: the entry-point group plug-ins
# register under, and models/, which becomes the package pea_deploy.models only in the built wheel
# (.ci/wheel-smoke lists the built-in recipes from the installed wheel).
NOT_OBJECTS = {"pea_deploy.plugins", "pea_deploy.models"}


def generate():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def slug(heading: str) -> str:
    """The anchor a code host (GitHub) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(page: Path) -> set[str]:
    prose = FENCE.sub("", page.read_text())
    return {slug(m[1]) for m in re.finditer(r"^#+ (.+)$", prose, re.M)}


def test_there_are_pages_and_the_readme_stays_a_front_page():
    assert {"pea-train.md", "pea-compare.md", "pea-export.md", "pea-verify-ops.md", "library.md",
            "your-network.md", "profiles.md", "results.md", "design.md"} <= {p.name for p in PAGES}
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: outside the repository
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_repository_path_named_exists(page):
    missing = []
    for name in set(REPO_PATH.findall(page.read_text())):
        name = name.rstrip(".,")
        if not list(ROOT.glob(name.rstrip("/"))):
            missing.append(name)
    assert missing == []


def _resolves(dotted: str) -> bool:
    """`a.b.c` names a module, or an attribute of one (a submodule is imported when no attribute is)."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=2):
        if not hasattr(obj, part):
            try:
                importlib.import_module(".".join(parts[:i]))
            except ImportError:
                return False
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_module_and_name_mentioned_exists(page):
    text = page.read_text()
    names = set(DOTTED.findall(text)) - NOT_OBJECTS
    names |= set(re.findall(r"python -m ([\w.]+)", text))
    names |= {f"{module}.{name.strip()}" for module, listed in FROM_IMPORT.findall(text)
              for name in listed.split(",") if name.strip()}
    missing = sorted(n for n in names if n.startswith("pea_deploy") and not _resolves(n))
    assert missing == []


def test_every_generated_region_equals_its_file_and_every_file_has_a_command():
    gen = generate()
    assert gen.stale_regions() == []
    listed = {e["path"] for e in gen.manifest()}
    shown = {m["path"] for page in gen.pages() for m in gen.REGION.finditer(page.read_text())}
    assert shown and shown <= listed


def test_every_quick_generated_file_is_what_its_command_prints_now():
    gen = generate()
    quick = [e for e in gen.manifest() if e["cost"] == "quick"]
    assert len(quick) >= 10
    stale = [e["path"] for e in quick if gen.produce(e) != (ROOT / e["path"]).read_text()]
    assert stale == [], "run python docs/generate.py"


def first_screen_blocks() -> list[str]:
    screen = (ROOT / "README.md").read_text().split("\n---\n")[0]
    return re.findall(r"^```bash\n(.*?)\n```", screen, re.S | re.M)


def test_the_readme_first_screen_is_what_ci_runs():
    main_job, tests = first_screen_blocks()
    steps = main_job.split(" && ")
    smoke = (ROOT / ".ci" / "wheel-smoke").read_text().splitlines()
    # set-up: a fresh venv, torch 2.13.0 first, then the package with the same extras
    assert steps[:3] == ["python3 -m venv .venv", ". .venv/bin/activate", "pip install torch==2.13.0"]
    extras = re.fullmatch(r"pip install '\.\[([\w,]+)\]'", steps[3])[1]
    assert any(line.endswith("install -q torch==2.13.0") for line in smoke)
    torch_at = next(i for i, line in enumerate(smoke) if line.endswith("install -q torch==2.13.0"))
    package_at = next(i for i, line in enumerate(smoke) if f'"$wheel[{extras}]"' in line)
    assert torch_at < package_at
    # the main job: the very command lines, in order
    job = steps[4:]
    assert job and all(s.startswith("pea-") for s in job)
    at = [smoke.index(s) for s in job]
    assert at == sorted(at)
    # the test command is CI's entry point, and that runs the smoke test and then the suite
    assert tests == "bash .ci/run"
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("bash .ci/wheel-smoke") < ci.index("python -m pytest")



COMMANDS = ("pea-train", "pea-compare", "pea-export", "pea-verify-ops")


def command_lines(text: str) -> list[str]:
    """Every pea-* command in the page's code blocks (continuation lines joined, `&&` chains split)."""
    lines = []
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        parts = [part.strip() for line in joined.splitlines() for part in line.split("&&")]
        lines += [part for part in parts if part.startswith(COMMANDS)]
    return lines


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_flag_in_a_command_example_is_one_the_command_has(page):
    unknown = []
    for line in command_lines(page.read_text()):
        command = line.split()[0]
        if command not in COMMANDS:
            continue
        code = line.split(" #")[0]  # not the comment
        options = set(re.findall(r"--[a-z][a-z0-9-]*", (ROOT / "docs" / "reference" / f"{command}-help.txt").read_text()))
        unknown += [f"{command} {flag}" for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", code)
                    if flag not in options]
    assert unknown == []
