"""Sample data for napari: the bundled example micrograph and a small simulated coarsening movie.

Example
-------
>>> [(data, kwargs, kind)] = example_micrograph()
>>> data.shape, kwargs["scale"], kind
((256, 256), (0.02, 0.02), 'image')
>>> [(movie, kwargs, kind)] = demo_movie()
>>> movie.shape, kwargs["metadata"]["nanoseg"]["times_s"][:3]
((12, 192, 192), [0.0, 2.0, 4.0])
"""

from __future__ import annotations

from nanoseg.napari._reader import LayerDataTuple, micrograph_layer, scale_kwargs

#: the demo movie: small enough to track in seconds on a laptop CPU, with migration and coalescence (seeded, so
#: always the same frames; see docs/napari.md for what the Track widget found on it)
DEMO_MOVIE = {"n_frames": 12, "shape_px": (192, 192), "pixel_size_nm": 0.08, "n_particles": 14,
              "mode": "coalescence", "frame_interval_s": 2.0, "seed": 1}


def example_micrograph() -> list[LayerDataTuple]:
    """The example micrograph shipped with nanoseg (256², 0.02 nm/px, three Au particles)."""
    from nanoseg.io import example_micrograph as load

    return [micrograph_layer(load(), name="nanoseg example")]


def demo_movie() -> list[LayerDataTuple]:
    """A simulated coarsening movie (:data:`DEMO_MOVIE`): frames, pixel size and frame times known."""
    import numpy as np

    from nanoseg.simulate.movie import simulate_coarsening_movie

    movie = simulate_coarsening_movie(**DEMO_MOVIE)
    series = movie.series()
    frames = np.stack([frame.data for frame in series])
    px = DEMO_MOVIE["pixel_size_nm"]
    meta = {"pixel_size_nm": px, "source": "nanoseg demo movie (simulated)", "timing": "simulated",
            "times_s": [float(t) for t in series.times_s], "simulation": dict(DEMO_MOVIE)}
    kwargs = {"name": "nanoseg demo movie", **scale_kwargs(px, ndim=3), "metadata": {"nanoseg": meta}}
    return [(frames, kwargs, "image")]
