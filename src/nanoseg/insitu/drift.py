"""Stage-drift estimation and correction for in situ movies.

Each frame is registered (sub-pixel phase cross-correlation, :func:`skimage.registration.phase_cross_correlation`)
against a *running reference*: the median of the last ``window`` frames already aligned to frame 0. The median
follows slow changes (particles growing, shrinking, merging) while a single changed particle cannot pull it;
frames are band-passed before correlation: minus a Gaussian of ``highpass_sigma_px`` (removing illumination
drifts) and, optionally, blurred by a Gaussian of ``lowpass_sigma_px`` (a camera's fixed pixel-gain pattern is
white and stays put while the specimen moves, so its finest detail would pull every match to zero shift); then
Hann-windowed (no edge wrap-around). Large frames are block-averaged to at most
``max_size_px`` per side for speed; shifts are scaled back to full-resolution pixels.

Convention: ``dy_px, dx_px`` is where frame 0's content appears in frame i (content displacement), so a
position measured in frame i is brought into frame-0 (sample) coordinates by *subtracting* the drift.

Example
-------
>>> import numpy as np
>>> from scipy import ndimage as ndi
>>> rng = np.random.default_rng(0)
>>> base = ndi.gaussian_filter(rng.normal(size=(96, 96)), 2)
>>> frames = [ndi.shift(base, (0.5 * i, -0.3 * i), mode="wrap") for i in range(4)]
>>> d = estimate_drift(frames, pixel_size_nm=0.2)
>>> [round(v, 1) for v in d.iloc[3][["dy_px", "dx_px"]]]
[1.5, -0.9]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from nanoseg.errors import NanosegError

__all__ = ["DriftTracker", "estimate_drift", "correct_positions", "shift_frame"]


def _frame_array(frame) -> np.ndarray:
    data = np.asarray(getattr(frame, "data", frame), dtype=np.float32)
    if data.ndim != 2:
        raise NanosegError(f"a frame must be a 2-D image, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise NanosegError("a frame contains NaN/inf values", hint="fix or drop the bad frame")
    return data


class DriftTracker:
    """Streaming drift estimation: feed frames one at a time with :meth:`update`.

    Holds only the last ``window`` aligned (binned) frames, so memory does not grow with the movie.
    ``state()`` / ``from_state()`` let a resumed run continue exactly where it stopped.

    Parameters
    ----------
    upsample : sub-pixel precision is 1/upsample px (of the binned frame).
    window : frames in the running median reference.
    highpass_sigma_px : Gaussian σ (full-resolution px) of the background removed before correlation.
    lowpass_sigma_px : Gaussian σ (px of the binned frame) of the blur before correlation (0, the default:
        none). A camera whose pixel-gain pattern is fixed (a stale gain reference) pulls every match toward zero
        shift; 2.5 px leaves that pattern's fine detail out (a white pattern of 0.8× the specimen's contrast:
        drift error from 4 px to 0.1 px) at the price of precision on clean frames (0.1 → 0.3 px on a rendered
        movie).
    max_size_px : frames larger than this are block-averaged before correlation.
    min_peak_ratio : a match whose phase-correlation peak is below this many standard deviations of the
        correlation map (pure noise: ≈ 4–5) is not trusted; the frame keeps the previous drift. ``last_peak_ratio``
        and ``n_unreliable`` report it.
    """

    def __init__(self, *, upsample: int = 10, window: int = 5, highpass_sigma_px: float = 20.0,
                 max_size_px: int = 1024, min_peak_ratio: float = 7.0, lowpass_sigma_px: float = 0.0):
        if upsample < 1 or window < 1 or max_size_px < 32 or highpass_sigma_px <= 0 or not (
                0 <= lowpass_sigma_px < highpass_sigma_px):
            raise NanosegError("drift parameters out of range",
                               hint="upsample ≥ 1, window ≥ 1, max_size_px ≥ 32, highpass_sigma_px > 0, "
                                    "0 ≤ lowpass_sigma_px < highpass_sigma_px")
        self.lowpass_sigma_px = float(lowpass_sigma_px)
        self.upsample = int(upsample)
        self.window = int(window)
        self.highpass_sigma_px = float(highpass_sigma_px)
        self.max_size_px = int(max_size_px)
        self.recent: deque[np.ndarray] = deque(maxlen=self.window)
        self.shape: tuple[int, int] | None = None
        self.bin = 1
        self._hann: np.ndarray | None = None
        self.last = np.zeros(2)
        self.min_peak_ratio = float(min_peak_ratio)
        self.last_peak_ratio = float("nan")
        self.n_unreliable = 0

    def _prepare(self, data: np.ndarray) -> np.ndarray:
        if self.shape is None:
            self.shape = data.shape
            self.bin = max(1, int(np.ceil(max(data.shape) / self.max_size_px)))
        elif data.shape != self.shape:
            raise NanosegError(f"frame shape {data.shape} differs from the first frame's {self.shape}",
                               hint="all frames of a movie must have the same size")
        b = self.bin
        if b > 1:
            h, w = (data.shape[0] // b) * b, (data.shape[1] // b) * b
            data = data[:h, :w].reshape(h // b, b, w // b, b).mean(axis=(1, 3))
        data = data - data.mean()
        data = data / max(float(data.std()), 1e-12)
        if self._hann is None or self._hann.shape != data.shape:
            h, w = data.shape
            self._hann = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
            ky, kx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
            sigma = self.highpass_sigma_px / b
            # 1 − Gaussian low-pass: removes illumination gradients slower than ~sigma px
            self._highpass = 1.0 - np.exp(-2 * (np.pi * sigma) ** 2 * (ky**2 + kx**2))
            # × a Gaussian blur: the white fixed pattern of the camera's pixel gains carries no drift
            self._highpass = self._highpass * np.exp(-2 * (np.pi * self.lowpass_sigma_px) ** 2 * (ky**2 + kx**2))
            self._ky, self._kx = ky, kx
        return data.astype(np.float32)

    def _shifted(self, spectrum: np.ndarray, shift_px: np.ndarray) -> np.ndarray:
        ramp = np.exp(-2j * np.pi * (self._ky * shift_px[0] + self._kx * shift_px[1]))
        return np.fft.ifft2(spectrum * ramp).real.astype(np.float32)

    def _spectrum_for_correlation(self, image: np.ndarray) -> np.ndarray:
        return np.fft.fft2(image * self._hann) * self._highpass

    def update(self, frame) -> tuple[float, float]:
        """Register one frame; return its drift ``(dy_px, dx_px)`` relative to the first frame."""
        from skimage.registration import phase_cross_correlation

        data = self._prepare(_frame_array(frame))
        spectrum = np.fft.fft2(data)
        if not self.recent:
            drift = np.zeros(2)
            self.last_peak_ratio = float("inf")
        else:
            reference = np.median(np.stack(self.recent), axis=0) if len(self.recent) > 2 else self.recent[-1]
            # the moving frame is pre-shifted by the last drift, so only the increment is measured
            moving = self._shifted(spectrum, -self.last / self.bin)
            ref_f, mov_f = self._spectrum_for_correlation(reference), self._spectrum_for_correlation(moving)
            # match quality: peak of the phase correlation over its spread (pure noise gives ≈ 4–5)
            cross = ref_f * np.conj(mov_f)
            phase = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)).real
            self.last_peak_ratio = float((phase.max() - phase.mean()) / max(phase.std(), 1e-12))
            if self.last_peak_ratio < self.min_peak_ratio:
                drift = self.last.copy()  # no trustworthy match (blank or pure-noise frame): keep the last drift
                self.n_unreliable += 1
            else:
                shift, _, _ = phase_cross_correlation(ref_f, mov_f, upsample_factor=self.upsample,
                                                      normalization=None, space="fourier")
                drift = self.last - np.asarray(shift) * self.bin
        self.recent.append(self._shifted(spectrum, -drift / self.bin))
        self.last = drift
        return float(drift[0]), float(drift[1])

    def state(self) -> dict:
        """Everything needed to resume (arrays and numbers; save with ``np.savez``)."""
        return {"recent": np.stack(self.recent) if self.recent else np.zeros((0, 1, 1), np.float32),
                "last": self.last, "shape": np.asarray(self.shape or (0, 0)), "bin": self.bin,
                "params": np.asarray([self.upsample, self.window, self.highpass_sigma_px, self.max_size_px,
                                      self.min_peak_ratio, self.lowpass_sigma_px])}

    @classmethod
    def from_state(cls, state) -> DriftTracker:
        p = np.asarray(state["params"])
        tracker = cls(upsample=int(p[0]), window=int(p[1]), highpass_sigma_px=float(p[2]), max_size_px=int(p[3]),
                      min_peak_ratio=float(p[4]) if len(p) > 4 else 7.0,
                      lowpass_sigma_px=float(p[5]) if len(p) > 5 else 0.0)
        shape = tuple(int(v) for v in np.asarray(state["shape"]))
        tracker.shape = shape if shape != (0, 0) else None
        tracker.bin = int(state["bin"])
        tracker.last = np.asarray(state["last"], dtype=float)
        for frame in np.asarray(state["recent"]):
            if frame.size > 1:
                tracker.recent.append(frame)
        return tracker


def estimate_drift(frames: Iterable, *, pixel_size_nm: float | None = None, upsample: int = 10, window: int = 5,
                   highpass_sigma_px: float = 20.0, max_size_px: int = 1024, progress: bool = False) -> pd.DataFrame:
    """Estimate the drift of every frame relative to the first.

    Parameters
    ----------
    frames : a :class:`nanoseg.io.Series`, a 3-D array, or any iterable of 2-D arrays / Micrographs
        (consumed one at a time).
    pixel_size_nm : nm per pixel (adds ``dy_nm, dx_nm``; taken from the frames' Micrograph when None).
    upsample, window, highpass_sigma_px, max_size_px : see :class:`DriftTracker`.
    progress : show a progress bar.

    Returns
    -------
    DataFrame ``frame, dy_px, dx_px, peak_ratio`` (+ ``dy_nm, dx_nm`` when the pixel size is known);
    ``peak_ratio`` below ``min_peak_ratio`` (7) marks frames whose drift was carried over, not measured.
    """
    from nanoseg._util import progress_iter

    tracker = DriftTracker(upsample=upsample, window=window, highpass_sigma_px=highpass_sigma_px,
                           max_size_px=max_size_px)
    rows = []
    total = len(frames) if hasattr(frames, "__len__") else None
    for i, frame in enumerate(progress_iter(frames, "estimating drift", total=total, enabled=progress)):
        if pixel_size_nm is None and getattr(frame, "pixel_size_nm", None) is not None:
            pixel_size_nm = frame.pixel_size_nm
        rows.append((i, *tracker.update(frame), tracker.last_peak_ratio))
    if not rows:
        raise NanosegError("the movie has no frames")
    table = pd.DataFrame(rows, columns=["frame", "dy_px", "dx_px", "peak_ratio"])
    if pixel_size_nm is not None:
        table["dy_nm"] = table["dy_px"] * float(pixel_size_nm)
        table["dx_nm"] = table["dx_px"] * float(pixel_size_nm)
    return table


def correct_positions(table: pd.DataFrame, drift: pd.DataFrame, *, pixel_size_nm: float | None = None
                      ) -> pd.DataFrame:
    """Subtract the per-frame drift from particle positions (adds ``y_corr_nm, x_corr_nm``).

    ``table`` needs ``frame, y_nm, x_nm``; ``drift`` needs ``frame`` and ``dy_nm, dx_nm`` (or ``dy_px, dx_px``
    with ``pixel_size_nm``). The result is in frame-0 (sample) coordinates.

    >>> t = pd.DataFrame({"frame": [0, 1], "y_nm": [1.0, 2.0], "x_nm": [1.0, 1.0]})
    >>> d = pd.DataFrame({"frame": [0, 1], "dy_nm": [0.0, 1.0], "dx_nm": [0.0, 0.0]})
    >>> correct_positions(t, d)[["y_corr_nm", "x_corr_nm"]].values.tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    for col in ("frame", "y_nm", "x_nm"):
        if col not in table.columns:
            raise NanosegError(f"particle table lacks column {col!r}")
    d = drift.copy()
    if "dy_nm" not in d.columns:
        if pixel_size_nm is None:
            raise NanosegError("drift is in pixels; pass pixel_size_nm to convert it")
        d["dy_nm"], d["dx_nm"] = d["dy_px"] * pixel_size_nm, d["dx_px"] * pixel_size_nm
    merged = table.merge(d[["frame", "dy_nm", "dx_nm"]], on="frame", how="left")
    if merged["dy_nm"].isna().any():
        missing = sorted(set(merged.loc[merged["dy_nm"].isna(), "frame"]))[:5]
        raise NanosegError(f"no drift for frames {missing}", hint="estimate the drift on the same movie")
    out = table.copy()
    out["y_corr_nm"] = (merged["y_nm"] - merged["dy_nm"]).to_numpy()
    out["x_corr_nm"] = (merged["x_nm"] - merged["dx_nm"]).to_numpy()
    return out


def shift_frame(frame, dy_px: float, dx_px: float) -> np.ndarray:
    """Undo a drift on an image: shift it by ``(-dy_px, -dx_px)`` (cubic spline, edges repeated)."""
    return ndi.shift(_frame_array(frame), (-dy_px, -dx_px), order=3, mode="nearest")
