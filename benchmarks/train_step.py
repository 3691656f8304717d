"""Training-step cost of PEA vs an Act-only and a ReLU-only net, measured in one run.

    python benchmarks/train_step.py [--models resnet18:1.0,mobilenet-v1:0.25] [--batch 64] [--act gelu]
                                    [--compile] [--device cuda --amp --channels-last]
    python benchmarks/train_step.py --models yolo-det:0.25 --size 320 --batch 16 --act silu   # the detector

A detector's step uses the sum of its output maps' mean squares as the loss: the network's own cost,
without the assigner's (which is the same for every configuration and would dilute the ratios).

Prints, per net and configuration, the median step time (forward + backward + SGD step; the
configurations' steps interleaved in one process, round by round), the bytes autograd saves for
backward (the activation memory that grows with the batch), the peak memory (each configuration in
its own child process, so ru_maxrss is its own; on CUDA torch.cuda.max_memory_allocated), then the
ratios PEA / Act-only and PEA / ReLU-only.

On CPU the PEA configurations run twice: with the fused CPU kernel (pea/kernels/, the default) and
as `-aten`, the same ensembles written in ATen ops (cpu_kernels.disabled(); what runs where the
kernel cannot be built): before and after from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from pea_deploy.nets import build_net
from pea_deploy.pea import convert, cpu_kernels, replace_relus_with_act, set_alpha


def make(kind: str, args) -> torch.nn.Module:
    kind = kind.removesuffix("-aten")
    from pea_deploy.registry import NETS

    stem = {"stem": "small"} if "stem" in NETS.get(args.model).options else {}
    net = build_net(args.model, 10, 3, width=args.width, **stem)
    if kind == "relu":
        return net
    if kind == "act":
        return replace_relus_with_act(net, args.act)
    net = convert(net, act=args.act, variant=kind.split("-")[1])
    set_alpha(net, 0.5)  # mid-transition: both branches live, the costly case
    return net


def prepare(kind: str, args, device: torch.device):
    """(one training step as a function, bytes autograd saves for backward in one step)."""
    torch.manual_seed(0)
    net = make(kind, args).to(device).train()
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt_params = list(net.parameters())
    if args.compile:
        net = torch.compile(net)
    opt = torch.optim.SGD(opt_params, lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    if args.channels_last:
        x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,), device=device)
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    ensembles = cpu_kernels.disabled if kind.endswith("-aten") else contextlib.nullcontext

    def step(count_saved: bool = False):
        ctx = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if count_saved else contextlib.nullcontext()
        with ensembles():  # backward too: the autograd engine runs it on this thread on CPU
            with ctx, torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
                out = net(x)
                loss = (F.cross_entropy(out, y) if isinstance(out, torch.Tensor)
                        else sum(o.float().pow(2).mean() for o in out))
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()

    step(count_saved=True)
    return step, saved[0]


def measure_memory(kind: str, args, device: torch.device) -> dict:
    """In a fresh process: saved-for-backward bytes and the peak memory of training steps."""
    step, saved = prepare(kind, args, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    out = {"saved_bytes": saved, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device.type == "cuda":
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def measure_times(kinds: list[str], args, device: torch.device) -> dict[str, float]:
    """Median step time per configuration, the configurations' steps interleaved round by round in
    one process, so a noisy neighbour or a clock change hits every configuration alike."""
    steps = {k: prepare(k, args, device)[0] for k in kinds}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    times = {k: [] for k in kinds}
    for _ in range(args.steps):
        for k, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _child(kind: str, argv: list[str]) -> dict:
    """Measure one configuration in a fresh interpreter: its peak RSS is then its own."""
    done = subprocess.run([sys.executable, __file__, *argv, "--only", kind], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18:1.0,mobilenet-v1:0.25", help="NAME:WIDTH,...")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--act", default="gelu")
    ap.add_argument("--steps", type=int, default=15, help="timed rounds (each runs every configuration once)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile every configuration")
    ap.add_argument("--no-aten", action="store_true", help="skip the ATen-form (kernel off) PEA configurations")
    ap.add_argument("--only", help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.only:
        args.model, width = args.models.split(":")
        args.width = float(width)
        print(json.dumps(measure_memory(args.only, args, device)))
        return
    kinds = ["relu", "act", "pea-weighted", "pea-stochastic"]
    if device.type == "cpu" and not args.no_aten:
        kinds += ["pea-weighted-aten", "pea-stochastic-aten"]
    print(f"# batch {args.batch}, {args.size}x{args.size}, small stem where the net has one, act {args.act}, device {device}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, amp {args.amp}, "
          f"channels_last {args.channels_last}, compile {args.compile}")
    if device.type == "cpu":
        print(f"# fused CPU kernel: {cpu_kernels.status()}")
    specs = args.models.split(",")
    # Every memory child first: Linux carries a process's peak RSS across fork and exec, so a child
    # started after this process has run the timed nets would report this process's peak.
    memory = {}
    for spec in specs:
        argv = ["--models", spec, "--batch", str(args.batch), "--size", str(args.size), "--act", args.act,
                "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
        argv += [flag for flag, on in (("--amp", args.amp), ("--channels-last", args.channels_last),
                                       ("--compile", args.compile)) if on]
        memory[spec] = {k: _child(k, argv) for k in kinds}
    for spec in specs:
        res = memory[spec]
        args.model, width = spec.split(":")
        args.width = float(width)
        for k, seconds in measure_times(kinds, args, device).items():
            res[k]["step_s"] = seconds
        print(f"\n## {spec.replace(':', ' width ')}")
        mem = "cuda peak MiB" if device.type == "cuda" else "peak RSS MiB"
        print(f"{'config':20s} {'step ms':>9s} {'saved MiB':>10s} {mem:>14s}")
        for k, r in res.items():
            peak = r.get("cuda_peak_bytes", r["peak_rss_bytes"])
            print(f"{k:20s} {1e3 * r['step_s']:9.1f} {r['saved_bytes'] / 2**20:10.1f} {peak / 2**20:14.1f}")
        for k in [k for k in kinds if k.startswith("pea-")]:
            for base in ("act", "relu"):
                a, b = res[k], res[base]
                peak = "cuda_peak_bytes" if "cuda_peak_bytes" in a else "peak_rss_bytes"
                print(f"{k} / {base}-only: step time {a['step_s'] / b['step_s']:.3f}x, saved-for-backward "
                      f"{a['saved_bytes'] / b['saved_bytes']:.3f}x, peak memory {a[peak] / b[peak]:.3f}x")


if __name__ == "__main__":
    main()
