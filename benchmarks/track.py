"""In situ benchmarks, measured side by side in one run.

1. Realism of the fast movie renderer against the multislice simulator (same particle, pixel size, dose, defocus,
   camera): particle contrast C and Fourier roughness r (SCIENCE.md statistics), ratio fast / multislice.
2. Speed per frame of each streaming stage at a given frame size (render, label, table, drift), and the whole
   ``track_movie`` (truth masks as the segmentation, so no network time is included).
3. Accuracy against the simulated truth: drift error, link recall / ID switches, coalescence and vanish events,
   fitted n and k against the generating law.

4. With ``--model default``: the same movie segmented by the default model (rendered frames), the same scores.
5. With ``--detection PX[,PX...]``: detection recall and precision of the model on rendered frames of the same
   particle system at each pixel size (the same field area, ~92 nm square, so the same particles), above the
   detection limit ``--d-min`` (2 nm), with the model's out-of-distribution flags and the frames' statistics
   (roughness, noise, contrast after resampling to the model's pixel size) against the card's training ranges.

Run: ``.venv/bin/python benchmarks/track.py [--size 1024] [--frames 40] [--seeds 3] [--skip-multislice]
[--model default|none] [--json FILE] [--detection 0.18,0.04 --detection-frames 2 --d-min 2 --skip-tracking]``

``--json FILE`` writes the targets of issue #18: ``events_recall, events_precision`` (coalescence, ±1 frame,
true masks), ``id_switches``, ``k_n3_rel_error_true_masks``, ``k_n3_rel_error_model_masks`` ((k − k_truth) /
k_truth, k of ⟨r⟩³ − ⟨r₀⟩³ = k t against the same fit on the true particles inside the field),
``free_n_abs_error`` (|n − n_truth| of the free-n fit, true masks), plus ``events_recall_model_masks``,
``events_precision_model_masks``, the event counts and timings; model keys are null without ``--model``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time

import numpy as np
import pandas as pd


def realism(seeds: int) -> None:
    from nanoseg.simulate import simulate_image
    from nanoseg.simulate.movie import simulate_coarsening_movie
    from nanoseg.simulate.stats import fourier_roughness, particle_contrast

    print("== 1. fast renderer vs multislice: 3 nm Au sphere on 3 nm carbon, 0.05 nm/px, 128 px, 300 e/Å², "
          "8 nm underfocus, scintillator ==")
    cfg = dict(image_size_px=128, pixel_size_nm=0.05, material="Au", shape="sphere", diameter_nm=3.0,
               diameter_spread=0.0, n_particles=1, support="carbon", support_thickness_nm=3.0, defocus_nm=8.0,
               Cs_um=0.0, astigmatism_nm=0.0, aperture_mrad=20.0, dose_e_per_A2=300.0, detector="scintillator",
               illumination_gradient=0.0, xray_spikes_per_Mpx=0)
    rows = []
    t0 = time.perf_counter()
    for seed in range(seeds):
        im = simulate_image(cfg, seed)
        rows.append(("multislice", particle_contrast(im.micrograph.data, im.mask),
                     fourier_roughness(im.micrograph.data)))
    t_ms = (time.perf_counter() - t0) / seeds
    t0 = time.perf_counter()
    done, seed = 0, 0
    while done < seeds:
        m = simulate_coarsening_movie(n_frames=1, shape_px=(128, 128), pixel_size_nm=0.05, n_particles=1,
                                      mean_radius_nm=1.5, dose_e_per_A2=300, defocus_nm=8.0, drift_nm_per_frame=0,
                                      seed=seed)
        seed += 1
        mask = m.mask(0)
        if mask.mean() < 0.1:  # the particle must be (mostly) in the field, as in the multislice image
            continue
        f = m.frame(0).data
        rows.append(("fast", particle_contrast(f, mask), fourier_roughness(f)))
        done += 1
    t_fast = (time.perf_counter() - t0) / seeds
    df = pd.DataFrame(rows, columns=["renderer", "contrast", "roughness"])
    g = df.groupby("renderer").agg(["mean", "std"])
    print(g.round(4).to_string())
    ratio = g.loc["fast", ("contrast", "mean")] / g.loc["multislice", ("contrast", "mean")]
    ratio_r = g.loc["fast", ("roughness", "mean")] / g.loc["multislice", ("roughness", "mean")]
    print(f"fast/multislice: contrast {ratio:.2f}, roughness {ratio_r:.2f}; time per 128² image "
          f"{t_fast * 1e3:.0f} ms vs {t_ms:.1f} s (×{t_ms / t_fast:.0f})")


def _scores(r, m) -> dict:
    """Coalescence recall/precision, ID switches and the kinetics against the truth fit, of one track_movie run."""
    from nanoseg.insitu.truth import compare_to_truth, kinetics_agreement

    acc = compare_to_truth(r, m)
    cell = acc.set_index(["group", "metric"])["value"]
    k = kinetics_agreement(acc, r.summary)
    return {"events_recall": float(cell[("coalescence events", "recall")]),
            "events_precision": float(cell[("coalescence events", "precision")]),
            "true_events": int(cell[("coalescence events", "true_events")]),
            "detected_events": int(cell[("coalescence events", "detected")]),
            "id_switches": int(cell[("tracking", "id_switches")]),
            "missed_links": int(cell[("tracking", "missed_links")]),
            "true_links": int(cell[("tracking", "true_links")]),
            "k_n3_rel_error": float(abs(k["k3_rel_diff"])), "free_n_abs_error": float(abs(k["n_diff"])),
            "k3": k["k3"], "k3_truth": k["k3_truth"], "n": k["n"], "n_truth": k["n_truth"]}


BENCHMARK_PX = 0.18  # nm/px of the benchmark movie (600 particles in 1024² px)


def benchmark_movie(size: int, frames: int, pixel_size_nm: float = BENCHMARK_PX, **overrides):
    """The benchmark's particle system (mixed: ripening k = 0.3 nm³/s + slow migration, 150 e/Å², drift) on a
    ``size``² frame at ``pixel_size_nm``, at the areal density of 600 particles per (1024 · 0.18 nm)²;
    ``overrides``: other :func:`simulate_coarsening_movie` parameters (``dose_e_per_A2=None``, …)."""
    from nanoseg.simulate.movie import simulate_coarsening_movie

    n_particles = max(1, int(round(600 * (size * pixel_size_nm / (1024 * BENCHMARK_PX)) ** 2)))
    return simulate_coarsening_movie(n_frames=frames, shape_px=(size, size), pixel_size_nm=pixel_size_nm,
                                     n_particles=n_particles, lsw_rate_nm3_per_s=0.3, mode="mixed",
                                     diffusion_nm2_per_s=0.01, **{"dose_e_per_A2": 150, "seed": 0, **overrides})


ABLATION = {"as rendered": {}, "no support texture": {"support_contrast": 0.0}, "10x dose (1500 e/A2)":
            {"dose_e_per_A2": 1500.0}, "noise-free": {"dose_e_per_A2": None},
            "no texture, noise-free": {"support_contrast": 0.0, "dose_e_per_A2": None}}
"""One change at a time to the rendered frames (``--detection-ablation``): which part makes false detections."""


def detection_scores(detections: pd.DataFrame, truth: pd.DataFrame, d_min_nm: float) -> dict:
    """Recall of the true particles fully inside the field with 2r ≥ ``d_min_nm`` (a detection within 0.5 nm,
    one-to-one per frame) and precision of the detections with d ≥ ``d_min_nm`` not touching the border (matched
    to a true particle of any size); counts of all detections and of false ones below ``d_min_nm``."""
    from nanoseg.insitu.linking import match_to_truth

    frames = detections["frame"].nunique() or 1
    truth = truth[truth["frame"].isin(detections["frame"].unique())]
    matched = match_to_truth(detections, truth, max_distance_nm=0.5)
    hit = matched["truth_id"] >= 0
    found = set(zip(matched.loc[hit, "frame"], matched.loc[hit, "truth_id"], strict=True))
    inside = truth[truth["inside"].astype(bool) & (2 * truth["radius_nm"] >= d_min_nm)]
    recall = float(np.mean([(f, q) in found for f, q in zip(inside["frame"], inside["particle_id"], strict=True)]))
    big = (matched["diameter_nm"] >= d_min_nm) & ~matched["touches_edge"].astype(bool)
    return {"d_min_nm": d_min_nm, "recall_above_d_min": recall,
            "precision_above_d_min": float(hit[big].mean()) if big.any() else float("nan"),
            "true_inside_above_d_min_per_frame": len(inside) / frames,
            "detections_per_frame": len(matched) / frames, "true_per_frame": len(truth) / frames,
            "false_below_d_min_per_frame": float((~hit & (matched["diameter_nm"] < d_min_nm)).sum() / frames)}


def speed_and_accuracy(size: int, frames: int, model: str = "none", model_pixel_size_nm: float | None = None,
                       model_size: int | None = None, d_min_nm: float = 2.0, keep_dir: str | None = None,
                       movie_overrides: dict | None = None) -> dict:
    from nanoseg.insitu import (
        DriftTracker,
        event_metrics,
        fit_kinetics,
        size_statistics,
        track_movie,
        tracking_metrics,
    )
    from nanoseg.particles import label_particles, particle_table

    px = BENCHMARK_PX
    t0 = time.perf_counter()
    movie_overrides = movie_overrides or {}
    m = benchmark_movie(size, frames, **movie_overrides)
    n_particles = m.params["n_particles"]
    print(f"\n== 2. speed per frame, {size}² px at {px} nm/px, {n_particles} particles, ripening + some "
          f"migration ==")
    print(f"particle system ({frames} frames): {time.perf_counter() - t0:.2f} s")
    timings = {"render": [], "truth mask": [], "label_particles": [], "particle_table": [], "drift update": []}
    tracker = DriftTracker()
    for i in range(min(frames, 5)):
        t = time.perf_counter()
        frame = m.frame(i)
        timings["render"].append(time.perf_counter() - t)
        t = time.perf_counter()
        mask = m.mask(i)
        timings["truth mask"].append(time.perf_counter() - t)
        t = time.perf_counter()
        labels = label_particles(mask, pixel_size_nm=px)
        timings["label_particles"].append(time.perf_counter() - t)
        t = time.perf_counter()
        particle_table(labels, pixel_size_nm=px, image=frame.data, frame=i)
        timings["particle_table"].append(time.perf_counter() - t)
        t = time.perf_counter()
        tracker.update(frame.data)
        timings["drift update"].append(time.perf_counter() - t)
    for k, v in timings.items():
        print(f"  {k:16s} {np.median(v) * 1e3:8.1f} ms/frame")

    print(f"\n== 3. track_movie on the whole movie ({frames} frames; truth masks as segmentation) ==")
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        r = track_movie(m, masks=lambda i: m.mask(i), out_dir=out, n_boot=100, figures=True, progress=True)
        total = time.perf_counter() - t
    print(f"track_movie: {total:.1f} s total, {total / frames * 1e3:.0f} ms/frame (incl. rendering each frame for "
          f"drift, linking, events, kinetics, bootstrap 100, figures)")
    err = np.hypot(r.drift.dy_nm - m.drift.dy_nm, r.drift.dx_nm - m.drift.dx_nm) / px
    print(f"drift error: max {err.max():.3f} px, mean {err.mean():.3f} px over a {np.hypot(m.drift.dy_nm.iloc[-1], m.drift.dx_nm.iloc[-1]) / px:.1f} px drift")
    tm = tracking_metrics(r.tracks, m.truth, max_distance_nm=0.5)
    print("tracking:", {k: round(v, 4) for k, v in tm.items()})
    for kind, tol in (("coalescence", 1), ("vanish", 6)):
        em = event_metrics(r.tracks, r.events, m.truth, m.events, max_distance_nm=0.5, kind=kind,
                           frame_tolerance=tol)
        print(f"{kind} events:", {k: round(v, 3) for k, v in em.items()})
    fits = r.fits.set_index("model")
    truth_stats = size_statistics(m.truth.assign(diameter_nm=2 * m.truth.radius_nm, touches_edge=~m.truth.inside))
    tfits = fit_kinetics(truth_stats).set_index("model")
    print(f"n free: {fits.loc['n free', 'n']:.2f} ± {fits.loc['n free', 'n_std']:.2f} (truth tables "
          f"{tfits.loc['n free', 'n']:.2f}); k(n=3): {fits.loc['n=3', 'k']:.3f} ± {fits.loc['n=3', 'k_std']:.3f} "
          f"nm³/s (truth tables {tfits.loc['n=3', 'k']:.3f}, generating 0.300)")
    print("verdict:", r.summary["verdict"])
    true_scores = _scores(r, m)
    print("scores (true masks):", true_scores)
    out = {"size_px": size, "frames": frames, "n_particles": n_particles, "track_movie_true_masks_s": total,
           **{k: true_scores[k] for k in ("events_recall", "events_precision", "id_switches", "free_n_abs_error")},
           "k_n3_rel_error_true_masks": true_scores["k_n3_rel_error"], "true_masks": true_scores,
           "k_n3_rel_error_model_masks": None, "events_recall_model_masks": None,
           "events_precision_model_masks": None, "model_masks": None}
    if model != "none":
        mm = m if model_pixel_size_nm is None else benchmark_movie(model_size or size, frames, model_pixel_size_nm,
                                                                         **movie_overrides)
        print(f"\n== 4. track_movie with the {model!r} model's masks ({frames} rendered frames of "
              f"{mm.shape_px[0]}² px at {mm.pixel_size_nm} nm/px, {mm.params['n_particles']} particles; kinetics "
              f"above the detection limit d_min = {d_min_nm:g} nm, measured and true) ==")
        with contextlib.nullcontext(keep_dir) if keep_dir else tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            rm = track_movie(mm, model=model, out_dir=tmp, n_boot=100, figures=False, progress=True,
                             kinetics_min_diameter_nm=d_min_nm)
            out["track_movie_model_s"] = time.perf_counter() - t
        ms = _scores(rm, mm)
        ms.update(pixel_size_nm=mm.pixel_size_nm, size_px=mm.shape_px[0], n_particles=mm.params["n_particles"],
                  detection=detection_scores(rm.particles, mm.truth, d_min_nm))
        print("scores (model masks):", ms, f"({out['track_movie_model_s']:.0f} s)")
        out.update(k_n3_rel_error_model_masks=ms["k_n3_rel_error"], events_recall_model_masks=ms["events_recall"],
                   events_precision_model_masks=ms["events_precision"], model_masks=ms)
    return out


def detection(model: str, pixel_sizes: list[float], n_frames: int, d_min_nm: float, field_nm: float = 92.16,
              ablation: bool = False) -> list[dict]:
    """Detection recall/precision of ``model`` on the benchmark's particle system rendered at each pixel size.

    Recall: true particles fully inside the field with d = 2r ≥ ``d_min_nm``, found by a detection within 0.5 nm
    (one-to-one per frame). Precision: detections not touching the border with d ≥ ``d_min_nm`` that match a true
    particle of any size. Also the model's OOD flags and the image statistics of its network input.
    ``ablation``: also each variant of :data:`ABLATION` at the first pixel size.
    """
    from skimage.transform import resize

    from nanoseg.infer import predict, resolve_models
    from nanoseg.infer.network_input import network_input
    from nanoseg.infer.ood import image_statistics
    from nanoseg.insitu.truth import recall_by_size
    from nanoseg.particles import label_particles, particle_table

    models = resolve_models(model)
    card = getattr(models[0], "card", None)
    rows = []
    runs = [(px, "as rendered", {}) for px in pixel_sizes]
    if ablation:
        runs += [(pixel_sizes[0], name, change) for name, change in ABLATION.items() if change]
    for px, variant, change in runs:
        size = int(round(field_nm / px))
        m = benchmark_movie(size, n_frames, px, **change)
        n_particles = m.params["n_particles"]
        print(f"\n== 5. detection by the {model!r} model at {px} nm/px ({variant}): {size}² px ({size * px:.1f} nm), "
              f"{n_particles} particles, {n_frames} frames ==")
        tables, flags, stats, seconds = [], {}, [], []
        for i in range(n_frames):
            frame = m.frame(i)
            t = time.perf_counter()
            pred = predict(frame, models, ood=True)
            seconds.append(time.perf_counter() - t)
            flags = {k: bool(v) for k, v in pred.ood.items()}
            labels = label_particles(pred.probability, pixel_size_nm=px, min_diameter_nm=0.5)
            tables.append(particle_table(labels, pixel_size_nm=px, frame=i, time_s=float(m.times_s[i])))
            net = network_input(frame, card)
            truth_mask = m.mask(i)
            mask_net = resize(truth_mask.astype(float), net.image.shape, order=0) > 0.5
            stats.append(image_statistics(net.image, mask_net))
        det = pd.concat(tables, ignore_index=True)
        print(recall_by_size(det, m.truth[m.truth["frame"] < n_frames]).to_string(index=False))
        sc = detection_scores(det, m.truth, d_min_nm)
        st = pd.DataFrame(stats).mean().to_dict()
        rows.append({"pixel_size_nm": px, "variant": variant, "size_px": size, "frames": n_frames, **sc, "ood": flags,
                     "network_input_statistics": st, "predict_s_per_frame": float(np.median(seconds))})
        ranges = dict(getattr(card, "image_statistics", None) or {}) if card else {}
        print(f"recall (inside, d ≥ {d_min_nm:g} nm) {sc['recall_above_d_min']:.3f}; precision (not at the border, "
              f"d ≥ {d_min_nm:g} nm) {sc['precision_above_d_min']:.3f}; all detections {sc['detections_per_frame']:.0f}"
              f"/frame vs {sc['true_per_frame']:.0f} true ({sc['false_below_d_min_per_frame']:.0f}/frame false below "
              f"d_min); OOD flags {flags}; network-input statistics "
              + ", ".join(f"{k} {v:.3f}" + (f" (trained {ranges[k][0]:.3f}–{ranges[k][1]:.3f})" if k in ranges else "")
                          for k, v in st.items()) + f"; predict {np.median(seconds):.1f} s/frame")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-multislice", action="store_true")
    parser.add_argument("--model", default="none", help="also track from this model's masks ('default'); 'none'")
    parser.add_argument("--json", default=None, help="write the target numbers to this JSON file")
    parser.add_argument("--detection", default=None,
                        help="pixel sizes (nm/px, comma-separated) at which to score the model's detection")
    parser.add_argument("--detection-model", default="default")
    parser.add_argument("--detection-ablation", action="store_true",
                        help="also the rendering variants (no texture, 10x dose, noise-free) at the first pixel size")
    parser.add_argument("--detection-frames", type=int, default=2)
    parser.add_argument("--d-min", type=float, default=2.0, help="detection limit (nm) of the detection scores")
    parser.add_argument("--skip-tracking", action="store_true", help="only sections 1 and 5")
    parser.add_argument("--model-pixel-size", type=float, default=None,
                        help="section 4 on the same particle system rendered at this nm/px (the model's range)")
    parser.add_argument("--model-size", type=int, default=None, help="frame size (px) of that movie")
    parser.add_argument("--contact-distance-nm", type=float, default=None,
                        help="edge gap (nm) below which the simulator merges two particles (its default if omitted)")
    parser.add_argument("--keep", default=None,
                        help="track_movie folder of section 4, kept (and resumed when run again with the same "
                             "settings: the segmented frames are not segmented again)")
    args = parser.parse_args()
    if not args.skip_multislice:
        realism(args.seeds)
    overrides = {} if args.contact_distance_nm is None else {"contact_distance_nm": args.contact_distance_nm}
    result = {} if args.skip_tracking else speed_and_accuracy(args.size, args.frames, args.model,
                                                              args.model_pixel_size, args.model_size, args.d_min,
                                                              args.keep, overrides)
    if args.detection:
        result["detection"] = detection(args.detection_model, [float(v) for v in args.detection.split(",")],
                                        args.detection_frames, args.d_min, ablation=args.detection_ablation)
    if args.json:
        import json
        from pathlib import Path

        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
        print(f"targets → {args.json}")


if __name__ == "__main__":
    main()
