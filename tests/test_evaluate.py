"""nanoseg.evaluate: metric code against hand-computed cases, empty masks, sweeps, dataset runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nanoseg.datasets import DatasetWriter, open_dataset
from nanoseg.errors import NanosegError
from nanoseg.evaluate import (
    compare_size_distributions,
    confusion,
    dice,
    evaluate_dataset,
    iou,
    match_instances,
    otsu_threshold,
    particle_sizes,
    pixel_metrics,
    pooled_metrics,
    read_size_measurements,
    soft_dice,
    summarize_sweep,
    threshold_sweep,
    write_evaluation,
)

A = np.array([[1, 1, 1, 0], [0, 0, 0, 0]], bool)  # 3 px
B = np.array([[0, 1, 1, 1], [0, 0, 0, 1]], bool)  # 4 px, overlap 2
Z = np.zeros((2, 4), bool)


def test_pixel_scores_hand_computed():
    assert confusion(A, B) == confusion(A.astype(np.uint8) * 255, B)  # any nonzero counts as particle
    c = confusion(A, B)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 2, 3)
    assert dice(A, B, smooth=0) == pytest.approx(4 / 7)
    assert dice(A, B) == pytest.approx(5 / 8)  # Sytwu: (2*2 + 1) / (3 + 4 + 1)
    assert iou(A, B) == pytest.approx(2 / 5)
    m = pixel_metrics(A.astype(float), B, smooth=0)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(4 / 7) and m["pixel_error"] == pytest.approx(3 / 8)
    assert m["soft_dice"] == pytest.approx(m["dice"])  # binary input: soft = hard


def test_empty_mask_conventions():
    # both empty: perfect agreement, with or without smoothing
    for smooth in (0.0, 1.0):
        s = pixel_metrics(Z.astype(float), Z, smooth=smooth)
        assert s["dice"] == s["iou"] == s["precision"] == s["recall"] == s["f1"] == 1.0
        assert s["pixel_error"] == 0.0 and s["soft_dice"] == 1.0
    # empty prediction of a non-empty truth
    s = pixel_metrics(Z.astype(float), B, smooth=1.0)
    assert s["dice"] == pytest.approx(1 / 5) and s["precision"] == 0.0 and s["recall"] == 0.0
    assert pixel_metrics(Z.astype(float), B, smooth=0)["dice"] == 0.0
    # prediction of an empty truth
    s = pixel_metrics(B.astype(float), Z, smooth=0)
    assert s["dice"] == s["precision"] == s["recall"] == s["iou"] == 0.0 and s["pixel_error"] == 0.5


def test_soft_dice_and_thresholds():
    p = np.array([[0.8, 0.4], [0.2, 0.0]])
    t = np.array([[1, 1], [0, 0]])
    assert soft_dice(p, t, smooth=0) == pytest.approx(2 * 1.2 / (1.4 + 2))
    assert soft_dice(p, t) == pytest.approx((2 * 1.2 + 1) / (1.4 + 2 + 1))
    assert pixel_metrics(p, t, threshold=0.3)["recall"] == 1.0
    assert pixel_metrics(p, t, threshold=0.5)["recall"] == 0.5
    bimodal = np.r_[np.full(50, 0.1), np.full(50, 0.9)]
    assert 0.1 <= otsu_threshold(bimodal) < 0.9
    assert otsu_threshold(np.full(10, 0.3)) == 0.5
    with pytest.raises(NanosegError, match="threshold"):
        pixel_metrics(p, t, threshold=1.5)
    with pytest.raises(NanosegError, match="shape"):
        dice(A, np.zeros((3, 3)))
    with pytest.raises(NanosegError, match="probabilities"):
        soft_dice(np.array([np.nan, 1]), np.array([1, 0]))


def test_pooled_differs_from_per_image_mean():
    # image 1: perfect on a large particle; image 2: misses a 1-px particle entirely
    t1 = np.zeros((10, 10), bool)
    t1[:5] = True
    t2 = np.zeros((10, 10), bool)
    t2[0, 0] = True
    preds, truths = [t1.astype(float), np.zeros((10, 10))], [t1, t2]
    per_image = np.mean([pixel_metrics(p, t, smooth=0)["dice"] for p, t in zip(preds, truths, strict=True)])
    pooled = pooled_metrics(preds, truths, smooth=0)["dice"]
    assert per_image == pytest.approx(0.5) and pooled == pytest.approx(100 / 101)


def test_threshold_sweep_matches_direct_scores(rng):
    probs = [rng.random((16, 16)).astype(np.float32) for _ in range(3)]
    truths = [rng.random((16, 16)) > 0.6 for _ in range(3)]
    sweep = threshold_sweep(probs, truths, thresholds=(0.25, 0.5), ids=["a", "b", "c"])
    assert len(sweep) == 3 * 3  # two thresholds + Otsu per image
    row = sweep[(sweep["id"] == "b") & (sweep["threshold_name"] == "0.5")].iloc[0]
    direct = pixel_metrics(probs[1], truths[1], threshold=0.5)
    for key in ("dice", "precision", "recall", "pixel_error"):
        assert row[key] == pytest.approx(direct[key])
    otsu_row = sweep[(sweep["id"] == "a") & (sweep["threshold_name"] == "otsu")].iloc[0]
    assert otsu_row["dice"] == pytest.approx(pixel_metrics(probs[0], truths[0], threshold="otsu")["dice"])
    summary = summarize_sweep(sweep)
    s = summary[summary["threshold_name"] == "0.25"].iloc[0]
    values = sweep[sweep["threshold_name"] == "0.25"]["dice"]
    assert s["dice_mean"] == pytest.approx(values.mean()) and s["dice_std"] == pytest.approx(values.std(ddof=0))
    assert list(summary["threshold_name"])[-1] == "otsu" and (summary["n_images"] == 3).all()


def test_instance_matching_hand_computed():
    t = np.zeros((6, 10), int)
    t[0:2, 0:2] = 1  # 4 px
    t[0:2, 5:7] = 2  # 4 px
    t[4:6, 8:10] = 3  # 4 px, missed
    p = np.zeros((6, 10), int)
    p[0:2, 0:3] = 7  # IoU with 1: 4/6
    p[0:1, 5:7] = 8  # IoU with 2: 2/4 = 0.5 exactly
    p[4:5, 0:1] = 9  # false positive
    m = match_instances(t, p, iou_threshold=0.5)
    assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred, m.count_error) == (2, 1, 1, 3, 3, 0)
    assert m.f1 == pytest.approx(2 / 3) and m.precision == pytest.approx(2 / 3)
    assert m.mean_matched_iou == pytest.approx((4 / 6 + 0.5) / 2)
    assert m.panoptic_quality == pytest.approx((4 / 6 + 0.5) / (2 + 0.5 + 0.5))
    assert sorted((a, b) for a, b, _ in m.pairs) == [(1, 7), (2, 8)]
    strict = match_instances(t, p, iou_threshold=0.6)
    assert strict.tp == 1 and strict.fn == 2
    assert match_instances(t, p, iou_threshold=0.5, method="greedy").tp == 2


def test_hungarian_beats_greedy_at_low_threshold():
    # true a overlaps pred x best; pred x also overlaps true b, which has only x above the threshold.
    t = np.zeros((1, 12), int)
    t[0, 0:4] = 1
    t[0, 4:6] = 2
    p = np.zeros((1, 12), int)
    p[0, 1:6] = 1  # IoU(a)=3/6, IoU(b)=2/5
    p[0, 0:1] = 2  # IoU(a)=1/4
    greedy = match_instances(t, p, iou_threshold=0.2, method="greedy")
    hung = match_instances(t, p, iou_threshold=0.2)
    assert greedy.tp == 1 and hung.tp == 2


def test_instance_matching_empty_sides():
    empty = np.zeros((5, 5), int)
    one = empty.copy()
    one[1:3, 1:3] = 1
    both = match_instances(empty, empty)
    assert both.f1 == both.panoptic_quality == 1.0 and both.tp == 0
    missed = match_instances(one, empty)
    assert missed.f1 == 0.0 and missed.fn == 1 and missed.count_error == -1 and np.isnan(missed.mean_matched_iou)
    spurious = match_instances(empty, one)
    assert spurious.precision == 0.0 and spurious.fp == 1 and spurious.panoptic_quality == 0.0
    with pytest.raises(NanosegError, match="IoU threshold"):
        match_instances(one, one, iou_threshold=0)


def test_particle_sizes_and_distributions(tmp_path):
    yy, xx = np.mgrid[:60, :60]
    mask = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 10**2) | ((yy - 45) ** 2 + (xx - 45) ** 2 <= 5**2)
    table = particle_sizes(mask, pixel_size_nm=0.5)
    assert len(table) == 2
    d = np.sort(table["diameter_nm"].to_numpy())
    assert d[1] == pytest.approx(20 * 0.5, rel=0.03) and d[0] == pytest.approx(10 * 0.5, rel=0.06)
    assert len(particle_sizes(mask, pixel_size_nm=0.5, min_diameter_nm=7)) == 1
    assert len(particle_sizes(np.zeros((8, 8)), pixel_size_nm=0.5)) == 0
    with pytest.raises(NanosegError, match="pixel size"):
        particle_sizes(mask, pixel_size_nm=None)
    r = compare_size_distributions([2.0, 4.0], [1.0, 2.0, 3.0])
    assert r["mean_error_nm"] == pytest.approx(1.0) and r["median_error_nm"] == pytest.approx(1.0)
    # ECDF gaps |F_pred − F_ref|: 1/3 on [1,2), 1/6 on [2,3), 1/2 on [3,4) → KS = 1/2, W1 = 1/3+1/6+1/2 = 1
    assert r["ks_statistic"] == pytest.approx(0.5)
    assert r["wasserstein_nm"] == pytest.approx(1.0)
    empty = compare_size_distributions([], [1.0])
    assert empty["n_pred"] == 0 and np.isnan(empty["ks_statistic"]) and empty["mean_ref_nm"] == 1.0
    csv = tmp_path / "manual.csv"
    pd.DataFrame({"particle": [1, 2, 3], "major_axis_nm": [3.0, 4.5, 5.0]}).to_csv(csv, index=False)
    np.testing.assert_allclose(read_size_measurements(csv), [3.0, 4.5, 5.0])
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(NanosegError, match="no size column"):
        read_size_measurements(tmp_path / "bad.csv")
    with pytest.raises(NanosegError, match="not found"):
        read_size_measurements(tmp_path / "missing.csv")


def _dataset(tmp_path, n=3):
    from conftest import disks_image

    with DatasetWriter(tmp_path / "ds") as w:
        for i in range(n):
            image, mask = disks_image((64, 64), ((20, 20, 8 + i), (44, 44, 6)), seed=i)
            w.add(f"img{i}", image, mask, {"pixel_size_nm": 0.2, "dose_e_per_A2": 400.0})
    return open_dataset(tmp_path / "ds")


def test_evaluate_dataset_writes_tables_and_figures(tmp_path):
    ds = _dataset(tmp_path)
    preds = {i: ds.mask(i).astype(np.float32) * 0.9 + 0.05 for i in ds.ids}
    shifted = np.roll(ds.mask("img2"), 6, axis=1).astype(np.float32)
    preds["img2"] = shifted  # one imperfect prediction
    ev = evaluate_dataset(ds, preds, n_worst=2)
    per = ev.per_image.set_index("id")
    assert per.loc["img0", "dice"] == pytest.approx(1.0) and per.loc["img2", "dice"] < 0.9
    assert per.loc["img0", "f1@0.5"] == 1.0 and per.loc["img0", "n_true"] == 2
    assert ev.worst[0]["id"] == "img2"
    summary = ev.summary.set_index(["metric", "kind"])
    assert summary.loc[("dice", "per-image mean"), "mean"] == pytest.approx(per["dice"].mean())
    assert ev.size_comparison["n_pred"] == ev.size_comparison["n_ref"] == 6
    written = write_evaluation(ev, tmp_path / "out")
    names = {p.name for p in written}
    assert {"metrics.csv", "summary.csv", "thresholds.csv", "threshold_curves.png", "size_distribution.png",
            "worst_cases.png"} <= names
    assert len(pd.read_csv(tmp_path / "out" / "metrics.csv")) == 3
    with pytest.raises(NanosegError, match="shape"):
        evaluate_dataset(ds, {i: np.zeros((8, 8)) for i in ds.ids})


def test_evaluate_against_manual_sizes(tmp_path):
    ds = _dataset(tmp_path, n=1)
    ev = evaluate_dataset(ds, {"img0": ds.mask("img0").astype(np.float32)}, reference_sizes_nm=[3.2, 2.4],
                          n_worst=0)
    assert ev.size_comparison["reference"] == "manual" and ev.size_comparison["n_ref"] == 2


def test_speckles_below_min_diameter_are_ignored(tmp_path):
    ds = _dataset(tmp_path, n=1)
    pred = ds.mask("img0").astype(np.float32)
    pred[60, 2] = 1.0  # a one-pixel speckle (0.2 nm): below the default 0.5 nm cut
    kept = evaluate_dataset(ds, {"img0": pred}, n_worst=0).per_image.iloc[0]
    assert kept["f1@0.5"] == 1.0 and kept["count_error"] == 0
    raw = evaluate_dataset(ds, {"img0": pred}, n_worst=0, min_diameter_nm=0).per_image.iloc[0]
    assert raw["count_error"] == 1 and raw["precision@0.5"] == pytest.approx(2 / 3)


# --- issue #16: one definition of a particle; border particles out of the size distributions ---


def _two_discs(shape=(60, 80), gap_px=18.0, r=10):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - 30) ** 2 + (xx - 20) ** 2 <= r**2) | ((yy - 30) ** 2 + (xx - 20 - gap_px) ** 2 <= r**2)


def test_a_0_255_mask_counts_every_particle():
    mask = _two_discs(gap_px=36)  # two separate discs
    as_255 = np.where(mask, 255, 0).astype(np.uint8)
    assert len(particle_sizes(as_255, pixel_size_nm=0.2)) == 2
    m = match_instances(as_255, mask)
    assert (m.n_true, m.n_pred, m.tp) == (2, 2, 2)


def test_matching_and_sizes_split_touching_particles_like_predict():
    from nanoseg.particles import label_particles

    touching = _two_discs(gap_px=18)  # one connected blob of two discs
    assert label_particles(touching, pixel_size_nm=0.2).max() == 2
    assert len(particle_sizes(touching, pixel_size_nm=0.2)) == 2
    m = match_instances(touching, touching, pixel_size_nm=0.2)
    assert (m.n_true, m.n_pred, m.tp) == (2, 2, 2)


def test_evaluate_counts_touching_particles_as_predict_does(tmp_path):
    mask = _two_discs(gap_px=18)
    image = np.where(mask, 0.6, 1.0).astype(np.float32)
    with DatasetWriter(tmp_path / "ds") as w:
        w.add("pair", image, mask, {"pixel_size_nm": 0.2})
    ds = open_dataset(tmp_path / "ds")
    row = evaluate_dataset(ds, {"pair": mask.astype(np.float32)}, n_worst=0).per_image.iloc[0]
    assert row["n_true"] == 2 and row["n_pred"] == 2 and row["f1@0.5"] == 1.0


def test_evaluate_names_the_image_of_a_bad_instance_image(tmp_path):
    mask = _two_discs(gap_px=36)
    instances = np.zeros(mask.shape, np.int32)
    instances[mask] = 1
    instances[:5, :5] = 2  # label 1 holds both discs: two separate parts
    with DatasetWriter(tmp_path / "ds") as w:
        w.add("bad", mask.astype(np.float32), mask | (instances > 0), {"pixel_size_nm": 0.2}, instances=instances)
    ds = open_dataset(tmp_path / "ds")
    with pytest.raises(NanosegError, match="'bad'.*label 1"):
        evaluate_dataset(ds, {"bad": mask.astype(np.float32)}, n_worst=0)


def _border_case():
    """100×100 px at 0.1 nm/px: interior squares of 10 and 20 px, a 30×30 px particle cut by the top-right corner."""
    mask = np.zeros((100, 100), bool)
    mask[20:30, 20:30] = True
    mask[50:70, 50:70] = True
    mask[0:30, 70:100] = True
    return mask


def test_size_distribution_excludes_border_particles_with_miles_lantuejoul_weights():
    mask = _border_case()
    table = particle_sizes(mask, pixel_size_nm=0.1)
    assert len(table) == 2 and table.attrs["n_border_excluded"] == 1
    table = table.sort_values("diameter_nm")
    # weight W·H / ((W − w)(H − h)) with the bounding box w × h in px
    w10, w20 = 100 * 100 / (90 * 90), 100 * 100 / (80 * 80)
    np.testing.assert_allclose(table["ml_weight"], [w10, w20])
    d10, d20 = 2 * np.sqrt(100 / np.pi) * 0.1, 2 * np.sqrt(400 / np.pi) * 0.1
    np.testing.assert_allclose(table["diameter_nm"], [d10, d20])
    everything = particle_sizes(mask, pixel_size_nm=0.1, exclude_border=False)
    assert len(everything) == 3 and everything.attrs["n_border_excluded"] == 0
    assert everything["ml_weight"].isna().sum() == 1  # the cut particle has no weight
    r = compare_size_distributions(table["diameter_nm"], [1.0, 2.0], predicted_weights=table["ml_weight"])
    assert r["mean_pred_nm"] == pytest.approx((w10 * d10 + w20 * d20) / (w10 + w20))
    # equal weights reproduce the unweighted statistics (median of an even sample = midpoint)
    same = compare_size_distributions([1.0, 2.0, 4.0, 7.0], [1.0, 3.0], predicted_weights=[2.0] * 4)
    plain = compare_size_distributions([1.0, 2.0, 4.0, 7.0], [1.0, 3.0])
    for key in ("mean_pred_nm", "median_pred_nm", "ks_statistic", "wasserstein_nm", "p10_pred_nm", "p90_pred_nm"):
        assert same[key] == pytest.approx(plain[key]), key
    assert plain["median_pred_nm"] == pytest.approx(3.0)


def test_evaluate_size_report_says_border_particles_were_excluded(tmp_path):
    mask = _border_case()
    with DatasetWriter(tmp_path / "ds") as w:
        w.add("cut", np.where(mask, 0.6, 1.0).astype(np.float32), mask, {"pixel_size_nm": 0.1})
    ds = open_dataset(tmp_path / "ds")
    ev = evaluate_dataset(ds, {"cut": mask.astype(np.float32)}, n_worst=0)
    sc = ev.size_comparison
    assert sc["n_pred"] == sc["n_ref"] == 2
    assert sc["n_border_excluded_pred"] == sc["n_border_excluded_ref"] == 1
    w10, w20 = 100 * 100 / (90 * 90), 100 * 100 / (80 * 80)
    d10, d20 = 2 * np.sqrt(100 / np.pi) * 0.1, 2 * np.sqrt(400 / np.pi) * 0.1
    assert sc["mean_pred_nm"] == pytest.approx((w10 * d10 + w20 * d20) / (w10 + w20))
    assert ev.per_image.iloc[0]["mean_diameter_pred_nm"] == pytest.approx(sc["mean_pred_nm"])
    assert "1 border particles excluded; Miles–Lantuéjoul weighted" in sc["note"]
    kinds = set(ev.summary["kind"])
    assert any("border particles excluded; Miles–Lantuéjoul weighted" in k for k in kinds)
    write_evaluation(ev, tmp_path / "out", figures=False)
    written = pd.read_csv(tmp_path / "out" / "particles_pred.csv")
    assert len(written) == 3 and written["touches_edge"].sum() == 1 and "ml_weight" in written
    kept = evaluate_dataset(ds, {"cut": mask.astype(np.float32)}, n_worst=0, exclude_border=False).size_comparison
    assert kept["n_pred"] == 3 and kept["n_border_excluded_pred"] == 0 and "included" in kept["note"]


def test_miles_lantuejoul_mean_recovers_the_population_mean():
    """Discs with uniform centres (also just outside the 96² px frame): counting the cut ones biases the mean
    diameter small; interior particles weighted by Miles–Lantuéjoul recover it (fixed seed, ~1200 particles)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:96, :96]
    true_d, detected, interior, weights = [], [], [], []
    for _ in range(150):
        mask, placed = np.zeros((96, 96), bool), []
        for _ in range(25):
            r = rng.uniform(3, 20)
            cy, cx = rng.uniform(-r, 96 + r, size=2)
            if all(np.hypot(cy - a, cx - b) >= r + c + 2 for a, b, c in placed):
                placed.append((cy, cx, r))
                mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        true_d += [2 * r * 0.1 for cy, cx, r in placed if 0 <= cy < 96 and 0 <= cx < 96]
        t = particle_sizes(mask, pixel_size_nm=0.1, exclude_border=False, split_touching=False)
        detected += list(t.diameter_nm)
        inside = t[~t.touches_edge]
        interior += list(inside.diameter_nm)
        weights += list(inside.ml_weight)
    truth = np.mean(true_d)
    assert np.mean(detected) < 0.9 * truth  # the bias this corrects
    assert np.average(interior, weights=weights) == pytest.approx(truth, rel=0.04)
