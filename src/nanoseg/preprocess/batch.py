"""Batch preprocessing of files: read → pipeline → write, skip-and-report, resumable."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from nanoseg._util import BatchReport, atomic_path, progress_iter
from nanoseg.errors import NanosegError
from nanoseg.preprocess.pipeline import Pipeline

FORMATS = ("tif", "npy")
MANIFEST = "preprocess.json"


def output_path(source: str | os.PathLike, out_dir: str | os.PathLike, fmt: str = "tif") -> Path:
    """Where :func:`process_files` writes the result for ``source``: ``out_dir/<stem>.<fmt>``.

    >>> output_path("raw/frame_001.dm4", "pre").as_posix()
    'pre/frame_001.tif'
    """
    return Path(out_dir) / f"{Path(source).stem}.{fmt}"


def _write(micrograph, target: Path, fmt: str) -> None:
    from nanoseg.io import write_npy, write_tiff

    if fmt == "tif":
        write_tiff(target, micrograph)
        return
    sidecar = {"pixel_size_nm": micrograph.pixel_size_nm, "dose_e_per_A2": micrograph.dose_e_per_A2,
               "source": micrograph.source, "shape": list(micrograph.shape), "metadata": micrograph.metadata}
    with atomic_path(target.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=1, default=str), encoding="utf-8")
    write_npy(target, micrograph)  # written last: its presence marks a finished item


def _check_manifest(out_dir: Path, spec: list, overwrite: bool) -> None:
    manifest = out_dir / MANIFEST
    if manifest.exists() and not overwrite:
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8")).get("steps")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            previous = None
        if previous != spec:
            raise NanosegError("this output folder holds results of a different preprocessing pipeline",
                               path=out_dir, hint="choose another out_dir=FOLDER, or pass overwrite=True to redo everything")
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps({"steps": spec}, indent=1), encoding="utf-8")


def process_files(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                  pipeline="default", fmt: str = "tif", overwrite: bool = False,
                  progress: bool = True) -> BatchReport:
    """Read each file with :func:`nanoseg.io.read`, apply ``pipeline``, write ``out_dir/<stem>.<fmt>``.

    Parameters
    ----------
    inputs : microscope files.
    out_dir : output folder; it also receives ``preprocess.json`` (the pipeline spec), so a rerun into
        the same folder with a different pipeline is refused instead of mixing results.
    pipeline : anything :meth:`Pipeline.from_spec` takes (spec list, YAML path, built-in name).
    fmt : ``"tif"`` (ImageJ TIFF with calibration, dose and metadata) or ``"npy"`` (array + a ``.json``
        sidecar holding the calibration and metadata).
    overwrite : redo outputs that exist (by default they are skipped: reruns resume).
    progress : show a progress bar.

    Returns
    -------
    :class:`nanoseg._util.BatchReport` (bad files are listed in ``failed``; the rest went on).

    Example
    -------
    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); np.save(d / "a.npy", np.random.default_rng(0).random((32, 32)))
    >>> report = process_files([d / "a.npy"], d / "out", pipeline="horwath", fmt="npy", progress=False)
    >>> report.ok, sorted(p.name for p in (d / "out").iterdir())
    (True, ['a.json', 'a.npy', 'preprocess.json'])
    """
    from nanoseg.io import read

    if fmt not in FORMATS:
        raise NanosegError(f"unknown output format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    pipe = Pipeline.from_spec(pipeline)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NanosegError("the output path exists and is not a folder", path=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(out_dir, pipe.to_spec(), overwrite)
    report = BatchReport()
    claimed: dict[Path, str] = {}
    for source in progress_iter(list(inputs), "preprocessing", enabled=progress):
        target = output_path(source, out_dir, fmt)
        if target not in claimed and target.exists() and not overwrite:
            claimed[target] = str(source)
            report.skip(str(source))
            continue
        with report.item(str(source)):
            if target in claimed:
                raise NanosegError(f"same output name as {claimed[target]} ({target.name})",
                                   hint="rename one of the inputs or process them into different folders")
            claimed[target] = str(source)
            _write(pipe.apply(read(source)), target, fmt)
    return report
