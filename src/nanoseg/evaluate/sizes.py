"""Physical scores: particle sizes in nm and size-distribution comparisons (Horwath's point: the particle-size
distribution is the measurement that matters).

``particle_sizes`` measures every particle of a label image (equivalent diameter, major/minor axis in nm);
``compare_size_distributions`` compares two samples of diameters: mean/median error, the two-sample
Kolmogorov–Smirnov statistic (and p-value) and the Wasserstein-1 (earth mover's) distance in nm.
``read_size_measurements`` reads a CSV of manual measurements (one particle per row).

Example
-------
>>> import numpy as np
>>> r = compare_size_distributions([4.0, 5.0, 6.0], [5.0, 6.0, 7.0])
>>> r["mean_error_nm"], r["median_error_nm"], round(r["wasserstein_nm"], 3), round(r["ks_statistic"], 3)
(-1.0, -1.0, 1.0, 0.333)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nanoseg.errors import NanosegError
from nanoseg.evaluate.matching import instance_labels

SIZE_COLUMNS = ("diameter_nm", "equivalent_diameter_nm", "major_axis_nm", "size_nm", "d_nm", "diameter")


def particle_sizes(labels, *, pixel_size_nm: float, min_diameter_nm: float = 0.0) -> pd.DataFrame:
    """One row per particle: ``label, area_nm2, diameter_nm`` (equivalent-area diameter), ``major_axis_nm``,
    ``minor_axis_nm``, ``centroid_y_px``, ``centroid_x_px``, ``touches_edge``.

    ``labels`` is an instance label image or a binary mask (labelled by connected components). Particles with
    an equivalent diameter below ``min_diameter_nm`` are dropped. Uses ``nanoseg.particles.particle_table``
    when that module is installed, otherwise scikit-image ``regionprops`` directly (same definitions).
    """
    if pixel_size_nm is None or not np.isfinite(pixel_size_nm) or pixel_size_nm <= 0:
        raise NanosegError(f"particle sizes need a positive pixel size in nm, got {pixel_size_nm}",
                           hint="pass pixel_size_nm (the dataset's or the file's calibration)")
    lab = instance_labels(labels)
    try:
        from nanoseg.particles import particle_table
    except ImportError:
        table = _regionprops_table(lab, pixel_size_nm)
    else:
        table = particle_table(lab, pixel_size_nm=pixel_size_nm)
    if min_diameter_nm > 0 and len(table):
        table = table[table["diameter_nm"] >= min_diameter_nm].reset_index(drop=True)
    return table


def _regionprops_table(lab: np.ndarray, pixel_size_nm: float) -> pd.DataFrame:
    from skimage.measure import regionprops_table

    cols = ["label", "area_nm2", "diameter_nm", "major_axis_nm", "minor_axis_nm", "centroid_y_px",
            "centroid_x_px", "touches_edge"]
    if lab.max(initial=0) == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    props = regionprops_table(lab, properties=("label", "area", "equivalent_diameter_area", "axis_major_length",
                                               "axis_minor_length", "centroid", "bbox"))
    h, w = lab.shape
    return pd.DataFrame({
        "label": props["label"],
        "area_nm2": props["area"] * pixel_size_nm**2,
        "diameter_nm": props["equivalent_diameter_area"] * pixel_size_nm,
        "major_axis_nm": props["axis_major_length"] * pixel_size_nm,
        "minor_axis_nm": props["axis_minor_length"] * pixel_size_nm,
        "centroid_y_px": props["centroid-0"],
        "centroid_x_px": props["centroid-1"],
        "touches_edge": (props["bbox-0"] == 0) | (props["bbox-1"] == 0) | (props["bbox-2"] == h)
        | (props["bbox-3"] == w),
    })


def compare_size_distributions(predicted_nm: Sequence[float], reference_nm: Sequence[float]) -> dict[str, float]:
    """Compare two samples of particle sizes (nm): predicted vs reference (ground truth or manual).

    Errors are predicted − reference. With an empty side, counts are reported and every distance is NaN.
    """
    pred = np.asarray(predicted_nm, dtype=np.float64).ravel()
    ref = np.asarray(reference_nm, dtype=np.float64).ravel()
    if not (np.isfinite(pred).all() and np.isfinite(ref).all()):
        raise NanosegError("particle sizes contain NaN or infinite values")
    out = {"n_pred": int(pred.size), "n_ref": int(ref.size)}
    nan = float("nan")
    if pred.size == 0 or ref.size == 0:
        out.update({k: nan for k in ("mean_pred_nm", "mean_ref_nm", "mean_error_nm", "relative_mean_error",
                                     "median_pred_nm", "median_ref_nm", "median_error_nm", "std_pred_nm",
                                     "std_ref_nm", "ks_statistic", "ks_pvalue", "wasserstein_nm")})
        if pred.size:
            out.update(mean_pred_nm=float(pred.mean()), median_pred_nm=float(np.median(pred)))
        if ref.size:
            out.update(mean_ref_nm=float(ref.mean()), median_ref_nm=float(np.median(ref)))
        return out
    from scipy.stats import ks_2samp, wasserstein_distance

    ks = ks_2samp(pred, ref)
    out.update(
        mean_pred_nm=float(pred.mean()), mean_ref_nm=float(ref.mean()),
        mean_error_nm=float(pred.mean() - ref.mean()),
        relative_mean_error=float((pred.mean() - ref.mean()) / ref.mean()) if ref.mean() else nan,
        median_pred_nm=float(np.median(pred)), median_ref_nm=float(np.median(ref)),
        median_error_nm=float(np.median(pred) - np.median(ref)),
        std_pred_nm=float(pred.std(ddof=0)), std_ref_nm=float(ref.std(ddof=0)),
        ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue),
        wasserstein_nm=float(wasserstein_distance(pred, ref)),
    )
    return out


def read_size_measurements(path: str | os.PathLike, *, column: str | None = None) -> np.ndarray:
    """Particle sizes in nm from a CSV of manual measurements (one particle per row).

    ``column`` names the column; by default the first of ``diameter_nm, equivalent_diameter_nm,
    major_axis_nm, size_nm, d_nm, diameter`` present is used (or the only column of a one-column file).
    """
    path = Path(path)
    if not path.exists():
        raise NanosegError("measurement file not found", path=path)
    try:
        table = pd.read_csv(path)
    except Exception as exc:  # pandas raises several parser errors
        raise NanosegError(f"cannot read the CSV ({exc})", path=path) from exc
    if column is None:
        found = [c for c in SIZE_COLUMNS if c in table.columns]
        if found:
            column = found[0]
        elif table.shape[1] == 1:
            column = table.columns[0]
        else:
            raise NanosegError("no size column found", path=path,
                               hint=f"name it one of {', '.join(SIZE_COLUMNS)} or pass the column name")
    if column not in table.columns:
        raise NanosegError(f"no column {column!r}", path=path, hint=f"columns are: {', '.join(table.columns)}")
    values = pd.to_numeric(table[column], errors="coerce").dropna().to_numpy(dtype=np.float64)
    if values.size == 0:
        raise NanosegError(f"column {column!r} holds no numbers", path=path)
    if (values <= 0).any():
        raise NanosegError(f"column {column!r} holds sizes ≤ 0 nm", path=path, hint="sizes must be in nm, > 0")
    return values
