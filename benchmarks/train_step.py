"""Training-step cost of PEA vs an Act-only and a ReLU-only net, measured in one run.

    python benchmarks/train_step.py [--model resnet18] [--batch 64] [--steps 10] [--act gelu]

Prints, per configuration, the median step time (forward + backward + SGD step) and the bytes
autograd saves for backward (the activation memory that dominates a training step's peak; on CUDA
also torch.cuda.max_memory_allocated), then the ratios PEA / Act-only and PEA / ReLU-only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pea_deploy.nets import build_net
from pea_deploy.pea import convert, replace_relus_with_act, set_alpha


def make(kind: str, args) -> torch.nn.Module:
    net = build_net(args.model, 10, 3, stem="small", width=args.width)
    if kind == "relu":
        return net
    if kind == "act":
        return replace_relus_with_act(net, args.act)
    net = convert(net, act=args.act, variant=kind.split("-")[1])
    set_alpha(net, 0.5)  # mid-transition: both branches live, the costly case
    return net


def measure(kind: str, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    net = make(kind, args).to(device).train()
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    if args.channels_last:
        x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,), device=device)
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    def step(count_saved: bool = False):
        ctx = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if count_saved else _null()
        with ctx, torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(count_saved=True)
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    out = {"step_s": statistics.median(times), "saved_bytes": saved[0]}
    if device.type == "cuda":
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--act", default="gelu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    kinds = ["relu", "act", "pea-weighted", "pea-stochastic"]
    res = {k: measure(k, args, device) for k in kinds}
    print(f"# {args.model} width {args.width}, small stem, batch {args.batch}, {args.size}x{args.size}, "
          f"act {args.act}, device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'config':16s} {'step ms':>9s} {'saved MiB':>10s}" + ("  cuda peak MiB" if device.type == "cuda" else ""))
    for k, r in res.items():
        extra = f"  {r['cuda_peak_bytes'] / 2**20:13.1f}" if "cuda_peak_bytes" in r else ""
        print(f"{k:16s} {1e3 * r['step_s']:9.1f} {r['saved_bytes'] / 2**20:10.1f}{extra}")
    for k in ("pea-weighted", "pea-stochastic"):
        for base in ("act", "relu"):
            line = (f"{k} / {base}-only: step time {res[k]['step_s'] / res[base]['step_s']:.3f}x, "
                    f"saved-for-backward {res[k]['saved_bytes'] / res[base]['saved_bytes']:.3f}x")
            if "cuda_peak_bytes" in res[k]:
                line += f", cuda peak {res[k]['cuda_peak_bytes'] / res[base]['cuda_peak_bytes']:.3f}x"
            print(line)


if __name__ == "__main__":
    main()
