"""How every command ends, defined once: verdicts, exit codes, and what each code means per command.

The library returns these (a Verdict on every report, an ExitCode on every error class and export
result); the CLI exits with them and prints their meanings in `--help`, so code, help and docs
read from one table.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Verdict(str, Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"   # a check ran and the model (or artefact) did not pass it
    ERROR = "ERROR"     # a check could not run (unreadable model)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def worst(cls, verdicts) -> "Verdict":
        """ERROR over FAILED over PASSED: the verdict of a set of checks."""
        verdicts = set(verdicts)
        for v in (cls.ERROR, cls.FAILED):
            if v in verdicts:
                return v
        return cls.PASSED


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1            # a check failed (target rules, Vela CPU fallback) or training diverged
    BAD_INPUT = 2         # usage, config, data, checkpoint or model file the command cannot use
    ALPHA_BELOW_ONE = 3   # the network still holds an ensemble with alpha < 1: not yet ReLU-only
    PARITY = 4            # an exported artefact scores more than --max-drop below torch
    INTERRUPTED = 130     # Ctrl-C


# What each code means for each command (the commands' --help and docs/reference print these).
MEANINGS: dict[str, dict[ExitCode, str]] = {
    "pea-train": {
        ExitCode.OK: "done",
        ExitCode.FAILED: "training diverged (NaN loss: the last good checkpoint is kept and the step is named)",
        ExitCode.BAD_INPUT: "bad input (unknown name or key, out-of-range value, missing data, unreadable image, "
                            "corrupt or foreign checkpoint)",
    },
    "pea-compare": {
        ExitCode.OK: "every run done, table written",
        ExitCode.FAILED: "a run diverged",
        ExitCode.BAD_INPUT: "bad input (as pea-train), or an --out holding another comparison",
    },
    "pea-export": {
        ExitCode.OK: "artefacts built, parity and op checks passed",
        ExitCode.FAILED: "an artefact breaks the target's rules, or Vela puts an operator on the CPU",
        ExitCode.BAD_INPUT: "bad input (missing, corrupt or foreign checkpoint, unknown target or format, missing "
                            "calibration data, missing optional extra) or a failed conversion step",
        ExitCode.ALPHA_BELOW_ONE: "an ensemble's alpha is below 1 (nothing is written)",
        ExitCode.PARITY: "an artefact loses more than --max-drop points of top-1 (mIoU for segmentation)",
    },
    "pea-verify-ops": {
        ExitCode.OK: "every model passes",
        ExitCode.FAILED: "a violation",
        ExitCode.BAD_INPUT: "usage error, invalid profile, or an unreadable model (the other models are still "
                            "checked and reported)",
    },
}


def exit_codes_help(prog: str) -> str:
    """`Exit codes: 0 done; 1 ...` for a command's --help epilog."""
    return "Exit codes: " + "; ".join(f"{int(c)} {m}" for c, m in MEANINGS[prog].items()) + "."
