"""Export the default model to ONNX and TorchScript, then ``predict`` with the checkpoint and with each file.

Prints the export check of each file, and per model the best of ``--repeats`` interleaved ``predict`` calls on a
random Poisson (400 e/px) frame of ``--side``² px at the model's pixel size (0.04 nm/px: no resampling), after one
warm-up call each (engine build, calibration), with the max |Δp| against the eager checkpoint on that frame and
on the bundled 256² example (resampled 0.02 → 0.04 nm/px)::

    .venv/bin/python benchmarks/export.py --out /tmp/export-bench
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for default.onnx and default.pt")
    parser.add_argument("--side", type=int, default=1024, help="frame side in px")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import torch

    from nanoseg.infer import onnx_available, predict
    from nanoseg.infer.export import export_model
    from nanoseg.io import Micrograph, example_micrograph

    args.out.mkdir(parents=True, exist_ok=True)
    models = {"checkpoint, engine auto": ("default", "auto")}
    for name in (["default.onnx"] if onnx_available() else []) + ["default.pt"]:
        started = time.perf_counter()
        result = export_model("default", args.out / name)
        print(f"{result.summary()}; export {time.perf_counter() - started:.2f} s")
        models[name] = (str(result.path), "auto")
    frame = Micrograph(np.random.default_rng(0).poisson(400, (args.side, args.side)).astype(np.float32),
                       pixel_size_nm=0.04)
    example = example_micrograph()
    reference = {key: predict(image, "default", engine="eager", ood=False).probability
                 for key, image in (("frame", frame), ("example", example))}
    delta = {}
    for name, (model, engine) in models.items():
        delta[name] = {key: float(np.abs(predict(image, model, engine=engine, ood=False).probability
                                         - reference[key]).max())
                       for key, image in (("frame", frame), ("example", example))}
    best = dict.fromkeys(models, float("inf"))
    for _ in range(args.repeats):
        for name, (model, engine) in models.items():
            started = time.perf_counter()
            predict(frame, model, engine=engine, ood=False)
            best[name] = min(best[name], time.perf_counter() - started)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.side}² frame, best of {args.repeats}")
    for name in models:
        print(f"{name:24s} {best[name]:7.3f} s   max|Δp| vs eager checkpoint: frame {delta[name]['frame']:.1e}, "
              f"example {delta[name]['example']:.1e}")


if __name__ == "__main__":
    main()
