"""Coarsening kinetics: size statistics over time, ⟨r⟩ⁿ − ⟨r₀⟩ⁿ = k·t fits, growth rates, a verdict, bootstrap.

Radii are half the equivalent-circle diameters of the particle table (``diameter_nm / 2``). By default
particles touching the frame border are left out (their size is cut); ``min_diameter_nm`` (the detection
limit) leaves out smaller particles, so that a measured and a true sample can be compared like with like.
All functions take the linked tracks (or a plain particle table with ``frame`` and ``time_s``) and return
DataFrames.

Fits are bounded to the physical range: ``k ≥ 0`` (coarsening, never shrinking) and the free exponent n in
:data:`N_RANGE` = [1, 8] (interface-limited n = 2, diffusion-limited LSW n = 3, surface diffusion n = 4, and
migration–coalescence with a size-dependent mobility up to n ≈ 7); a parameter that ends on a bound is named in
``at_bound`` and its σ is not meaningful.

Example
-------
>>> import numpy as np, pandas as pd
>>> t = np.arange(20.0)
>>> r = (1.5**3 + 0.2 * t) ** (1 / 3)
>>> fit = fit_coarsening(t, r, exponent=3)
>>> round(fit["k"], 3), round(fit["r0_nm"], 3)
(0.2, 1.5)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nanoseg._pixel import above_min_diameter
from nanoseg.errors import NanosegError
from nanoseg.insitu.theory import lsw_distribution

__all__ = ["size_statistics", "size_distributions", "fit_coarsening", "fit_kinetics", "growth_rates",
           "volume_conservation", "coarsening_verdict", "bootstrap_kinetics", "N_RANGE"]

N_RANGE = (1.0, 8.0)
"""Bounds of the free coarsening exponent n (see the module docstring)."""


def _prepared(table: pd.DataFrame, exclude_edge: bool, min_diameter_nm: float = 0.0) -> pd.DataFrame:
    for col in ("frame", "diameter_nm"):
        if col not in table.columns:
            raise NanosegError(f"particle table lacks column {col!r}")
    t = table
    if exclude_edge and "touches_edge" in t.columns:
        t = t[~t["touches_edge"].astype(bool)]
    t = t[above_min_diameter(t["diameter_nm"], min_diameter_nm)]  # the one minimum-size cut (0: all)
    t = t.copy()
    if "time_s" not in t.columns:
        t["time_s"] = t["frame"].astype(float)
    t["radius_nm"] = t["diameter_nm"] / 2.0
    return t


def size_statistics(table: pd.DataFrame, *, field_area_nm2: float | None = None, exclude_edge: bool = True,
                    min_diameter_nm: float = 0.0) -> pd.DataFrame:
    """Per-frame statistics: count, number density, mean/std/sem of the radius, skewness, Σ projected volume.

    Parameters
    ----------
    table : tracks or a particle table (``frame, time_s, diameter_nm``, optional ``touches_edge``,
        ``diameter_std_nm``).
    field_area_nm2 : imaged area, for ``number_density_per_nm2`` (NaN without it).
    exclude_edge : leave out particles cut by the frame border.
    min_diameter_nm : leave out particles smaller than this (the detection limit; 0 keeps all).

    Returns
    -------
    DataFrame ``frame, time_s, n_particles, number_density_per_nm2, mean_radius_nm, radius_std_nm,
    radius_sem_nm, radius_skewness, total_volume_nm3`` (+ ``mean_radius_member_std_nm`` with ensembles:
    the std of the mean radius from the per-particle σ alone).
    """
    t = _prepared(table, exclude_edge, min_diameter_nm)
    g = t.groupby("frame")
    stats = pd.DataFrame({
        "time_s": g["time_s"].first(),
        "n_particles": g.size(),
        "mean_radius_nm": g["radius_nm"].mean(),
        "radius_std_nm": g["radius_nm"].std(ddof=1),
    })
    stats["radius_sem_nm"] = stats["radius_std_nm"] / np.sqrt(stats["n_particles"])
    stats["radius_skewness"] = g["radius_nm"].apply(_skewness)
    stats["total_volume_nm3"] = g["diameter_nm"].apply(lambda d: float(np.sum(np.pi / 6 * d**3)))
    stats["number_density_per_nm2"] = (stats["n_particles"] / field_area_nm2) if field_area_nm2 else np.nan
    if "diameter_std_nm" in t.columns:
        stats["mean_radius_member_std_nm"] = g["diameter_std_nm"].apply(
            lambda s: float(np.sqrt(np.nansum((s / 2) ** 2)) / max(len(s), 1)))
    return stats.reset_index()


def _skewness(x) -> float:
    x = np.asarray(x, dtype=float)
    if len(x) < 3 or x.std() == 0:
        return float("nan")
    return float(np.mean((x - x.mean()) ** 3) / x.std() ** 3)


def size_distributions(table: pd.DataFrame, *, n_windows: int = 4, bins=None, exclude_edge: bool = True,
                       n_boot: int = 0, seed: int = 0) -> pd.DataFrame:
    """Histograms of ``u = r/⟨r⟩`` (⟨r⟩ per frame) pooled over ``n_windows`` equal time windows, with the LSW shape.

    Returns a long DataFrame ``window, t_start_s, t_end_s, n, bin_left, bin_right, bin_center, density, lsw``
    (``density`` integrates to 1 over u; ``lsw`` is the theoretical LSW density at the bin centre). With
    ``n_boot > 0`` also ``density_lo, density_hi``: the 2.5–97.5 % band over bootstrap replicates that resample
    whole tracks and perturb each diameter by N(0, ``diameter_std_nm``) when that column is present.
    """
    out = _size_distributions(_prepared(table, exclude_edge), n_windows, bins)
    if n_boot > 0:
        t = _prepared(table, exclude_edge).reset_index(drop=True)
        rng = np.random.default_rng(seed)
        groups = t["track_id"].to_numpy() if "track_id" in t.columns else np.arange(len(t))
        uniq, inverse = np.unique(groups, return_inverse=True)
        sigma = t["diameter_std_nm"].fillna(0).to_numpy(float) if "diameter_std_nm" in t.columns else None
        reps = []
        for _ in range(int(n_boot)):
            counts = np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))[inverse]
            sample = t.loc[np.repeat(np.arange(len(t)), counts)].copy()
            if sigma is not None:
                noise = rng.normal(0, 1, len(sample)) * np.repeat(sigma, counts)
                sample["diameter_nm"] = np.maximum(sample["diameter_nm"] + noise, 1e-6)
                sample["radius_nm"] = sample["diameter_nm"] / 2
            if sample.empty:
                continue
            reps.append(_size_distributions(sample, n_windows, bins, time_range=(t["time_s"].min(),
                                                                                  t["time_s"].max()))["density"])
        stack = np.vstack([r.to_numpy() for r in reps])
        out["density_lo"] = np.nanpercentile(stack, 2.5, axis=0)
        out["density_hi"] = np.nanpercentile(stack, 97.5, axis=0)
    return out


def _size_distributions(t: pd.DataFrame, n_windows: int, bins, time_range=None) -> pd.DataFrame:
    if t.empty:
        raise NanosegError("no particles to build size distributions from",
                           hint="check the segmentation (empty masks?) or use exclude_edge=False")
    bins = np.linspace(0, 2.5, 26) if bins is None else np.asarray(bins, float)
    t = t.copy()
    t["u"] = t["radius_nm"] / t.groupby("frame")["radius_nm"].transform("mean")
    lo, hi = time_range if time_range is not None else (t["time_s"].min(), t["time_s"].max())
    edges = np.linspace(lo, hi, int(n_windows) + 1)
    t["window"] = np.clip(np.searchsorted(edges, t["time_s"], side="right") - 1, 0, int(n_windows) - 1)
    rows = []
    centers = 0.5 * (bins[1:] + bins[:-1])
    theory = lsw_distribution(centers)
    for w in range(int(n_windows)):
        u = t.loc[t["window"] == w, "u"].to_numpy()
        hist = np.histogram(u, bins=bins, density=True)[0] if len(u) else np.full(len(centers), np.nan)
        for i in range(len(centers)):
            rows.append((w, edges[w], edges[w + 1], len(u), bins[i], bins[i + 1], centers[i], hist[i], theory[i]))
    return pd.DataFrame(rows, columns=["window", "t_start_s", "t_end_s", "n", "bin_left", "bin_right",
                                       "bin_center", "density", "lsw"])


def coarsening_radius(t, r0, k, n):
    """⟨r⟩(t) of the coarsening law ``⟨r⟩ⁿ − ⟨r₀⟩ⁿ = k·t`` (floored at 1e-12 inside the root)."""
    base = np.maximum(r0**n + k * t, 1e-12)
    return base ** (1.0 / n)


def fit_coarsening(times_s, mean_radius_nm, *, exponent: float | None = None, radius_sem_nm=None) -> dict:
    """Fit ``⟨r⟩ⁿ − ⟨r₀⟩ⁿ = k·t`` to a mean-radius curve (bounded nonlinear least squares on ⟨r⟩(t)).

    The fit is bounded to ``k ≥ 0`` and, with n free, ``n`` in :data:`N_RANGE`; a curve that shrinks or grows
    faster than linearly ends on a bound (named in ``at_bound``), never at a negative rate.

    Parameters
    ----------
    times_s, mean_radius_nm : the curve (same length, ≥ 4 points; more than the free parameters).
    exponent : fix n (e.g. 3 for LSW diffusion-limited, 4 for surface/interface diffusion); None fits n too.
    radius_sem_nm : per-point standard errors used as weights (relative: the covariance is rescaled by the
        reduced χ², so frames that share particles do not make the σ's overconfident).

    Returns
    -------
    dict ``n, n_std, k, k_std`` (k in nmⁿ/s), ``r0_nm, r0_std, rss`` (weighted), ``aic``
    (``N ln(RSS/N) + 2p``), ``n_points, n_params, residuals`` (array, nm), ``at_bound`` (tuple of the names,
    ``"k"`` and/or ``"n"``, of parameters that ended on a bound of the physical range).
    """
    from scipy.optimize import curve_fit

    t = np.asarray(times_s, dtype=float)
    r = np.asarray(mean_radius_nm, dtype=float)
    ok = np.isfinite(t) & np.isfinite(r) & (r > 0)
    sem = None if radius_sem_nm is None else np.asarray(radius_sem_nm, dtype=float)
    if sem is not None:
        ok &= np.isfinite(sem)
    t, r = t[ok], r[ok]
    if sem is not None:
        # a zero s.e.m. (identical sizes) must not get infinite weight: floor at 0.1 % of the radius
        sem = np.maximum(sem[ok], 1e-3 * r)
    n_params = 2 if exponent is not None else 3
    if len(t) < n_params + 2:
        raise NanosegError(f"need at least {n_params + 2} time points with particles to fit kinetics, got {len(t)}",
                           hint="use a longer movie or smaller time windows")
    t = t - t.min()
    span = max(t.max(), 1e-12)
    n0 = 3.0 if exponent is None else float(exponent)
    # start inside the bounds: a small positive rate when the curve does not grow
    k0 = max((r[-3:].mean() ** n0 - r[:3].mean() ** n0) / span, 1e-6 * r.mean() ** n0 / span)
    if exponent is not None:
        def f(tt, r0, k):
            return coarsening_radius(tt, r0, k, n0)
        p0, bounds = [r[:3].mean(), k0], ([1e-6, 0.0], [np.inf, np.inf])
    else:
        f = coarsening_radius
        p0, bounds = [r[:3].mean(), k0, n0], ([1e-6, 0.0, N_RANGE[0]], [np.inf, np.inf, N_RANGE[1]])
    try:
        popt, pcov = curve_fit(f, t, r, p0=p0, sigma=sem, absolute_sigma=False, bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        raise NanosegError(f"the kinetics fit did not converge ({exc})", hint="too few or too noisy points") from None
    resid = r - f(t, *popt)
    w = np.ones_like(r) if sem is None else 1.0 / sem**2
    rss = float(np.sum(w * resid**2))
    perr = np.sqrt(np.clip(np.diag(pcov), 0, None)) if np.all(np.isfinite(pcov)) else np.full(len(popt), np.nan)
    npts = len(t)
    aic = npts * np.log(max(rss, 1e-300) / npts) + 2 * n_params
    n_fit = float(popt[2]) if exponent is None else n0
    at_bound = _at_bound(float(popt[1]), n_fit if exponent is None else None, r.mean() ** n_fit / span)
    return {
        "n": float(popt[2]) if exponent is None else float(exponent),
        "n_std": float(perr[2]) if exponent is None else 0.0,
        "k": float(popt[1]), "k_std": float(perr[1]),
        "r0_nm": float(popt[0]), "r0_std": float(perr[0]),
        "rss": rss, "aic": float(aic), "n_points": npts, "n_params": n_params, "residuals": resid,
        "at_bound": at_bound,
    }


def _at_bound(k: float, n: float | None, k_scale: float) -> tuple[str, ...]:
    """Names of the fitted parameters on a bound: k at 0 (below 1e-4 of ``k_scale``), a free n at an end of N_RANGE."""
    out = ["k"] if k <= 1e-4 * k_scale else []
    if n is not None and min(n - N_RANGE[0], N_RANGE[1] - n) <= 1e-3:
        out.append("n")
    return tuple(out)


def fit_kinetics(stats: pd.DataFrame, *, exponents=(None, 3, 4), weighted: bool = True) -> pd.DataFrame:
    """Fit the coarsening law to :func:`size_statistics` output for each exponent (None = free n).

    Returns one row per model: ``model, n, n_std, k, k_std, rate_units, r0_nm, r0_std, rss, aic, delta_aic,
    rms_residual_nm, n_points, at_bound`` (``delta_aic`` relative to the best model; < 2 means no real
    preference; ``at_bound`` names the parameters on a bound of the physical range, joined by ``;``, or "").
    """
    s = stats[stats["n_particles"] >= 2]
    rows = []
    for n in exponents:
        fit = fit_coarsening(s["time_s"], s["mean_radius_nm"], exponent=n,
                             radius_sem_nm=s["radius_sem_nm"] if weighted else None)
        rows.append({"model": "n free" if n is None else f"n={n:g}", "n": fit["n"], "n_std": fit["n_std"],
                     "k": fit["k"], "k_std": fit["k_std"], "rate_units": f"nm^{fit['n']:.2f}/s",
                     "r0_nm": fit["r0_nm"], "r0_std": fit["r0_std"], "rss": fit["rss"], "aic": fit["aic"],
                     "rms_residual_nm": float(np.sqrt(np.mean(fit["residuals"] ** 2))), "n_points": fit["n_points"],
                     "at_bound": ";".join(fit["at_bound"])})
    out = pd.DataFrame(rows)
    out["delta_aic"] = out["aic"] - out["aic"].min()
    return out


def growth_rates(tracks: pd.DataFrame, *, min_frames: int = 5, exclude_edge: bool = True) -> pd.DataFrame:
    """Per-track growth rate vs size: a line fitted to r(t) of each track with at least ``min_frames`` points.

    Returns ``track_id, n_frames, mean_radius_nm, relative_radius`` (track mean r over the mean ⟨r⟩ of the same
    frames), ``dr_dt_nm_per_s, dr_dt_std, dv_dt_nm3_per_s`` (projected volume rate).
    """
    if "track_id" not in tracks.columns:
        raise NanosegError("growth rates need tracks (a track_id column)", hint="run link_particles first")
    t = _prepared(tracks, exclude_edge)
    t["mean_r_frame"] = t.groupby("frame")["radius_nm"].transform("mean")
    rows = []
    for tid, g in t.groupby("track_id"):
        if len(g) < min_frames or g["time_s"].nunique() < 2:
            continue
        x, y = g["time_s"].to_numpy(float), g["radius_nm"].to_numpy(float)
        coef, cov = np.polyfit(x, y, 1, cov=True) if len(g) > 3 else (np.polyfit(x, y, 1), np.full((2, 2), np.nan))
        v = np.pi / 6 * (2 * y) ** 3
        rows.append((tid, len(g), y.mean(), y.mean() / g["mean_r_frame"].mean(), coef[0],
                     float(np.sqrt(max(cov[0, 0], 0))), np.polyfit(x, v, 1)[0]))
    return pd.DataFrame(rows, columns=["track_id", "n_frames", "mean_radius_nm", "relative_radius",
                                       "dr_dt_nm_per_s", "dr_dt_std", "dv_dt_nm3_per_s"])


def volume_conservation(stats: pd.DataFrame) -> dict[str, float]:
    """How well the total projected volume Σπd³/6 (particles inside the field) is conserved.

    Returns ``volume_first_nm3, volume_last_nm3, relative_change`` (fitted trend over the movie / mean),
    ``relative_change_std`` and ``cv`` (frame-to-frame coefficient of variation). Ripening conserves the total
    volume (|relative_change| small); particles entering or leaving the field and mass lost to the support or
    below the detection size show up as a trend.
    """
    s = stats[stats["n_particles"] > 0]
    if len(s) < 3:
        raise NanosegError("need at least 3 frames with particles for a volume trend")
    t, v = s["time_s"].to_numpy(float), s["total_volume_nm3"].to_numpy(float)
    (slope, icpt), cov = np.polyfit(t, v, 1, cov=True)
    span = t.max() - t.min()
    mean = v.mean()
    return {"volume_first_nm3": float(v[0]), "volume_last_nm3": float(v[-1]),
            "relative_change": float(slope * span / mean), "relative_change_std": float(np.sqrt(cov[0, 0]) * span / mean),
            "cv": float(v.std(ddof=1) / mean)}


def _vote(value, lo, hi, low_means: str, high_means: str) -> str:
    if not np.isfinite(value):
        return "undetermined"
    if value <= lo:
        return low_means
    if value >= hi:
        return high_means
    return "undetermined"


def coarsening_verdict(stats: pd.DataFrame, events: pd.DataFrame, lineage: pd.DataFrame | None,
                       growth: pd.DataFrame, fits: pd.DataFrame, *, bootstrap: pd.DataFrame | None = None,
                       tracks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Weigh the evidence for Ostwald ripening vs particle migration and coalescence.

    Signals (each row: ``signal, value, uncertainty, favours, rule``):

    * ``coalescence_share`` — coalescence parents / all disappearances (coalescence parents + vanished);
      σ binomial. ≤ 0.3 ripening, ≥ 0.7 coalescence.
    * ``coalescence_rate_per_particle_s`` — coalescence events per particle per second (context, no vote).
    * ``psd_skewness`` — skewness of r/⟨r⟩ over the second half of the movie (LSW is left-skewed, −0.9;
      coalescence gives log-normal-like right skew); σ = √(6/N) with N unique particles. ≤ −0.15 ripening,
      ≥ +0.15 coalescence.
    * ``size_growth_correlation`` — Spearman ρ of a particle's relative size and dr/dt ("small shrink, large grow");
      σ = 1/√(N−3). ≥ 0.3 ripening, ≤ 0.1 coalescence.
    * ``shrinking_fraction`` — share of tracked particles shrinking significantly (dr/dt < −2σ).
      ≥ 0.2 ripening, ≤ 0.05 coalescence.
    * ``exponent_n`` — free-n fit (σ from the bootstrap when given). 2.5–4.5 ripening, ≥ 5.5 coalescence
      (migration–coalescence with size-dependent mobility coarsens slowly, large effective n); no vote when
      σ > 1 or n sits at a bound of the fit.

    The last row (``overall``) gives the verdict (ripening / migration–coalescence / mixed or undetermined) and
    its support: the share of voting signals that agree.
    """
    rows = []
    n_coal_events = int((events["kind"] == "coalescence").sum()) if len(events) else 0
    n_coal_parents = int(sum(len(p) for p, k in zip(events["parents"], events["kind"], strict=True)
                             if k == "coalescence")) if len(events) else 0
    n_vanish = int((events["kind"] == "vanish").sum()) if len(events) else 0
    total = n_coal_parents + n_vanish
    share = n_coal_parents / total if total else float("nan")
    share_std = float(np.sqrt(share * (1 - share) / total)) if total else float("nan")
    rows.append(("coalescence_share", share, share_std, _vote(share, 0.3, 0.7, "ripening", "coalescence"),
                 f"{n_coal_parents} coalescence parents vs {n_vanish} vanished; ≤0.3 ripening, ≥0.7 coalescence"))
    particle_seconds = float(np.sum(stats["n_particles"].to_numpy() * np.gradient(stats["time_s"].to_numpy())))\
        if len(stats) > 1 else float("nan")
    rate = n_coal_events / particle_seconds if particle_seconds and particle_seconds > 0 else float("nan")
    rows.append(("coalescence_rate_per_particle_s", rate,
                 float(np.sqrt(max(n_coal_events, 1)) / particle_seconds) if particle_seconds else float("nan"),
                 "context", f"{n_coal_events} coalescence events over {particle_seconds:.3g} particle·s"))
    # PSD skewness in the second half
    if tracks is not None and len(tracks):
        t = _prepared(tracks, True)
        late = t[t["time_s"] >= t["time_s"].min() + 0.5 * (t["time_s"].max() - t["time_s"].min())]
        u = late["radius_nm"] / late.groupby("frame")["radius_nm"].transform("mean")
        skew = _skewness(u)
        n_unique = late["track_id"].nunique() if "track_id" in late.columns else len(late)
        skew_std = float(np.sqrt(6.0 / max(n_unique, 1)))
    else:
        half = stats[stats["time_s"] >= stats["time_s"].median()]
        skew = float(np.nanmean(half["radius_skewness"])) if len(half) else float("nan")
        skew_std = float(np.sqrt(6.0 / max(half["n_particles"].mean(), 1))) if len(half) else float("nan")
    rows.append(("psd_skewness", skew, skew_std, _vote(skew, -0.15, 0.15, "ripening", "coalescence"),
                 "skewness of r/<r> in the second half; LSW −0.9 (left), coalescence right-skewed"))
    if len(growth) >= 4:
        from scipy.stats import spearmanr

        rho = float(spearmanr(growth["relative_radius"], growth["dr_dt_nm_per_s"]).statistic)
        rho_std = float(1 / np.sqrt(max(len(growth) - 3, 1)))
        shrink = float(np.mean(growth["dr_dt_nm_per_s"] < -2 * growth["dr_dt_std"].fillna(np.inf)))
    else:
        rho = rho_std = shrink = float("nan")
    rows.append(("size_growth_correlation", rho, rho_std, _vote(rho, 0.1, 0.3, "coalescence", "ripening"),
                 f"Spearman ρ(r/<r>, dr/dt) over {len(growth)} tracks; ≥0.3 ripening, ≤0.1 coalescence"))
    rows.append(("shrinking_fraction", shrink,
                 float(np.sqrt(shrink * (1 - shrink) / max(len(growth), 1))) if np.isfinite(shrink) else float("nan"),
                 _vote(shrink, 0.05, 0.2, "coalescence", "ripening"),
                 "share of tracks shrinking by > 2σ; ≥0.2 ripening, ≤0.05 coalescence"))
    free = fits[fits["model"] == "n free"]
    if len(free):
        n_val = float(free["n"].iloc[0])
        n_std = float(free["n_std"].iloc[0])
        boot_n = (bootstrap.loc[bootstrap["model"] == "n free", "n"] if bootstrap is not None
                  and {"model", "n"} <= set(bootstrap.columns) else pd.Series(dtype=float))
        if boot_n.notna().sum() > 2:
            n_std = float(boot_n.std())
        vote = "ripening" if 2.5 <= n_val <= 4.5 else ("coalescence" if n_val >= 5.5 else "undetermined")
        rule = "free-n fit of <r>^n − <r0>^n = k t; 2.5–4.5 ripening, ≥5.5 coalescence; votes only if σ ≤ 1"
        if not (np.isfinite(n_std) and n_std <= 1.0 and N_RANGE[0] + 1e-3 < n_val < N_RANGE[1] - 1e-3):
            vote = "undetermined"  # n not constrained by the data (too few frames/particles, or at a bound)
            rule += " (σ too large or n at a bound: no vote)"
        rows.append(("exponent_n", n_val, n_std, vote, rule))
    table = pd.DataFrame(rows, columns=["signal", "value", "uncertainty", "favours", "rule"])
    votes = table["favours"].isin(["ripening", "coalescence"])
    n_r = int((table["favours"] == "ripening").sum())
    n_c = int((table["favours"] == "coalescence").sum())
    n_votes = int(votes.sum())
    if n_votes == 0:
        verdict, support = "undetermined", float("nan")
    elif n_r >= 2 * max(n_c, 0.5) and n_r >= 2:
        verdict, support = "Ostwald ripening", n_r / n_votes
    elif n_c >= 2 * max(n_r, 0.5) and n_c >= 2:
        verdict, support = "migration and coalescence", n_c / n_votes
    else:
        verdict, support = "mixed or undetermined", max(n_r, n_c) / n_votes
    overall = pd.DataFrame([("overall", support, float(np.sqrt(support * (1 - support) / n_votes)) if n_votes else
                             float("nan"), verdict, f"{n_r} signals for ripening, {n_c} for coalescence")],
                           columns=table.columns)
    return pd.concat([table, overall], ignore_index=True)


def bootstrap_kinetics(table: pd.DataFrame, *, n_boot: int = 200, exponents=(None, 3), seed: int = 0,
                       use_diameter_std: bool = True, exclude_edge: bool = True, min_diameter_nm: float = 0.0
                       ) -> pd.DataFrame:
    """Bootstrap the kinetics fit over particles (tracks) and, with ensembles, over the per-particle diameter σ.

    Each replicate resamples tracks with replacement (whole tracks, so a particle's frames stay together; rows
    without ``track_id`` are resampled individually) and, when ``diameter_std_nm`` is present, perturbs each
    diameter by N(0, σ) (a parametric stand-in for redrawing ensemble members). The per-frame mean radius is
    refitted for each exponent, over the frames where the replicate holds at least two *distinct* particles (as
    the point fit needs two particles: a track drawn twice is no second measurement, and its zero spread would
    give its frame an unbounded weight). ``min_diameter_nm`` restricts the sample as in :func:`size_statistics`.

    Returns one row per (replicate, model): ``replicate, model, n, k, r0_nm``. Summaries:
    ``out.groupby("model")[["n", "k"]].agg(["mean", "std", lambda s: s.quantile(0.025), ...])``.
    """
    t = _prepared(table, exclude_edge, min_diameter_nm).reset_index(drop=True)
    if t.empty:
        raise NanosegError("no particles to bootstrap")
    rng = np.random.default_rng(seed)
    frames, frame_idx = np.unique(t["frame"].to_numpy(), return_inverse=True)
    times = t.groupby("frame")["time_s"].first().reindex(frames).to_numpy(float)
    groups = t["track_id"].to_numpy() if "track_id" in t.columns else np.arange(len(t))
    uniq, group_idx = np.unique(groups, return_inverse=True)
    radius = t["radius_nm"].to_numpy(float)
    sigma = (t["diameter_std_nm"].fillna(0).to_numpy(float) / 2
             if use_diameter_std and "diameter_std_nm" in t.columns else None)
    rows = []
    for b in range(int(n_boot)):
        weights = np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))[group_idx].astype(float)
        r = radius if sigma is None else np.maximum(radius + rng.normal(0, 1, len(radius)) * sigma, 0.0)
        count = np.bincount(frame_idx, weights, minlength=len(frames))
        distinct = np.bincount(frame_idx, (weights > 0).astype(float), minlength=len(frames))
        total = np.bincount(frame_idx, weights * r, minlength=len(frames))
        sq = np.bincount(frame_idx, weights * r * r, minlength=len(frames))
        ok = distinct >= 2
        mean = np.where(ok, total / np.maximum(count, 1), np.nan)
        var = np.where(ok, sq / np.maximum(count, 1) - mean**2, np.nan)
        sem = np.sqrt(np.maximum(var, 1e-12) / np.maximum(count, 1))
        for n in exponents:
            try:
                fit = fit_coarsening(times[ok], mean[ok], exponent=n, radius_sem_nm=sem[ok])
            except NanosegError:
                continue
            rows.append((b, "n free" if n is None else f"n={n:g}", fit["n"], fit["k"], fit["r0_nm"]))
    return pd.DataFrame(rows, columns=["replicate", "model", "n", "k", "r0_nm"])
