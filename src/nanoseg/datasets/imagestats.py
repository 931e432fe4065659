"""Image statistics that tell whether an image is like a model's training images (contrast, roughness, noise).

The trainer records their 1st–99th percentile ranges over the training images in the model card
(:func:`nanoseg.train.loop.training_image_statistics`), and inference compares each input against them
(:func:`nanoseg.infer.ood.check_distribution`, which documents each statistic). Both sides import this one
definition from here, below the training and inference layers.

``contrast`` and ``roughness`` are the formulas of :mod:`nanoseg.simulate.stats` (also used by the study
descriptors and :func:`nanoseg.simulate.movie.image_statistics`). ``noise`` here is the noise of the
*standardized* image (robust σ of neighbour differences / √2, in units of the image's standard deviation); the
study descriptor of the same name (:func:`nanoseg.study.descriptors.noise_level`) is the *relative shot noise*
of the raw image (robust σ of image − blur, as a fraction of the median). Model cards store this one.

Example
-------
>>> import numpy as np
>>> s = image_statistics(np.random.default_rng(0).normal(size=(128, 128)))
>>> round(s["roughness"], 2), round(s["noise"], 1)
(0.17, 1.0)
"""

from __future__ import annotations

import numpy as np


def image_statistics(image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """``roughness`` and ``noise`` of a 2-D image, plus ``contrast`` when a particle ``mask`` is given
    (and holds both particle and background pixels)."""
    x = np.asarray(image, dtype=np.float64)
    z = (x - x.mean()) / max(float(x.std()), 1e-12)
    f2 = np.abs(np.fft.rfft2(z)) ** 2
    ky = np.fft.fftfreq(z.shape[0])[:, None]
    kx = np.fft.rfftfreq(z.shape[1])[None, :]
    # rfft keeps half the plane: weight the columns that stand for two (±kx) so sums match the full FFT
    weight = np.full(f2.shape[1], 2.0)
    weight[0] = 1.0
    if z.shape[1] % 2 == 0:
        weight[-1] = 1.0
    f2 = f2 * weight[None, :]
    out = {"roughness": float((f2 * (ky**2 + kx**2)).sum() / max(f2.sum(), 1e-300))}
    diffs = np.concatenate([np.diff(z, axis=0).ravel(), np.diff(z, axis=1).ravel()])
    out["noise"] = float(np.median(np.abs(diffs - np.median(diffs))) / 0.6745 / np.sqrt(2))
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape == z.shape and m.any() and not m.all():
            out["contrast"] = float(np.median(z[~m]) - np.median(z[m]))
    return out
