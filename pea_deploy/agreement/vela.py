"""Differential check of an Ethos-U profile against Arm's Vela: compile every probe model
(probe_models) with Vela, check it with pea-verify-ops, and compare.

A false accept (we pass, Vela puts the operator on the CPU) is a bug in the profile. A false reject
(we fail, Vela runs it on the NPU) is allowed only as deliberate policy: every finding is pea-deploy's
ReLU rule on an activation the hardware runs (`hardware_activations` in the profile).

    python -m pea_deploy.agreement [PROFILE ...]   # prints the agreement table

The cases are probe_models' single ops and, where litert-torch is installed, probe_networks' small
multi-op networks converted by pea-export's own TFLite path.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..verify.check import verify_model
from ..verify.profile import Profile, load_profile
from ..verify.vela_placement import on_npu
from .probe_models import ProbeCase, probe_cases, write_probe
from .probe_networks import NetworkProbe, network_probes


@dataclass
class CaseResult:
    case: ProbeCase | NetworkProbe
    vela_npu: bool
    vela_reason: str
    ours_pass: bool
    our_findings: list[str] = field(default_factory=list)
    policy: bool = False  # every finding is the ReLU policy on an activation the hardware runs

    @property
    def outcome(self) -> str:
        if self.vela_npu == self.ours_pass:
            return "agree"
        return "false accept" if self.ours_pass else ("policy reject" if self.policy else "false reject")


def _is_policy(violations, profile: Profile) -> bool:
    hardware = set(profile.rules_for("tflite").hardware_activations)
    return bool(violations) and all(
        v.reason_code.startswith("activation.") and (v.op in hardware or v.fused_activation in hardware)
        for v in violations)


def run_agreement(profile: Profile, workdir: str | Path, compiler: bool,
                  cases: list | None = None) -> list[CaseResult]:
    """Compile every case (ProbeCase, or NetworkProbe: written once per workdir) with Vela (the
    profile's [export] vela_accelerator) and check it with pea-verify-ops: with compiler=False on
    the profile's limits alone, otherwise as pea-verify-ops runs where Vela is installed (a model
    Vela cannot compile at all is then checked on the limits)."""
    accelerator = profile.export.get("vela_accelerator")
    if not accelerator:
        raise ValueError(f"profile {profile.name} names no Vela accelerator ([export] vela_accelerator)")
    results = []
    for case in cases or probe_cases():
        path = Path(workdir) / f"{case.name}.tflite"
        if isinstance(case, NetworkProbe):
            path = path if path.exists() else case.write(path)
        else:
            write_probe(case, path)
        npu, reason = on_npu(path, accelerator, in_process=True)
        report = verify_model(path, profile, compiler=None if compiler else False)
        findings = [f"{v.reason_code}: {v.message}" for v in report.violations]
        results.append(CaseResult(case, npu, reason, report.passed, findings, _is_policy(report.violations, profile)))
    return results


def _can_convert() -> bool:
    import importlib.util

    return importlib.util.find_spec("litert_torch") is not None


def summary_row(label: str, results: list[CaseResult]) -> dict:
    count = lambda what: sum(r.outcome == what for r in results)  # noqa: E731
    return {"profile": label, "cases": len(results), "agree": count("agree"),
            "policy reject": count("policy reject"), "false accept": count("false accept"),
            "false reject": count("false reject")}


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or ["ethos-u55"]
    try:
        profiles = [load_profile(name) for name in names]
        for profile in profiles:
            if not profile.export.get("vela_accelerator"):
                raise ConfigError(f"profile {profile.name} names no Vela accelerator ([export] vela_accelerator): "
                                  "Vela has nothing to compile it for")
    except ConfigError as e:
        print(f"python -m pea_deploy.agreement: error: {e}", file=sys.stderr)
        return 2
    cases = probe_cases() + (network_probes() if _can_convert() else [])
    rows, false_accepts = [], 0
    with tempfile.TemporaryDirectory(prefix="pea-probes-") as work:
        for profile in profiles:
            for compiler in (False, True):
                label = f"{profile.name} ({'Vela decides limits' if compiler else 'profile limits only'})"
                results = run_agreement(profile, work, compiler, cases)
                rows.append(summary_row(label, results))
                for r in results:
                    if r.outcome in ("false accept", "false reject"):
                        false_accepts += r.outcome == "false accept"
                        print(f"{label}: {r.outcome}: {r.case.name}: Vela: "
                              f"{'NPU' if r.vela_npu else 'CPU (' + r.vela_reason + ')'}; "
                              f"ours: {'; '.join(r.our_findings) or 'pass'}")
    print("| profile | cases | agree | policy reject | false accept | false reject |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    return 1 if false_accepts else 0

