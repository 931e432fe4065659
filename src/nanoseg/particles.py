"""Instance labels and per-particle properties in nm.

From a probability map (or a binary mask) to one integer label per particle, splitting particles that
touch, then a table of physical properties per particle.

**What counts as a particle.** :func:`label_particles` is the one definition, used by ``predict``, ``evaluate``,
the size distributions and ``insitu``: a binary mask of any dtype (bool, 0/1, 0/255) or a thresholded
probability map is split into 8-connected components and then along necks; an integer label image (three or
more values) is validated (no negative values, every label one connected piece) and kept as it is.

**Splitting rule (why touching particles are split and single ellipses are not).** Foreground components
are split by a watershed of the Euclidean distance transform (EDT). A marker is an *h-dome* of the EDT: the
connected top of a peak that rises at least ``h`` pixels above the saddle that joins it to a higher peak, and
whose height (the inscribed radius) is at least the minimum particle radius, ``h = max(1 px, r_min / 2)``
(``r_min = min_diameter_nm / 2 / pixel_size_nm``). Neighbouring watershed regions are then merged again, highest
saddle first, unless the neck is clearly narrower than the smaller lobe: two touching discs of radii r1 ≥ r2
joined by a neck of half-width w are split only when ``r2 − w ≥ h`` **and** ``w ≤ 0.75 · r2``
(:data:`NECK_FRACTION`). An ellipse has a single EDT maximum along its major axis (the ridge only descends
towards the tips), so it is never split, whatever its aspect ratio, size or orientation; the pixel-level
ripples of a digitized ridge (several equal maxima a few pixels apart) lie on one dome and give one marker.
Fragments that would be smaller than the minimum size are not created (the marker height rule), and objects
smaller than ``min_diameter_nm`` (equivalent-circle diameter) are removed.

Example
-------
>>> import numpy as np
>>> yy, xx = np.mgrid[:64, :64]
>>> mask = ((yy - 32) ** 2 + (xx - 22) ** 2 <= 100) | ((yy - 32) ** 2 + (xx - 42) ** 2 <= 100)
>>> labels = label_particles(mask, pixel_size_nm=0.2)
>>> int(labels.max())
2
>>> table = particle_table(labels, pixel_size_nm=0.2)
>>> list(table["label"])
[1, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from nanoseg._pixel import min_area_px
from nanoseg.errors import NanosegError

__all__ = ["label_particles", "particle_table", "diameter_uncertainty", "miles_lantuejoul_weights", "TABLE_COLUMNS",
           "NECK_FRACTION"]

#: Columns of :func:`particle_table`, in order (``frame``, ``time_s``, ``diameter_std_nm`` are added when known).
TABLE_COLUMNS = [
    "label", "area_nm2", "diameter_nm", "major_axis_nm", "minor_axis_nm", "eccentricity",
    "centroid_y_px", "centroid_x_px", "y_nm", "x_nm", "mean_intensity", "touches_edge",
]


def _check_pixel_size(pixel_size_nm) -> float:
    if pixel_size_nm is None:
        raise NanosegError("pixel size is missing", hint="pass pixel_size_nm (nm per pixel), e.g. 0.18")
    try:
        value = float(pixel_size_nm)
    except (TypeError, ValueError):
        raise NanosegError(f"pixel size must be a number of nm, got {pixel_size_nm!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise NanosegError(f"pixel size must be a positive number of nm, got {pixel_size_nm!r}")
    return value


def _as_2d(array, name: str) -> np.ndarray:
    data = getattr(array, "data", array)  # accept a Micrograph or a Prediction-like object
    data = np.asarray(data)
    if data.ndim != 2:
        raise NanosegError(f"{name} must be a 2-D array, got shape {data.shape}")
    if data.size == 0:
        raise NanosegError(f"{name} is empty (0 pixels)")
    return data


#: A touching pair is split only where the neck's EDT value (the saddle, ≈ the neck's half-width) is at most this
#: fraction of the smaller lobe's EDT peak (its inscribed radius): the neck must be narrower than 3/4 of the
#: smaller particle's width. Near-round blobs with irregular outlines (a predicted mask) stay whole.
NECK_FRACTION = 0.75


def _kind_of_input(data: np.ndarray) -> tuple[str, np.ndarray | None]:
    """Classify a 2-D array: ``("probability", None)``, ``("binary", foreground)`` or ``("labels", None)``.

    Binary: a boolean array, any numeric array holding at most two values of which one is 0 (0/1, 0/255,
    0.0/255.0), or a constant nonzero integer array. Probability: any other float array (checked to lie in
    [0, 1] by the caller). Labels: an integer array with three or more values (0 = background).
    """
    if data.dtype == bool:
        return "binary", data
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise NanosegError(f"mask/probability must be real numbers, got dtype {data.dtype}")
    is_float = np.issubdtype(data.dtype, np.floating)
    if is_float and not np.all(np.isfinite(data)):
        raise NanosegError("probability map contains NaN/inf values",
                           hint="check the prediction; NaNs usually mean a bad input frame")
    low, high = data.min(), data.max()
    if is_float and 0 <= low and high <= 1:
        return "probability", None
    two_valued = low == high or not np.any((data != low) & (data != high))
    if two_valued and (low == 0 or (low == high and low > 0 and not is_float)):
        return "binary", data != 0
    if is_float:
        return "probability", None  # out of [0, 1]: refused by the caller with the fix
    if low < 0:
        raise NanosegError(f"a label image must not hold negative values (found {low})",
                           hint="0 is background and 1, 2, … are particles")
    if two_valued:
        raise NanosegError(f"a two-valued mask needs 0 as background, got the values {[int(low), int(high)]}",
                           hint="save the mask as 0 = background, nonzero = particle")
    return "labels", None


def _foreground(mask_or_probability, threshold: float) -> tuple[np.ndarray, np.ndarray | None]:
    """``(foreground, labels)``: a binary foreground, or (``None``, validated labels) for a label image."""
    if hasattr(mask_or_probability, "probability"):  # a nanoseg.infer.Prediction
        mask_or_probability = mask_or_probability.probability
    data = _as_2d(mask_or_probability, "mask/probability")
    kind, fg = _kind_of_input(data)
    if kind == "binary":
        return fg, None
    if kind == "labels":
        return None, _validated_labels(data)
    if not 0.0 < threshold < 1.0:
        raise NanosegError(f"threshold must lie in (0, 1), got {threshold}")
    if data.min() < 0 or data.max() > 1:
        raise NanosegError("a float input must be a probability map in [0, 1] (or a two-valued 0/x mask)",
                           hint="pass a boolean mask, or the particle probability (softmax channel 1)")
    return data >= threshold, None


def _validated_labels(data: np.ndarray) -> np.ndarray:
    """An integer label image as int32 after checking that every label is one 8-connected piece."""
    from skimage.measure import label as label_equal_regions

    if data.max() > np.iinfo(np.int32).max:
        raise NanosegError(f"label values must fit in int32, found {data.max()}",
                           hint="relabel consecutively (skimage.segmentation.relabel_sequential)")
    labels = data.astype(np.int32, copy=False)
    pieces = label_equal_regions(labels, background=0, connectivity=2)
    piece_owner = np.zeros(int(pieces.max()) + 1, dtype=np.int64)
    piece_owner[pieces.ravel()] = labels.ravel()
    counts = np.bincount(piece_owner[1:])
    split = np.flatnonzero(counts > 1)
    if split.size:
        first = int(split[0])
        raise NanosegError(
            f"a label image must hold each particle in one connected piece, but label {first} has "
            f"{int(counts[first])} separate parts ({split.size} label(s) affected: "
            f"{', '.join(str(int(s)) for s in split[:5])}{', …' if split.size > 5 else ''})",
            hint="relabel with skimage.measure.label(labels > 0) for a plain mask, or pass the binary mask "
                 "(labels > 0) to let nanoseg split touching particles")
    return labels


def label_particles(mask_or_probability, *, pixel_size_nm: float, min_diameter_nm: float = 0.5,
                    split_touching: bool = True, threshold: float = 0.5) -> np.ndarray:
    """Label particles: the one definition of "a particle" used by predict, evaluate, insitu and the sizes.

    Parameters
    ----------
    mask_or_probability : 2-D array or a ``nanoseg.infer.Prediction``
        * a **binary mask** of any dtype: bool, 0/1, 0/255, 0.0/255.0 (at most two values, one of them 0;
          nonzero = particle) → 8-connected components, holes ≤ the minimum particle area filled, touching
          particles split (``split_touching``);
        * an **integer label image** (three or more values: 0 = background, each other value one particle) →
          validated (no negative values, each label one 8-connected piece; a clear error otherwise) and kept
          with its ids; it is not split again;
        * a **float probability map** in [0, 1] (a Prediction's ``probability`` is used) → thresholded, then
          as a binary mask.
    pixel_size_nm : float
        Pixel size in nm (required: the minimum size and the split rule are physical).
    min_diameter_nm : float
        Objects with a smaller equivalent-circle diameter are removed; also sets the split rule
        (a watershed marker must be an EDT h-maximum with ``h = max(1 px, r_min/2)`` and height ``≥ r_min``).
    split_touching : bool
        Split touching particles of a binary mask (False: plain 8-connected components).
    threshold : float
        Probability threshold for float probability maps.

    Returns
    -------
    labels : int32 array, 0 = background; from a mask or probability particles 1..N in raster order of their
    first pixel; from a label image its own ids (objects below the minimum size set to 0).

    Example
    -------
    >>> import numpy as np
    >>> m = np.zeros((20, 20), np.uint8); m[5:12, 5:12] = 255
    >>> int(label_particles(m, pixel_size_nm=0.2).max())
    1
    """
    px = _check_pixel_size(pixel_size_nm)
    if not np.isfinite(min_diameter_nm) or min_diameter_nm < 0:
        raise NanosegError(f"min_diameter_nm must be ≥ 0, got {min_diameter_nm}")
    fg, given = _foreground(mask_or_probability, threshold)
    r_min_px = 0.5 * float(min_diameter_nm) / px
    min_area = min_area_px(min_diameter_nm, px)
    if given is not None:
        return _drop_small(given, min_area, relabel=False)
    # fill small holes (pinholes of a noisy probability map), not whole rings
    if fg.any():
        holes = ndi.binary_fill_holes(fg) & ~fg
        if holes.any():
            hole_labels, _ = ndi.label(holes)
            hole_sizes = np.bincount(hole_labels.ravel())
            small = hole_sizes <= max(min_area, 4.0)
            small[0] = False
            fg = fg | small[hole_labels]
    structure = np.ones((3, 3), dtype=bool)
    components, n = ndi.label(fg, structure=structure)
    if n == 0:
        return np.zeros(fg.shape, dtype=np.int32)
    if split_touching:
        labels = _split(components, n, r_min_px)
    else:
        labels = components
    return _drop_small(labels, min_area, relabel=True)  # objects below the minimum size removed, ids 1..n


def _drop_small(labels: np.ndarray, min_area: float, *, relabel: bool) -> np.ndarray:
    """The minimum-size cut on a label image: labels of fewer than ``min_area`` pixels (:func:`nanoseg._pixel.
    min_area_px`) set to 0; ``relabel`` numbers the others 1..n, else their ids are kept."""
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_area
    keep[0] = False
    if relabel:
        new_ids = np.zeros(len(sizes), dtype=np.int32)
        new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        return new_ids[labels]
    return labels if keep[1:].all() else np.where(keep[labels], labels, 0).astype(np.int32)


def miles_lantuejoul_weights(labels: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Miles–Lantuéjoul weight ``W·H / ((W − w)(H − h))`` of each label in ``ids`` (bounding box ``w × h`` px of
    a ``W × H`` px image); ``inf`` for a particle as wide or as tall as the image (it can never lie inside)."""
    lab = np.asarray(labels)
    height, width = lab.shape
    boxes = ndi.find_objects(lab)
    out = np.empty(len(ids))
    for k, label in enumerate(ids):
        box = boxes[int(label) - 1]
        h = box[0].stop - box[0].start
        w = box[1].stop - box[1].start
        inside = (width - w) * (height - h)
        out[k] = width * height / inside if inside > 0 else np.inf
    return out


def _split(components: np.ndarray, n: int, r_min_px: float) -> np.ndarray:
    """Split each component along the necks of its distance transform (see the module docstring)."""
    h = max(1.0, 0.5 * r_min_px)
    out = np.zeros(components.shape, dtype=np.int32)
    next_id = 1
    for index, slc in enumerate(ndi.find_objects(components), start=1):
        if slc is None:
            continue
        # pad by one pixel so the EDT sees background around the object
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in slc)
        region = components[sl] == index
        parts, n_parts = _split_one(np.pad(region, 1), h, max(r_min_px, 1.0))
        parts = parts[1:-1, 1:-1]
        inside = region & (parts > 0)
        out[sl][inside] = parts[inside] + (next_id - 1)
        next_id += n_parts
    return out


def _split_one(padded: np.ndarray, h_px: float, min_peak_px: float) -> tuple[np.ndarray, int]:
    """The particles of one connected component (a padded boolean crop): a label crop (1..n, 0 outside) and n.

    Markers are the regional maxima of the h-maximum transform of the EDT (one connected plateau per EDT dome
    whose dynamic is ≥ ``h_px``) with an inscribed radius ≥ ``min_peak_px``. The watershed regions are then
    merged along their saddles, highest saddle first, unless the neck is clearly narrower than the smaller lobe
    (``saddle ≤ NECK_FRACTION · lower peak`` and ``lower peak − saddle ≥ h_px``).
    """
    from skimage.morphology import local_maxima, reconstruction
    from skimage.segmentation import watershed

    dist = ndi.distance_transform_edt(padded)
    peak = dist.max()
    whole = (padded.astype(np.int32), 1)
    if peak < 2 * h_px + min_peak_px or padded.sum() < 20:
        return whole  # too small to hold two particles that each pass the split rule
    # quantize to 1/8 px so float noise cannot create spurious maxima
    quantized = np.round(dist * 8).astype(np.float64)
    # fast path: one connected set of (non-strict) local maxima means one regional maximum, one particle
    candidates = (quantized == ndi.maximum_filter(quantized, size=3)) & (dist >= min_peak_px)
    if ndi.label(candidates, structure=np.ones((3, 3), bool))[1] <= 1:
        return whole
    h_q = round(h_px * 8)
    domes = reconstruction(np.maximum(quantized - h_q, 0), quantized, method="dilation")
    tops = local_maxima(domes, connectivity=2, allow_borders=True) & padded & (dist >= min_peak_px)
    markers, n_markers = ndi.label(tops, structure=np.ones((3, 3), bool))
    if n_markers <= 1:
        return whole
    ws = watershed(-dist, markers, mask=padded)
    peaks = ndi.maximum(dist, ws, index=np.arange(n_markers + 1))
    groups = _merge_shallow_necks(ws, dist, np.asarray(peaks, dtype=float), h_px)
    part_of_region = np.zeros(n_markers + 1, dtype=np.int32)  # one label crop, not one crop-sized mask per part
    for part, members in enumerate(groups, start=1):
        part_of_region[members] = part
    return part_of_region[ws], len(groups)


def _merge_shallow_necks(ws: np.ndarray, dist: np.ndarray, peaks: np.ndarray, h_px: float) -> list[list[int]]:
    """Groups of watershed regions that form one particle: adjacent regions are merged, highest saddle first,
    when the neck between them is not clearly narrower than the smaller lobe."""
    n = len(peaks)
    height, width = ws.shape
    keys, values = [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):  # every 8-neighbour pair once
        here = (slice(0, height - dy), slice(max(0, -dx), width - max(0, dx)))
        there = (slice(dy, height), slice(max(0, dx), width - max(0, -dx)))
        a, b = ws[here], ws[there]
        edge = (a != b) & (a > 0) & (b > 0)
        lo, hi = np.minimum(a[edge], b[edge]).astype(np.int64), np.maximum(a[edge], b[edge]).astype(np.int64)
        keys.append(lo * n + hi)
        values.append(np.minimum(dist[here][edge], dist[there][edge]))
    # the highest saddle of each adjacent pair (sparse: memory grows with the boundary, not with n²)
    keys_all, values_all = np.concatenate(keys), np.concatenate(values).astype(float)
    by_key = np.argsort(keys_all, kind="stable")
    keys_all, values_all = keys_all[by_key], values_all[by_key]
    pairs, starts = np.unique(keys_all, return_index=True)
    saddles = np.maximum.reduceat(values_all, starts) if len(pairs) else np.zeros(0)
    best = dict(zip(pairs.tolist(), saddles.tolist(), strict=True))
    order = pairs[np.argsort(-saddles, kind="stable")]
    parent = list(range(len(peaks)))
    top = peaks.copy()

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for key in order:
        saddle = best[key]
        ri, rj = root(int(key // n)), root(int(key % n))
        if ri == rj:
            continue
        lower = min(top[ri], top[rj])
        if lower - saddle < h_px or saddle > NECK_FRACTION * lower:
            parent[rj] = ri
            top[ri] = max(top[ri], top[rj])
    groups: dict[int, list[int]] = {}
    for i in range(1, len(peaks)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _equivalent_diameter(area_px: np.ndarray, px: float) -> np.ndarray:
    return 2.0 * np.sqrt(np.asarray(area_px, dtype=float) / np.pi) * px


def particle_table(labels, *, pixel_size_nm: float, image=None, frame: int | None = None,
                   time_s: float | None = None, member_probabilities=None, probability=None,
                   probability_std=None, threshold: float = 0.5) -> pd.DataFrame:
    """Per-particle properties in nm, one row per label.

    Parameters
    ----------
    labels : 2-D int array from :func:`label_particles` (0 = background).
    pixel_size_nm : float, nm per pixel.
    image : optional 2-D array (or Micrograph); gives ``mean_intensity`` (NaN without it).
    frame, time_s : optional frame index and time in s, added as columns.
    member_probabilities : optional (M, H, W) probability maps of ensemble members; adds
        ``diameter_std_nm`` from :func:`diameter_uncertainty`.
    probability, probability_std : optional mean probability and its per-pixel std (e.g. ``Prediction.probability``
        and ``sqrt(Prediction.variance)``); when no members are given, adds ``diameter_std_nm`` as half the spread
        of the equivalent diameters of ``probability ± probability_std ≥ threshold`` inside each particle's zone.
    threshold : float, probability threshold used for the uncertainty.

    Returns
    -------
    DataFrame with columns :data:`TABLE_COLUMNS` (+ ``frame``, ``time_s``, ``diameter_std_nm`` when given).
    ``diameter_nm`` is the equivalent-circle diameter ``2·sqrt(area/π)``; the axes are those of the ellipse
    with the same second moments; ``y_nm, x_nm`` are centroids times the pixel size (pixel centres at
    integer coordinates); ``touches_edge`` marks particles cut by the frame border (their size is a lower bound).

    Example
    -------
    >>> import numpy as np
    >>> lab = np.zeros((30, 30), np.int32); lab[10:20, 5:15] = 1
    >>> t = particle_table(lab, pixel_size_nm=0.5, frame=3)
    >>> float(t.area_nm2.iloc[0]), int(t.frame.iloc[0])
    (25.0, 3)
    """
    from skimage.measure import regionprops_table

    px = _check_pixel_size(pixel_size_nm)
    lab = _as_2d(labels, "labels")
    if not np.issubdtype(lab.dtype, np.integer):
        if lab.dtype == bool:
            lab = lab.astype(np.int32)
        else:
            raise NanosegError(f"labels must be integers, got dtype {lab.dtype}",
                               hint="run label_particles on the mask or probability first")
    if lab.min() < 0:
        raise NanosegError("labels must be ≥ 0 (0 = background)")
    intensity = None
    if image is not None:
        intensity = _as_2d(image, "image").astype(np.float32, copy=False)
        if intensity.shape != lab.shape:
            raise NanosegError(f"image shape {intensity.shape} differs from labels shape {lab.shape}")
    props = ["label", "area", "centroid", "axis_major_length", "axis_minor_length", "eccentricity", "bbox"]
    if intensity is not None:
        props.append("intensity_mean")
    raw = regionprops_table(lab, intensity_image=intensity, properties=props)
    h, w = lab.shape
    area = np.asarray(raw["area"], dtype=float)
    table = pd.DataFrame({
        "label": np.asarray(raw["label"], dtype=np.int32),
        "area_nm2": area * px * px,
        "diameter_nm": _equivalent_diameter(area, px),
        "major_axis_nm": np.asarray(raw["axis_major_length"], dtype=float) * px,
        "minor_axis_nm": np.asarray(raw["axis_minor_length"], dtype=float) * px,
        "eccentricity": np.asarray(raw["eccentricity"], dtype=float),
        "centroid_y_px": np.asarray(raw["centroid-0"], dtype=float),
        "centroid_x_px": np.asarray(raw["centroid-1"], dtype=float),
    })
    table["y_nm"] = table["centroid_y_px"] * px
    table["x_nm"] = table["centroid_x_px"] * px
    table["mean_intensity"] = (np.asarray(raw["intensity_mean"], dtype=float) if intensity is not None
                               else np.full(len(table), np.nan))
    table["touches_edge"] = ((np.asarray(raw["bbox-0"]) == 0) | (np.asarray(raw["bbox-1"]) == 0)
                             | (np.asarray(raw["bbox-2"]) == h) | (np.asarray(raw["bbox-3"]) == w))
    if frame is not None:
        table["frame"] = np.int64(frame)
    if time_s is not None:
        table["time_s"] = float(time_s)
    if member_probabilities is not None:
        std = diameter_uncertainty(lab, member_probabilities, pixel_size_nm=px, threshold=threshold)
        table["diameter_std_nm"] = std.reindex(table["label"]).to_numpy()
    elif probability_std is not None:
        if probability is None:
            raise NanosegError("probability_std needs the mean probability map too (probability=...)")
        std = _diameter_std_from_band(lab, _as_2d(probability, "probability"),
                                      _as_2d(probability_std, "probability_std"), px, threshold)
        table["diameter_std_nm"] = std.reindex(table["label"]).to_numpy()
    return table


def _zones(labels: np.ndarray, px: float) -> np.ndarray:
    """Each particle's zone: its label grown by up to 1 nm (≥ 3 px) without crossing into a neighbour."""
    from skimage.segmentation import expand_labels

    return expand_labels(labels, distance=max(3.0, 1.0 / px))


def diameter_uncertainty(labels, member_probabilities, *, pixel_size_nm: float, threshold: float = 0.5) -> pd.Series:
    """Per-particle equivalent-diameter std (nm) across ensemble members.

    Each member's probability map is thresholded; the member's area of a particle is the count of its
    foreground pixels inside the particle's zone (the consensus label grown by up to 1 nm, split between
    neighbours by nearest label), turned into an equivalent diameter. The std over members is returned.

    Parameters
    ----------
    labels : 2-D int array (consensus labels).
    member_probabilities : (M, H, W) array of member probability maps (M ≥ 2), or a list of 2-D arrays.
    pixel_size_nm : float.
    threshold : float, probability threshold per member.

    Returns
    -------
    pandas Series ``diameter_std_nm`` indexed by label.

    Example
    -------
    >>> import numpy as np
    >>> lab = np.zeros((40, 40), np.int32); lab[10:30, 10:30] = 1
    >>> members = np.zeros((2, 40, 40)); members[0, 10:30, 10:30] = 1; members[1, 9:31, 9:31] = 1
    >>> s = diameter_uncertainty(lab, members, pixel_size_nm=0.1)
    >>> round(float(s.loc[1]), 3)
    0.16
    """
    px = _check_pixel_size(pixel_size_nm)
    lab = _as_2d(labels, "labels").astype(np.int64, copy=False)
    members = np.asarray(member_probabilities)
    if members.ndim != 3 or members.shape[1:] != lab.shape:
        raise NanosegError(f"member_probabilities must have shape (M, {lab.shape[0]}, {lab.shape[1]}), "
                           f"got {members.shape}")
    if members.shape[0] < 2:
        raise NanosegError("need at least 2 ensemble members for a diameter spread")
    n = int(lab.max())
    zones = _zones(lab, px).ravel()
    diam = np.empty((members.shape[0], n + 1))
    for m in range(members.shape[0]):
        member = members[m]
        fg = member >= threshold if member.dtype != bool else member
        counts = np.bincount(zones[fg.ravel()], minlength=n + 1)
        diam[m] = _equivalent_diameter(counts, px)
    std = diam.std(axis=0, ddof=1)
    ids = np.unique(lab)
    ids = ids[ids > 0]
    return pd.Series(std[ids], index=pd.Index(ids, name="label"), name="diameter_std_nm")


def _diameter_std_from_band(lab, probability, probability_std, px, threshold) -> pd.Series:
    if probability.shape != lab.shape or probability_std.shape != lab.shape:
        raise NanosegError("probability and probability_std must have the labels' shape")
    n = int(lab.max())
    zones = _zones(lab.astype(np.int64, copy=False), px).ravel()
    hi = np.bincount(zones[(probability + probability_std >= threshold).ravel()], minlength=n + 1)
    lo = np.bincount(zones[(probability - probability_std >= threshold).ravel()], minlength=n + 1)
    std = 0.5 * (_equivalent_diameter(hi, px) - _equivalent_diameter(lo, px))
    ids = np.unique(lab)
    ids = ids[ids > 0]
    return pd.Series(std[ids], index=pd.Index(ids, name="label"), name="diameter_std_nm")
