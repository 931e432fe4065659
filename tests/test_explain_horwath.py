"""Horwath study pieces: derived training sets (input blur × label source), auto- vs exact-label comparison,
spec resolution; the end-to-end run on a tiny simulated study is marked slow."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import disks_image
from nanoseg.datasets.store import DatasetWriter, open_dataset
from nanoseg.errors import NanosegError
from nanoseg.preprocess import auto_label, gaussian_blur
from nanoseg.workflows.horwath import compare_labels, derive_dataset, resolve_spec

# a big particle, a touching pair (one blob for a connected-component labeler), a tiny one (radius 3 px)
CENTERS = ((30, 30, 10), (70, 40, 8), (70, 55, 8), (30, 80, 3))


@pytest.fixture
def pool(tmp_path):
    root = tmp_path / "pool"
    with DatasetWriter(root) as writer:
        for i in range(2):
            image, mask = disks_image(shape=(100, 100), centers_radii=CENTERS, noise=0.03, seed=i)
            instances = np.zeros(mask.shape, np.int32)
            yy, xx = np.mgrid[:100, :100]
            for k, (cy, cx, r) in enumerate(CENTERS, start=1):
                instances[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (instances == 0)] = k
            writer.add(f"f{i}", image * 100 + 500, mask, {"pixel_size_nm": 0.2, "source": f"movie-{i}"},
                       instances=instances)
    return root


def test_derived_sets_blur_the_input_and_keep_or_replace_the_labels(pool, tmp_path):
    src = open_dataset(pool)
    exact = open_dataset(derive_dataset(pool, tmp_path / "exact_s2", labels="exact", sigma_px=2))
    auto = open_dataset(derive_dataset(pool, tmp_path / "auto_s0", labels="auto", sigma_px=0))
    for image_id in src.ids:
        assert np.allclose(exact.image(image_id), gaussian_blur(src.image(image_id), sigma_px=2), atol=1e-4)
        assert np.array_equal(exact.mask(image_id), src.mask(image_id))
        assert np.array_equal(exact.instances(image_id), src.instances(image_id))
        assert np.allclose(auto.image(image_id), src.image(image_id))
        assert np.array_equal(auto.mask(image_id), (auto_label(src.image(image_id)) > 0).astype(np.uint8))
    assert exact.row("f0")["source"] == "movie-0" and exact.row("f0")["input_blur_sigma_px"] == 2.0
    assert auto.row("f1")["labels"] == "auto"
    derive_dataset(pool, tmp_path / "exact_s2", labels="exact", sigma_px=2)  # resume: nothing to redo
    assert len(open_dataset(tmp_path / "exact_s2")) == 2
    with pytest.raises(NanosegError, match="label source"):
        derive_dataset(pool, tmp_path / "x", labels="manual", sigma_px=0)


def test_label_comparison_finds_what_the_classical_labeler_gets_wrong(pool):
    result = compare_labels(pool)
    summary = result.summary.iloc[0]
    assert summary.images == 2 and summary.exact_particles == 8
    # the radius-3 particle is narrower than the opening disk (radius 5): missed in every frame
    assert summary.missed_entirely >= 2
    small = result.by_size.iloc[0]
    assert small.fraction_found == 0
    # the touching pair comes out as one particle
    assert summary.merged_auto_particles == 2
    assert (result.errors.exact_particles_in_merges == 2).all()
    assert 0.5 < summary.dice_mean < 1 and summary.pixel_recall < 1
    assert set(result.per_image.columns) >= {"dice", "n_exact", "n_auto", "particle_recall"}


def test_spec_placeholders_become_output_paths(tmp_path):
    spec = {"name": "h", "datasets": {"pool": {"preset": "au_2.2nm"}, "test": {"preset": "au_2.2nm", "seed": 2},
                                      "exact_s0": {"path": "derived/exact_s0"},
                                      "auto_s1.5": {"path": "derived/auto_s1.5"}},
            "train": ["exact_s0", "auto_s1.5"], "test": ["test"], "folds": 2,
            "sizes": {"tiny": {"n_images": 3}}}
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(spec))
    resolved, derived = resolve_spec(path, tmp_path / "out", size="tiny")
    assert derived == {"exact_s0": ("exact", 0.0), "auto_s1.5": ("auto", 1.5)}
    assert resolved["datasets"]["auto_s1.5"]["path"] == str((tmp_path / "out" / "data" / "auto_s1.5").resolve())
    assert resolved["n_images"] == 3 and resolved["sizes"] == {"tiny": {}}
    bad = dict(spec, datasets={**spec["datasets"], "blurry": {"path": "derived/blurry"}})
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(NanosegError, match="exact_s<σ>"):
        resolve_spec(path, tmp_path / "out")
    del spec["datasets"]["pool"]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(NanosegError, match="'pool'"):
        resolve_spec(path, tmp_path / "out")


@pytest.mark.slow  # simulates 6 small frames and trains 4 tiny models: a few minutes on 2 CPU cores
def test_horwath_study_runs_end_to_end_on_a_tiny_spec(tmp_path):
    import pandas as pd

    from nanoseg.workflows.horwath import run_horwath

    spec = {
        "name": "horwath-tiny", "size": "tiny",
        "datasets": {"pool": {"preset": "insitu_au_wide", "seed": 1}, "test": {"preset": "insitu_au_wide", "seed": 2},
                     "exact_s0": {"path": "derived/exact_s0"}, "auto_s2": {"path": "derived/auto_s2"}},
        "train": ["exact_s0", "auto_s2"], "test": ["test"], "folds": 2, "n_images": 4, "group_by": "id",
        "simulation": {"image_size_px": 96, "n_particles": 3},
    }
    spec.update(training={"model": "unet3", "epochs": 1, "patch_size": 64, "batch_size": 4, "amp": False},
                sizes={"tiny": {"datasets": {"test": {"n_images": 2}}}})
    path = tmp_path / "horwath.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = run_horwath(path, tmp_path / "out", progress=False, max_ablation_images=1)
    summary = result.tables["summary"]
    assert set(summary.labels) == {"exact", "auto"} and set(summary.blur_sigma_px) == {0.0, 2.0}
    assert (summary.n_models == 2).all() and summary.dice.between(0, 1).all()
    assert {"otsu_f1", "size_mean_error_nm"} <= set(summary.columns)
    assert "threshold_name" in result.tables["threshold_curves"]
    assert result.report.exists() and (tmp_path / "out" / "labels_summary.csv").exists()
    # rerun resumes: every training and evaluation is reused
    again = run_horwath(path, tmp_path / "out", progress=False, max_ablation_images=1)
    pd.testing.assert_frame_equal(again.tables["summary"], summary)


@pytest.mark.parametrize("size", ["small", "cpu", "fringes", "mini", "mini-arch", "mini-blur", "full"])
def test_every_size_of_the_shipped_horwath_spec_resolves(size, tmp_path):
    from pathlib import Path

    from nanoseg.study import load_spec

    spec_path = Path(__file__).resolve().parents[1] / "examples" / "studies" / "horwath.yaml"
    resolved, derived = resolve_spec(spec_path, tmp_path, size=size)
    load_spec(resolved)  # the resolved dict is itself a valid study spec
    assert set(resolved["train"]) <= set(derived)
    if size == "fringes":  # lattice resolved: the Au (111) period is 4–5 px
        assert resolved["datasets"]["pool"]["preset"] == "insitu_au_fringes"
        from nanoseg.simulate import load_config

        config = load_config(spec_path.parents[1] / "simulate" / "insitu_au_fringes.yaml")
        assert 0.235 / max(config.pixel_size_nm.uniform) > 4


def test_unresolved_lattice_spacings_stop_the_study_before_training(tmp_path):
    from nanoseg.workflows.horwath import run_horwath

    spec = {"name": "h", "datasets": {"pool": {"preset": "insitu_au_wide", "seed": 1},
                                      "test": {"preset": "insitu_au_wide", "seed": 2, "n_images": 1},
                                      "exact_s0": {"path": "derived/exact_s0"}},
            "train": ["exact_s0"], "test": ["test"], "folds": 2, "n_images": 2,
            "simulation": {"image_size_px": 48, "n_particles": 1}}
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(spec))
    # Au (111) at ~0.18 nm/px is a 1.3 px period: refused with the pool's pixel size, nothing trained
    with pytest.raises(NanosegError, match="not resolved at 0.1"):
        run_horwath(path, tmp_path / "out", progress=False, lattice_spacings_nm=[0.235])
    assert not (tmp_path / "out" / "study").exists()
