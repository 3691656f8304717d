"""verify_model / verify_models: the library API behind `pea-verify-ops`."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .graph import UnreadableModel
from .profile import Profile
from .reader import read_model
from .rules import Violation, check_graph


@dataclass
class ModelReport:
    path: str
    format: str | None
    verdict: str                     # PASSED, FAILED or ERROR (unreadable)
    violations: list[Violation] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)
    nodes: int = 0
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verdict == "PASSED"


def verify_model(path: str | Path, profile: Profile) -> ModelReport:
    """Check one ONNX or TFLite file against `profile`; never raises for a bad file (verdict ERROR)."""
    t0 = time.perf_counter()
    try:
        graph = read_model(path)
    except UnreadableModel as e:
        return ModelReport(str(path), None, "ERROR", error=str(e), seconds=time.perf_counter() - t0)
    violations = check_graph(graph, profile)
    counts = Counter(n.op + (f"+{n.fused_activation}" if n.fused_activation not in (None, "NONE") else "")
                     for n in graph.nodes)
    return ModelReport(str(path), graph.format, "FAILED" if violations else "PASSED", violations,
                       dict(sorted(counts.items())), len(graph.nodes), seconds=time.perf_counter() - t0)


def verify_models(paths, profile: Profile) -> list[ModelReport]:
    return [verify_model(p, profile) for p in paths]


def exit_code(reports: list[ModelReport]) -> int:
    """0 every model passes, 1 a violation, 2 an unreadable model."""
    if any(r.verdict == "ERROR" for r in reports):
        return 2
    return 1 if any(r.verdict == "FAILED" for r in reports) else 0
