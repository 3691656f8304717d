"""Name the export step that failed: converters raise anything (even SystemExit); users get one line."""

from __future__ import annotations

import contextlib
import importlib.util

from ..errors import ExportStepError, MissingDependency, PeaError

@contextlib.contextmanager
def step(name: str):
    """Re-raise any failure inside the block as ExportStepError("<name> failed: ...")."""
    try:
        yield
    except (PeaError, KeyboardInterrupt):
        raise
    except BaseException as e:  # noqa: BLE001 - converters call sys.exit and raise bare Exceptions
        text = " ".join(str(e).split()) or "no message"
        if len(text) > 300:
            text = text[:300] + "..."
        raise ExportStepError(f"{name} failed: {type(e).__name__}: {text}") from None


def require(module: str, purpose: str, extra: str) -> None:
    """MissingDependency naming the pip extra `extra` when the optional `module` is absent."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependency(f"{purpose} needs the {module} package: pip install 'pea-deploy[{extra}]'")


@contextlib.contextmanager
def native_output_captured():
    """Silence what converters print from C++ (progress, absl logs) at the file-descriptor level,
    where Python's redirect_stdout cannot reach; on failure the captured tail joins the message.
    Yields a function that returns what was captured so far."""
    import os
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)

        def captured() -> str:
            sys.stdout.flush()
            sys.stderr.flush()
            sink.seek(0)
            return sink.read().decode(errors="replace")

        try:
            yield captured
        except ExportStepError as e:
            sink.seek(0)
            tail = [ln for ln in sink.read().decode(errors="replace").splitlines() if ln.strip()][-1:]
            if tail:
                raise ExportStepError(f"{e} (last converter output: {tail[0].strip()[:200]})") from None
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
