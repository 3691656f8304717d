"""verify_model / verify_models: the library API behind `pea-verify-ops`."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..outcomes import ExitCode, Verdict
from .graph import UnreadableModel
from .profile import Profile
from .reader import read_model
from .patterns import likely_activation
from .rules import Violation, check_graph


@dataclass
class ModelReport:
    path: str
    format: str | None
    verdict: Verdict                 # PASSED, FAILED, or ERROR (unreadable)
    violations: list[Violation] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)
    nodes: int = 0
    error: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what passed but deserves a name (decomposed HardSwish)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED


def verify_model(path: str | Path, profile: Profile) -> ModelReport:
    """Check one ONNX or TFLite file against `profile`; never raises for a bad file (verdict ERROR)."""
    t0 = time.perf_counter()
    try:
        graph = read_model(path)
    except UnreadableModel as e:
        return ModelReport(str(path), None, Verdict.ERROR, error=str(e), seconds=time.perf_counter() - t0)
    violations = check_graph(graph, profile)
    flagged = {v.node_index for v in violations}
    notes = [f"#{n.index} {n.name}: {n.op} is ReLU6 in a {name} pattern: it passes, as ReLU6 and Add/Mul "
             f"{profile.name} runs (pea-deploy allows decomposed hard activations where ReLU6 is allowed)"
             for n in graph.nodes if n.kind in ("clip", "relu6") and n.index not in flagged
             and (name := likely_activation(graph, n))]
    counts = Counter(n.op + (f"+{n.fused_activation}" if n.fused_activation not in (None, "NONE") else "")
                     for n in graph.nodes)
    return ModelReport(str(path), graph.format, Verdict.FAILED if violations else Verdict.PASSED, violations,
                       dict(sorted(counts.items())), len(graph.nodes), seconds=time.perf_counter() - t0,
                       notes=notes)


def verify_models(paths, profile: Profile) -> list[ModelReport]:
    return [verify_model(p, profile) for p in paths]


def overall_verdict(reports: list[ModelReport]) -> Verdict:
    return Verdict.worst(r.verdict for r in reports)


def exit_code(reports: list[ModelReport]) -> ExitCode:
    """OK every model passes, FAILED a violation, BAD_INPUT an unreadable model."""
    return {Verdict.PASSED: ExitCode.OK, Verdict.FAILED: ExitCode.FAILED,
            Verdict.ERROR: ExitCode.BAD_INPUT}[overall_verdict(reports)]
