"""Training and inference throughput of the registered backbones on random inputs (CPU).

    python benchmarks/train_throughput.py [--backbones vgg_small resnet18_small:width=0.5] [--size 48] [--steps 20]

Per backbone, in its own subprocess (so peak RSS is its own):

* training: forward + backward + SGD step (momentum 0.9, Nesterov, weight decay, as ``ferkit.training.loop``) on random
  normalised batches of ``--batch`` images (default 128), model and inputs ``channels_last``, in train mode;
* torch inference: eval mode, ``torch.inference_mode``, ``channels_last``, batches of ``--infer-batch`` (256);
* onnxruntime inference: the model exported like ``ferkit.training.loop export`` (opset 17, dynamic batch), same
batches.

Each phase runs ``--warmup`` untimed steps, then ``--steps`` timed ones; images/s is taken from the median step
time (robust to a busy machine) and the mean is kept too. Also parameters, embedding size and forward MFLOPs per
image (torch ``FlopCounterMode``; a multiply-add counts 2). A backbone takes options as ``name:key=value,...``
(values parsed as JSON, e.g. ``resnet18_small:width=0.5``). Results: printed markdown table +
benchmarks/results/train_throughput.json (``--out`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_spec(spec: str) -> tuple[str, dict]:
    """``name:key=value,key=value`` → ``(name, kwargs)``; values are JSON where they parse, else strings."""
    name, _, opts = spec.partition(":")
    kwargs = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return name, kwargs


def timed(fn, steps: int, warmup: int) -> list[float]:
    """Seconds per call of ``fn`` over ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def rate(times: list[float], batch: int) -> dict:
    return {
        "images_per_s": round(batch / statistics.median(times), 1),
        "images_per_s_mean": round(batch * len(times) / sum(times), 1),
        "step_s_median": round(statistics.median(times), 4),
    }


def run_backbone(spec: str, args: argparse.Namespace) -> dict:
    """Measure one backbone in this process."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from ferkit.training.backbones import create_backbone
    from ferkit.training.export import export_onnx

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    name, kwargs = parse_spec(spec)
    shape = (args.channels, args.size, args.size)
    model = create_backbone(name, num_classes=7, in_channels=args.channels, **kwargs)
    res: dict = {
        "backbone": spec,
        "parameters": sum(p.numel() for p in model.parameters()),
        "embedding_dim": model.head.in_features,
    }
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as flops:
        model(torch.zeros(1, *shape))
    res["mflops_per_image"] = round(flops.get_total_flops() / 1e6, 1)

    model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(args.batch, *shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (args.batch,))

    def train_step() -> None:
        logits, _ = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    res["train"] = rate(timed(train_step, args.steps, args.warmup), args.batch)

    model.eval()
    xi = torch.randn(args.infer_batch, *shape)
    xi_cl = xi.contiguous(memory_format=torch.channels_last)

    def torch_step() -> None:
        with torch.inference_mode():
            model(xi_cl)

    res["infer_torch"] = rate(timed(torch_step, args.steps, args.warmup), args.infer_batch)

    if not args.no_onnx:
        import onnxruntime as ort

        model = model.to(memory_format=torch.contiguous_format)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(model, path, shape)
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {"input": xi.numpy().astype(np.float32)}
        res["infer_onnxruntime"] = rate(timed(lambda: sess.run(None, feed), args.steps, args.warmup), args.infer_batch)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


def table(runs: list[dict]) -> str:
    head = (
        "| backbone | params (M) | MFLOPs/img | train img/s | torch infer img/s | ORT infer img/s | peak RSS (MB) |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    rows = [
        f"| {r['backbone']} | {r['parameters'] / 1e6:.2f} | {r['mflops_per_image']:.0f} | "
        f"{r['train']['images_per_s']:.0f} | {r['infer_torch']['images_per_s']:.0f} | "
        f"{r['infer_onnxruntime']['images_per_s'] if 'infer_onnxruntime' in r else float('nan'):.0f} | "
        f"{r['peak_rss_mb']:.0f} |"
        for r in runs
    ]
    return "\n".join([head, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="+", help="names (or name:key=value,...); default: every registered one")
    ap.add_argument("--size", type=int, default=48, help="input height and width")
    ap.add_argument("--channels", type=int, default=1, help="1 (gray) or 3 (rgb)")
    ap.add_argument("--batch", type=int, default=128, help="training batch")
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per phase")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per phase")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and onnxruntime threads")
    ap.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime measurement")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "train_throughput.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_backbone(args.child, args)))
        return
    if not args.backbones:
        from ferkit.training.backbones import BACKBONES

        args.backbones = sorted(BACKBONES)
    passed = [
        f"--size={args.size}",
        f"--channels={args.channels}",
        f"--batch={args.batch}",
        f"--infer-batch={args.infer_batch}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--threads={args.threads}",
        *(["--no-onnx"] if args.no_onnx else []),
    ]
    runs = []
    for spec in args.backbones:
        cmd = [sys.executable, __file__, *passed, "--child", spec]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)  # noqa: S603 - this script
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"{spec}: {json.dumps(runs[-1])}", flush=True)
    import torch

    doc = {
        "command": f"python benchmarks/train_throughput.py --backbones {' '.join(args.backbones)} {' '.join(passed)}",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "input": f"random normal, {args.channels}×{args.size}×{args.size}, channels_last",
        "runs": runs,
    }
    try:
        import onnxruntime

        doc["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    md = table(runs)
    print(md)
    doc["table"] = md
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(args.out)


if __name__ == "__main__":
    main()
