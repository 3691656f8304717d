"""pea-export as a library: each step is a function a user can call on their own nn.Module.

    trained = load_trained("runs/my-run")            # checkpoint -> rebuilt net
    require_deployable(trained)                       # every alpha == 1, else AlphaNotOneError
    relu_net, diff = strip_and_compare(trained.model, val_images)
    export_onnx(relu_net, example, "model.fp32.onnx", opset=17)
    quantize_onnx("model.fp32.onnx", "model.int8.onnx", calibration_images)
    export_tflite_int8(relu_net, calibration_images, "model.int8.tflite")   # pea-deploy[tflite]
    onnx_layer_errors("model.fp32.onnx", "model.int8.onnx", images)          # which layer loses int8
    OnnxRunner("model.int8.onnx")(images)         # the file's QDQ reference semantics, any host
    TFLMRunner("model.int8.tflite")(images)       # TFLite Micro, as an Ethos-U device runs it
    export_pte_int8(relu_net, calibration_images, "model.int8.pte")   # pea-deploy[executorch]
    ExecuTorchRunner("model.int8.pte")(images)    # the ExecuTorch runtime, XNNPACK delegate
    quantized = qat_finetune(relu_net, calibration_images, batches, loss)    # when post-training loses
    write_tflite(quantized, "model.int8.tflite")

or all of it, with parity, verification and reports: `export_checkpoint(run, "ethos-u55", "out/")` for
a pea-train run, `export_model(net, "ethos-u55", "out/", example_inputs=x[:1], calibration=loader,
validation=val_loader, metric=my_map)` for any module (tensor, tuple or dict outputs).
"""

from importlib import import_module

_EXPORTS = {
    "ExportOptions": ".options", "ExportResult": ".pipeline", "export_checkpoint": ".sources",
    "export_model": ".sources", "load_module": ".user_module", "folder_inputs": ".user_module",
    "FlatOutputs": ".outputs", "output_spec": ".outputs",
    "TrainedModel": ".trained", "load_trained": ".trained", "require_deployable": ".trained",
    "strip_and_compare": ".trained", "export_onnx": ".onnx_export", "quantize_onnx": ".onnx_quant",
    "export_tflite_int8": ".tflite_export", "compile_for_ethos_u": ".vela",
    "OnnxRunner": ".runtimes", "TFLiteRunner": ".runtimes", "TorchRunner": ".runtimes",
    "latency_ms": ".runtimes", "TFLMRunner": ".tflm", "int8_isa": ".host_cpu",
    "calibration_inputs": ".samples", "validation_inputs": ".samples",
    "pt2e_quantize": ".tflite_export", "write_tflite": ".tflite_export", "qat_finetune": ".qat",
    "export_pte_int8": ".executorch_pte", "xnnpack_quantize": ".executorch_pte", "write_pte": ".executorch_pte",
    "ExecuTorchRunner": ".executorch_pte",
    "onnx_layer_errors": ".onnx_layer_error", "tflite_layer_errors": ".tflite_layer_error",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
