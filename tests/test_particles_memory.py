"""label_particles on one huge connected component with thousands of watershed markers (an out-of-distribution
frame whose mask is one web): the neck merging must not allocate markers² (it took 20 GB at 4096² and was
OOM-killed)."""

from __future__ import annotations

import tracemalloc

import numpy as np

from nanoseg.particles import _merge_shallow_necks


def test_neck_merging_memory_grows_with_the_edges_not_markers_squared():
    rows, cols = 40, 80  # 3200 watershed regions of 4 × 4 px in one strip-connected block
    ws = (np.arange(rows * cols, dtype=np.int32).reshape(rows, cols) + 1).repeat(4, 0).repeat(4, 1)
    dist = np.ones(ws.shape)
    peaks = np.full(rows * cols + 1, 3.0)  # lobes 3 px high, necks 1 px: every neck splits
    tracemalloc.start()
    try:
        groups = _merge_shallow_necks(ws, dist, peaks, 1.0)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(groups) == rows * cols  # nothing merged
    assert peak_bytes < 20e6, f"{peak_bytes / 1e6:.0f} MB for {rows * cols} regions"  # dense: 3201² × 8 B = 82 MB


def test_neck_merging_merges_a_shallow_neck():
    ws = np.zeros((5, 10), np.int32)
    ws[:, :5], ws[:, 5:] = 1, 2
    dist = np.full(ws.shape, 2.5)
    groups = _merge_shallow_necks(ws, dist, np.array([0.0, 3.0, 3.0]), 1.0)
    assert groups == [[1, 2]]


def _web(side_px: int = 350, spacing_px: int = 14, radius_px: int = 6) -> np.ndarray:
    """One connected mask: a lattice of discs joined by 2-px bridges (every bridge a narrow neck)."""
    yy, xx = np.mgrid[:side_px, :side_px]
    centres = np.arange(spacing_px // 2, side_px - spacing_px // 2 + 1, spacing_px)
    mask = np.zeros((side_px, side_px), bool)
    for c in centres:
        mask[c - 1:c + 1, centres[0]:centres[-1]] = True  # horizontal bridges
        mask[centres[0]:centres[-1], c - 1:c + 1] = True  # vertical bridges
    for cy in centres:
        for cx in centres:
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius_px**2
    return mask, len(centres) ** 2


def test_splitting_one_web_of_many_particles_stays_small():
    """Each split part used to be a boolean mask of the whole component's crop (parts × crop bytes: 20 GB for a
    4096² frame whose mask is one web)."""
    from nanoseg.particles import label_particles

    mask, n_discs = _web()
    tracemalloc.start()
    try:
        labels = label_particles(mask, pixel_size_nm=0.1, min_diameter_nm=0.5)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert int(labels.max()) == n_discs  # every disc its own particle
    assert peak_bytes < 25e6, f"{peak_bytes / 1e6:.0f} MB for {n_discs} particles in a {mask.shape} mask"
