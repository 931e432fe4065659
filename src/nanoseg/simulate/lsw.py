"""Theoretical coarsening shapes (no data): the LSW stationary size distribution.

The movie simulator draws its initial radii from it (:mod:`nanoseg.simulate.movie`) and the in situ analysis
compares measured distributions with it (:mod:`nanoseg.insitu.kinetics`, re-exported by :mod:`nanoseg.insitu.theory`),
so it lives here, below both.

Example
-------
>>> import numpy as np
>>> u = np.linspace(0, 1.5, 3001)
>>> round(float(np.trapezoid(lsw_distribution(u), u)), 3), round(float(np.trapezoid(u * lsw_distribution(u), u)), 3)
(1.0, 1.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["lsw_distribution", "sample_lsw_radii"]


def lsw_distribution(u) -> np.ndarray:
    """The stationary Lifshitz–Slyozov–Wagner distribution of ``u = r/⟨r⟩`` (unit area and mean; 0 for u ≥ 1.5).

    ``P(u) = (4/9) u² (3/(3+u))^(7/3) (1.5/(1.5−u))^(11/3) exp(−u/(1.5−u))`` — left-skewed, cut off at 1.5.
    """
    u = np.asarray(u, dtype=float)
    out = np.zeros_like(u)
    ok = (u > 0) & (u < 1.5)
    x = u[ok]
    out[ok] = (4.0 / 9.0) * x**2 * (3 / (3 + x)) ** (7 / 3) * (1.5 / (1.5 - x)) ** (11 / 3) * np.exp(-x / (1.5 - x))
    return out


def sample_lsw_radii(n: int, mean_radius_nm: float, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` radii from the LSW distribution with mean ``mean_radius_nm`` (inverse-CDF sampling)."""
    u = np.linspace(0, 1.5, 4001)
    cdf = np.cumsum(lsw_distribution(u))
    cdf /= cdf[-1]
    return np.interp(rng.uniform(0, 1, n), cdf, u) * mean_radius_nm
