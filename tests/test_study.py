"""nanoseg.study: spec validation, grid expansion, folds, execution (sync + Dask), resume, failures, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nanoseg.datasets import DatasetWriter, open_dataset
from nanoseg.errors import NanosegError
from nanoseg.study import (
    ResultsStore,
    drop_matrix,
    expand_grid,
    load_results,
    load_spec,
    metric_matrix,
    run_study,
    summarize,
    write_study_report,
)
from nanoseg.study.data import assign_folds, make_fold_subsets, split_fold
from nanoseg.study.descriptors import information_limit, noise_level, particle_contrast, roughness

REPO = Path(__file__).resolve().parents[1]


def make_set(root: Path, *, n: int = 8, noise: float = 0.05, contrast: float = 0.5, seed: int = 0,
             size: int = 48) -> Path:
    """Dark disks on a bright background (electron counts ~100/px); pairs of images share a `source`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    with DatasetWriter(root) as w:
        for i in range(n):
            mask = np.zeros((size, size), bool)
            for _ in range(3):
                cy, cx, r = rng.uniform(8, size - 8), rng.uniform(8, size - 8), rng.uniform(3, 7)
                mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
            image = 100.0 * (1 - contrast * mask) * (1 + rng.normal(0, noise, mask.shape))
            w.add(f"img{i}", image, mask, {"source": f"src{i // 2}", "pixel_size_nm": 0.02, "material": "Au"})
    return root


@pytest.fixture
def two_sets(tmp_path):
    return {"clean": make_set(tmp_path / "clean", noise=0.05, seed=1),
            "noisy": make_set(tmp_path / "noisy", noise=0.6, seed=2)}


def spec_dict(sets, **extra):
    spec = {"name": "t", "backend": "threshold", "folds": 2,
            "datasets": {k: {"path": str(v)} for k, v in sets.items()}, "training": {"sigma_px": 1.0}}
    spec.update(extra)
    return spec


# ------------------------------------------------------------------------------------------------- spec
@pytest.mark.parametrize("patch, message", [
    ({"colour": "red"}, "colour: unknown key"),
    ({"datasets": {"a": {"paht": "x"}}}, r"datasets\.a\.paht: unknown key"),
    ({"datasets": {"a": {"path": "x", "preset": "au_5nm"}}}, "exactly one of 'path'"),
    ({"train": ["nope"]}, r"train: unknown dataset\(s\) \['nope'\]"),
    ({"folds": 1}, "folds: Input should be greater than or equal to 2"),
    ({"sweep": {"augmentation.noise_rho": []}}, "no values"),
    ({"search": {"space": {"lr": {"low": 1, "high": 0.1}}}}, "low must be < high"),
])
def test_spec_errors_name_the_bad_key(patch, message):
    raw = {"name": "s", "datasets": {"a": {"path": "x"}}}
    raw.update(patch)
    with pytest.raises(NanosegError, match=message):
        load_spec(raw)


def test_spec_file_errors_and_sizes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(NanosegError, match="YAML mapping"):
        load_spec(bad)
    with pytest.raises(NanosegError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    good = tmp_path / "s.yaml"
    good.write_text(yaml.safe_dump({"name": "s", "datasets": {"a": {"path": "rel/a"}}, "size": "small",
                                    "training": {"epochs": 100, "lr": 1e-4},
                                    "sizes": {"small": {"training": {"epochs": 2}, "folds": 3}}}))
    spec = load_spec(good)
    assert spec.training == {"epochs": 2, "lr": 1e-4} and spec.folds == 3 and spec.size == "small"
    assert spec.datasets["a"].path == str((tmp_path / "rel/a").resolve())  # relative to the spec file
    with pytest.raises(NanosegError, match="size 'huge' is not defined"):
        load_spec(good, size="huge")


def test_example_specs_validate():
    try:
        from nanoseg.train import TrainConfig as train_config
    except ImportError:  # nanoseg.train not installed yet: the spec structure is still checked
        train_config = None
    specs = sorted((REPO / "examples" / "studies").glob("*.yaml"))
    assert {p.stem for p in specs} >= {"size", "dose", "pixel_size", "material", "flatfield", "tiny"}
    for path in specs:
        raw = yaml.safe_load(path.read_text())
        for size in raw.get("sizes", {}):
            spec = load_spec(path, size=size)
            trainings, cells = expand_grid(spec)
            n_ensembles = len(trainings) // len(spec.seeds) if spec.ensemble else 0
            assert len(cells) == (len(trainings) + n_ensembles) * len(spec.test_sets) > 0
            if spec.backend == "nanoseg" and train_config is not None:
                for text in {json.dumps(t.config, sort_keys=True) for t in trainings}:
                    train_config.from_dict(json.loads(text))  # every training config is one nanoseg.train accepts


# ------------------------------------------------------------------------------------------------- grid
def test_grid_expansion_product_and_protocol():
    spec = load_spec({"name": "g", "datasets": {"a": {"path": "a"}, "b": {"path": "b"}, "c": {"path": "c"}},
                      "train": ["a", "b"], "test": ["a", "c"], "folds": 3, "seeds": [0, 1],
                      "training": {"augmentation": {"flip": True}, "epochs": 5},
                      "sweep": {"augmentation.noise_rho": [0.0, 0.5, 1.0],
                                "preprocessing": {"flat": [{"name": "flat_field"}], "none": []}}})
    trainings, cells = expand_grid(spec)
    assert len(trainings) == 2 * 3 * 2 * 6 and len(cells) == 2 * len(trainings)
    assert len({t.key for t in trainings}) == len(trainings) and len({c.key for c in cells}) == len(cells)
    t = next(t for t in trainings if t.option.labels == {"noise_rho": "0.5", "preprocessing": "flat"}
             and t.fold == 2 and t.seed == 1)
    assert t.config == {"augmentation": {"flip": True, "noise_rho": 0.5}, "epochs": 5,
                        "preprocessing": [{"name": "flat_field"}], "seed": 102}
    in_dist = [c for c in cells if c.in_distribution]
    assert {c.training.train_set for c in in_dist} == {"a"}  # b is never tested on itself here
    assert {c.test_set for c in cells} == {"a", "c"}


def test_sweep_blocks_union_and_train_restriction():
    spec = load_spec({"name": "g", "datasets": {"hi": {"path": "a"}, "lo": {"path": "b"}}, "folds": 2,
                      "sweep": [{}, {"train": ["hi"], "augmentation.noise_rho": [0.5, 1.0]},
                                {"train": ["hi"], "augmentation.noise_rho_max": [1.5]}, {}]})
    trainings, cells = expand_grid(spec)
    labels = {(t.train_set, t.option.label) for t in trainings}
    assert labels == {("hi", "base"), ("lo", "base"), ("hi", "noise_rho=0.5"), ("hi", "noise_rho=1"),
                      ("hi", "noise_rho_max=1.5")}
    assert len(trainings) == 2 * len(labels) and len(cells) == 2 * len(trainings)
    with pytest.raises(NanosegError, match=r"sweep: train set\(s\) \['nope'\]"):
        load_spec({"name": "g", "datasets": {"a": {"path": "a"}}, "sweep": [{"train": ["nope"], "x": [1]}]})


def test_folds_keep_groups_and_split_cleanly():
    meta = pd.DataFrame({"id": [f"i{k}" for k in range(20)], "source": [f"s{k // 3}" for k in range(20)]})
    folds = assign_folds(meta, n_folds=4, group_by="source")
    for _, part in meta.assign(fold=folds).groupby("source"):
        assert part["fold"].nunique() == 1
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 3
    parts = split_fold(meta, folds, 1, val_fraction=0.2, group_by="source")
    ids = parts["train"] + parts["val"] + parts["test"]
    assert sorted(ids) == sorted(meta["id"]) and len(set(ids)) == 20 and parts["val"]
    src = dict(zip(meta["id"], meta["source"], strict=True))
    assert not {src[i] for i in parts["val"]} & {src[i] for i in parts["train"]}
    with pytest.raises(NanosegError, match="only 7 distinct 'source' groups"):
        assign_folds(meta, n_folds=8, group_by="source")


def test_fold_subsets_link_instead_of_copying(two_sets, tmp_path):
    spec = load_spec(spec_dict(two_sets))
    subsets = make_fold_subsets(spec, "clean", two_sets["clean"], tmp_path / "study")
    test0 = open_dataset(subsets[0]["test"])
    whole = open_dataset(two_sets["clean"])
    assert (subsets[0]["test"] / "images.zarr").is_symlink()
    np.testing.assert_array_equal(test0.image(test0.ids[0]), whole.image(test0.ids[0]))
    assert sorted(open_dataset(subsets[0]["test"]).ids + open_dataset(subsets[1]["test"]).ids) == sorted(whole.ids)


# ---------------------------------------------------------------------------------------------- descriptors
def test_descriptors_on_known_images(rng):
    white = rng.normal(size=(128, 128))
    assert roughness(white) == pytest.approx(1 / 6, rel=0.03)  # mean of kx²+ky² over the square band
    counts = rng.poisson(100.0, size=(128, 128)).astype(float)
    assert noise_level(counts) == pytest.approx(0.1, rel=0.08)  # 1/√(100 e⁻/px)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    step = np.where(mask, 0.0, 1.0)  # standardized: background 1, particle 0 → contrast = 1/std
    assert particle_contrast(step, mask) == pytest.approx(1 / step.std())
    assert np.isnan(particle_contrast(step, np.zeros_like(mask)))
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(white, 3) + 0.01 * white
    assert information_limit(blurred) < 0.2 < information_limit(gaussian_filter(white, 0.7) + 0.01 * white)


# ----------------------------------------------------------------------------------------------- running
def test_run_study_sync_protocol_and_resume(two_sets, tmp_path):
    out = tmp_path / "study"
    table = run_study(spec_dict(two_sets), out, scheduler="sync", progress=False)
    assert len(table) == 2 * 2 * 2 and (table["status"] == "ok").all()
    in_dist = table[table["in_distribution"]]
    ood = table[~table["in_distribution"]]
    assert sorted(in_dist["n_images"]) == [4, 4, 4, 4]  # the held-out fold (2 of 4 sources)
    assert (ood["n_images"] == 8).all()  # every fold model on the whole other dataset
    means, _ = metric_matrix(summarize(table), "dice")
    assert means.loc["clean", "clean"] > 0.9 and means.loc["clean", "clean"] > means.loc["noisy", "noisy"]
    assert (out / "results.parquet").exists() and (out / "descriptors" / "noisy.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results" / "cells").glob("*.json")}
    trained = {p.parent.name: p.stat().st_mtime_ns for p in (out / "models").glob("*/training.json")}
    again = run_study(spec_dict(two_sets), out, scheduler="sync", progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results" / "cells").glob("*.json")} == before
    assert {p.parent.name: p.stat().st_mtime_ns for p in (out / "models").glob("*/training.json")} == trained
    pd.testing.assert_frame_equal(again.sort_values("cell").reset_index(drop=True),
                                  table.sort_values("cell").reset_index(drop=True))
    # a changed training config is not mistaken for a finished cell
    changed = run_study(spec_dict(two_sets, training={"sigma_px": 0.0}), out, scheduler="sync", progress=False)
    assert (changed["config_hash"] != table.set_index("cell").loc[changed["cell"], "config_hash"].to_numpy()).all()


def test_changed_data_reruns_exactly_what_depends_on_it(two_sets, tmp_path):
    out = tmp_path / "study"
    run_study(spec_dict(two_sets), out, scheduler="sync", progress=False, descriptors=False)
    cells = {p.stem: p.stat().st_mtime_ns for p in (out / "results" / "cells").glob("*.json")}
    trained = {p.parent.name: p.stat().st_mtime_ns for p in (out / "models").glob("*/training.json")}
    make_set(two_sets["noisy"], n=10, noise=0.6, seed=2)  # two more noisy images (a new source)
    table = run_study(spec_dict(two_sets), out, scheduler="sync", progress=False, descriptors=False)
    after = {p.stem: p.stat().st_mtime_ns for p in (out / "results" / "cells").glob("*.json")}
    retrained = {p.parent.name for p in (out / "models").glob("*/training.json")
                 if p.stat().st_mtime_ns != trained[p.parent.name]}
    assert retrained == {"noisy__f0__s0__base", "noisy__f1__s0__base"}
    assert {c for c in cells if after[c] != cells[c]} == {c for c in cells if "noisy" in c}
    assert table.loc[table["cell"] == "clean__f0__s0__base__test_noisy", "n_images"].item() == 10


FLAKY_BACKEND = '''
from nanoseg.study.backends import ThresholdBackend
from nanoseg.errors import NanosegError

class Flaky(ThresholdBackend):
    """Fails to predict on the whole noisy set (out of distribution), and to train on the noisy set's fold 1."""
    def train(self, train_dir, val_dir, config, out_dir, *, device=None):
        if "noisy" in str(train_dir) and "/f1/" in str(train_dir):
            raise RuntimeError("out of memory (simulated)")
        return super().train(train_dir, val_dir, config, out_dir, device=device)
    def predict(self, model, micrograph):
        if "/noisy#" in micrograph.source:
            raise NanosegError("detector exploded (simulated)")
        return super().predict(model, micrograph)
'''


def test_failed_cells_are_recorded_and_the_rest_goes_on(two_sets, tmp_path, monkeypatch):
    (tmp_path / "flaky_backend.py").write_text(FLAKY_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    table = run_study(spec_dict(two_sets, backend="flaky_backend:Flaky"), tmp_path / "study", scheduler="sync",
                      progress=False, descriptors=False).set_index("cell")
    ok = table[table["status"] == "ok"]
    assert sorted(ok.index) == ["clean__f0__s0__base__test_clean", "clean__f1__s0__base__test_clean",
                                "noisy__f0__s0__base__test_clean", "noisy__f0__s0__base__test_noisy"]
    failed = table[table["status"] == "failed"]
    assert len(failed) == 4
    assert failed.loc["noisy__f1__s0__base__test_clean", "error"].startswith("training noisy__f1__s0__base failed: "
                                                                             "RuntimeError: out of memory")
    assert "detector exploded" in failed.loc["clean__f0__s0__base__test_noisy", "error"]
    report = write_study_report(tmp_path / "study")
    assert "Failed cells" in report.read_text()


SEED_SHIFT_BACKEND = '''
import json
from pathlib import Path
from nanoseg.study.backends import ThresholdBackend

class SeedShift(ThresholdBackend):
    """The threshold model, its threshold moved by 0.4 × the seed index: seeds give different members."""
    def train(self, train_dir, val_dir, config, out_dir, *, device=None):
        out = super().train(train_dir, val_dir, config, out_dir, device=device)
        path = Path(out) / "threshold.json"
        params = json.loads(path.read_text())
        params["threshold"] += 0.4 * (config["seed"] // 100)
        path.write_text(json.dumps(params))
        return out
'''


@pytest.mark.parametrize("scheduler", ["sync", "threads"])  # threads: Dask resolves the members' futures
def test_ensemble_cells_score_the_mean_probability_of_the_seeds(two_sets, tmp_path, monkeypatch, scheduler):
    from nanoseg.evaluate.pixel import pixel_metrics
    from nanoseg.study.backends import get_backend

    (tmp_path / "seed_shift_backend.py").write_text(SEED_SHIFT_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "study"
    spec = spec_dict(two_sets, backend="seed_shift_backend:SeedShift", seeds=[0, 1], ensemble=True,
                     training={"sigma_px": 1.0, "softness": 0.5})
    table = run_study(spec, out, scheduler=scheduler, n_workers=2, progress=False,
                      descriptors=False).set_index("cell")
    assert (table["status"] == "ok").all() and len(table) == 2 * 2 * 2 * 2 + 2 * 2 * 2  # + one per fold and test
    cell = table.loc["clean__f0__ensemble2__base__test_noisy"]
    assert cell["option"] == "base,ensemble=2" and cell["seed"] == -1 and cell["ensemble_size"] == 2
    backend = get_backend("seed_shift_backend:SeedShift")
    members = [backend.load(out / "models" / f"clean__f0__s{s}__base" / "model") for s in (0, 1)]
    assert members[0]["threshold"] != members[1]["threshold"]
    ds = open_dataset(two_sets["noisy"])
    by_hand = np.mean([pixel_metrics(np.mean([backend.predict(m, ds.micrograph(i)) for m in members], axis=0),
                                     ds.mask(i))["dice"] for i in ds.ids])
    assert cell["dice"] == pytest.approx(by_hand)
    singles = [table.loc[f"clean__f0__s{s}__base__test_noisy", "dice"] for s in (0, 1)]
    assert all(abs(cell["dice"] - d) > 1e-6 for d in singles)  # the ensemble is not one of its members
    assert "base,ensemble=2" in set(summarize(table.reset_index())["option"])
    again = run_study(spec, out, scheduler="sync", progress=False, descriptors=False)  # resumes: nothing reruns
    assert (again.set_index("cell").loc[table.index, "finished_at"] == table["finished_at"]).all()
    with pytest.raises(NanosegError, match="ensemble: true needs at least 2 seeds"):
        load_spec(spec_dict(two_sets, ensemble=True))


def test_sweep_figures_keep_ensembles_apart_from_single_models(two_sets, tmp_path, monkeypatch):
    """A numeric sweep with ensemble: true draws single models and ensembles as separate curves (one figure
    each), never one line through both at the same x."""
    from nanoseg.study.report import sweep_figures

    (tmp_path / "seed_shift_backend.py").write_text(SEED_SHIFT_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = spec_dict(two_sets, backend="seed_shift_backend:SeedShift", seeds=[0, 1], ensemble=True,
                     sweep={"sigma_px": [0.0, 1.0]})
    table = run_study(spec, tmp_path / "study", scheduler="sync", progress=False, descriptors=False)
    ens = table["ensemble_size"] == 2
    assert (table.loc[ens, "opt_ensemble"] == "2").all() and table.loc[~ens, "opt_ensemble"].isna().all()
    summary = summarize(table)
    figures = sweep_figures(summary, "dice", tmp_path)
    assert len(figures) == 2 and all(p.exists() for p, _ in figures)
    lines = summary[summary["opt_sigma_px"].notna()].groupby(["opt_ensemble", "train_set", "test_set"],
                                                                dropna=False)["opt_sigma_px"]
    assert (lines.apply(lambda v: v.is_unique)).all()  # one point per sigma on every curve


def test_run_on_a_local_dask_cluster(two_sets, tmp_path):
    table = run_study(spec_dict(two_sets, folds=2, sweep={"sigma_px": [0.0, 2.0]}), tmp_path / "study",
                      scheduler="threads", n_workers=2, progress=False)
    assert len(table) == 16 and (table["status"] == "ok").all()
    assert set(table["opt_sigma_px"]) == {"0", "2"}


SLOW_BACKEND = '''
import os, time
from nanoseg.study.backends import ThresholdBackend

def _log(line):
    with open(os.environ["STUDY_LOG"], "a") as f:
        f.write(line + "\\n")

class Slow(ThresholdBackend):
    def train(self, train_dir, val_dir, config, out_dir, *, device=None):
        _log("train " + str(out_dir))
        time.sleep(0.1)
        return super().train(train_dir, val_dir, config, out_dir, device=device)
    def load(self, checkpoint, *, device=None):
        _log("eval " + str(checkpoint))
        time.sleep(0.25)
        return super().load(checkpoint, device=device)
'''


@pytest.mark.parametrize("scheduler", ["threads", pytest.param("local", marks=pytest.mark.slow)])
def test_resume_after_kill(two_sets, tmp_path, scheduler):
    """Kill a study mid-way (the whole process group), restart it: finished cells are not recomputed.
    ``local`` is the default LocalCluster of worker processes (slower to start: in the slow suite)."""
    (tmp_path / "slow_backend.py").write_text(SLOW_BACKEND)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict(two_sets, backend="slow_backend:Slow",
                                                  sweep={"sigma_px": [0.0, 1.0]})))  # 8 trainings, 16 cells
    out = tmp_path / "study"
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               STUDY_LOG=str(tmp_path / "run1.log"))
    cmd = [sys.executable, "-m", "nanoseg", "study", "run", str(spec_path), "--out", str(out), "--no-report"]
    cmd += ["--workers", "2", "--scheduler", "threads"] if scheduler == "threads" else ["--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    cells_dir = out / "results" / "cells"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if cells_dir.is_dir() and len(list(cells_dir.glob("*.json"))) >= 3:
                break
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = {p.stem for p in cells_dir.glob("*.json")}
    assert 3 <= len(done_before) < 16, "the study was not interrupted mid-way"
    env["STUDY_LOG"] = str(tmp_path / "run2.log")
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    table = load_results(out)
    assert len(table) == 16 and (table["status"] == "ok").all() and table["cell"].is_unique
    evaluated_again = [line.split(" ", 1)[1] for line in (tmp_path / "run2.log").read_text().splitlines()
                       if line.startswith("eval ")]
    trainings_of_done = {c.rsplit("__test_", 1)[0] for c in done_before}
    cells_of = {t: {c for c in done_before if c.startswith(t + "__test_")} for t in trainings_of_done}
    for checkpoint in evaluated_again:
        training = Path(checkpoint).parent.name
        # a training whose two cells had both finished is never evaluated again
        assert len(cells_of.get(training, ())) < 2, f"{training} was recomputed"
    assert len(evaluated_again) == 16 - len(done_before)
    assert pd.read_parquet(out / "results.parquet")["cell"].nunique() == 16


# ------------------------------------------------------------------------------------------------ search
def test_optuna_search_picks_best_params_for_every_fold(two_sets, tmp_path):
    spec = spec_dict(two_sets, train=["noisy"], test=["noisy"], folds=2,
                     search={"n_trials": 3, "parallel": 2, "sampler": "random",
                             "space": {"sigma_px": [0.0, 3.0]}})
    table = run_study(spec, tmp_path / "study", scheduler="sync", progress=False, descriptors=False)
    record = json.loads((tmp_path / "study" / "search" / "noisy__base.json").read_text())
    assert record["n_trials"] == 3 and record["best_params"]["sigma_px"] in (0.0, 3.0)
    assert record["best_params"]["sigma_px"] == 3.0  # blurring the noisy set helps a threshold
    for path in (tmp_path / "study" / "models").glob("*/training.json"):
        assert json.loads(path.read_text())["config"]["sigma_px"] == 3.0
    assert (table["status"] == "ok").all()


# ------------------------------------------------------------------------------------------------ report
def test_report_matrices_from_a_hand_made_table(tmp_path):
    store = ResultsStore(tmp_path)
    dice = {("a", "a"): [0.90, 0.80], ("a", "b"): [0.50, 0.70], ("b", "a"): [0.85, 0.75], ("b", "b"): [0.95, 0.85]}
    for rho in ("0", "0.5"):
        for (train, test), values in dice.items():
            for fold, value in enumerate(values):
                shift = 0.1 if rho == "0.5" and train == "a" and test == "b" else 0.0
                store.write({"study": "hand", "cell": f"{train}_{test}_{fold}_{rho}", "train_set": train,
                             "test_set": test, "fold": fold, "seed": 0, "option": f"noise_rho={rho}",
                             "opt_noise_rho": rho, "status": "ok", "dice": value + shift, "soft_dice": value})
    for fold, value in enumerate([0.65, 0.75]):  # an option trained on `a` only: drops use the plain diagonal
        store.write({"study": "hand", "cell": f"aug_{fold}", "train_set": "a", "test_set": "b", "fold": fold,
                     "seed": 0, "option": "noise_rho_max=1.5", "opt_noise_rho_max": "1.5", "status": "ok",
                     "dice": value, "soft_dice": value})
    store.write({"study": "hand", "cell": "broken", "train_set": "a", "test_set": "b", "fold": 2, "seed": 0,
                 "option": "noise_rho=0", "opt_noise_rho": "0", "status": "failed", "error": "boom"})
    (tmp_path / "descriptors").mkdir()
    for name, c in (("a", 0.6), ("b", 0.2)):
        (tmp_path / "descriptors" / f"{name}.json").write_text(json.dumps(
            {"contrast": c, "roughness": 0.03, "info_limit_cyc_px": 0.3, "info_limit_nm": 0.07, "noise": 0.1}))
    report = write_study_report(tmp_path)
    html = report.read_text()
    assert report.name == "report.html" and "data:image/png;base64" in html and "Failed cells" in html
    means = pd.read_csv(tmp_path / "report" / "matrix_dice_noise_rho_0.csv", index_col=0)
    drops = pd.read_csv(tmp_path / "report" / "drop_dice_noise_rho_0.csv", index_col=0)
    assert means.loc["a", "b"] == pytest.approx(0.60)  # the failed cell is left out
    assert drops.loc["a", "b"] == pytest.approx(0.60 - 0.90)  # cell − diagonal of its test column (b, b)
    assert drops.loc["b", "a"] == pytest.approx(0.80 - 0.85)
    assert drops.loc["a", "a"] == pytest.approx(0.0)
    shifted = pd.read_csv(tmp_path / "report" / "drop_dice_noise_rho_0_5.csv", index_col=0)
    assert shifted.loc["a", "b"] == pytest.approx(0.70 - 0.90)
    summary = summarize(load_results(tmp_path))
    row = summary[(summary["option"] == "noise_rho=0") & (summary["train_set"] == "a") & (summary["test_set"] == "b")]
    assert float(row["dice_std"].iloc[0]) == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert (tmp_path / "report" / "sweep_dice_noise_rho.png").exists()
    table = pd.read_csv(tmp_path / "report" / "drop_vs_descriptors.csv")
    aug = pd.read_csv(tmp_path / "report" / "drop_dice_noise_rho_max_1_5.csv", index_col=0)
    assert aug.loc["a", "b"] == pytest.approx(0.70 - 0.90)  # vs the plain b→b diagonal (first option)
    assert set(table["d_contrast"].round(6)) == {0.4}
    assert drop_matrix(metric_matrix(summary, "soft_dice", "noise_rho=0")[0]).loc["a", "b"] == pytest.approx(-0.3)


def test_cli_run_report_and_errors(two_sets, tmp_path):
    from nanoseg.cli import main

    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict(two_sets)))
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "run", str(spec_path), "--out", str(tmp_path / "st"), "--scheduler", "sync", "--no-report"])
    assert exit_info.value.code in (0, None)
    assert (tmp_path / "st" / "results.parquet").exists() and not (tmp_path / "st" / "report.html").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "report", str(tmp_path / "st"), "--metric", "iou"])
    assert exit_info.value.code in (0, None)
    assert "iou" in (tmp_path / "st" / "report.html").read_text()
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "report", str(tmp_path / "st"), "--metric", "nope"])
    assert exit_info.value.code == 2
    spec_path.write_text(textwrap.dedent("""\
        name: s
        datasets: {a: {path: x, colour: red}}
    """))
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "run", str(spec_path), "--out", str(tmp_path / "st2")])
    assert exit_info.value.code == 2


def _real_chain(two_sets, tmp_path, epochs):
    spec = spec_dict(two_sets, backend="nanoseg", train=["clean"],
                     training={"model": "unet3", "epochs": epochs, "lr": 3e-3, "batch_size": 4, "patch_size": 32,
                               "preprocessing": [{"name": "standardize"}], "amp": False})
    table = run_study(spec, tmp_path / "study", scheduler="sync", progress=False, descriptors=False)
    assert len(table) == 4 and (table["status"] == "ok").all(), table.get("error")
    card = json.loads((tmp_path / "study" / "models" / "clean__f0__s0__base" / "model" / "card.json").read_text())
    assert card["architecture"] == "unet3" and card["training"]["n_images"] == {"train": 2, "val": 2, "test": 0}
    assert card["training"]["epochs_run"] == epochs
    assert sorted(table["n_images"]) == [4, 4, 8, 8] and table["dice"].between(0, 1).all()
    return metric_matrix(summarize(table), "dice")[0]


def test_real_chain_train_infer_evaluate(two_sets, tmp_path):
    """The nanoseg backend end to end (nanoseg.train → nanoseg.infer → nanoseg.evaluate) on a tiny grid."""
    _real_chain(two_sets, tmp_path, epochs=1)


@pytest.mark.slow
def test_real_chain_learns(two_sets, tmp_path):
    means = _real_chain(two_sets, tmp_path, epochs=30)
    assert means.loc["clean", "clean"] > 0.6  # dark disks on a clean background: learnt in 30 short epochs


def test_plan_counts_the_grid(capsys):
    from nanoseg.cli import main
    from nanoseg.study.plan import study_plan

    spec = load_spec(REPO / "examples" / "studies" / "dose.yaml", size="mini")
    plan = study_plan(spec, seconds_per_patch=0.5)
    # 2 datasets × 3 folds + ρmax on the high-dose set × 3 folds; every model tested on both sets
    assert plan["trainings"] == 9 and plan["cells"] == 18 and plan["images_to_simulate"] == 24
    # 48 patches of 128² (= 12 of 256²) × 20 epochs per training
    assert plan["patch_passes_256"] == 9 * 20 * 12 and plan["training_hours"] == pytest.approx(2160 * 0.5 / 3600)
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "plan", str(REPO / "examples" / "studies" / "dose.yaml"), "--size", "mini"])
    assert exit_info.value.code in (0, None)
    assert "trainings" in capsys.readouterr().err
