"""Open a model file and decide by content, not extension, whether it is ONNX, TFLite or an ExecuTorch
program."""

from __future__ import annotations

from pathlib import Path

from .graph import Graph, UnreadableModel


def sniff_format(data: bytes) -> str | None:
    if len(data) >= 8 and data[4:8] == b"TFL3":
        return "tflite"
    if len(data) >= 8 and data[4:6] == b"ET" and data[6:8].isdigit():  # ET12: the program's identifier
        return "pte"
    # An ONNX ModelProto starts with a protobuf key: field 1 (ir_version, varint) is 0x08; some
    # writers put other fields first, so any valid protobuf key byte is accepted and parsed.
    if data and data[0] in (0x08, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42, 0x4A, 0x52, 0x5A, 0x62, 0x72, 0x7A):
        return "onnx"
    return None


def read_model(path: str | Path) -> Graph:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UnreadableModel("no such file") from None
    except IsADirectoryError:
        raise UnreadableModel("is a directory, not a model file") from None
    except OSError as e:
        raise UnreadableModel(f"cannot read: {e.strerror}") from None
    if not data:
        raise UnreadableModel("empty file")
    kind = sniff_format(data)
    if kind == "tflite":
        from .tflite_reader import read_tflite

        return read_tflite(path, data)
    if kind == "pte":
        from .pte_reader import read_pte

        return read_pte(path, data)
    if kind == "onnx":
        from .onnx_reader import read_onnx

        return read_onnx(path, data)
    raise UnreadableModel("neither ONNX, TFLite nor an ExecuTorch program (content not recognised)")
