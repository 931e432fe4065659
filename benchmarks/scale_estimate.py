"""The particle-diameter estimate of ``nanoseg.infer.scale`` against the label boxes of real S/TEM images.

For every ``images/<stem>.jpg`` of ``--data`` (default ``../shared/real/ardagen``; YOLO boxes in
``labels/<stem>.txt``: class, centre x, centre y, width, height as fractions of the image side) prints the median
box diameter ``√(w·h)`` in px, the estimate, their ratio, the polarity found and the time, then how many
estimates lie within 25 %, 50 % and a factor 2 of the boxes. Boxes are not exhaustive, and a box is the
particle's extent, not its area-equivalent diameter::

    .venv/bin/python benchmarks/scale_estimate.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "real" / "ardagen"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with images/ and labels/")
    args = parser.parse_args()

    import numpy as np

    from nanoseg.infer.scale import estimate_particle_diameter_px
    from nanoseg.io import read

    ratios = []
    for path in sorted((args.data / "images").glob("*.jpg")):
        micrograph = read(path)
        height, width = micrograph.shape
        boxes = np.loadtxt(args.data / "labels" / f"{path.stem}.txt", ndmin=2)
        truth = float(np.median(np.sqrt(boxes[:, 3] * width * boxes[:, 4] * height)))
        started = time.perf_counter()
        estimate = estimate_particle_diameter_px(micrograph.data)
        seconds = time.perf_counter() - started
        ratio = float("nan") if estimate.diameter_px is None else estimate.diameter_px / truth
        ratios.append(ratio)
        print(f"{path.stem:12s} {width}x{height} boxes={len(boxes):4d} box_d={truth:6.1f}px "
              f"estimate={estimate.diameter_px or float('nan'):6.1f}px ratio={ratio:5.2f} "
              f"polarity={estimate.polarity} blobs={estimate.n_blobs} {seconds:.1f}s", flush=True)
    r = np.array(ratios)
    ok = r[np.isfinite(r)]
    print(f"{len(r)} images, {ok.size} estimated; median ratio {np.median(ok):.2f}; within 25 %: "
          f"{int((np.abs(ok - 1) <= 0.25).sum())}, within 50 %: {int((np.abs(ok - 1) <= 0.5).sum())}, "
          f"within ×2: {int(((ok >= 0.5) & (ok <= 2)).sum())}")


if __name__ == "__main__":
    main()
