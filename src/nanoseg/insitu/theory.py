"""Theoretical coarsening shapes: the LSW stationary size distribution (defined in :mod:`nanoseg.simulate.lsw`,
where the movie simulator draws from it too; re-exported here for the in situ analysis).

Example
-------
>>> import numpy as np
>>> u = np.linspace(0, 1.5, 3001)
>>> round(float(np.trapezoid(lsw_distribution(u), u)), 3)
1.0
"""

from __future__ import annotations

from nanoseg.simulate.lsw import lsw_distribution, sample_lsw_radii

__all__ = ["lsw_distribution", "sample_lsw_radii"]
