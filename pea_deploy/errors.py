"""One exception hierarchy for the library; the CLI maps each class to one stderr line and an exit code.

The library never calls sys.exit: it raises these, and only `pea_deploy.cli` decides how a process ends.
"""

from .outcomes import ExitCode


class PeaError(Exception):
    """Base of every error the library raises on purpose (bad input, refused operations)."""

    exit_code = ExitCode.BAD_INPUT


class ConfigError(PeaError):
    """A recipe, profile or argument is invalid (unknown key, unknown name, out-of-range value)."""


class DataError(PeaError):
    """A dataset is missing, empty or unreadable."""


class CheckpointError(PeaError):
    """A checkpoint is missing, corrupt, foreign or from an incompatible version."""


class ConversionError(PeaError):
    """`convert` found nothing to convert, or a model cannot be converted/stripped as asked."""


class AlphaNotOneError(ConversionError):
    """An ensemble's alpha is not exactly 1, so the network is not yet a pure ReLU network."""

    exit_code = ExitCode.ALPHA_BELOW_ONE


class ExportStepError(ConversionError):
    """A step of `pea-export` failed inside torch.onnx, onnxsim, onnxruntime, litert-torch or Vela."""


class MissingDependency(PeaError):
    """An optional extra (litert-torch, Vela) that the asked-for step needs is not installed."""


class TrainingDiverged(PeaError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = ExitCode.FAILED


def unknown_name(kind: str, name: str, valid) -> ConfigError:
    """Build the error for an unknown registry name, with the valid names and a close match."""
    import difflib

    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}")
