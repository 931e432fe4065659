"""Frames per second that ``nanoseg watch`` keeps up with at 1024² and 4096² (default model, CPU, engine auto).

The frames (the example micrograph resampled to the default model's 0.04 nm/px and mirror-tiled to the frame
size; ImageJ TIFFs at 0.04 nm/px, so predict resamples nothing) are in the watched folder before the watch
starts; each frame's time is its read + segment + label + measure + drift + append time (``watch/frames.csv``,
``seconds``). The first frame of a size also builds the engine for that shape and is reported apart; the rate
is 1 / the median of the others. Usage::

    .venv/bin/python benchmarks/watch.py            # 1024²: 4 frames, 4096²: 3 frames
    .venv/bin/python benchmarks/watch.py 1024:6     # sizes and frame counts of your choice
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def measure(size_px: int, n_frames: int) -> tuple[float, list[float]]:
    """(first frame's seconds, the other frames' seconds) of one watch run over ``n_frames`` frames."""
    import numpy as np
    import pandas as pd

    from nanoseg.insitu.watch import watch_folder
    from nanoseg.io import example_micrograph, write_tiff
    from nanoseg.preprocess.resample import resample_micrograph

    root = Path(tempfile.mkdtemp(prefix=f"watch-bench-{size_px}-"))
    folder = root / "camera"
    folder.mkdir()
    base = resample_micrograph(example_micrograph(), 0.04).data  # particles at their size for the model
    mosaic = np.pad(base, ((0, size_px - base.shape[0]), (0, size_px - base.shape[1])), mode="symmetric")
    for i in range(n_frames):
        frame = np.roll(mosaic, 3 * i, axis=1)  # a little drift
        write_tiff(folder / f"frame_{i:04d}.tif", frame, pixel_size_nm=0.04)
    time.sleep(0.3)
    watch_folder(folder, root / "live", frame_interval_s=1.0, poll_s=0.2, max_frames=n_frames, n_boot=0,
                 figures=False, report_every_s=1e9)
    seconds = pd.read_csv(root / "live" / "watch" / "frames.csv")["seconds"].tolist()
    return seconds[0], seconds[1:]


def main(argv: list[str]) -> None:
    import numpy as np

    plan = [tuple(int(v) for v in a.split(":")) for a in argv] or [(1024, 4), (4096, 3)]
    for size_px, n_frames in plan:
        first, rest = measure(size_px, n_frames)
        median = float(np.median(rest)) if rest else first
        print(f"{size_px}²: {1 / median:.2f} frames/s ({median:.2f} s per frame, median of {len(rest)} frames: "
              f"{', '.join(f'{s:.2f}' for s in rest)}; first frame {first:.2f} s with the engine build); "
              f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
