"""The dock widgets: "Segment particles" and "Track movie".

Each panel is a magicgui container (made when napari asks for the widget, so this module imports without
napari) driven by a small controller class. "Run" starts a napari ``thread_worker``: the model, the
prediction and the tracking run off the GUI thread, report progress in napari's activity dock, and the layers
are added when the worker returns. A bad input (no pixel size, an untimed movie without a frame interval, a
missing model) ends the worker with its one-line :class:`nanoseg.errors.NanosegError`, shown in the panel's
status line and as a napari notification.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from nanoseg.napari._compute import (
    FIT_COLUMNS,
    SHOWN_COLUMNS,
    layer_pixel_size_nm,
    movie_series,
    resolve_pixel_size_nm,
    segment_layers,
    shown_table,
    track_layers,
)

#: frames per :func:`nanoseg.insitu.track_movie` call: the progress (and cancel) granularity of tracking
TRACK_STEP_FRAMES = 4


class SegmentWidget:
    """npe2 widget "Segment particles": ``SegmentWidget(viewer)`` is the panel's magicgui container.

    napari makes a dock widget by calling the contributed class with the viewer (it looks for a
    ``napari_viewer`` parameter of ``__init__``); ``__new__`` hands back the container of a
    :class:`SegmentPanel`, so the Qt/magicgui imports happen only then.
    """

    def __new__(cls, napari_viewer):
        return SegmentPanel(napari_viewer).container

    def __init__(self, napari_viewer):  # never runs (``__new__`` returns the container); napari reads its signature
        raise AssertionError("unreachable")


class TrackWidget:
    """npe2 widget "Track movie": ``TrackWidget(viewer)`` is the :class:`TrackPanel`'s container (see SegmentWidget)."""

    def __new__(cls, napari_viewer):
        return TrackPanel(napari_viewer).container

    def __init__(self, napari_viewer):
        raise AssertionError("unreachable")


def _image_layers(viewer, ndim: int | None = None) -> list[str]:
    from napari.layers import Image

    return [layer.name for layer in viewer.layers
            if isinstance(layer, Image) and (ndim is None or layer.ndim == ndim)]


def _model_spec(text: str):
    """The model field: empty or "default" → the shipped default model, else a checkpoint path."""
    text = text.strip()
    return None if text in ("", "default") else text


def _override(value: float) -> float | None:
    """A 0 in a numeric override field means "not given"."""
    return float(value) if value and value > 0 else None


class _Panel:
    """What both panels share: the layer choice, the status line, the worker and its error reporting."""

    ndim: int | None = None

    def __init__(self, viewer):
        self.viewer = viewer
        self.worker = None
        self.error: str | None = None

    def _layer_choice(self):
        from magicgui.widgets import ComboBox

        combo = ComboBox(label="image", choices=lambda _w: _image_layers(self.viewer, self.ndim))
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(lambda _e: combo.reset_choices())
        return combo

    def _layer(self):
        name = self.layer.value
        if not name or name not in self.viewer.layers:
            from nanoseg.errors import NanosegError

            raise NanosegError("no image layer chosen", hint="open a micrograph (File > Open) or a sample first")
        return self.viewer.layers[name]

    def _clicked(self, _value=None) -> None:
        """The Run button: a bad input found before the worker starts is reported like one found in it."""
        from nanoseg.errors import NanosegError

        try:
            self.run()
        except NanosegError as exc:
            self._failed(exc)

    def _start(self, worker):
        self.error = None
        self.status.value = "running…"
        self.run_button.enabled = False
        worker.returned.connect(self._done)
        worker.errored.connect(self._failed)
        worker.finished.connect(lambda: setattr(self.run_button, "enabled", True))
        self.worker = worker
        worker.start()
        return worker

    def _failed(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        from nanoseg.errors import NanosegError

        self.error = str(exc) if isinstance(exc, NanosegError) else f"{type(exc).__name__}: {exc}"
        self.status.value = self.error
        show_error(self.error)

    def _add_layers(self, tuples) -> list:
        added = []
        for data, kwargs, kind in tuples:
            name = kwargs.get("name")
            if name in self.viewer.layers:  # a rerun replaces its own earlier result
                self.viewer.layers.remove(name)
            added.append(getattr(self.viewer, f"add_{kind}")(data, **kwargs))
        return added


class SegmentPanel(_Panel):
    """The "Segment particles" controller: model, threshold, TTA, pixel-size override → layers + table."""

    def __init__(self, viewer):
        from magicgui.widgets import CheckBox, Container, FloatSpinBox, LineEdit, PushButton, Table, TextEdit

        super().__init__(viewer)
        self.layer = self._layer_choice()
        self.model = LineEdit(label="model", value="default", tooltip="'default' or a checkpoint folder / .nanoseg")
        self.threshold = FloatSpinBox(label="threshold", value=0.5, min=0.01, max=0.99, step=0.05)
        self.tta = CheckBox(label="TTA (8 views, adds diameter_std_nm)", value=False)
        self.pixel_size = FloatSpinBox(label="pixel size (nm)", value=0.0, min=0.0, max=100.0, step=0.001,
                                       tooltip="0: the image's own calibration")
        self.min_diameter = FloatSpinBox(label="min diameter (nm)", value=0.5, min=0.0, max=100.0, step=0.1)
        self.run_button = PushButton(text="Segment particles")
        self.status = TextEdit(value="", label="result")
        self.status.native.setReadOnly(True)
        self.table = Table(value={c: [] for c in SHOWN_COLUMNS[:3]})
        self.container = Container(widgets=[self.layer, self.model, self.threshold, self.tta, self.pixel_size,
                                            self.min_diameter, self.run_button, self.status, self.table])
        self.container._nanoseg_panel = self  # keep the controller alive with its widget
        self.engine = "auto"  # inference engine; tests use a fixed one
        self.run_button.changed.connect(self._clicked)
        self.result = None

    def run(self):
        """Segment the chosen layer (the displayed frame of a movie) in a worker thread; returns the worker."""
        from napari.qt.threading import thread_worker

        layer = self._layer()
        image = layer.data
        frame = None
        if layer.ndim == 3:
            frame = int(self.viewer.dims.current_step[0])
            image = image[frame]
        px = resolve_pixel_size_nm(layer_pixel_size_nm(layer), _override(self.pixel_size.value), name=layer.name,
                                   allow_estimate=True)
        options = {"pixel_size_nm": px, "models": _model_spec(self.model.value), "threshold": self.threshold.value,
                   "tta": self.tta.value, "min_diameter_nm": self.min_diameter.value, "engine": self.engine,
                   "name": layer.name if frame is None else f"{layer.name} frame {frame}",
                   "scale_translate": tuple(layer.translate[-2:])}

        @thread_worker(progress={"total": 2, "desc": "nanoseg: segmenting"})
        def work():
            import numpy as np

            from nanoseg.infer import resolve_models

            options["models"] = resolve_models(options["models"])
            yield 1
            result = segment_layers(np.asarray(image), **options)
            yield 2
            return result

        return self._start(work(_ignore_errors=True))  # errors go to _failed, not re-raised

    def _done(self, result) -> None:
        self.result = result
        self._add_layers(result.layers)
        self.table.value = shown_table(result.table, SHOWN_COLUMNS)
        self.status.value = result.summary


class TrackPanel(_Panel):
    """The "Track movie" controller: a 3-D layer → a Tracks layer, coalescence points, kinetics fits."""

    ndim = 3

    def __init__(self, viewer):
        from magicgui.widgets import (
            Container,
            FileEdit,
            FloatSpinBox,
            LineEdit,
            PushButton,
            SpinBox,
            Table,
            TextEdit,
        )

        super().__init__(viewer)
        self.layer = self._layer_choice()
        self.model = LineEdit(label="model", value="default")
        self.threshold = FloatSpinBox(label="threshold", value=0.5, min=0.01, max=0.99, step=0.05)
        self.pixel_size = FloatSpinBox(label="pixel size (nm)", value=0.0, min=0.0, max=100.0, step=0.001,
                                       tooltip="0: the movie's own calibration")
        self.frame_interval = FloatSpinBox(label="frame interval (s)", value=0.0, min=0.0, max=1e6, step=0.1,
                                           tooltip="0: the movie's timestamps (required when it has none)")
        self.min_diameter = FloatSpinBox(label="min diameter (nm)", value=0.5, min=0.0, max=100.0, step=0.1)
        self.search_range = FloatSpinBox(label="search range (nm)", value=1.0, min=0.01, max=100.0, step=0.1)
        self.memory = SpinBox(label="memory (frames)", value=2, min=0, max=50)
        self.out_dir = FileEdit(label="output folder", mode="d", value="",
                                tooltip="empty: a new temporary folder (the run's CSV/parquet outputs)")
        self.run_button = PushButton(text="Track movie")
        self.status = TextEdit(value="", label="result")
        self.status.native.setReadOnly(True)
        self.table = Table(value={c: [] for c in FIT_COLUMNS[:3]})
        self.container = Container(widgets=[self.layer, self.model, self.threshold, self.pixel_size,
                                            self.frame_interval, self.min_diameter, self.search_range, self.memory,
                                            self.out_dir, self.run_button, self.status, self.table])
        self.container._nanoseg_panel = self
        self.engine = "auto"
        self.n_boot = 100  # bootstrap replicates of the kinetics uncertainty
        self.run_button.changed.connect(self._clicked)
        self.result = None

    def _output_folder(self) -> Path:
        text = str(self.out_dir.value or "").strip()
        if text in ("", "."):
            return Path(tempfile.mkdtemp(prefix="nanoseg-track-"))
        return Path(text)

    def run(self):
        """Track the chosen movie layer in a worker thread (progress per frame chunk); returns the worker."""
        from napari.qt.threading import thread_worker

        layer = self._layer()
        meta = (layer.metadata or {}).get("nanoseg") or {}
        px = resolve_pixel_size_nm(layer_pixel_size_nm(layer), _override(self.pixel_size.value), name=layer.name)
        series = movie_series(layer.data, pixel_size_nm=px, times_s=meta.get("times_s"),
                              frame_interval_s=_override(self.frame_interval.value), name=layer.name)
        out = self._output_folder()
        n = len(series)
        settings = {"out_dir": out, "pixel_size_nm": px, "threshold": self.threshold.value,
                    "min_diameter_nm": self.min_diameter.value, "search_range_nm": self.search_range.value,
                    "memory": int(self.memory.value), "n_boot": self.n_boot, "figures": False}
        model, engine, name = _model_spec(self.model.value), self.engine, layer.name
        translate = tuple(layer.translate[-2:])

        steps = 1 + -(-n // TRACK_STEP_FRAMES)  # the model, then one step per chunk of frames

        @thread_worker(progress={"total": steps, "desc": "nanoseg: tracking"})
        def work():
            from nanoseg.infer import predict, resolve_models
            from nanoseg.insitu import track_movie

            models = resolve_models(model)
            yield 1

            def predict_fn(frame):
                return predict(frame, models, threshold=settings["threshold"], ood=False, engine=engine)

            result, done = None, 0
            while result is None:  # resumable chunks: progress (and a chance to quit) between them
                result = track_movie(series, predict_fn, stop_after_frames=TRACK_STEP_FRAMES, **settings)
                done = min(done + TRACK_STEP_FRAMES, n)
                yield done
            return track_layers(result, translate_nm=translate, name=name), result

        return self._start(work(_ignore_errors=True))  # errors go to _failed, not re-raised

    def _done(self, value) -> None:
        layers, result = value
        self.result = result
        self._add_layers(layers.layers)
        self.table.value = shown_table(layers.fits, FIT_COLUMNS)
        self.status.value = layers.summary + f"\noutputs: {result.out_dir}"
