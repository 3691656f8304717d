"""An Ethos-U ExecuTorch program from a pea-train run: the measurement behind "Ethos-U through
ExecuTorch: measured, not offered" in docs/pea-export.md. ExecuTorch's Arm backend pins Vela 5.1,
ml_dtypes 0.5.1 and numpy < 2.2 (tosa-tools), which cannot share a venv with pea-deploy, so this runs in two venvs:

    # 1. in pea-deploy's venv: the stripped ReLU network as a torch.export program, with data
    python benchmarks/ethos_u_pte.py dump runs/default /tmp/ethos-u-pte
    # 2. in a venv of its own: python3 -m venv /tmp/etu && /tmp/etu/bin/pip install torch==2.13.0 &&
    #    /tmp/etu/bin/pip install 'executorch[ethos-u]==1.5.1'   (run it outside a folder holding
    #    an ethosu.py or ethosu/, which would shadow Vela's package)
    /tmp/etu/bin/python benchmarks/ethos_u_pte.py lower /tmp/ethos-u-pte [ethos-u55-128]

`lower` quantizes with EthosUQuantizer on the run's calibration images, scores the fake-quantized
graph against torch on the validation split, lowers with EthosUPartitioner (Vela inside, which prints
its NPU/CPU operator split) and writes model.ethos-u.pte. The program itself runs only on the device
or Arm's Corstone simulator, so no runtime parity is measured here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch


def dump(run: str, out: str) -> None:
    from pea_deploy.export import calibration_inputs, load_trained, strip_and_compare, validation_inputs
    from pea_deploy.export.samples import load_splits

    trained = load_trained(run)
    splits = load_splits(trained)
    val = validation_inputs(trained, splits)
    calib, _ = calibration_inputs(trained, 256, splits=splits)
    relu, _ = strip_and_compare(trained.model, val.images)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.export.save(torch.export.export(relu.eval(), (calib[:1],)), out_dir / "relu.pt2")
    with torch.no_grad():
        torch.save({"calib": calib, "val": val.images, "torch": relu(val.images)}, out_dir / "data.pt")
    print(f"wrote {out_dir}/relu.pt2 and data.pt ({len(calib)} calibration, {len(val.images)} validation images)")


def lower(out: str, accelerator: str = "ethos-u55-128") -> None:
    from executorch.backends.arm.ethosu import EthosUCompileSpec, EthosUPartitioner
    from executorch.backends.arm.quantizer import EthosUQuantizer, get_symmetric_quantization_config
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    out_dir = Path(out)
    data = torch.load(out_dir / "data.pt")
    program = torch.export.load(out_dir / "relu.pt2")
    # torch 2.13: the Arm quantizer's passes fail on the guards a plain .module() installs
    graph = program.module(check_guards=False)
    spec = EthosUCompileSpec(accelerator)
    t0 = time.perf_counter()
    prepared = prepare_pt2e(graph, EthosUQuantizer(spec).set_global(get_symmetric_quantization_config(is_per_channel=True)))
    with torch.no_grad():
        for i in range(len(data["calib"])):
            prepared(data["calib"][i:i + 1])
        quantized = convert_pt2e(prepared)
        y = torch.cat([quantized(data["val"][i:i + 1]) for i in range(len(data["val"]))])
    ref = data["torch"]
    cosine = torch.nn.functional.cosine_similarity(y.flatten(1), ref.flatten(1), dim=1).mean().item()
    agreement = (y.argmax(1) == ref.argmax(1)).float().mean().item() * 100
    edge = to_edge_transform_and_lower(torch.export.export(quantized, (data["calib"][:1],)),
                                       partitioner=[EthosUPartitioner(spec)],
                                       compile_config=EdgeCompileConfig(_check_ir_validity=False))
    buffer = edge.to_executorch().buffer
    (out_dir / "model.ethos-u.pte").write_bytes(buffer)
    plumbing = ("delegate", "getitem", "alloc")  # the delegate call and its memory planning
    outside = sorted({str(n.target) for n in edge.exported_program().graph_module.graph.nodes
                      if n.op == "call_function" and not any(p in str(n.target) for p in plumbing)})
    print(f"\n{accelerator}: lowered in {time.perf_counter() - t0:.1f} s, {len(buffer)} bytes; fake-quantized graph "
          f"against torch on {len(ref)} images: output cosine {cosine:.4f}, top-1 agreement {agreement:.2f} %")
    print(f"outside the Ethos-U delegate (the Cortex-M's share): {', '.join(outside) or 'nothing'}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "dump":
        dump(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "ethos-u-pte")
    elif len(sys.argv) >= 3 and sys.argv[1] == "lower":
        lower(*sys.argv[2:4])
    else:
        sys.exit(__doc__)
