"""The report in four shapes: text for people, JSON for machines, JUnit XML and SARIF for CI."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from .. import __version__
from ..outcomes import Verdict
from .check import ModelReport, overall_verdict
from .profile import Profile

SCHEMA_VERSION = 1


def op_summary(r: ModelReport) -> str:
    """`Conv x20, Relu x17, Gelu x2 (rejected)`: each op kind once, rejected ones marked."""
    bad = {v.op + (f"+{v.fused_activation}" if v.fused_activation not in (None, "NONE") else "")
           for v in r.violations if v.node_index is not None}
    return ", ".join(f"{op} x{n}" + (" (rejected)" if op in bad else "") for op, n in r.op_counts.items())


def to_text(reports: list[ModelReport], profile: Profile, command: str) -> str:
    lines = []
    for r in reports:
        if r.verdict is Verdict.ERROR:
            lines.append(f"{r.path}: error: {r.error}")
            continue
        for v in r.violations:
            fused = f" [fused {v.fused_activation}]" if v.fused_activation not in (None, "NONE") else ""
            hint = f" - hint: {v.hint}" if v.hint else ""
            lines.append(f"{r.path}: {v.where}: {v.op}{fused}: {v.message} [{v.reason_code}]{hint}")
        lines += [f"{r.path}: note: {n}" for n in r.notes]
        lines.append(f"{r.path}: {r.verdict} - {r.format}, {r.nodes} nodes, {len(r.violations)} violation(s), "
                     f"{1e3 * r.seconds:.0f} ms")
        lines.append(f"  ops: {op_summary(r)}")
    lines.append(verdict_line(reports, profile, command))
    return "\n".join(lines) + "\n"


def verdict_line(reports: list[ModelReport], profile: Profile, command: str) -> str:
    """The last line of every text report: `PASSED | FAILED | ERROR | target NAME | command`."""
    return f"{overall_verdict(reports)} | target {profile.name} | {command}"


def model_to_dict(r: ModelReport) -> dict:
    """One model's verdict, op counts and violations (also embedded in pea-export's report.json)."""
    return {
        "path": r.path, "format": r.format, "verdict": r.verdict, "error": r.error, "nodes": r.nodes,
        "seconds": round(r.seconds, 4), "op_counts": r.op_counts, "op_summary": op_summary(r), "notes": r.notes,
        "violations": [{"node_index": v.node_index, "node_name": v.node_name, "graph": v.graph,
                        "op": v.op, "fused_activation": v.fused_activation, "supported": False,
                        "reason_code": v.reason_code, "rule": v.rule, "message": v.message,
                        "likely": v.likely, "hint": v.hint} for v in r.violations],
    }


def to_dict(reports: list[ModelReport], profile: Profile) -> dict:
    models = [model_to_dict(r) for r in reports]
    return {
        "schema_version": SCHEMA_VERSION, "tool": "pea-verify-ops", "version": __version__,
        "target": profile.name, "profile": profile.to_dict(), "verdict": overall_verdict(reports), "models": models,
        "summary": {"models": len(reports), "passed": sum(r.verdict is Verdict.PASSED for r in reports),
                    "failed": sum(r.verdict is Verdict.FAILED for r in reports),
                    "errors": sum(r.verdict is Verdict.ERROR for r in reports),
                    "violations": sum(len(r.violations) for r in reports)},
    }


def to_json(reports, profile) -> str:
    return json.dumps(to_dict(reports, profile), indent=2) + "\n"


def to_junit(reports: list[ModelReport], profile: Profile) -> str:
    """One test suite per call, one test case per model."""
    failures = sum(r.verdict is Verdict.FAILED for r in reports)
    errors = sum(r.verdict is Verdict.ERROR for r in reports)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name="pea-verify-ops" tests="{len(reports)}" failures="{failures}" errors="{errors}">',
           f'  <testsuite name={quoteattr("pea-verify-ops " + profile.name)} tests="{len(reports)}" '
           f'failures="{failures}" errors="{errors}">']
    for r in reports:
        out.append(f'    <testcase classname={quoteattr("target." + profile.name)} name={quoteattr(r.path)} '
                   f'time="{r.seconds:.4f}">')
        if r.verdict is Verdict.FAILED:
            body = "\n".join(f"{v.where}: {v.op}: {v.message}" for v in r.violations)
            out.append(f'      <failure message={quoteattr(f"{len(r.violations)} violation(s)")} '
                       f'type="op-violation">{escape(body)}</failure>')
        elif r.verdict is Verdict.ERROR:
            out.append(f'      <error message={quoteattr(r.error or "")} type="unreadable-model"/>')
        out.append("    </testcase>")
    out += ["  </testsuite>", "</testsuites>"]
    return "\n".join(out) + "\n"


def _uri(path: str) -> str:
    """SARIF wants a URI: file:// for an absolute path, a percent-encoded relative reference else."""
    p = Path(path)
    return p.as_uri() if p.is_absolute() else quote(p.as_posix())


def to_sarif(reports: list[ModelReport], profile: Profile) -> str:
    """SARIF 2.1.0: one result per violation, located at the model file (node in the message)."""
    codes = sorted({v.reason_code for r in reports for v in r.violations} |
                   ({"model.unreadable"} if any(r.verdict is Verdict.ERROR for r in reports) else set()))
    rule_text = {v.reason_code: v.rule for r in reports for v in r.violations}
    results = []
    for r in reports:
        loc = [{"physicalLocation": {"artifactLocation": {"uri": _uri(r.path)}}}]
        if r.verdict is Verdict.ERROR:
            results.append({"ruleId": "model.unreadable", "level": "error",
                            "message": {"text": r.error}, "locations": loc})
        for v in r.violations:
            text = f"{v.where}: {v.op}: {v.message}" + (f" Hint: {v.hint}" if v.hint else "")
            results.append({"ruleId": v.reason_code, "level": "error", "message": {"text": text},
                            "locations": loc,
                            "properties": {"nodeIndex": v.node_index, "nodeName": v.node_name, "op": v.op}})
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
        "runs": [{"tool": {"driver": {
            "name": "pea-verify-ops", "version": __version__,
            "rules": [{"id": c, "shortDescription": {"text": rule_text.get(c, "model file could not be read")}}
                      for c in codes]}},
            "properties": {"target": profile.name}, "results": results}],
    }
    return json.dumps(sarif, indent=2) + "\n"


FORMATS = {"text": None, "json": to_json, "junit": to_junit, "sarif": to_sarif}
