"""Time of the first and second ``predict`` of a 256² frame in a fresh process (default model, engine auto, CPU).

Run it twice with the same empty cache folder to see the cost of the auto engine's calibration (first run) and
what is left once the per-machine calibration is cached (second run)::

    NANOSEG_CACHE_DIR=$(mktemp -d) sh -c '.venv/bin/python benchmarks/first_predict.py; .venv/bin/python benchmarks/first_predict.py'
"""

from __future__ import annotations

import os
import time


def main() -> None:
    started = time.perf_counter()
    import numpy as np

    from nanoseg.infer import predict
    from nanoseg.io import Micrograph

    imported = time.perf_counter()
    image = Micrograph(np.random.default_rng(0).random((256, 256)).astype(np.float32), pixel_size_nm=0.04)
    first = predict(image, None, device="cpu", ood=False)
    done_first = time.perf_counter()
    predict(image, None, device="cpu", ood=False)
    done_second = time.perf_counter()
    info = first.metadata["models"][0]
    print(f"import {imported - started:.2f} s, first predict {done_first - imported:.2f} s, second predict (same "
          f"process) {done_second - done_first:.2f} s; engine {info['engine']}/{info['onnx_level']}, calibration "
          f"{info['engine_calibration_s']} (cached: {info['engine_calibration_cached']}); load average "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
