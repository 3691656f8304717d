"""Make the generated files under docs/ (listed, with their commands, in docs/generated.toml) and
copy each into the pages' regions that show it, so no table or reference text is pasted by hand.

    python docs/generate.py                  # quick files (the tools' --help and --describe), then fill
    python docs/generate.py --run train-step # also named ones (benchmarks, studies; see the manifest)
    python docs/generate.py --fill-only      # only refill the regions from the files as they are
    python docs/generate.py --check          # exit 1 if a region differs from its file (no writes)

A region is `<!-- generated from PATH -->` ... `<!-- end generated -->` in README.md or docs/**/*.md;
a Markdown file is shown as it is, any other file in a ```text block.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from pea_deploy.atomic import write_text

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "docs" / "generated.toml"
REGION = re.compile(r"(<!-- generated from (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
# Fixed width so click wraps --help text the same on every terminal and in CI.
COLUMNS = "100"


def manifest() -> list[dict]:
    return tomllib.loads(MANIFEST.read_text())["file"]


def command_env() -> dict[str, str]:
    """The environment the commands run in: this interpreter's scripts (pea-train, ...) first on PATH."""
    env = dict(os.environ, COLUMNS=COLUMNS, PYTHONHASHSEED="0")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def produce(entry: dict) -> str:
    """Run the entry's commands from the repository root; return the last one's stdout."""
    out = ""
    for command in entry["commands"]:
        done = subprocess.run(command, shell=True, cwd=ROOT, env=command_env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"generate: `{command}` failed (exit {done.returncode}): "
                             f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
        out = done.stdout
    return out


def rendered(path: str) -> str:
    """What a region shows for the file at `path` (relative to the repository root): Markdown as it
    is, but its headings as bold lines, so a table's own title cannot reshape the page around it."""
    source = ROOT / path
    if not source.is_file():
        raise SystemExit(f"generate: a region shows {path}, which does not exist (see docs/generated.toml)")
    text = source.read_text().rstrip("\n") + "\n"
    if path.endswith(".md"):
        return re.sub(r"^#+ (.*)$", r"**\1**", text, flags=re.M)
    return f"```text\n{text}```\n"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def stale_regions() -> list[tuple[Path, str]]:
    """(page, file) for every region whose text is not its file's."""
    return [(page, m["path"]) for page in pages() for m in REGION.finditer(page.read_text())
            if m["body"] != rendered(m["path"])]


def fill() -> int:
    changed = 0
    for page in pages():
        text = page.read_text()
        new = REGION.sub(lambda m: m[1] + rendered(m["path"]) + m[4], text)
        if new != text:
            write_text(page, new)
            changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs="*", default=[], metavar="NAME", help="also make these (names in the manifest)")
    ap.add_argument("--fill-only", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    if args.check:
        stale = stale_regions()
        for page, path in stale:
            print(f"{page.relative_to(ROOT)}: the region from {path} differs from the file", file=sys.stderr)
        return 1 if stale else 0
    entries = {e["name"]: e for e in manifest()}
    unknown = set(args.run) - set(entries)
    if unknown:
        raise SystemExit(f"generate: unknown name(s) {sorted(unknown)}; known: {', '.join(entries)}")
    if not args.fill_only:
        for entry in entries.values():
            if entry["cost"] == "quick" or entry["name"] in args.run:
                print(f"making {entry['path']} ...", flush=True)
                text = produce(entry)
                if not entry.get("writes"):
                    write_text(ROOT / entry["path"], text)
    print(f"{fill()} page(s) refilled")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
