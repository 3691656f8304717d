"""`pea-export RUN_DIR|CHECKPOINT --target PROFILE`, or `pea-export --model-file F.py:FUNC --weights W.pt
--input-shape 1,C,H,W --calib-data DIR --target PROFILE` for any network, or `pea-export --ultralytics best.pt
--trust-pickle --data data.yaml --target PROFILE`: a thin layer over `pea_deploy.export` (export_checkpoint,
export_model) and `pea_deploy.integrations.ultralytics_export`.
Exit codes: pea_deploy.outcomes.MEANINGS["pea-export"] (also in --help)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..outcomes import exit_codes_help
from .errors import handle_errors
from .target_flags import command_line, resolve_profile, target_options

PROG = "pea-export"


def _formats(ctx, param, value):
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               epilog=exit_codes_help(PROG))
@click.argument("source", type=click.Path(), required=False)
@target_options
@click.option("--out", type=click.Path(file_okay=False),
              help="output directory  [default: RUN_DIR/export/TARGET, or next to the checkpoint]")
@click.option("--formats", default="onnx,tflite", show_default=True, callback=_formats,
              help="comma-separated: onnx (fp32 + int8 QDQ), tflite (full-integer int8; pea-deploy[tflite]), pte "
              "(ExecuTorch int8 XNNPACK program; pea-deploy[executorch])")
@click.option("--calib-data", type=click.Path(), help="folder of calibration images, or a detection set's data.yaml "
              "(its train images, letterboxed)  [default: the run's training split]")
@click.option("--calib-samples", type=int, default=256, show_default=True, help="calibration images")
@click.option("--calib-method", help="activation ranges: minmax, percentile (both formats), entropy (ONNX), "
              "histogram (TFLite)  [default: minmax for ONNX, histogram for TFLite]")
@click.option("--activation-dtype", help="ONNX int8 activations: int8 or uint8 (faster on x86 onnxruntime)  [default: the profile's]")
@click.option("--opset", type=int, help="ONNX opset  [default: the profile's]")
@click.option("--max-drop", type=float, default=1.0, show_default=True,
              help="fail (exit 4) when an artefact's top-1 (segmentation: mIoU; detection: mAP@0.5:0.95 or "
                   "mAP@0.5) is more than this many points below torch")
@click.option("--min-cosine", type=float,
              help="fail (exit 4) when an artefact's mean output cosine to torch is below this (top-1 on a small "
              "split can hide a broken int8 model; not applied to a quantization-aware TFLite, retrained on "
              "purpose)  [default: 0.99]")
@click.option("--parity-samples", type=int, help="validation images for parity  [default: the whole split]")
@click.option("--checkpoint", "which", default="best", show_default=True,
              help="for a run directory: best (best ReLU-only epoch) or last")
@click.option("--model-file", help="PATH.py:FUNCTION (or package.module:FUNCTION) of your own network: with "
              "--weights, the builder of the network to export, called as FUNCTION(**--model-args); for a run, the "
              "file the run recorded when it has moved (its sha256 must match)")
@click.option("--weights", type=click.Path(), help="a plain state_dict (.pt, read with weights_only) for --model-file's "
              "network: export any module, not only pea-train runs")
@click.option("--model-args", help="with --weights: the builder's keyword arguments, as a JSON object")
@click.option("--input-shape", help="with --weights: the input, 1,C,H,W (batch 1: the artefacts' static shape)")
@click.option("--val-data", type=click.Path(), help="with --weights: a folder of validation images for parity "
              "(outputs against torch), or a data.yaml (its val images)  [default: the calibration images]")
@click.option("--mean", help="with --weights: per-channel mean the images are normalised with (after scaling to "
              "[0, 1])  [default: 0]")
@click.option("--std", help="with --weights: per-channel std  [default: 1]")
@click.option("--ultralytics", "ultralytics_weights", type=click.Path(),
              help="an Ultralytics detection checkpoint (best.pt, plain ReLU: see docs/ultralytics.md) to export, "
              "with --trust-pickle and --data")
@click.option("--trust-pickle", is_flag=True, help="with --ultralytics: load the pickled checkpoint (loading runs "
              "code the file names; only for files you trust)")
@click.option("--data", "data_yaml", type=click.Path(), help="with --ultralytics: the dataset: an Ultralytics "
              "data.yaml (folders or .txt image lists) or a Roboflow folder (calibration on its train images, mAP "
              "parity on its val images)")
@click.option("--head", type=click.Choice(["raw", "decoded"]), default="raw", show_default=True,
              help="with --ultralytics: where the graph ends: raw (per-level maps, decode and NMS on the host) or "
              "decoded (DFL and boxes in the graph, NMS on the host)")
@click.option("--tflite-io-layout", type=click.Choice(["nhwc", "nchw"]), default="nhwc", show_default=True,
              help="the TFLite file's 4-D input and outputs: nhwc (TFLite's convention, no TRANSPOSE at the edges) "
              "or nchw (torch's); recorded in report.json")
@click.option("--latency-runs", type=int, default=50, show_default=True, help="timed batch-1 inferences per artefact")
@click.option("--vela-system-config", help="Vela system config for the Ethos-U performance estimate (a name from "
              "Vela's Arm/vela.ini, e.g. Ethos_U55_High_End_Embedded)  [default: the profile's, else Vela's internal]")
@click.option("--vela-memory-mode", help="Vela memory mode (Arm/vela.ini, e.g. Shared_Sram)  [default: the profile's, "
              "else Vela's internal]")
@click.option("--qat-epochs", type=int, default=0, show_default=True,
              help="fine-tune the TFLite model quantization-aware for this many epochs on the run's training split "
              "(when post-training int8 loses too much)")
@click.option("--qat-lr", type=float, default=1e-3, show_default=True, help="quantization-aware training learning rate (SGD)")
@click.option("--diagnose", is_flag=True, help="print the per-layer int8 error tables (always in report.md; "
              "printed anyway when parity fails)")
@click.option("--diagnose-samples", type=int, default=16, show_default=True,
              help="validation images for the per-layer int8 error report")
@click.option("-q", "--quiet", is_flag=True, help="print only the verdict line")
@handle_errors(PROG)
def main(source, target, profile_file, out, formats, calib_data, calib_samples, calib_method, activation_dtype,
         opset, max_drop, min_cosine, parity_samples, which, model_file, weights, model_args, input_shape, val_data,
         mean, std, ultralytics_weights, trust_pickle, data_yaml, head, tflite_io_layout, latency_runs,
         vela_system_config, vela_memory_mode, qat_epochs, qat_lr,
         diagnose, diagnose_samples, quiet):
    """Verify alpha = 1, strip the PEA ensembles to ReLU/ReLU6, export ONNX (fp32 and int8) and
    full-integer TFLite, prove parity on real validation images and check every artefact against
    the target profile. Writes the artefacts, report.json and report.md to --out."""
    from ..errors import ConfigError
    from ..export import ExportOptions, export_checkpoint
    from ..export.report import FailureKind, layer_error_section

    profile = resolve_profile(target, profile_file)
    if ultralytics_weights is None:
        for flag, value in (("--trust-pickle", trust_pickle or None), ("--data", data_yaml)):
            if value is not None:
                raise ConfigError(f"{flag} applies with --ultralytics")
    elif source is not None or weights is not None:
        raise ConfigError("give --ultralytics CHECKPOINT alone, without a run directory or --weights")
    elif calib_data is not None:
        raise ConfigError("--calib-data does not apply with --ultralytics: calibration uses --data's train images")
    if weights is None and source is None and ultralytics_weights is None:
        raise ConfigError("give a run directory or checkpoint, or --model-file and --weights for any network")
    if weights is not None and source is not None:
        raise ConfigError(f"give a run directory or checkpoint ({source}) or --weights, not both")
    if weights is None:
        for flag, value in (("--input-shape", input_shape), ("--val-data", val_data), ("--model-args", model_args),
                            ("--mean", mean), ("--std", std)):
            if value is not None:
                raise ConfigError(f"{flag} applies with --weights (a pea-train run knows its inputs)")
    if out is None:
        src = Path(source or weights or ultralytics_weights)
        out = (src if src.is_dir() else src.parent) / "export" / profile.name
    gates = {} if min_cosine is None else {"min_cosine": min_cosine}
    own_images = weights is None and ultralytics_weights is None  # a pea-train run: --calib-data may replace its own
    options = ExportOptions(formats=formats, calib_dir=calib_data if own_images else None, calib_samples=calib_samples,
                            calib_method=calib_method, activation_dtype=activation_dtype, opset=opset,
                            max_drop=max_drop, parity_samples=parity_samples, checkpoint=which, model_file=model_file,
                            latency_runs=latency_runs, diagnose_samples=diagnose_samples,
                            qat_epochs=qat_epochs, qat_lr=qat_lr, vela_system_config=vela_system_config,
                            vela_memory_mode=vela_memory_mode, tflite_io_layout=tflite_io_layout, **gates)
    command = command_line(PROG)
    log = None if quiet else (lambda msg: click.echo(f"{PROG}: {msg}", err=True))
    if ultralytics_weights is not None:
        from ..integrations.ultralytics_export import export_ultralytics

        result = export_ultralytics(ultralytics_weights, profile, out, data=data_yaml, trust_pickle=trust_pickle,
                                    head=head, options=options, command=command, log=log)
    elif weights is None:
        result = export_checkpoint(source, profile, out, options, command=command, log=log)
    else:
        result = _export_module(model_file, weights, model_args, input_shape, calib_data, val_data, mean, std,
                                profile, out, options, command, log)
    if not quiet:
        parity_failed = any(f.kind is FailureKind.PARITY for f in result.failures)
        if diagnose or parity_failed:
            for line in layer_error_section(result.report.artefacts):
                click.echo(line, err=True)
        for failure in result.failures:
            click.echo(f"{PROG}: {failure}", err=True)
        for name, path in result.artefacts.items():
            click.echo(f"{path}")
        click.echo(f"{result.out_dir / 'report.md'}")
    click.echo(f"{result.verdict} | target {profile.name} | {result.out_dir} | {command}")
    sys.exit(int(result.exit_code))


def _export_module(model_file, weights, model_args, input_shape, calib_data, val_data, mean, std, profile, out,
                   options, command, log):
    """Any network from its builder and a plain state_dict, with images from folders."""
    from ..errors import ConfigError
    from ..export import export_model
    from ..export.user_module import folder_inputs, load_module, parse_floats, parse_input_shape, parse_model_args

    options.validate()
    if not model_file:
        raise ConfigError("--weights needs --model-file PATH.py:FUNCTION (the builder of the network)")
    shape = parse_input_shape(input_shape)
    if not calib_data:
        raise ConfigError("--weights needs --calib-data DIR (real images for int8 calibration, never random)")
    normalise = {"mean": parse_floats(mean, shape[1], "--mean", 0.0), "std": parse_floats(std, shape[1], "--std", 1.0)}
    model, info = load_module(model_file, weights, parse_model_args(model_args))
    calib = folder_inputs(calib_data, shape, "calibration", limit=options.calib_samples, seed=options.seed, **normalise)
    val = (folder_inputs(val_data, shape, "validation", limit=options.parity_samples, seed=options.seed, split="val",
                         **normalise) if val_data else None)
    return export_model(model, profile, out, example_inputs=calib[:1], calibration=calib, validation=val,
                        options=options, command=command, log=log,
                        provenance={"weights": info, "normalisation": {k: list(v) for k, v in normalise.items()}})


if __name__ == "__main__":
    main()
