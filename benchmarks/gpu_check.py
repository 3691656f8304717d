"""The GPU check: PEA where people train, measured in one run on one CUDA GPU (about 5 minutes).

    PYTHONPATH=. python benchmarks/gpu_check.py [--budget 330] [--json gpu_check.json]

Needs torch with CUDA and triton (nothing else of the export stack). Prints one table, in sections,
each row as soon as it is measured (a run cut short keeps what it printed):

1. the ensemble ops (Triton) against their ATen form on the GPU: max |error| forward and backward
   per dtype, and whether alpha 0 and 1 give ATen's own activation bit for bit;
2. the training step, eager, bf16 autocast and channels-last: ResNet-18 w1.0 32x32 batch 256 GELU
   and yolo-det w0.25 320x320 batch 32 SiLU; Act-only vs weighted vs stochastic PEA (alpha moving
   through the transition), median step time and peak memory, ratios to Act-only;
3. pea-train on cuda: the default recipe and the detection recipe, 2 epochs each (wall time,
   alphas, score), and the detection recipe with SiLU only (--mode act), for the per-epoch ratio;
4. the same training steps under torch.compile against compiled Act-only, the ensembles traced as
   the op ("op") and as plain pointwise ATen ops ("pointwise", pea_deploy.pea.compiled_form), with the
   number of graphs compiled while alpha moves.
Sections past the time budget are skipped and say so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pea_deploy.nets import build_net
from pea_deploy.pea import compiled_form, convert, ensemble_aten, ensemble_ops, replace_relus_with_act, set_alpha

RESULTS: dict = {}
START = time.perf_counter()
OPS_SHAPE = (64, 64, 32, 32)
DEVICE = "cuda"  # --smoke: "cpu", a dry run of the script itself on tiny shapes


def left(budget: float) -> float:
    return budget - (time.perf_counter() - START)


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def row(section: str, text: str, **values) -> None:
    print(f"| {section} | {text} |", flush=True)
    RESULTS.setdefault(section, []).append({"row": text, **values})


# -- 1. the ops against their ATen form ------------------------------------------------------------

def check_ops() -> None:
    torch.manual_seed(0)
    names = {1: "gelu", 2: "silu", 3: "mish", 4: "elu"}
    worst: dict = {}
    exact, cases, misses = 0, 0, []
    # every activation and target in float32; the training configurations' pairs in 16 bits (each
    # dtype, activation and target is a kernel compiled on first use: the check stays short)
    combos = {torch.float32: [(1, 0), (2, 0), (3, 0), (4, 0), (1, 1)], torch.bfloat16: [(1, 0), (2, 0)],
              torch.float16: [(1, 0)]}
    for dtype, pairs_of_codes in combos.items():
        for channels_last in (False, True):
            x = (torch.randn(OPS_SHAPE, device=DEVICE) * 3).to(dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            g = torch.randn_like(x)
            seed = ensemble_ops.draw_seed(DEVICE)
            for act, tgt in pairs_of_codes:
                a = torch.tensor(0.3, device=DEVICE)
                pairs = {
                    "weighted fwd": (ensemble_ops.weighted_ensemble(x, a, act, tgt),
                                     ensemble_aten.weighted(x, a, act, tgt)),
                    "weighted bwd": (ensemble_ops.weighted_ensemble_backward(g, x, a, act, tgt),
                                     ensemble_aten.weighted_backward(g, x, a, act, tgt)),
                    "stochastic fwd": (ensemble_ops.stochastic_ensemble(x, a, seed, act, tgt)[0],
                                       ensemble_aten.stochastic(x, a, seed, act, tgt)),
                    "stochastic bwd": (ensemble_ops.stochastic_ensemble_backward(
                        g, x, a, seed, torch.zeros(0, dtype=torch.uint8, device=DEVICE), act, tgt),
                        ensemble_aten.stochastic_backward(g, x, a, seed, act, tgt)),
                }
                for what, (got, want) in pairs.items():
                    assert got.stride() == x.stride(), f"{what}: layout changed"
                    err = (got.float() - want.float()).abs().max().item()
                    key = (str(dtype).removeprefix("torch."), what)
                    worst[key] = max(worst.get(key, 0.0), err)
                smooth, target = ensemble_aten.smooth(act), ensemble_aten.target(tgt)
                for value, fn, vjp in ((0.0, smooth.fn, smooth.vjp), (1.0, target.fn, target.vjp)):
                    a = torch.tensor(value, device=DEVICE)
                    for what, got, want in (
                            ("fwd", ensemble_ops.weighted_ensemble(x, a, act, tgt), fn(x)),
                            ("bwd", ensemble_ops.weighted_ensemble_backward(g, x, a, act, tgt), vjp(g, x)),
                            ("stochastic fwd", ensemble_ops.stochastic_ensemble(x, a, seed, act, tgt)[0], fn(x))):
                        cases += 1
                        if torch.equal(got, want):
                            exact += 1
                        else:
                            diff = (got.float() - want.float()).abs()
                            misses.append(f"{names[act]}/{'relu6' if tgt else 'relu'} {key[0]} alpha {value:g} "
                                          f"{what}: {int((diff > 0).sum())} elements differ, max {diff.max():.3g}")
    for (dtype, what), err in sorted(worst.items()):
        row("ops", f"Triton vs ATen form, {dtype}, {what}, alpha 0.3: max abs error {err:.3g}", dtype=dtype,
            what=what, max_abs_error=err)
    row("ops", f"alpha 0 and 1 bit for bit ATen's own activation: {exact} of {cases} cases", exact=exact,
        cases=cases, misses=misses[:40])
    for miss in misses[:12]:
        print(f"|   | {miss} |")


# -- 2 and 4. training steps ------------------------------------------------------------------------

CONFIGS = {"resnet18": dict(model="resnet18", width=1.0, size=32, batch=256, act="gelu"),
           "yolo-det": dict(model="yolo-det", width=0.25, size=320, batch=32, act="silu")}


def make(kind: str, c: dict) -> torch.nn.Module:
    stem = {"stem": "small"} if c["model"] == "resnet18" else {}
    net = build_net(c["model"], 10, 3, width=c["width"], **stem)
    if kind == "act":
        return replace_relus_with_act(net, c["act"])
    net = convert(net, act=c["act"], variant=kind)
    set_alpha(net, 0.5)
    return net


def prepare(kind: str, c: dict, compiled: bool, form: str = "op"):
    torch.manual_seed(0)
    net = compiled_form.use(make(kind, c), form).to(DEVICE).train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    run = torch.compile(net) if compiled else net
    x = torch.randn(c["batch"], 3, c["size"], c["size"], device=DEVICE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (c["batch"],), device=DEVICE)
    alphas = iter([0.05 * (i % 19 + 1) for i in range(10 ** 6)])  # alpha moves every step, as in training

    def step():
        if kind != "act":
            set_alpha(net, next(alphas))
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            out = run(x)
            loss = F.cross_entropy(out, y) if isinstance(out, torch.Tensor) else \
                sum(o.float().pow(2).mean() for o in out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_steps(section: str, name: str, kinds: dict[str, tuple[str, str]], compiled: bool, steps: int,
               budget: float) -> None:
    """kinds: label -> (ensemble kind, compiled form). Steps interleaved round by round."""
    c = CONFIGS[name]
    prepared, peaks, graphs = {}, {}, {}
    for label, (kind, form) in kinds.items():
        if left(budget) < (60 if compiled else 20):
            row(section, f"{name} {label}: skipped (time budget)")
            continue
        from torch._dynamo.utils import counters
        graphs_before = counters["stats"]["unique_graphs"]
        t0 = time.perf_counter()
        step = prepare(kind, c, compiled, form)
        sync()
        if DEVICE == "cuda":
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if DEVICE == "cuda" else 0
        for _ in range(4):  # warm-up (and compilation); alpha moves each step
            step()
        sync()
        peaks[label] = (torch.cuda.max_memory_allocated() if DEVICE == "cuda" else 1) - base
        if compiled:
            graphs[label] = counters["stats"]["unique_graphs"] - graphs_before
        prepared[label] = step
        print(f"|   | {name} {label}: ready in {time.perf_counter() - t0:.1f} s |", flush=True)
    from torch._dynamo.utils import counters
    graphs_before_timing = counters["stats"]["unique_graphs"]
    times = {label: [] for label in prepared}
    for _ in range(steps):
        for label, step in prepared.items():
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            times[label].append(time.perf_counter() - t0)
    if compiled:
        row(section, f"{name}: {counters['stats']['unique_graphs'] - graphs_before_timing} graph(s) compiled while "
            f"alpha moved through {steps} more values", new_graphs=counters["stats"]["unique_graphs"] - graphs_before_timing)
    base_label = next(iter(prepared), None)
    if base_label is None:
        return
    base_t, base_m = statistics.median(times[base_label]), peaks[base_label]
    for label in prepared:
        t, m = statistics.median(times[label]), peaks[label]
        extra = f", {graphs[label]} graph(s) for {4 + steps} alphas" if compiled else ""
        row(section, f"{name} {label}: {t * 1e3:.2f} ms ({t / base_t:.3f}x), peak memory {m / 2 ** 20:.0f} MiB "
            f"({m / base_m:.3f}x){extra}", model=name, config=label, ms=t * 1e3, ratio=t / base_t,
            peak_mib=m / 2 ** 20, peak_ratio=m / base_m, graphs=graphs.get(label))


# -- 3. pea-train on cuda ---------------------------------------------------------------------------

def pea_train(label: str, args: list[str], budget: float) -> None:
    if left(budget) < 60:
        row("pea-train", f"{label}: skipped (time budget)")
        return
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pea_deploy.cli.train", *args, "--device", DEVICE, "-q",
                               "--out", out], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "."})
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            row("pea-train", f"{label}: exit {done.returncode}: {(done.stderr.strip().splitlines() or ['?'])[-1]}",
                exit=done.returncode)
            return
        summary = json.loads((Path(out) / "summary.json").read_text())
        with open(Path(out) / "metrics.csv") as f:
            epochs = list(csv.DictReader(f))
        timing = [float(e["epoch_time_s"]) for e in epochs]  # training and validation
        shown = sorted(set(summary["final_alphas"].values())) or "none (no ensembles)"
        metric = summary["metric"]
        row("pea-train", f"{label}: exit 0, {wall:.1f} s wall, epoch seconds {timing}, final alphas {shown}, "
            f"final {metric} {summary.get('final_' + metric)}", wall_s=wall, epoch_seconds=timing,
            summary={k: summary.get(k) for k in ("final_" + metric, "all_alphas_one", "wall_time_s", "device")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=330.0, help="seconds; later sections are skipped past it")
    ap.add_argument("--steps", type=int, default=20, help="timed rounds per training-step table")
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument("--smoke", action="store_true", help="a dry run of this script on the CPU, tiny shapes")
    args = ap.parse_args()
    global DEVICE, OPS_SHAPE
    if args.smoke:
        DEVICE, OPS_SHAPE = "cpu", (2, 4, 8, 8)
        for c in CONFIGS.values():
            c.update(batch=2, size=64, width=0.125)
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device")
    import torch._dynamo
    import triton

    # every configuration keeps its compiled graphs for the interleaved timing (same module classes)
    torch._dynamo.config.cache_size_limit = 64
    torch._dynamo.config.accumulated_cache_size_limit = 1024

    print(f"# {torch.cuda.get_device_name() if DEVICE == 'cuda' else 'CPU smoke run'}, torch {torch.__version__}, triton {triton.__version__}, "
          f"{time.strftime('%Y-%m-%d')}", flush=True)
    sections = [
        ("ops", check_ops),
        ("eager", lambda: [time_steps("eager", name, {"Act-only": ("act", "op"), "weighted": ("weighted", "op"),
                                                      "stochastic": ("stochastic", "op")}, False, args.steps,
                                      args.budget) for name in CONFIGS]),
        ("pea-train", lambda: [
            pea_train("default recipe, 2 epochs", ["--epochs", "2", "--initial-epochs", "0", "--transition-end", "1"],
                      args.budget),
            pea_train("shapes-det-yolo-pea-weighted-silu, 2 epochs",
                      ["shapes-det-yolo-pea-weighted-silu", "--epochs", "2", "--initial-epochs", "0",
                       "--transition-end", "1"], args.budget),
            pea_train("shapes-det-yolo, SiLU only (--mode act), 2 epochs",
                      ["shapes-det-yolo-pea-weighted-silu", "--epochs", "2", "--mode", "act"], args.budget)]),
        ("compiled", lambda: [time_steps("compiled", name, {
            "Act-only": ("act", "op"), "weighted op": ("weighted", "op"),
            "weighted pointwise": ("weighted", "pointwise"), "stochastic op": ("stochastic", "op")},
            True, args.steps, args.budget)
            for name in CONFIGS]),
    ]
    for name, run in sections:
        try:
            run()
        except Exception as e:  # noqa: BLE001 - a broken section is reported, the others still run
            row(name, f"FAILED: {type(e).__name__}: {' '.join(str(e).split())[:600]}")
        if args.json:
            Path(args.json).write_text(json.dumps(RESULTS, indent=1, default=str))
    print(f"# done in {time.perf_counter() - START:.0f} s", flush=True)


if __name__ == "__main__":
    main()
