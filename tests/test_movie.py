"""The coarsening-movie generator: its law, its truth, its frames and its file."""

from __future__ import annotations

import numpy as np
import pytest

from nanoseg.errors import NanosegError
from nanoseg.simulate.movie import (
    image_statistics,
    lsw_distribution,
    sample_lsw_radii,
    simulate_coarsening_movie,
    write_movie,
)


def test_lsw_distribution_normalized_with_unit_mean_and_left_skew():
    u = np.linspace(0, 1.5, 20001)
    p = lsw_distribution(u)
    assert np.trapezoid(p, u) == pytest.approx(1.0, abs=1e-3)
    assert np.trapezoid(u * p, u) == pytest.approx(1.0, abs=1e-3)
    r = sample_lsw_radii(20000, 2.0, np.random.default_rng(0))
    assert r.mean() == pytest.approx(2.0, rel=0.01)
    assert r.max() < 3.0
    skew = np.mean((r - r.mean()) ** 3) / r.std() ** 3
    assert skew < 0  # LSW is left-skewed


def test_ripening_truth_follows_lsw_rate():
    k = 0.3
    m = simulate_coarsening_movie(n_frames=40, shape_px=(1024, 1024), pixel_size_nm=0.18, n_particles=500,
                                  lsw_rate_nm3_per_s=k, drift_nm_per_frame=0, seed=0)
    g = m.truth.groupby("time_s").radius_nm.mean()
    slope = np.polyfit(g.index, g.to_numpy() ** 3, 1)[0]
    assert slope == pytest.approx(k, rel=0.15)
    counts = m.truth.groupby("frame").size()
    assert counts.iloc[-1] < 0.6 * counts.iloc[0]  # particles dissolve
    assert (m.events.kind == "vanish").sum() > 50
    # small shrink, large grow: per-particle radius change over 5 s vs initial size
    first, later = m.truth[m.truth.frame == 0], m.truth[m.truth.frame == 5]
    both = first.merge(later, on="particle_id", suffixes=("0", "5"))
    growth = both.radius_nm5 - both.radius_nm0
    assert np.corrcoef(both.radius_nm0, growth)[0, 1] > 0.5


def test_coalescence_events_conserve_volume_and_replace_parents():
    m = simulate_coarsening_movie(n_frames=30, shape_px=(256, 256), pixel_size_nm=0.18, n_particles=60,
                                  mode="coalescence", diffusion_nm2_per_s=0.3, drift_nm_per_frame=0, seed=2)
    ev = m.events[m.events.kind == "coalescence"]
    assert len(ev) >= 3
    assert (m.events.kind == "vanish").sum() == 0  # no ripening in this mode
    radii = m.truth.set_index(["frame", "particle_id"]).radius_nm
    checked = 0
    for e in ev.itertuples():
        a, b = e.parents
        try:
            ra, rb = radii.loc[(e.frame - 1, a)], radii.loc[(e.frame - 1, b)]
            rc = radii.loc[(e.frame, e.child)]
        except KeyError:  # a parent or the child outside the field, or merged again in the same frame
            continue
        assert rc**3 == pytest.approx(ra**3 + rb**3, rel=1e-9)
        present = set(m.truth[m.truth.frame == e.frame].particle_id)
        assert a not in present and b not in present
        checked += 1
    assert checked >= 2


def test_no_recorded_pair_is_closer_than_the_contact_distance():
    """With contact_distance_nm = 0.3 (one bond), particles whose edges come that close coalesce: no frame of the
    truth holds a pair a fraction of an ångström apart (under the image blur such a pair looks merged). 0.3 is the
    default; with 0 (merge when the discs overlap) such pairs exist."""
    from scipy.spatial.distance import pdist

    def smallest_gap_nm(m):
        gaps = []
        for _, f in m.truth.groupby("frame"):
            xy, r = f[["y_sample_nm", "x_sample_nm"]].to_numpy(), f["radius_nm"].to_numpy()
            sums = pdist(r[:, None], lambda a, b: a[0] + b[0])
            gaps.append((pdist(xy) - sums).min())
        return min(gaps)

    kw = dict(n_frames=30, shape_px=(256, 256), pixel_size_nm=0.18, n_particles=60, mode="coalescence",
              diffusion_nm2_per_s=0.3, drift_nm_per_frame=0, seed=2)
    assert smallest_gap_nm(simulate_coarsening_movie(**kw)) >= 0.3 - 1e-9
    assert smallest_gap_nm(simulate_coarsening_movie(**kw, contact_distance_nm=0.0)) < 0.3
    with pytest.raises(NanosegError, match="contact_distance_nm"):
        simulate_coarsening_movie(n_frames=2, shape_px=(32, 32), contact_distance_nm=0.5)
    with pytest.raises(NanosegError) as err:  # the 0.3 nm default against a smaller min_separation_nm
        simulate_coarsening_movie(n_frames=2, shape_px=(32, 32), min_separation_nm=0.1)
    assert "contact_distance_nm=0.1 or less" in str(err.value.hint)


def test_frames_deterministic_calibrated_and_dark_particles():
    m = simulate_coarsening_movie(n_frames=3, shape_px=(128, 160), pixel_size_nm=0.2, n_particles=12, seed=5,
                                  dose_e_per_A2=200)
    f0, f0b = m.frame(0), m.frame(0)
    assert f0.data.shape == (128, 160) and f0.data.dtype == np.float32
    assert f0.pixel_size_nm == 0.2 and f0.metadata["time_s"] == 0.0
    np.testing.assert_array_equal(f0.data, f0b.data)
    mask = m.mask(0)
    assert f0.data[mask].mean() < f0.data[~mask].mean() - 0.05  # amplitude contrast
    s = image_statistics(f0.data, mask)
    # not white (0.167): the PSF low-passes the shot noise; at 800 e/px the 5 % white pixel gains add 0.01-0.02
    assert s["contrast"] > 0.5 and 0.002 < s["roughness"] < 0.13
    # the truth mask matches the truth radii
    rows = m.truth_table(0)
    inside = rows[rows.inside]
    areas = np.bincount(m.labels(0).ravel())[inside.particle_id.to_numpy()]
    np.testing.assert_allclose(areas * 0.04, np.pi * inside.radius_nm**2, rtol=0.2, atol=0.3)
    # series is lazy and carries times
    series = m.series()
    assert len(series) == 3 and series[2].metadata["time_s"] == 2.0


def test_drift_moves_the_image():
    from skimage.registration import phase_cross_correlation

    m = simulate_coarsening_movie(n_frames=6, shape_px=(128, 128), pixel_size_nm=0.2, n_particles=10,
                                  drift_nm_per_frame=(0.3, -0.5), drift_jitter_nm=0.0, diffusion_nm2_per_s=0,
                                  lsw_rate_nm3_per_s=0, dose_e_per_A2=None, seed=1)
    shift, _, _ = phase_cross_correlation(m.frame(5).data, m.frame(0).data, upsample_factor=20)
    assert shift == pytest.approx([5 * 0.3 / 0.2, -5 * 0.5 / 0.2], abs=0.15)
    assert m.drift.dy_nm.iloc[5] == pytest.approx(1.5)


def test_write_movie_round_trip(tmp_path):
    import tifffile

    m = simulate_coarsening_movie(n_frames=4, shape_px=(48, 64), pixel_size_nm=0.25, n_particles=4,
                                  frame_interval_s=0.1, seed=0)
    path = tmp_path / "movie.tif"
    write_movie(m, path)
    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        meta = tif.imagej_metadata
    assert data.shape == (4, 48, 64)
    np.testing.assert_array_equal(data[2], m.frame(2).data)
    assert meta["finterval"] == pytest.approx(0.1) and meta["spacing"] == pytest.approx(0.25)
    assert meta["unit"] == "nm"
    assert [float(t) for t in meta["Info"].split("=")[1].split(",")] == pytest.approx([0, 0.1, 0.2, 0.3])


@pytest.mark.parametrize("bad,match", [
    (dict(mode="boil"), "mode"), (dict(n_frames=0), "n_frames"), (dict(pixel_size_nm=0), "pixel_size_nm"),
    (dict(pixel_size_nm=None), "pixel_size_nm"), (dict(n_particles=0), "n_particles"),
    (dict(shape_px=(8, 8)), "shape_px"), (dict(exponent=7), "exponent"), (dict(dose_e_per_A2=-3), "dose"),
])
def test_bad_parameters(bad, match):
    with pytest.raises(NanosegError, match=match):
        simulate_coarsening_movie(**{"n_frames": 2, "shape_px": (32, 32), **bad})


def test_too_crowded_is_a_clear_error():
    with pytest.raises(NanosegError, match="overlap"):
        simulate_coarsening_movie(n_frames=1, shape_px=(32, 32), pixel_size_nm=0.2, n_particles=400,
                                  mean_radius_nm=2.0)


def test_dissolving_particles_vanish_instead_of_flying_into_neighbours():
    """The truth is physical: a particle that dissolves below ``dissolve_radius_nm`` is gone (a vanish event), and
    the r⁻⁴ mobility is not extrapolated below ``mobility_min_radius_nm`` — before, a particle shrinking through
    0.05–0.3 nm took steps of several nm inside one frame and 'coalesced' with a neighbour 3–11 nm away."""
    m = simulate_coarsening_movie(n_frames=40, shape_px=(1024, 1024), pixel_size_nm=0.18, n_particles=600,
                                  lsw_rate_nm3_per_s=0.3, mode="mixed", diffusion_nm2_per_s=0.01,
                                  dose_e_per_A2=None, seed=0)  # the particle system of benchmarks/track.py
    assert m.params["dissolve_radius_nm"] == 0.3 and m.params["mobility_min_radius_nm"] == 0.5
    tr = m.truth.sort_values(["particle_id", "frame"])
    by_id = tr.groupby("particle_id")
    step_nm = np.hypot(by_id["y_sample_nm"].diff(), by_id["x_sample_nm"].diff())
    # clamped mobility: D ≤ 0.01 · (1/0.5)⁴ = 0.16 nm²/s, so a 1-s step is ≈ 0.57 nm rms; > 1.5 nm is a flight
    assert step_nm.max() < 1.5
    assert tr["radius_nm"].min() >= 0.3
    # every coalescence joined neighbours: in the frame before, the parents' edges were < 1 nm apart (the flights
    # merged particles 3–11 nm apart); a small cluster within a bond of a neighbour is absorbed, as it should be
    at = m.truth.set_index(["frame", "particle_id"])
    gaps = []
    for e in m.events[m.events.kind == "coalescence"].itertuples():
        a, b = e.parents
        if (e.frame - 1, a) in at.index and (e.frame - 1, b) in at.index:
            pa, pb = at.loc[(e.frame - 1, a)], at.loc[(e.frame - 1, b)]
            gaps.append(np.hypot(pa.y_sample_nm - pb.y_sample_nm, pa.x_sample_nm - pb.x_sample_nm)
                        - pa.radius_nm - pb.radius_nm)
    assert len(gaps) >= 5 and max(gaps) < 1.0


@pytest.mark.parametrize("bad,match", [(dict(dissolve_radius_nm=0), "dissolve_radius_nm"),
                                       (dict(dissolve_radius_nm=2.0), "dissolve_radius_nm"),
                                       (dict(mobility_min_radius_nm=-1), "mobility_min_radius_nm")])
def test_bad_dissolution_parameters(bad, match):
    with pytest.raises(NanosegError, match=match):
        simulate_coarsening_movie(n_frames=2, shape_px=(32, 32), **bad)


def test_configs_and_keywords_give_the_same_movie():
    from nanoseg.simulate.movie import MovieImaging, ParticleLaw, StageDrift

    flat = dict(mode="mixed", mean_radius_nm=1.2, diffusion_nm2_per_s=0.02, substeps=4, drift_nm_per_frame=0.1,
                drift_jitter_nm=0.0, dose_e_per_A2=200.0, defocus_nm=-5.0, detector="counting")
    a = simulate_coarsening_movie(n_frames=4, shape_px=(64, 64), pixel_size_nm=0.2, n_particles=5, seed=4, **flat)
    b = simulate_coarsening_movie(
        n_frames=4, shape_px=(64, 64), pixel_size_nm=0.2, n_particles=5, seed=4,
        law=ParticleLaw(mode="mixed", mean_radius_nm=1.2, diffusion_nm2_per_s=0.02, substeps=4),
        drift=StageDrift(drift_nm_per_frame=0.1, drift_jitter_nm=0.0),
        imaging=MovieImaging(dose_e_per_A2=200.0, defocus_nm=-5.0, detector="counting"))
    assert a.truth.equals(b.truth) and a.events.equals(b.events) and a.params == b.params
    np.testing.assert_array_equal(a.frame(3).data, b.frame(3).data)
    # a keyword overrides the same field of a given config
    c = simulate_coarsening_movie(n_frames=4, shape_px=(64, 64), pixel_size_nm=0.2, n_particles=5, seed=4,
                                  law=ParticleLaw(mode="ripening"), **flat)
    assert c.params["mode"] == "mixed" and c.truth.equals(a.truth)
    with pytest.raises(NanosegError, match="unknown parameters.*colour"):
        simulate_coarsening_movie(n_frames=2, shape_px=(32, 32), colour="red")
    with pytest.raises(NanosegError, match="law= must be a ParticleLaw"):
        simulate_coarsening_movie(n_frames=2, shape_px=(32, 32), law={"mode": "mixed"})
