"""Inference speed: nanoseg's tiled ``predict`` against the plain eager PyTorch forward pass, side by side.

For each network (Horwath's Norm U-Net and Sytwu's 130k residual U-Net, BatchNorm statistics randomized so
folding is really exercised) and each frame size, in one run on this machine:

* ``eager``: ``module(x)`` on the whole frame under ``torch.no_grad`` (NCHW, float32) — the reference;
* ``nanoseg``: ``nanoseg.infer.predict`` with the default engine and tile size (tiles + blending + softmax +
  threshold included), and each other engine given with ``--engines``;
* equal output: max |Δ particle probability| against the eager reference (must be ≤ 1e-4);
* FLOPs per pixel (``torch.utils.flop_counter``), achieved GFLOP/s, and the fraction of the machine's
  measured float32 matmul throughput (``torch.mm`` of 2048² matrices).

Timings are the best of ``--repeats`` interleaved runs (the machine may be shared). On a CUDA machine the
GPU path (bf16/fp16 autocast, batched tiles, optional CUDA graphs) is measured too, as frames/s.

Usage::

    python benchmarks/infer.py --quick                 # 1024² only
    python benchmarks/infer.py                          # 1024² and 4096²
    python benchmarks/infer.py --engines fused jit eager --sizes 1024
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from torch import nn


def matmul_gflops(n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def flops_per_pixel(module: nn.Module, side: int = 256) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, 1, side, side))
    return counter.get_total_flops() / side**2


def randomized(name: str) -> nn.Module:
    from nanoseg.models import build_model

    torch.manual_seed(0)
    net = build_model(name)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def eager_probability(module: nn.Module, image: np.ndarray, device: str) -> np.ndarray:
    with torch.no_grad():
        logits = module(torch.from_numpy(image)[None, None].to(device))
        return torch.softmax(logits, dim=1)[0, 1].float().cpu().numpy()


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1024² frames only")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="frame sides (default 1024 4096)")
    parser.add_argument("--models", nargs="+", default=["norm_unet", "sytwu_resunet"])
    parser.add_argument("--engines", nargs="+", default=["auto"], help="nanoseg engines to time (auto = default)")
    parser.add_argument("--tile-size", type=int, default=None, help="tile side (default: predict's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    from nanoseg.infer import predict
    from nanoseg.io import Micrograph
    from nanoseg.models import LoadedModel, ModelCard, count_parameters

    sizes = args.sizes or ([1024] if args.quick else [1024, 4096])
    tile = args.tile_size or "auto"  # predict's default tile size (the one a user gets)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = matmul_gflops(device=device)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}; float32 matmul {peak:.1f} GFLOP/s")
    if device == "cpu":
        print("GPU path: not measured (no CUDA device on this machine)")
    rows = []
    for name in args.models:
        net = randomized(name)
        fpp = flops_per_pixel(net)
        card = ModelCard(architecture=name, pixel_size_nm=0.02, n_parameters=count_parameters(net))
        model = LoadedModel(net, card, path=None)
        print(f"\n{name}: {count_parameters(net):,} parameters, {fpp / 1e3:.2f} kFLOP/px")
        for side in sizes:
            image = np.random.default_rng(side).standard_normal((side, side)).astype(np.float32)
            micrograph = Micrograph(image, pixel_size_nm=0.02)
            mpx = side * side / 1e6
            variants = {"eager (whole frame)": None, **{f"nanoseg {e}": e for e in args.engines}}
            outputs, best, used = {}, {k: float("inf") for k in variants}, {}
            for label, engine in variants.items():  # warm-up (traces, caches) + outputs for the equality check
                if engine is None:
                    outputs[label] = eager_probability(net, image, device)
                else:
                    pred = predict(micrograph, model, engine=engine, tile_size=tile, ood=False, device=device)
                    outputs[label] = pred.probability
                    info = pred.metadata["models"][0]
                    used[label] = {"engine_used": info["engine"] + (f"/{info['onnx_level']}" if info["onnx_level"]
                                                                    else ""),
                                   "n_tiles": info["n_tiles"], "tile_px_used": info["tile_px"],
                                   "engine_calibration_s": info["engine_calibration_s"]}
            for _ in range(args.repeats):
                for label, engine in variants.items():
                    t = time.perf_counter()
                    if engine is None:
                        eager_probability(net, image, device)
                    else:
                        predict(micrograph, model, engine=engine, tile_size=tile, ood=False, device=device)
                    best[label] = min(best[label], time.perf_counter() - t)
            ref = best["eager (whole frame)"]
            for label in variants:
                rate = mpx / best[label]
                row = {"model": name, "side": side, "variant": label, "seconds": round(best[label], 3),
                       "mpx_per_s": round(rate, 3), "speedup_vs_eager": round(ref / best[label], 2),
                       "max_abs_prob_diff": float(np.abs(outputs[label] - outputs["eager (whole frame)"]).max()),
                       "gflops_per_s": round(rate * fpp / 1e3, 2),
                       "fraction_of_matmul": round(rate * fpp / 1e3 / peak, 4), "tile_px": tile,
                       "device": device, **used.get(label, {})}
                rows.append(row)
                how = (f" ({row['engine_used']}, {row['n_tiles']} × {row['tile_px_used']}² max)" if label in used
                       else "")
                print(f"  {side}²  {label + how:40s} {row['seconds']:8.3f} s  {row['mpx_per_s']:7.3f} Mpx/s  "
                      f"×{row['speedup_vs_eager']:<5} vs eager  |Δp|max {row['max_abs_prob_diff']:.1e}  "
                      f"{row['gflops_per_s']:6.2f} GFLOP/s = {100 * row['fraction_of_matmul']:.1f} % of matmul",
                      flush=True)
        if device == "cuda":
            rows += gpu_frames_per_second(model, sizes, tile)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return rows


def gpu_frames_per_second(model, sizes, tile, n_frames: int = 20) -> list[dict]:
    """GPU path: frames/s of predict with the 'cuda' engine (half precision, batched tiles)."""
    from nanoseg.infer import predict
    from nanoseg.io import Micrograph

    rows = []
    for side in sizes:
        frame = Micrograph(np.random.default_rng(1).standard_normal((side, side)).astype(np.float32),
                           pixel_size_nm=0.02)
        exact = predict(frame, model, engine="fused", device="cuda", tile_size=tile, ood=False).probability
        half = predict(frame, model, engine="cuda", device="cuda", tile_size=tile, batch_size=16, ood=False)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n_frames):
            predict(frame, model, engine="cuda", device="cuda", tile_size=tile, batch_size=16, ood=False)
        torch.cuda.synchronize()
        fps = n_frames / (time.perf_counter() - t)
        diff = float(np.abs(half.probability - exact).max())
        rows.append({"model": model.card.architecture, "side": side, "variant": "nanoseg cuda (bf16)",
                     "frames_per_s": round(fps, 2), "max_abs_prob_diff_vs_fp32": diff, "device": "cuda"})
        print(f"  GPU {side}²: {fps:.1f} frames/s (bf16/fp16 autocast), |Δp|max vs fp32 {diff:.1e}")
    return rows


if __name__ == "__main__":
    main()
