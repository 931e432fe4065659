"""Benchmark: seconds per 512² labelled image (5 nm Au on 3 nm carbon, 0.02 nm/px), one process vs Dask.

Target (issue #3): ≤ 2 s per 512² image per core. Prints the time per image in this process, the time per
image with a Dask LocalCluster of ``--workers`` processes (one thread each) writing a dataset, and the
scaling ratio. With ``--wide`` also times one in situ-like composite frame (examples/simulate/insitu_au_wide.yaml).

``--realism N`` measures particle contrast and Fourier roughness (nanoseg.simulate.stats) on N images each of
5 nm Au at 0.02 nm/px and 80 / 423 / 884 e/Å² (the au_5nm_dose*.yaml presets), also with an ideal detector
(white shot noise) for comparison; ``--figures DIR`` writes the docs figures.

Run: .venv/bin/python benchmarks/simulate.py --images 6 --workers 2
     .venv/bin/python benchmarks/simulate.py --images 0 --realism 8 --figures docs/figures
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from nanoseg.simulate import SimulationConfig, generate_dataset, simulate_image

SPEC = dict(name="bench", image_size_px=512, pixel_size_nm=0.02, material="Au", shape="truncated_octahedron",
            diameter_nm=5.0, diameter_spread=0.0, n_particles=1, support="carbon", support_thickness_nm=3.0,
            dose_e_per_A2=423.0)


def _preset(name: str, **changes) -> SimulationConfig:
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "simulate", f"{name}.yaml")
    base = SimulationConfig.from_yaml(path).model_dump(mode="json", exclude_none=False)
    return SimulationConfig.parse({**base, **changes})


def realism(n_images: int) -> None:
    """Contrast C and roughness r of simulated 5 nm Au vs the real-data values of SCIENCE.md."""
    import numpy as np

    from nanoseg.simulate.stats import fourier_roughness, particle_contrast

    real = {80: (0.24, 0.049), 884: (0.58, 0.028)}
    print("dose   detector      C mean ± sd     r mean ± sd       real C / r")
    for detector in ("scintillator", "ideal"):
        for dose in (80, 423, 884):
            config = _preset(f"au_5nm_dose{dose}", detector=detector, illumination_gradient=0.0,
                             xray_spikes_per_Mpx=0.0)
            contrast, rough = [], []
            for seed in range(n_images):
                sim = simulate_image(config, seed)
                contrast.append(particle_contrast(sim.micrograph.data, sim.mask))
                rough.append(fourier_roughness(sim.micrograph.data))
            ref = "  {:.2f} / {:.3f}".format(*real[dose]) if dose in real else ""
            print(f"{dose:4d}   {detector:12s}  {np.mean(contrast):.2f} ± {np.std(contrast):.2f}    "
                  f"{np.mean(rough):.4f} ± {np.std(rough):.4f}{ref}")


def validate_composite(n_images: int) -> None:
    """Composite (wide-field) mode vs full multislice on the same particles (same spec and seed)."""
    import numpy as np

    from nanoseg.simulate.stats import particle_contrast

    spec = dict(name="val", image_size_px=128, pixel_size_nm=0.1, material="Au", shape="truncated_octahedron",
                diameter_nm=3.0, diameter_spread=0.1, n_particles=3, support="carbon", support_thickness_nm=3.0,
                dose_e_per_A2=20000.0, detector="counting", defocus_nm=10.0, Cs_um=0.0, astigmatism_nm=0.0,
                aperture_mrad=20.0, zone_axis_fraction=0.5)
    print("seed  time full / composite (s)   C full / composite   background σ/μ full / composite   "
          "particle-pixel correlation")
    for seed in range(n_images):
        row = []
        for mode in ("multislice", "composite"):
            start = time.perf_counter()
            sim = simulate_image(SimulationConfig.parse({**spec, "mode": mode}), seed)
            row.append((time.perf_counter() - start, sim))
        (t_full, full), (t_comp, comp) = row
        assert np.array_equal(full.mask, comp.mask)
        a, b = full.micrograph.data, comp.micrograph.data
        bg = full.mask == 0
        corr = np.corrcoef(a[~bg], b[~bg])[0, 1]
        print(f"{seed:4d}  {t_full:6.1f} / {t_comp:5.1f}            "
              f"{particle_contrast(a, full.mask):.2f} / {particle_contrast(b, comp.mask):.2f}          "
              f"{a[bg].std() / a[bg].mean():.4f} / {b[bg].std() / b[bg].mean():.4f}                   {corr:.2f}")


def figures(out_dir: str) -> None:
    """Image grid across dose / pixel size / defocus / material, and radial power spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from nanoseg.simulate.stats import radial_power_spectrum

    os.makedirs(out_dir, exist_ok=True)
    clean = dict(illumination_gradient=0.0, xray_spikes_per_Mpx=0.0, n_particles=1, zone_axis_fraction=1.0,
                 shape="truncated_octahedron", defocus_nm=8.0, aperture_mrad=22.0, support_thickness_nm=3.0,
                 Cs_um=-10.0, astigmatism_nm=0.0)
    rows = [
        ("dose (e/Å²)", [(f"{d}", _preset(f"au_5nm_dose{d}", **clean)) for d in (80, 423, 884)]),
        ("pixel (nm/px)", [(p, _preset(f"au_5nm_px{p}", **clean)) for p in ("0.020", "0.033", "0.042")]),
        ("defocus (nm)", [(f"{f:+d}", _preset("au_5nm", **{**clean, "defocus_nm": f})) for f in (-8, 4, 16)]),
        ("material", [("Au", _preset("au_5nm", **clean)), ("Ag", _preset("ag_5nm", **clean)),
                      ("CdSe", _preset("cdse_5nm", **{**clean, "shape": "ellipsoid", "aspect_ratio": 1.6}))]),
    ]
    fig, axes = plt.subplots(4, 3, figsize=(7.5, 10))
    for r, (label, cells) in enumerate(rows):
        for c, (value, config) in enumerate(cells):
            sim = simulate_image(config, 7)
            img = sim.micrograph.data
            lo, hi = np.percentile(img, [0.5, 99.5])
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
            ax.contour(sim.mask, [0.5], colors="tab:red", linewidths=0.4)
            ax.set_title(f"{label}: {value}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "simulation_grid.png"), dpi=48)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, config in [
        ("423 e/Å², scintillator", _preset("au_5nm_dose423", **clean)),
        ("884 e/Å², scintillator", _preset("au_5nm_dose884", **clean)),
        ("20000 e/Å², counting, defocus 40 nm (Thon rings)",
         _preset("au_5nm_dose423", **{**clean, "dose_e_per_A2": 20000, "detector": "counting", "defocus_nm": 40.0})),
    ]:
        sim = simulate_image(config, 7)
        k, p = radial_power_spectrum(sim.micrograph.data, pixel_size_nm=sim.micrograph.pixel_size_nm)
        ax.semilogy(k[1:], p[1:], label=label, lw=0.8)
    for d_nm, name in ((0.2355, "Au 111"), (0.2039, "Au 200"), (0.1442, "Au 220")):
        ax.axvline(1 / d_nm, color="gray", lw=0.5, ls=":")
        ax.text(1 / d_nm, ax.get_ylim()[1], name, fontsize=6, rotation=90, va="top")
    ax.set_xlabel("spatial frequency (1/nm)")
    ax.set_ylabel("radial power (standardized)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "simulation_spectra.png"), dpi=80)
    plt.close(fig)
    print(f"figures written to {out_dir}")


def _timed_image(spec: dict, seed: int) -> tuple[float, float]:
    """(wall s, CPU s) of one simulate_image call, measured where it runs (a Dask worker)."""
    start, cpu = time.perf_counter(), time.process_time()
    simulate_image(SimulationConfig.parse(spec), seed)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wide", action="store_true", help="also time one 1024² in situ-like composite frame")
    parser.add_argument("--realism", type=int, default=0, help="images per dose for the realism statistics")
    parser.add_argument("--figures", default=None, help="folder for the docs figures")
    parser.add_argument("--validate-composite", type=int, default=0,
                        help="compare the composite wide-field mode with full multislice on N seeds")
    args = parser.parse_args()
    if args.realism:
        realism(args.realism)
    if args.figures:
        figures(args.figures)
    if args.validate_composite:
        validate_composite(args.validate_composite)
    if args.images <= 0:
        return
    config = SimulationConfig.parse(SPEC)
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} (shared machine)")

    simulate_image(config, 999)  # warm-up: imports, abTEM caches
    start, cpu = time.perf_counter(), time.process_time()
    for seed in range(args.images):
        simulate_image(config, seed)
    single = (time.perf_counter() - start) / args.images
    cpu_single = (time.process_time() - cpu) / args.images
    print(f"single process : {single:.2f} s wall, {cpu_single:.2f} s CPU per 512² image ({args.images} images)")

    if args.workers < 1:
        print("dask           : skipped (--workers 0)")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            from dask.distributed import Client

            from nanoseg._util import local_cluster

            with local_cluster(args.workers) as cluster:  # nanoseg's own LocalCluster, as generate_dataset uses
                address = cluster.scheduler_address
                # warm the workers (imports) outside the timed region
                generate_dataset(config, os.path.join(tmp, "warm"), n_images=args.workers, seed=1,
                                 scheduler=address, progress=False)
                start = time.perf_counter()
                generate_dataset(config, os.path.join(tmp, "ds"), n_images=args.images * args.workers, seed=0,
                                 scheduler=address, progress=False)
                dask_per_image = (time.perf_counter() - start) / (args.images * args.workers)
                with Client(address) as client:  # CPU and wall time of the simulation itself, inside the workers
                    timings = client.gather(client.map(_timed_image, [SPEC] * (args.images * args.workers),
                                                       range(args.images * args.workers), pure=False))
        worker_wall, worker_cpu = (sum(t[i] for t in timings) / len(timings) for i in (0, 1))
        print(f"dask, {args.workers} workers: {dask_per_image:.2f} s per image (wall, incl. writing the dataset)")
        print(f"inside workers : {worker_wall:.2f} s wall, {worker_cpu:.2f} s CPU per image "
              f"(CPU/wall {worker_cpu / worker_wall:.2f}; < 1 means the worker waited for a core)")
        print(f"scaling        : {single / dask_per_image:.2f}× faster than one process "
              f"(ideal {args.workers}×; per-core cost {dask_per_image * args.workers:.2f} s per image)")


    if args.wide:
        wide = SimulationConfig.from_yaml(os.path.join(os.path.dirname(__file__), "..", "examples", "simulate",
                                                       "insitu_au_wide.yaml"))
        start = time.perf_counter()
        sim = simulate_image(wide, 0)
        elapsed = time.perf_counter() - start
        print(f"wide field     : {elapsed:.1f} s for one 1024² composite frame with {sim.meta['n_particles']} "
              f"particles ({elapsed / sim.meta['n_particles']:.2f} s per particle)")


if __name__ == "__main__":
    main()
