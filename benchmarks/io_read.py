"""nanoseg.io reading cost, measured side by side in one run (numbers quoted in docs/io.md).

1. a 4096² float32 DM4 image: ``rsciio.digitalmicrograph.file_reader`` (eager) vs ``nanoseg.io.read``
   (RosettaSciIO + calibration/metadata extraction + float32 + NaN check); median of 5, ratio printed;
2. a 60 × 1024² uint16 DM4 stack (120 MiB): time and resident-memory growth to open it with
   ``read_series`` and load one frame, in a fresh process (shows that frames are memory-mapped).

Run:  .venv/bin/python benchmarks/io_read.py
DM files are made with the test fixture writer (tests/fixtures/make_dm.py) in a temporary folder.
"""

from __future__ import annotations

import importlib.util
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _make_dm():
    spec = importlib.util.spec_from_file_location("make_dm", ROOT / "tests" / "fixtures" / "make_dm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_dm


def one_frame(stack_path: str, warm_path: str) -> None:
    from nanoseg.io import read_series

    _ = read_series(warm_path)[1]  # imports (dask, rsciio) kept out of the measurement
    base = _rss_mib()
    start = time.perf_counter()
    frame = read_series(stack_path, frame_interval_s=0.1)[30]
    elapsed = time.perf_counter() - start
    grew = _rss_mib() - base
    print(f"60 x 1024^2 uint16 DM4 stack (120 MiB): open + frame 30 in {elapsed:.3f} s, "
          f"resident memory grew {grew:.0f} MiB (one frame as float32 = {frame.data.nbytes / 2**20:.0f} MiB)")


def _rss_mib() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    from rsciio.digitalmicrograph import file_reader

    from nanoseg.io import read

    write_dm = _make_dm()
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.dm4"
        write_dm(big, np.random.default_rng(0).normal(100, 10, (4096, 4096)).astype(np.float32), scale=0.18,
                 units="Å")
        raw, ours = [], []
        for _ in range(5):
            t = time.perf_counter()
            file_reader(str(big))
            raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            read(big)
            ours.append(time.perf_counter() - t)
        print(f"4096^2 float32 DM4, median of 5: rsciio.file_reader {np.median(raw):.3f} s, "
              f"nanoseg.io.read {np.median(ours):.3f} s, ratio {np.median(ours) / np.median(raw):.2f}")
        stack, warm = Path(tmp) / "stack.dm4", Path(tmp) / "warm.dm4"
        write_dm(stack, np.random.default_rng(1).integers(0, 4000, (60, 1024, 1024), dtype=np.uint16))
        write_dm(warm, np.zeros((2, 8, 8), np.uint16))
        subprocess.run([sys.executable, __file__, "--one-frame", str(stack), str(warm)], check=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one-frame"]:
        one_frame(sys.argv[2], sys.argv[3])
    else:
        main()
