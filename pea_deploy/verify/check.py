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
from . import vela_placement


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


# Findings the compiler decides better than a list of limits when it is asked (hardware facts, not
# pea-deploy's policy: activation findings and ops a profile leaves out stay).
_COMPILER_DECIDES = ("limit.", "int8.float_tensor", "int8.io", "shape.rank")


def _ask_compiler(graph, profile: Profile, violations: list[Violation], compiler: bool | None,
                  notes: list[str]) -> list[Violation]:
    """Replace the profile's hardware limits by Vela's own placement (TFLite, Ethos-U profiles)."""
    accelerator = profile.export.get("vela_accelerator")
    if graph.format != "tflite" or not accelerator or compiler is False:
        return violations
    if any(v.reason_code == "int8.not_quantized" for v in violations):
        return violations  # a float model: one finding says it all
    if not vela_placement.vela_available():
        if compiler:
            raise vela_placement.VelaUnavailable("Vela is not installed (pip install 'pea-deploy[vela]')")
        notes.append(f"hardware limits from the {profile.name} profile; install pea-deploy[vela] to have "
                     f"Vela decide them")
        return violations
    try:
        cpu = vela_placement.cpu_placements(graph.path, accelerator)
    except vela_placement.VelaUnavailable as e:
        if compiler:
            raise
        notes.append(f"hardware limits from the {profile.name} profile: {e}")
        return violations
    kept = [v for v in violations if not v.reason_code.startswith(_COMPILER_DECIDES)]
    by_output = {graph.tensors[n.outputs[0]].name: n for n in graph.nodes if n.outputs and n.outputs[0] in graph.tensors}
    for name, reason in cpu.items():
        node = by_output.get(name)
        kept.append(Violation(node.index if node else None, name, node.graph if node else "main",
                              node.op if node else "-", node.fused_activation if node else None,
                              "compiler.cpu_fallback", "Every operator runs on the NPU (Vela decides)",
                              f"Vela {vela_placement.vela_version()} places it on the CPU of {accelerator}: {reason}"))
    notes.append(f"hardware limits decided by Vela {vela_placement.vela_version()} ({accelerator})")
    return kept


def verify_model(path: str | Path, profile: Profile, compiler: bool | None = None) -> ModelReport:
    """Check one ONNX or TFLite file against `profile`; never raises for a bad file (verdict ERROR).

    compiler: for a TFLite model and an Ethos-U profile, ask Vela where each operator runs instead
    of the profile's limits (None: when Vela is installed; True: require it; False: never)."""
    t0 = time.perf_counter()
    try:
        graph = read_model(path)
    except UnreadableModel as e:
        return ModelReport(str(path), None, Verdict.ERROR, error=str(e), seconds=time.perf_counter() - t0)
    violations = check_graph(graph, profile)
    compiler_notes: list[str] = []
    violations = _ask_compiler(graph, profile, violations, compiler, compiler_notes)
    flagged = {v.node_index for v in violations}
    notes = [f"#{n.index} {n.name}: {n.op} is ReLU6 in a {name} pattern: it passes, as ReLU6 and Add/Mul "
             f"{profile.name} runs (pea-deploy allows decomposed hard activations where ReLU6 is allowed)"
             for n in graph.nodes if n.kind in ("clip", "relu6") and n.index not in flagged
             and (name := likely_activation(graph, n))]
    counts = Counter(n.op + (f"+{n.fused_activation}" if n.fused_activation not in (None, "NONE") else "")
                     for n in graph.nodes)
    return ModelReport(str(path), graph.format, Verdict.FAILED if violations else Verdict.PASSED, violations,
                       dict(sorted(counts.items())), len(graph.nodes), seconds=time.perf_counter() - t0,
                       notes=notes + compiler_notes)


def verify_models(paths, profile: Profile, compiler: bool | None = None) -> list[ModelReport]:
    return [verify_model(p, profile, compiler) for p in paths]


def overall_verdict(reports: list[ModelReport]) -> Verdict:
    return Verdict.worst(r.verdict for r in reports)


def exit_code(reports: list[ModelReport]) -> ExitCode:
    """OK every model passes, FAILED a violation, BAD_INPUT an unreadable model."""
    return {Verdict.PASSED: ExitCode.OK, Verdict.FAILED: ExitCode.FAILED,
            Verdict.ERROR: ExitCode.BAD_INPUT}[overall_verdict(reports)]
