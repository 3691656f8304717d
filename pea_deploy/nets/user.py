"""Your own network: `FUNCTION(num_classes=..., in_channels=..., **args)` from a Python file
(`path/to/net.py:FUNCTION`) or an installed module (`package.module:FUNCTION`).

A run records where the network came from (file path, function, arguments, the file's sha256), so
pea-export can rebuild it later and refuses a file that changed since training.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelSource:
    kind: str                 # "file" or "module"
    location: str             # absolute file path, or the module's dotted name
    function: str
    args: dict
    sha256: str | None = None  # of the file (kind "file")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def spec(self) -> str:
        return f"{self.location}:{self.function}"


def _split(spec: str, what: str) -> tuple[str, str]:
    where, sep, function = str(spec).rpartition(":")
    if not sep or not where or not function.isidentifier():
        raise ConfigError(f"{what} {spec!r} must look like {'path/to/net.py' if what == 'model file' else 'package.module'}"
                          f":FUNCTION")
    return where, function


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_file(path: Path):
    name = f"pea_user_model_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"model file {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up by module name
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: any error is their bad input, said in one line
        sys.modules.pop(name, None)
        raise ConfigError(f"model file {path} failed to import: {type(e).__name__}: {_one_line(e)}") from None
    return module


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def resolve_source(file_spec: str | None, module_spec: str | None, args: dict | None) -> ModelSource:
    """Where the network comes from, checked: the file exists (kind file) or the module imports."""
    args = dict(args or {})
    if file_spec:
        where, function = _split(file_spec, "model file")
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"model file {where} does not exist")
        return ModelSource("file", str(path), function, args, file_sha256(path))
    where, function = _split(module_spec, "model")
    return ModelSource("module", where, function, args)


def build_user_net(source: ModelSource, num_classes: int, in_channels: int) -> nn.Module:
    """Call the user's function with the run's classes and channels; one ConfigError line for every
    way it can go wrong."""
    return build_module(source, num_classes=num_classes, in_channels=in_channels)


def build_module(source: ModelSource, **fixed) -> nn.Module:
    """FUNCTION(**fixed, **source.args) from the user's file or module; one ConfigError line for
    every way it can go wrong."""
    if source.kind == "file":
        module = _load_file(Path(source.location))
    else:
        try:
            module = importlib.import_module(source.location)
        except Exception as e:  # noqa: BLE001 - ImportError, or anything the module raises on import
            raise ConfigError(f"model module {source.location} failed to import: {type(e).__name__}: "
                              f"{_one_line(e)}") from None
    fn = getattr(module, source.function, None)
    if not callable(fn):
        raise ConfigError(f"{source.location} has no function {source.function!r}")
    kwargs = {**fixed, **source.args}
    try:
        net = fn(**kwargs)
    except Exception as e:  # noqa: BLE001 - the user's builder
        raise ConfigError(f"{source.spec}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) raised "
                          f"{type(e).__name__}: {_one_line(e)}") from None
    if not isinstance(net, nn.Module):
        raise ConfigError(f"{source.spec} returned {type(net).__name__}, not a torch.nn.Module")
    return net
