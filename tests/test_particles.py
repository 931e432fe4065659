"""Instance labels and per-particle properties against hand-computed shapes."""

from __future__ import annotations

import numpy as np
import pytest

from nanoseg.errors import NanosegError
from nanoseg.particles import TABLE_COLUMNS, diameter_uncertainty, label_particles, particle_table

PX = 0.2  # nm per pixel


def disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def ellipse(shape, cy, cx, a, b, angle=0.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def test_disc_properties_in_nm():
    mask = disc((100, 100), 40, 55, 15)
    labels = label_particles(mask, pixel_size_nm=PX)
    assert labels.dtype == np.int32 and labels.max() == 1
    t = particle_table(labels, pixel_size_nm=PX)
    assert list(t.columns) == TABLE_COLUMNS
    row = t.iloc[0]
    area_px = mask.sum()
    assert row.area_nm2 == pytest.approx(area_px * PX**2)
    # equivalent diameter ≈ 2 r within discretization (area of a digital disc ≈ π r²)
    assert row.diameter_nm == pytest.approx(2 * 15 * PX, rel=0.02)
    assert row.major_axis_nm == pytest.approx(2 * 15 * PX, rel=0.02)
    assert row.minor_axis_nm == pytest.approx(2 * 15 * PX, rel=0.02)
    assert row.eccentricity < 0.1
    assert (row.centroid_y_px, row.centroid_x_px) == pytest.approx((40, 55), abs=1e-9)
    assert (row.y_nm, row.x_nm) == pytest.approx((40 * PX, 55 * PX))
    assert np.isnan(row.mean_intensity)
    assert not row.touches_edge


def test_ellipse_axes_and_eccentricity():
    a, b = 24.0, 10.0
    mask = ellipse((120, 120), 60, 60, a, b, angle=0.5)
    labels = label_particles(mask, pixel_size_nm=PX)
    assert labels.max() == 1, "a single ellipse must not be over-split"
    row = particle_table(labels, pixel_size_nm=PX).iloc[0]
    assert row.major_axis_nm == pytest.approx(2 * a * PX, rel=0.03)
    assert row.minor_axis_nm == pytest.approx(2 * b * PX, rel=0.05)
    assert row.eccentricity == pytest.approx(np.sqrt(1 - (b / a) ** 2), abs=0.02)
    assert row.area_nm2 == pytest.approx(np.pi * a * b * PX**2, rel=0.02)


@pytest.mark.parametrize("aspect", [1.5, 2.5, 4.0])
def test_elongated_ellipses_not_over_split(aspect):
    b = 8.0
    mask = ellipse((100, 140), 50, 70, aspect * b, b, angle=0.3)
    assert label_particles(mask, pixel_size_nm=PX, min_diameter_nm=0.5).max() == 1


def test_touching_pair_split_into_two_with_right_sizes():
    shape = (80, 100)
    a, b = disc(shape, 40, 35, 12), disc(shape, 40, 57, 12)  # overlapping by 2 px
    mask = a | b
    from scipy import ndimage as ndi

    assert ndi.label(mask)[1] == 1
    labels = label_particles(mask, pixel_size_nm=PX)
    assert labels.max() == 2
    t = particle_table(labels, pixel_size_nm=PX).sort_values("x_nm")
    assert t.x_nm.to_numpy() == pytest.approx([35 * PX, 57 * PX], abs=1.0 * PX)
    assert t.diameter_nm.to_numpy() == pytest.approx([24 * PX, 24 * PX], rel=0.08)
    # without splitting: one component
    assert label_particles(mask, pixel_size_nm=PX, split_touching=False).max() == 1


def test_unequal_touching_pair_and_wide_neck():
    shape = (80, 100)
    pair = disc(shape, 40, 35, 14) | disc(shape, 40, 56, 8)
    assert label_particles(pair, pixel_size_nm=PX).max() == 2
    # a small bump on a big particle (neck nearly as wide as the bump) is not split
    bump = disc(shape, 40, 40, 16) | disc(shape, 40, 55, 5)
    assert label_particles(bump, pixel_size_nm=PX).max() == 1


def test_accepts_a_prediction_object():
    class Prediction:  # the shape of nanoseg.infer.Prediction
        probability = disc((60, 60), 30, 30, 10) * 0.9

    assert label_particles(Prediction(), pixel_size_nm=PX).max() == 1


def test_min_diameter_removes_small_objects_and_threshold_applies():
    shape = (60, 60)
    prob = np.zeros(shape)
    prob[disc(shape, 20, 20, 8)] = 0.9
    prob[disc(shape, 45, 45, 1)] = 0.9  # ~0.4 nm across at 0.2 nm/px
    prob[disc(shape, 45, 15, 5)] = 0.4  # below threshold
    labels = label_particles(prob, pixel_size_nm=PX, min_diameter_nm=1.0)
    assert labels.max() == 1
    assert label_particles(prob, pixel_size_nm=PX, min_diameter_nm=1.0, threshold=0.3).max() == 2


def test_edge_flag_mean_intensity_frame_time():
    shape = (50, 50)
    mask = disc(shape, 0, 25, 6) | disc(shape, 30, 25, 6)
    image = np.where(mask, 0.25, 1.0)
    labels = label_particles(mask, pixel_size_nm=PX)
    t = particle_table(labels, pixel_size_nm=PX, image=image, frame=7, time_s=0.7).sort_values("y_nm")
    assert list(t.touches_edge) == [True, False]
    assert t.mean_intensity.to_numpy() == pytest.approx([0.25, 0.25])
    assert set(t.frame) == {7} and set(t.time_s) == {0.7}


def test_empty_mask_gives_empty_labels_and_table():
    labels = label_particles(np.zeros((20, 20), bool), pixel_size_nm=PX)
    assert labels.max() == 0
    t = particle_table(labels, pixel_size_nm=PX, frame=0)
    assert len(t) == 0 and "diameter_nm" in t.columns


def test_diameter_uncertainty_from_members():
    shape = (60, 60)
    labels = label_particles(disc(shape, 30, 30, 10), pixel_size_nm=PX)
    radii = [9, 10, 11, 10]
    members = np.stack([disc(shape, 30, 30, r).astype(float) for r in radii])
    s = diameter_uncertainty(labels, members, pixel_size_nm=PX)
    expected = np.std([2 * np.sqrt(disc(shape, 30, 30, r).sum() / np.pi) * PX for r in radii], ddof=1)
    assert float(s.loc[1]) == pytest.approx(expected, rel=1e-9)
    t = particle_table(labels, pixel_size_nm=PX, member_probabilities=members)
    assert t.diameter_std_nm.iloc[0] == pytest.approx(expected)
    # a band from probability ± std
    prob = np.clip(1.0 - np.hypot(*(np.mgrid[:60, :60] - 30)) / 20, 0, 1)  # 0.5 at r = 10
    t2 = particle_table(labels, pixel_size_nm=PX, probability=prob, probability_std=np.full(shape, 0.05))
    # p ± 0.05 ≥ 0.5 ⇔ r ≤ 11 / r ≤ 9 → σ ≈ 1 px in radius = 2 px in diameter / 2
    assert t2.diameter_std_nm.iloc[0] == pytest.approx(2 * PX, rel=0.15)


@pytest.mark.parametrize("bad", [
    dict(pixel_size_nm=None), dict(pixel_size_nm=0), dict(pixel_size_nm=-1.0), dict(pixel_size_nm="x"),
])
def test_bad_pixel_size(bad):
    with pytest.raises(NanosegError, match="pixel size"):
        label_particles(np.ones((5, 5), bool), **bad)
    with pytest.raises(NanosegError, match="pixel size"):
        particle_table(np.ones((5, 5), np.int32), **bad)


def test_bad_inputs():
    with pytest.raises(NanosegError, match="2-D"):
        label_particles(np.ones((2, 5, 5), bool), pixel_size_nm=PX)
    with pytest.raises(NanosegError, match="empty"):
        label_particles(np.ones((0, 5), bool), pixel_size_nm=PX)
    with pytest.raises(NanosegError, match="NaN"):
        label_particles(np.full((5, 5), np.nan), pixel_size_nm=PX)
    with pytest.raises(NanosegError, match=r"\[0, 1\]"):
        label_particles(np.full((5, 5), 3.5), pixel_size_nm=PX)
    with pytest.raises(NanosegError, match="integers"):
        particle_table(np.full((5, 5), 0.5), pixel_size_nm=PX)
    with pytest.raises(NanosegError, match="shape"):
        particle_table(np.ones((5, 5), np.int32), pixel_size_nm=PX, image=np.ones((4, 4)))
    with pytest.raises(NanosegError, match="2 ensemble members"):
        diameter_uncertainty(np.ones((5, 5), np.int32), np.ones((1, 5, 5)), pixel_size_nm=PX)


# --- one definition of "a particle" (issue #16, items 3 and 4) ---


@pytest.mark.parametrize("dtype, on", [(bool, True), (np.uint8, 1), (np.uint8, 255), (np.int64, 1),
                                       (np.float32, 255.0)])
def test_binary_masks_of_any_dtype_give_the_same_particles(dtype, on):
    shape = (60, 80)
    mask = disc(shape, 30, 20, 10) | disc(shape, 30, 58, 10)  # two separate particles
    data = np.where(mask, on, 0).astype(dtype)
    labels = label_particles(data, pixel_size_nm=PX)
    assert labels.max() == 2 and labels.dtype == np.int32
    np.testing.assert_array_equal(labels > 0, mask)


def test_label_image_passes_through_validated():
    labels = np.zeros((40, 60), np.int32)
    labels[10:30, 10:30] = 3
    labels[10:30, 30:50] = 7  # touches label 3: a label image keeps them apart (a mask would be one blob)
    out = label_particles(labels.astype(np.uint16), pixel_size_nm=PX)
    np.testing.assert_array_equal(out, labels)
    assert out.dtype == np.int32
    small = labels.copy()
    small[2, 2] = 9  # one pixel: below the 0.5 nm minimum diameter at 0.2 nm/px
    assert set(np.unique(label_particles(small, pixel_size_nm=PX)).tolist()) == {0, 3, 7}


def test_bad_label_images_are_refused_with_the_fix():
    labels = np.zeros((40, 60), np.int32)
    labels[5:15, 5:15] = 1
    labels[25:35, 40:50] = 1  # label 1 in two separate pieces
    labels[25:35, 5:15] = 2
    with pytest.raises(NanosegError, match="label 1 .*2 separate parts") as info:
        label_particles(labels, pixel_size_nm=PX)
    assert "skimage.measure.label" in (info.value.hint or "")
    with pytest.raises(NanosegError, match="negative"):
        label_particles(np.where(labels == 2, -1, labels), pixel_size_nm=PX)
    with pytest.raises(NanosegError, match="background"):
        label_particles(np.where(labels > 0, 2, 1).astype(np.uint8), pixel_size_nm=PX)  # 1/2 mask, no 0


@pytest.mark.parametrize("px", [0.02, 0.1, 0.2])
@pytest.mark.parametrize("b", [6.0, 10.0, 20.0, 48.0])
@pytest.mark.parametrize("aspect", [1.0, 1.1, 1.3, 2.0, 3.0, 5.0])
def test_an_ellipse_is_never_split(px, b, aspect):
    a = aspect * b
    n = int(2 * a + 10)
    for angle in (0.0, 0.3, 0.7, 1.2):
        mask = ellipse((n, n), n / 2 + 0.3, n / 2 - 0.2, a, b, angle)
        count = label_particles(mask, pixel_size_nm=px, min_diameter_nm=0.0).max()
        assert count == 1, f"ellipse {2 * a:.0f}x{2 * b:.0f} px at {angle} rad, {px} nm/px split into {count}"


@pytest.mark.parametrize("px", [0.02, 0.1, 0.2])
@pytest.mark.parametrize("r", [8, 20, 45])
def test_two_touching_discs_are_split_at_any_size(px, r):
    shape = (2 * r + 20, 4 * r + 20)
    cx = r + 10
    mask = disc(shape, r + 10, cx, r) | disc(shape, r + 10, cx + 1.8 * r, r)  # overlap 0.2 r: a clear neck
    labels = label_particles(mask, pixel_size_nm=px, min_diameter_nm=0.0)
    assert labels.max() == 2
    areas = np.bincount(labels.ravel())[1:]
    assert areas.min() / areas.max() > 0.9


def test_a_neck_almost_as_wide_as_the_particle_is_not_split():
    shape = (80, 130)
    # discs of radius 20, centres 21 px apart: the neck half-width sqrt(20² − 10.5²) ≈ 17 px is 0.85 of the
    # inscribed radius (a 3 px dip, well above h = 1 px): a peanut-shaped single blob, not two particles
    peanut = disc(shape, 40, 45, 20) | disc(shape, 40, 66, 20)
    assert label_particles(peanut, pixel_size_nm=PX).max() == 1
    # centres 32 px apart: neck half-width 12 px = 0.6 of the radius, clearly two particles
    pair = disc(shape, 40, 45, 20) | disc(shape, 40, 77, 20)
    assert label_particles(pair, pixel_size_nm=PX).max() == 2


def test_overlay_of_labels_shows_where_touching_particles_were_split(tmp_path):
    import imageio.v3 as iio

    from nanoseg.io import write_png_preview

    shape = (80, 100)
    mask = disc(shape, 40, 35, 12) | disc(shape, 40, 57, 12)
    labels = label_particles(mask, pixel_size_nm=PX)
    assert labels.max() == 2
    image = np.random.default_rng(0).normal(size=shape)
    write_png_preview(tmp_path / "mask.png", image, overlay_mask=mask)
    write_png_preview(tmp_path / "labels.png", image, overlay_mask=labels)
    red = [np.all(iio.imread(tmp_path / name) == (255, 40, 40), axis=-1) for name in ("mask.png", "labels.png")]
    neck = red[1] & ~red[0]  # drawn only from the labels: the line between the two particles
    assert neck[30:51, 44:49].sum() >= 15 and not neck[:, :40].any()


def test_predict_overlay_outlines_each_particle_of_the_table(tmp_path):
    import imageio.v3 as iio
    import pandas as pd

    from nanoseg.infer.predict import Prediction
    from nanoseg.io import Micrograph
    from nanoseg.workflows.predict import write_prediction

    shape = (80, 100)
    mask = disc(shape, 40, 35, 12) | disc(shape, 40, 57, 12)  # one blob, two particles in particles.csv
    pred = Prediction(probability=mask.astype(np.float32), mask=mask.astype(np.uint8), threshold=0.5,
                      pixel_size_nm=PX)
    image = Micrograph(np.random.default_rng(0).normal(size=shape).astype(np.float32), pixel_size_nm=PX)
    written = write_prediction(pred, image, tmp_path, "pair")
    assert len(pd.read_csv(written["particles"])) == 2
    from scipy import ndimage as ndi

    red = np.all(iio.imread(written["overlay"]) == (255, 40, 40), axis=-1)
    inside = ndi.binary_erosion(mask, iterations=2)  # away from the blob's outline
    assert (red & inside).sum() >= 5  # the line between the two particles is drawn
