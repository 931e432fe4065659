"""nanoseg.datasets helpers: patches with provenance, grouped splits, augmentation, torch PatchDataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import disks_image
from nanoseg.datasets import DatasetWriter, open_dataset
from nanoseg.datasets.augment import (
    AugmentConfig,
    add_noise,
    augment_pair,
    crop_zoom,
    dihedral,
    redose,
    rotate,
    wrap_shift,
)
from nanoseg.datasets.patches import extract_patches, patch_origins, patches_from_array
from nanoseg.datasets.splits import grouped_kfold, grouped_split
from nanoseg.datasets.torchdata import PatchDataset
from nanoseg.errors import NanosegError


# ------------------------------------------------------------------------------------------ patches
def test_patch_grid_and_particle_rule():
    assert patch_origins((64, 64), 32) == [(0, 0), (0, 32), (32, 0), (32, 32)]
    assert patch_origins((64, 64), 32, stride=16)[:3] == [(0, 0), (0, 16), (0, 32)]
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    mask = np.zeros((64, 64), np.uint8)
    mask[40:60, 5:25] = 1  # 400 px, all in the bottom-left patch
    imgs, msks, where = patches_from_array(image, mask, patch_size=32, min_particle_px=100)
    assert where == [(32, 0, 400)]
    np.testing.assert_array_equal(imgs[0], image[32:, :32])
    # "> N" rule: a patch with exactly N particle pixels is dropped
    assert patches_from_array(image, mask, patch_size=32, min_particle_px=400)[2] == []
    # a small image is reflect-padded to one patch
    small, small_mask, where = patches_from_array(image[:20, :20], mask[:20, :20], patch_size=32)
    assert small.shape == (1, 32, 32) and where == [(0, 0, 0)]


def test_extract_patches_keeps_provenance_and_preprocesses(tmp_path):
    with DatasetWriter(tmp_path / "ds") as w:
        for i in range(2):
            image, mask = disks_image((64, 64), ((20, 20, 8),), seed=i)
            w.add(f"im{i}", image * 100 + 50, mask, {"pixel_size_nm": 0.02, "material": "Au", "session": "s1"})
    ds = open_dataset(tmp_path / "ds")
    p = extract_patches(ds, patch_size=32, pipeline=lambda a: (a - a.mean()) / a.std())
    assert len(p) == 8 and list(p.table["image_id"]) == ["im0"] * 4 + ["im1"] * 4
    assert list(p.table[["y", "x"]].iloc[3]) == [32, 32] and set(p.table["material"]) == {"Au"}
    assert abs(float(p.images[:4].mean())) < 1e-5  # standardized as a whole image, then cut
    assert int(p.table["particle_px"].sum()) == int(p.masks.sum()) == 2 * int(ds.mask("im0").sum())
    # resampled to 0.04 nm/px: 64 px → 32 px, one patch per image, labels stay binary
    r = extract_patches(ds, patch_size=32, pixel_size_nm=0.04)
    assert len(r) == 2 and set(np.unique(r.masks)) <= {0, 1} and r.table["patch_pixel_size_nm"].iloc[0] == 0.04
    assert abs(int(r.masks[0].sum()) - int(ds.mask("im0").sum()) / 4) < 15


# ------------------------------------------------------------------------------------------ splits
def _meta(n=50, sessions=10):
    return pd.DataFrame({"id": [f"im{i:02d}" for i in range(n)], "session": [f"s{i % sessions}" for i in range(n)]})


@pytest.mark.parametrize("group_by", ["id", "session"])
def test_grouped_kfold_never_leaks(group_by):
    meta = _meta()
    folds = grouped_kfold(meta, 5, group_by=group_by, seed=3)
    session = dict(zip(meta["id"], meta["session"], strict=True))
    tested = []
    for f in folds:
        parts = [set(f.train_ids), set(f.val_ids), set(f.test_ids)]
        assert sum(map(len, parts)) == len(meta) and set().union(*parts) == set(meta["id"])
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        if group_by == "session":  # no session in two splits
            groups = [{session[i] for i in p} for p in parts]
            assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
        tested += f.test_ids
    assert sorted(tested) == sorted(meta["id"])  # every image is tested exactly once
    assert [f.sizes for f in folds][0] == {"train": 35, "val": 5, "test": 10}  # 70/10/20
    assert [f.seed for f in folds] == [3, 4, 5, 6, 7]
    again = grouped_kfold(meta, 5, group_by=group_by, seed=3)
    assert [f.test_ids for f in again] == [f.test_ids for f in folds]
    assert [f.test_ids for f in grouped_kfold(meta, 5, group_by=group_by, seed=4)] != [f.test_ids for f in folds]


def test_grouped_split_and_errors():
    meta = _meta()
    s = grouped_split(meta, group_by="session", seed=0)
    assert s.sizes == {"train": 35, "val": 5, "test": 10}
    train, val, test = s
    assert not set(meta.set_index("id").loc[train, "session"]) & set(meta.set_index("id").loc[test, "session"])
    with pytest.raises(NanosegError, match="cannot make 5 folds"):
        grouped_kfold(_meta(10, sessions=3), 5, group_by="session")
    with pytest.raises(NanosegError, match="no such metadata column"):
        grouped_split(meta, group_by="operator")
    # rows without a session are their own group
    meta.loc[:4, "session"] = None
    assert len(grouped_kfold(meta, 5, group_by="session")) == 5


# ------------------------------------------------------------------------------------------ augmentation
def _disk_mask(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def test_dihedral_keeps_labels_binary_and_aligned():
    rng = np.random.default_rng(0)
    mask = (rng.random((12, 10)) > 0.7).astype(np.uint8)
    image = mask * 2.0 + 0.1 * rng.random((12, 10))
    seen = set()
    for k in range(8):
        i2, m2 = dihedral(image, mask, k)
        assert set(np.unique(m2)) <= {0, 1}
        np.testing.assert_array_equal(m2, (i2 > 1).astype(np.uint8))
        seen.add(m2.tobytes())
    assert len(seen) == 8  # the 8 group elements are distinct for a generic mask


@pytest.mark.parametrize("angle", [30.0, 90.0, 137.0])
def test_rotation_label_follows_the_rotated_disk(angle):
    shape, (cy, cx, r) = (96, 96), (30.0, 60.0, 12)
    mask = _disk_mask(shape, cy, cx, r)
    image = np.where(mask, 0.2, 1.0).astype(np.float32)
    i2, m2 = rotate(image, mask, angle)
    assert m2.dtype == np.uint8 and set(np.unique(m2)) <= {0, 1}
    # counter-clockwise as displayed (rows down) about the centre (47.5, 47.5)
    t = np.deg2rad(angle)
    c = (shape[0] - 1) / 2
    dy, dx = cy - c, cx - c
    ny, nx = c + dy * np.cos(t) - dx * np.sin(t), c + dy * np.sin(t) + dx * np.cos(t)
    expected = _disk_mask(shape, ny, nx, r)
    assert np.sum(m2 != expected) <= 0.08 * expected.sum()  # only boundary pixels may differ
    assert np.mean((i2 < 0.6) == (m2 == 1)) > 0.99  # the label sits on the rotated particle


def test_crop_zoom_and_wrap_shift_keep_alignment():
    rng = np.random.default_rng(1)
    mask = _disk_mask((64, 64), 32, 32, 14)
    image = np.where(mask, 0.0, 1.0).astype(np.float32)
    for _ in range(5):
        i2, m2 = crop_zoom(image, mask, rng, min_crop_fraction=0.25)
        assert i2.shape == m2.shape == (64, 64) and set(np.unique(m2)) <= {0, 1}
        assert np.mean((i2 < 0.5) == (m2 == 1)) > 0.97
        i3, m3 = wrap_shift(image, mask, rng)
        np.testing.assert_array_equal((i3 < 0.5).astype(np.uint8), m3)


def test_noise_renormalisation_keeps_unit_variance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(256, 256)).astype(np.float32)
    for rho in (0.5, 1.25):
        assert abs(float(add_noise(x, rng, rho=rho).std()) - 1) < 0.02
    # ρ ~ U[0, ρmax]: every draw keeps unit variance, and the draws differ
    outs = [add_noise(x, rng, rho_max=1.75) for _ in range(4)]
    assert all(abs(float(o.std()) - 1) < 0.02 for o in outs)
    assert len({round(float(np.corrcoef(o.ravel(), x.ravel())[0, 1]), 3) for o in outs}) == 4
    with pytest.raises(NanosegError, match="exactly one"):
        add_noise(x, rng)


def test_redose_thins_counts_to_the_lower_dose():
    rng = np.random.default_rng(3)
    counts = rng.poisson(40.0, size=(300, 300)).astype(np.float32)
    low = redose(counts, rng, from_dose_e_per_A2=800, to_dose_e_per_A2=80)
    assert low.mean() == pytest.approx(4.0, rel=0.02) and low.var() == pytest.approx(4.0, rel=0.05)
    assert np.all(low == np.round(low))  # integer counts stay integer (binomial thinning)
    blurred = redose(counts + 0.5, rng, from_dose_e_per_A2=800, to_dose_e_per_A2=400)
    assert blurred.mean() == pytest.approx(20.25, rel=0.02)
    with pytest.raises(NanosegError, match="only lower"):
        redose(counts, rng, from_dose_e_per_A2=80, to_dose_e_per_A2=800)
    with pytest.raises(NanosegError, match="raw counts"):
        redose(counts - 100, rng, from_dose_e_per_A2=800, to_dose_e_per_A2=80)


def test_augment_config_validation_and_pipeline():
    with pytest.raises(ValueError, match="not both"):
        AugmentConfig(noise_rho=0.5, noise_rho_max=1.0)
    with pytest.raises(ValueError, match="redose_range"):
        AugmentConfig(redose_probability=0.5)
    cfg = AugmentConfig(rotate_probability=1.0, crop_zoom_probability=0.5, wrap_shift=True, noise_rho_max=1.0,
                        blur_probability=0.5, blur_sigma_px_max=1.0)
    mask = _disk_mask((48, 48), 20, 24, 9)
    image, m = augment_pair(np.where(mask, -1.0, 1.0).astype(np.float32), mask, cfg, np.random.default_rng(0))
    assert image.shape == m.shape == (48, 48) and set(np.unique(m)) <= {0, 1} and m.sum() > 100


def test_patch_dataset_is_deterministic_per_epoch():
    rng = np.random.default_rng(4)
    images = rng.normal(size=(4, 16, 16)).astype(np.float32)
    masks = (images > 0).astype(np.uint8)
    ds = PatchDataset(images, masks, augment=AugmentConfig(noise_rho=0.3), seed=7)
    a0 = ds[1][0].clone()
    assert np.array_equal(ds[1][0].numpy(), a0.numpy())
    ds.set_epoch(1)
    assert not np.array_equal(ds[1][0].numpy(), a0.numpy())
    ds.set_epoch(0)
    assert np.array_equal(ds[1][0].numpy(), a0.numpy())
    plain = PatchDataset(images, masks)
    np.testing.assert_array_equal(plain[2][0][0].numpy(), images[2])
    with pytest.raises(NanosegError, match="dose"):
        PatchDataset(images, masks, augment=AugmentConfig(redose_probability=1, redose_range_e_per_A2=(50, 100)))
