"""Simulate labelled HRTEM images and write datasets (in parallel on Dask, resumable).

:func:`simulate_image` runs one image end to end:

1. draw the parameters from the spec with ``numpy.random.default_rng(seed)``;
2. build the particles (ASE), place them without overlap, build the support film;
3. abTEM multislice at a sampling ``s = pixel / k ≤ sampling_A`` (k integer), the objective lens CTF
   with partial coherence, image intensity at that sampling;
4. the camera (:func:`nanoseg.simulate.detector.apply_detector`): Poisson counts on the fine grid, the
   scintillator PSF, each camera pixel integrating its ``k × k`` cells, gain and read noise;
5. labels from each particle's own projected footprint (:mod:`nanoseg.simulate.labels`).

:func:`generate_dataset` runs many on a Dask cluster and writes them from the client process with
:class:`nanoseg.datasets.DatasetWriter`; a rerun skips the ids already written.

Example
-------
>>> cfg = SimulationConfig(image_size_px=64, pixel_size_nm=0.05, diameter_nm=1.5, support_thickness_nm=1.0)
>>> sim = simulate_image(cfg, seed=3)
>>> sim.micrograph.shape, sim.mask.dtype.name, int(sim.instances.max())
((64, 64), 'uint8', 1)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from nanoseg.errors import NanosegError
from nanoseg.simulate.config import SimulationConfig, load_config
from nanoseg.simulate.optics import exit_wave, image_intensity
from nanoseg.simulate.stages import (  # re-exported: their home before the split
    SimulatedImage,
    build_specimen,
    camera_stage,
)


def image_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` of a dataset generated with ``seed`` (independent streams).

    >>> image_seed(0, 1) != image_seed(0, 2) and image_seed(0, 1) == image_seed(0, 1)
    True
    """
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _oversampling(pixel_A: float, sampling_A: float) -> int:
    """Simulation samples per camera pixel side: the smallest integer k with pixel / k ≤ sampling."""
    return max(1, int(math.ceil(pixel_A / sampling_A - 1e-9)))


def fft_grid_key(config: SimulationConfig, seed: int) -> tuple:
    """What decides the FFT sizes of image ``seed`` (its drawn size and sampling), without simulating it.

    >>> cfg = SimulationConfig(image_size_px=64, pixel_size_nm=0.05, diameter_nm=2.0)
    >>> fft_grid_key(cfg, 1)   # 0.5 Å pixels at ≤ 0.2 Å sampling: 3 samples per pixel, 64 × 3
    ('multislice', 192)
    """
    params = config.draw(np.random.default_rng(int(seed)))
    if config.modality == "haadf_stem":  # no FFT plans of its own
        return ("haadf_stem",)
    if config.modality == "bf_tem":  # numpy FFTs only (no abTEM plans)
        return ("bf_tem",)
    if config.mode == "composite":
        return ("composite", int(params["image_size_px"]), round(float(params["pixel_size_nm"]), 6))
    k = _oversampling(10.0 * params["pixel_size_nm"], config.sampling_A)
    return ("multislice", int(params["image_size_px"]) * k)


def simulate_image(config: SimulationConfig | dict | str | os.PathLike, seed: int) -> SimulatedImage:
    """Simulate one labelled HRTEM image from a spec (deterministic in ``seed``).

    Returns a :class:`SimulatedImage` whose micrograph holds electrons per pixel (float32, not
    normalised), with a uint8 mask, int32 instance labels and a metadata dict (see docs/simulation.md).
    """
    config = load_config(config)
    if config.modality == "haadf_stem":
        from nanoseg.simulate.stem import simulate_haadf

        return simulate_haadf(config, seed)
    if config.modality == "bf_tem":
        from nanoseg.simulate.bftem import simulate_bf_image

        return simulate_bf_image(config, seed)
    if config.mode == "composite":
        from nanoseg.simulate.wide import simulate_wide_field

        return simulate_wide_field(config, seed)
    rng = np.random.default_rng(int(seed))
    params = config.draw(rng)
    pixel_A = 10.0 * params["pixel_size_nm"]
    n_px = int(params["image_size_px"])
    k = _oversampling(pixel_A, config.sampling_A)
    sampling = pixel_A / k
    extent = (n_px * pixel_A, n_px * pixel_A)
    support, particles = build_specimen(params, extent, rng, support_density_g_cm3=config.support_density_g_cm3,
                                        support_min_distance_A=config.support_min_distance_A)
    specimen = support.copy()
    for particle in particles:
        specimen += particle
    # abTEM samples the wave at x = i·s; shifting the specimen by −s/2 makes sample i stand for (i + ½)·s, so
    # camera pixel j (samples jk … jk+k−1) covers exactly [j·P, (j+1)·P) for every k (labels use the same)
    specimen.positions[:, :2] -= sampling / 2
    energy = 1e3 * params["voltage_kV"]
    wave = exit_wave(specimen, extent_A=extent, gpts=(n_px * k, n_px * k), energy_eV=energy,
                     slice_thickness_A=config.slice_thickness_A, frozen_phonons=config.frozen_phonons,
                     seed=int(rng.integers(2**31)))
    intensity = image_intensity(
        wave, sampling_A=sampling, energy_eV=energy, defocus_nm=params["defocus_nm"], Cs_um=params["Cs_um"],
        C5_mm=params["C5_mm"], astigmatism_nm=params["astigmatism_nm"],
        astigmatism_angle_rad=float(rng.uniform(0, np.pi)), focal_spread_nm=params["focal_spread_nm"],
        convergence_mrad=params["convergence_mrad"], aperture_mrad=params["aperture_mrad"])
    # the camera records the intensity at the simulation sampling: its PSF acts before the pixels integrate
    # (binning first would alias the intensity's detail beyond the camera's Nyquist frequency into the image)
    intensity = np.clip(intensity, 0, None)
    return camera_stage(intensity, params=params, config=config, particles=particles, seed=seed, rng=rng,
                        n_px=n_px, pixel_A=pixel_A, oversampling=k,
                        extra_meta={"sampling_A": sampling, "slice_thickness_A": config.slice_thickness_A})


def _simulate_for_dataset(config_dict: dict, image_id: str, seed: int, fft_wisdom: str | None = None):
    """Worker task: simulate and return plain arrays (picklable).

    abTEM computes through dask internally; inside a distributed worker that would ship every small
    abTEM task through the scheduler, so the task runs dask synchronously. ``fft_wisdom`` (from the client)
    makes every worker use the client's FFT plans, so images are bit-identical on any number of workers.
    """
    import dask

    from nanoseg.simulate.fftplans import import_wisdom

    import_wisdom(fft_wisdom)
    with dask.config.set(scheduler="synchronous"):
        sim = simulate_image(SimulationConfig.model_validate(config_dict), seed)
    return image_id, sim.micrograph.data, sim.mask, sim.instances, {"id": image_id, **sim.meta}


def _first_of_each_grid(config: SimulationConfig, todo: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The first image of every distinct FFT grid in ``todo`` (simulated in the client to plan the FFTs)."""
    firsts: dict[tuple, tuple[str, int]] = {}
    for image_id, s in todo:
        firsts.setdefault(fft_grid_key(config, s), (image_id, s))
    return list(firsts.values())


def generate_dataset(config_or_path: SimulationConfig | dict | str | os.PathLike, out_dir: str | os.PathLike, *,
                     n_images: int, seed: int = 0, scheduler: str | None = None, n_workers: int | None = None,
                     progress: bool = True) -> Path:
    """Generate ``n_images`` labelled images into a dataset directory (resumable).

    Parameters
    ----------
    config_or_path : a :class:`SimulationConfig`, a dict, or a YAML spec path.
    out_dir : dataset directory (``nanoseg.datasets`` format); existing images are kept and skipped.
    n_images : number of images; ids are ``{name}-{i:06d}`` and image ``i`` uses seed ``image_seed(seed, i)``,
        so a dataset is the same whether generated at once, resumed, or on any number of workers.
    seed : dataset seed.
    scheduler : address of a running Dask scheduler (``tcp://host:8786``) to scale out; None starts a
        ``LocalCluster``.
    n_workers : LocalCluster worker processes (default: CPU count, at most 8); 0 runs in this process
        without Dask.
    progress : show a progress bar.

    Example
    -------
    >>> # generate_dataset("examples/simulate/au_5nm.yaml", "data/au5", n_images=100)
    """
    from nanoseg._util import BatchReport, progress_iter
    from nanoseg.datasets import DatasetWriter

    config = load_config(config_or_path)
    if n_images < 0:
        raise NanosegError(f"n_images must be ≥ 0, got {n_images}")
    out = Path(out_dir)
    info = {"kind": "simulated", "spec": config.model_dump(mode="json"), "seed": int(seed)}
    writer = DatasetWriter(out, info=info, flush_every=8)
    todo = [(f"{config.name}-{i:06d}", image_seed(seed, i)) for i in range(n_images)]
    todo = [(image_id, s) for image_id, s in todo if not writer.has(image_id)]
    config_dict = config.model_dump(mode="json")
    report = BatchReport()
    try:
        if not todo:
            return out
        if n_workers == 0 and scheduler is None:
            for image_id, s in progress_iter(todo, f"simulating {config.name}", enabled=progress):
                with report.item(image_id):
                    _, image, mask, instances, meta = _simulate_for_dataset(config_dict, image_id, s)
                    writer.add(image_id, image, mask, meta, instances=instances)
            return out
        from dask.distributed import Client, as_completed

        from nanoseg._util import local_cluster

        cluster = None
        if scheduler is None:
            workers = n_workers or min(8, os.cpu_count() or 1)
            cluster = local_cluster(workers)
            client = Client(cluster)
        else:
            client = Client(scheduler)
        try:
            # plan every FFT grid here first (simulating, and writing, the first image of each grid), then
            # ship the plans: workers never plan on their own, so they all compute the same bits
            from nanoseg.simulate.fftplans import export_wisdom

            firsts = _first_of_each_grid(config, todo)
            for image_id, s in progress_iter(firsts, "planning FFTs (first image of each grid)",
                                             enabled=progress):
                with report.item(image_id):
                    _, image, mask, instances, meta = _simulate_for_dataset(config_dict, image_id, s)
                    writer.add(image_id, image, mask, meta, instances=instances)
            planned = {image_id for image_id, _ in firsts}
            todo = [(image_id, s) for image_id, s in todo if image_id not in planned]
            wisdom = export_wisdom()
            window = max(4, 4 * len(client.scheduler_info().get("workers", {})) or 4)
            pending = iter(todo)
            futures = as_completed()
            submitted: dict[str, str] = {}

            def submit(image_id: str, image_seed_: int) -> None:
                future = client.submit(_simulate_for_dataset, config_dict, image_id, image_seed_, wisdom,
                                       pure=False)
                submitted[future.key] = image_id
                futures.add(future)

            for image_id, s in [next(pending) for _ in range(min(window, len(todo)))]:
                submit(image_id, s)
            for future in progress_iter(futures, f"simulating {config.name}", total=len(todo), enabled=progress):
                with report.item(submitted[future.key]):
                    image_id, image, mask, instances, meta = future.result()
                    writer.add(image_id, image, mask, meta, instances=instances)
                future.release()
                nxt = next(pending, None)
                if nxt is not None:
                    submit(*nxt)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    finally:
        writer.close()
        if report.failed:
            # user-level failures (e.g. particles that cannot be placed) are skipped and reported, not fatal
            import warnings

            warnings.warn("some simulated images failed and were skipped:\n" + report.summary(), stacklevel=2)
    return out
