"""The two data objects every module speaks: :class:`Micrograph` and :class:`Series`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nanoseg.errors import NanosegError


@dataclass
class Micrograph:
    """One 2-D image with its physical calibration.

    Parameters
    ----------
    data : 2-D float32 array (rows, cols).
    pixel_size_nm : size of one pixel in nm, or None when the file carries no calibration.
    dose_e_per_A2 : electron dose in e/Å², or None when unknown.
    metadata : free-form acquisition metadata (voltage_kV, magnification, exposure_s, time_s, ...).
    source : where the image came from (a path, or a description such as ``"simulated"``).

    Example
    -------
    >>> import numpy as np
    >>> m = Micrograph(np.zeros((4, 4)), pixel_size_nm=0.02)
    >>> m.shape, m.data.dtype, m.field_of_view_nm
    ((4, 4), dtype('float32'), (0.08, 0.08))
    """

    data: np.ndarray
    pixel_size_nm: float | None = None
    dose_e_per_A2: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        array = np.asarray(self.data)
        if array.ndim != 2:
            raise NanosegError(
                f"expected a 2-D image, got an array of shape {array.shape}",
                path=self.source,
                hint="pick one frame of a stack, or read it with nanoseg.io.read_series",
            )
        if array.size == 0:
            raise NanosegError("the image is empty (0 pixels)", path=self.source)
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise NanosegError(f"image data must be real numbers, got dtype {array.dtype}", path=self.source)
        self.data = np.ascontiguousarray(array, dtype=np.float32)
        if self.pixel_size_nm is not None:
            self.pixel_size_nm = float(self.pixel_size_nm)
            if not np.isfinite(self.pixel_size_nm) or self.pixel_size_nm <= 0:
                raise NanosegError(
                    f"pixel size must be a positive number of nm, got {self.pixel_size_nm}",
                    path=self.source,
                )
        if self.dose_e_per_A2 is not None:
            self.dose_e_per_A2 = float(self.dose_e_per_A2)
            if not np.isfinite(self.dose_e_per_A2) or self.dose_e_per_A2 <= 0:
                raise NanosegError(
                    f"dose must be a positive number of e/Å², got {self.dose_e_per_A2}", path=self.source
                )

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def field_of_view_nm(self) -> tuple[float, float] | None:
        if self.pixel_size_nm is None:
            return None
        return (round(self.shape[0] * self.pixel_size_nm, 9), round(self.shape[1] * self.pixel_size_nm, 9))

    def check_finite(self) -> Micrograph:
        """Raise a clear error if the image holds NaN or infinite values; return self.

        >>> Micrograph(np.ones((2, 2))).check_finite().shape
        (2, 2)
        """
        bad = ~np.isfinite(self.data)
        if bad.any():
            raise NanosegError(
                f"image contains {int(bad.sum())} NaN/inf pixels of {bad.size}",
                path=self.source,
                hint="the file may be corrupt; re-export it or mask the bad pixels",
            )
        return self

    def with_data(self, data: np.ndarray, **changes: Any) -> Micrograph:
        """A copy with new pixel data (and optionally other fields changed), metadata copied."""
        return replace(self, data=data, metadata=dict(self.metadata), **changes)


class Series(Sequence):
    """An ordered movie: frames with per-frame timestamps in seconds.

    Frames may be held in memory (a 3-D array or a list of :class:`Micrograph`) or loaded lazily
    through ``loader(i)`` so that movies of thousands of 4k frames never sit in memory at once.

    Example
    -------
    >>> import numpy as np
    >>> s = Series.from_array(np.zeros((3, 8, 8)), times_s=[0.0, 0.1, 0.2], pixel_size_nm=0.18)
    >>> len(s), s[1].metadata["time_s"], s.frame_interval_s
    (3, 0.1, 0.1)
    """

    #: how the timestamps were found ("metadata", "filename", "interval", "index", "single"), set by readers
    timing: str | None = None
    #: the frame files in time order, when the series was read from a list of files
    paths: list | None = None

    def __init__(
        self,
        loader: Callable[[int], Micrograph],
        times_s: Sequence[float],
        *,
        source: str | None = None,
    ):
        self._loader = loader
        self.times_s = np.asarray(times_s, dtype=float)
        self.source = source
        if self.times_s.ndim != 1:
            raise NanosegError("timestamps must be a 1-D list of seconds", path=source)
        if len(self.times_s) > 1 and np.any(np.diff(self.times_s) < 0):
            raise NanosegError("frame timestamps must not decrease", path=source, hint="sort the frames by time")

    @classmethod
    def from_array(
        cls,
        frames: np.ndarray,
        *,
        times_s: Sequence[float] | None = None,
        frame_interval_s: float | None = None,
        pixel_size_nm: float | None = None,
        dose_e_per_A2: float | None = None,
        source: str | None = None,
    ) -> Series:
        stack = np.asarray(frames)
        if stack.ndim != 3:
            raise NanosegError(f"a movie must be a 3-D stack (frames, rows, cols), got shape {stack.shape}", path=source)
        # the timing is recorded, so that an analysis can say when its time axis is an assumption
        timing = "metadata" if times_s is not None else ("interval" if frame_interval_s is not None else "index")
        if times_s is None:
            interval = 1.0 if frame_interval_s is None else float(frame_interval_s)
            times_s = np.arange(stack.shape[0]) * interval
        if len(times_s) != stack.shape[0]:
            raise NanosegError(f"{stack.shape[0]} frames but {len(times_s)} timestamps", path=source)
        times = np.asarray(times_s, dtype=float)

        def load(i: int) -> Micrograph:
            return Micrograph(
                stack[i],
                pixel_size_nm=pixel_size_nm,
                dose_e_per_A2=dose_e_per_A2,
                metadata={"time_s": float(times[i]), "frame_index": i},
                source=source,
            )

        series = cls(load, times, source=source)
        series.timing = timing
        return series

    @classmethod
    def from_micrographs(cls, frames: Sequence[Micrograph], times_s: Sequence[float] | None = None) -> Series:
        frames = list(frames)
        if times_s is None:
            times_s = [float(f.metadata.get("time_s", i)) for i, f in enumerate(frames)]
        return cls(lambda i: frames[i], times_s, source=frames[0].source if frames else None)

    def __len__(self) -> int:
        return len(self.times_s)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        frame = self._loader(index)
        frame.metadata.setdefault("time_s", float(self.times_s[index]))
        frame.metadata.setdefault("frame_index", index)
        return frame

    def __iter__(self) -> Iterator[Micrograph]:
        for i in range(len(self)):
            yield self[i]

    @property
    def frame_interval_s(self) -> float | None:
        if len(self) < 2:
            return None
        return float(np.round(np.median(np.diff(self.times_s)), 9))
