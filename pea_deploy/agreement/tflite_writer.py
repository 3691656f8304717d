"""Write small TFLite flatbuffers with LiteRT's own generated schema (no converter): the probe models
of the Vela differential check, and hand-built models in the tests."""

from __future__ import annotations

from pathlib import Path


class TFLiteBuilder:
    """Tensors and operator codes of one subgraph; `save` packs them into a .tflite file.

    8- and 16-bit tensors get a per-tensor quantization (scale, zero point 0); other types none."""

    def __init__(self):
        from ai_edge_litert import schema_py_generated as schema

        self.s = schema
        self.buffers, self.tensors, self.codes = [schema.BufferT()], [], []

    def tensor(self, shape, ttype, data=None, scale: float = 0.05, name: str | None = None) -> int:
        import numpy as np

        t = self.s.TensorT()
        t.shape, t.type, t.buffer = list(shape), ttype, 0
        t.name = name if name is not None else f"t{len(self.tensors)}"
        if ttype in (self.s.TensorType.INT8, self.s.TensorType.INT16):
            q = self.s.QuantizationParametersT()
            q.scale, q.zeroPoint = [scale], [0]
            t.quantization = q
        if data is not None:
            b = self.s.BufferT()
            b.data = list(np.ascontiguousarray(data).tobytes())
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def code(self, name: str, custom: str | None = None) -> int:
        """The operator-code index of builtin `name` (or CUSTOM `custom`), added on first use."""
        builtin = getattr(self.s.BuiltinOperator, "CUSTOM" if custom else name)
        for i, c in enumerate(self.codes):
            if (c.builtinCode, c.customCode) == (builtin, custom):
                return i
        c = self.s.OperatorCodeT()
        c.builtinCode, c.customCode, c.version = builtin, custom, 1
        c.deprecatedBuiltinCode = min(builtin, 127)
        self.codes.append(c)
        return len(self.codes) - 1

    def save(self, path: str | Path, operators: list, inputs: list[int], outputs: list[int],
             description: str) -> Path:
        import flatbuffers

        graph = self.s.SubGraphT()
        graph.tensors, graph.operators, graph.inputs, graph.outputs, graph.name = (
            self.tensors, operators, inputs, outputs, "main")
        model = self.s.ModelT()
        model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, self.codes, [graph], self.buffers
        model.description = description
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        path = Path(path)
        path.write_bytes(builder.Output())
        return path
