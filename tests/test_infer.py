"""nanoseg.infer: exact tiling, resampling to the model grid, ensembles/TTA, OOD warnings, engines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import disks_image
from nanoseg.errors import NanosegError
from nanoseg.infer import (
    axis_weights,
    context_px,
    make_runner,
    predict,
    resolve_models,
    tile_layout,
    tile_starts,
)
from nanoseg.io import Micrograph
from nanoseg.models import LoadedModel, ModelCard, build_model, save_model


@pytest.fixture(autouse=True, scope="module")
def _engine_calibration_in_a_tmp_dir(tmp_path_factory):
    """The auto engine's per-machine calibration goes to a fresh folder, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NANOSEG_CACHE_DIR", str(tmp_path_factory.mktemp("nanoseg-cache")))
        yield


def _randomized(name: str, seed: int = 0) -> nn.Module:
    """A network with non-trivial BatchNorm statistics (so folding and tiling are really tested)."""
    torch.manual_seed(seed)
    net = build_model(name)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


class DarkIsParticle(nn.Module):
    """A hand-made 'network': particle logit = −gain·(pixel − level), so dark disks are particles."""

    size_multiple = 4
    architecture = "dark_is_particle"

    def __init__(self, level: float = 0.0, gain: float = 8.0):
        super().__init__()
        self.level, self.gain = level, gain
        self.smooth = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x):
        s = self.smooth(x)
        return torch.cat([torch.zeros_like(s), -self.gain * (s - self.level)], dim=1)


def _whole_image_probability(net: nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = net(torch.from_numpy(image)[None, None])
    return torch.softmax(logits, dim=1)[0, 1].numpy()


@pytest.mark.parametrize("name", ["norm_unet", "sytwu_resunet"])
def test_tiled_equals_whole_image(name):
    net = _randomized(name)
    side, tile = (256, 160) if name == "norm_unet" else (384, 320)  # contexts: 46 and 107 px per side
    image = np.random.default_rng(1).standard_normal((side, side)).astype(np.float32)
    want = _whole_image_probability(net, image)
    for engine in ("eager", "fused", "auto") if name == "norm_unet" else ("auto",):
        got = predict(image, net, pixel_size_nm=0.1, tile_size=tile, engine=engine, device="cpu", ood=False)
        assert got.metadata["models"][0]["n_tiles"] == (4 if name == "sytwu_resunet" else 9)
        assert np.abs(got.probability - want).max() < 1e-4, engine
    whole = predict(image, net, pixel_size_nm=0.1, tile_size=None, engine="eager", device="cpu", ood=False)
    assert np.abs(whole.probability - want).max() < 1e-6


def test_tile_layout_and_weights():
    assert tile_layout(256, tile_px=160, margin_px=46, ramp_px=16, multiple=16) == (160, [0, 48, 96])
    for length in range(16, 2000, 16):  # every layout: aligned, covering, gaps within the tile interior
        tile, starts = tile_layout(length, tile_px=400, margin_px=46, ramp_px=16, multiple=16)
        assert tile <= max(400 // 16 * 16, length) and starts[0] == 0 and starts[-1] + tile == length
        assert all(s % 16 == 0 for s in starts) and tile % 16 == 0
        assert all(0 < b - a <= tile - 2 * 46 - 16 for a, b in zip(starts, starts[1:], strict=False))
    assert tile_starts(100, tile_px=128, margin_px=46, ramp_px=16, multiple=16) == [0]
    with pytest.raises(NanosegError, match="too small"):
        tile_starts(512, tile_px=64, margin_px=46, ramp_px=16, multiple=16)
    w = axis_weights(64, at_start=False, at_end=False, margin_px=10, ramp_px=8)
    assert (w[:10] == 0).all() and (w[-10:] == 0).all() and (w[18:46] == 1).all()
    assert np.allclose(w[10:18] + w[10:18][::-1], 1.0)  # raised cosine: overlapping ramps sum to 1
    edge = axis_weights(64, at_start=True, at_end=False, margin_px=10, ramp_px=8)
    assert edge[0] == 1.0
    assert context_px(build_model("unet3")) >= 38 // 2


def test_odd_sizes_and_pixel_size_resampling():
    image, truth = disks_image((150, 170), ((50, 60, 18), (100, 120, 24)), noise=0.05)
    model = LoadedModel(DarkIsParticle(level=0.8).eval(),
                        ModelCard(architecture="dark_is_particle", pixel_size_nm=0.2), path=None)
    pred = predict(Micrograph(image, pixel_size_nm=0.1), model, tile_size=None, device="cpu", ood=False)
    assert pred.probability.shape == truth.shape and pred.mask.shape == truth.shape
    assert pred.metadata["models"][0]["network_grid_shape"] == [75, 85]
    inter = (pred.mask.astype(bool) & truth).sum()
    assert 2 * inter / (pred.mask.sum() + truth.sum()) > 0.95  # aligned with the input grid after resampling
    tiled = predict(Micrograph(image, pixel_size_nm=0.1), model, tile_size=32, overlap_px=12, device="cpu",
                    ood=False)
    assert np.abs(tiled.probability - pred.probability).max() < 1e-4


def test_missing_pixel_size_needs_a_decision():
    model = LoadedModel(DarkIsParticle().eval(), ModelCard(architecture="x", pixel_size_nm=0.2), path=None)
    image = Micrograph(np.zeros((32, 32)), source="frame.tif")
    with pytest.raises(NanosegError, match="pixel size") as err:
        predict(image, model, device="cpu")
    assert "pixel_size_nm=" in str(err.value) and "frame.tif" in str(err.value)
    pred = predict(image, model, assume_model_pixel_size=True, device="cpu")
    assert pred.pixel_size_nm is None and any("assumed" in w for w in pred.warnings)
    assert predict(image, model, pixel_size_nm=0.4, device="cpu").metadata["models"][0]["network_grid_shape"] == [
        64, 64]


def test_bad_inputs_are_user_errors():
    net = DarkIsParticle()
    with pytest.raises(NanosegError, match="NaN"):
        predict(np.full((16, 16), np.nan), net, pixel_size_nm=0.1)
    with pytest.raises(NanosegError, match="threshold"):
        predict(np.zeros((16, 16)), net, pixel_size_nm=0.1, threshold=2.0)
    with pytest.raises(NanosegError, match="threshold"):
        predict(np.zeros((16, 16)), net, pixel_size_nm=0.1, threshold="median")
    with pytest.raises(NanosegError, match="not found"):
        resolve_models("/nonexistent/model.nanoseg")
    with pytest.raises(NanosegError, match="2-D"):
        predict(np.zeros((2, 16, 16)), net, pixel_size_nm=0.1)


def test_ensemble_and_tta_give_uncertainty(tmp_path):
    image, _ = disks_image((64, 64))
    members = [DarkIsParticle(level=0.8), DarkIsParticle(level=0.7)]
    pred = predict(image, members, pixel_size_nm=0.2, threshold="otsu", return_logits=True, device="cpu")
    assert pred.variance is not None and pred.variance.max() > 0 and pred.metadata["n_members"] == 2
    single = [predict(image, m, pixel_size_nm=0.2, device="cpu").probability for m in members]
    np.testing.assert_allclose(pred.probability, np.mean(single, axis=0), atol=1e-6)
    np.testing.assert_allclose(pred.variance, np.var(single, axis=0), atol=1e-6)
    assert pred.logits.shape == (2, 64, 64) and 0 < pred.threshold < 1
    # a rotation-equivariant network: all 8 dihedral views agree → zero variance
    tta = predict(image, members[0], pixel_size_nm=0.2, tta=True, device="cpu")
    assert tta.metadata["n_views"] == 8 and tta.variance.max() < 1e-10
    # a folder of checkpoints is an ensemble
    for i in range(2):
        save_model(tmp_path / "ens" / f"fold{i}", _randomized("unet3", seed=i),
                   ModelCard(architecture="unet3", pixel_size_nm=0.2))
    assert len(resolve_models(tmp_path / "ens")) == 2
    ens = predict(image, tmp_path / "ens", pixel_size_nm=0.2, device="cpu")
    assert ens.variance is not None and ens.metadata["n_members"] == 2


def test_out_of_distribution_warnings():
    card = ModelCard(architecture="dark", pixel_size_nm=0.2, pixel_size_range_nm=(0.02, 0.03),
                     dose_range_e_per_A2=(400, 900), image_statistics={"roughness": (0.02, 0.06)})
    model = LoadedModel(DarkIsParticle(level=0.8).eval(), card, path=None)
    image, _ = disks_image((64, 64), noise=0.3)  # noisy: white-noise roughness ≫ 0.06
    low = predict(Micrograph(image, pixel_size_nm=0.025, dose_e_per_A2=80), model, device="cpu")
    assert low.ood == {"pixel_size": False, "dose": True, "roughness": True} and low.out_of_distribution
    assert any("dose 80" in w for w in low.warnings) and low.metadata["out_of_distribution"]
    ok = predict(Micrograph(image, pixel_size_nm=0.025, dose_e_per_A2=500), model, device="cpu", ood=True)
    assert not ok.ood["dose"]
    unknown = predict(Micrograph(image, pixel_size_nm=0.05), model, device="cpu")
    assert unknown.ood["pixel_size"] and any("dose is unknown" in w for w in unknown.warnings)


@pytest.mark.parametrize("engine,name", [("fused", "sytwu_resunet"), ("fused", "norm_unet"),
                                         ("jit", "sytwu_resunet"), ("onnx", "norm_unet"), ("onnx", "sytwu_resunet")])
def test_fast_engines_match_eager(engine, name):
    if engine == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    net = _randomized(name)
    x = np.random.default_rng(2).standard_normal((2, 64, 96)).astype(np.float32)
    want = make_runner(net, engine="eager", device="cpu")(x)
    got = make_runner(net, engine=engine, device="cpu")(x)
    assert got.shape == want.shape

    def prob(y):
        return torch.softmax(torch.from_numpy(y), 1).numpy()

    assert np.abs(prob(got) - prob(want)).max() < 1e-4
    with pytest.raises(NanosegError, match="engine"):
        make_runner(net, engine="tensorrt")


def test_graph_passes_fold_everything_foldable():
    from nanoseg.infer.engine import optimize_graph

    norm = optimize_graph(_randomized("norm_unet"))
    kinds = {type(m).__name__ for m in norm.modules()}
    assert "BatchNorm2d" not in kinds and "_ConvActShift" in kinds and norm.size_multiple == 16
    net = _randomized("norm_unet")
    bn = net.encoder[0].bn
    with torch.no_grad():
        bn.weight[0] = -1.0  # a negative BN scale cannot be folded through LeakyReLU: must stay exact anyway
    partial = optimize_graph(net)
    assert any(isinstance(m, nn.BatchNorm2d) for m in partial.modules())
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert (partial(x) - net(x)).abs().max() < 1e-4
    res = optimize_graph(_randomized("sytwu_resunet"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in res.modules())
    assert "_PointwiseAffine" in {type(m).__name__ for m in res.modules()}


def test_concatenations_split_into_per_part_convolutions():
    from nanoseg.infer.engine import optimize_graph

    for name in ("norm_unet", "sytwu_resunet"):
        net = _randomized(name)
        fused = optimize_graph(net)
        cats = [n for n in fused.graph.nodes if n.target is torch.cat]
        # every cat that feeds a (non-transposed) conv is gone: all of Sytwu's, Norm's before its head
        assert len(cats) == (3 if name == "norm_unet" else 0), name
        assert "_SplitConv" in {type(m).__name__ for m in fused.modules()}
        x = torch.randn(1, 1, 96, 64)
        with torch.no_grad():
            want, got = torch.softmax(net(x), 1), torch.softmax(fused(x), 1)
        assert (got - want).abs().max() < 1e-4


def test_auto_engine_times_the_cpu_candidates():
    net = _randomized("norm_unet")
    runner = make_runner(net, engine="auto", device="cpu")
    assert runner.engine in ("fused", "onnx")
    assert "fused" in runner.calibration and min(runner.calibration.values()) > 0
    x = np.random.default_rng(3).standard_normal((1, 64, 48)).astype(np.float32)
    want = make_runner(net, engine="eager", device="cpu")(x)
    assert np.abs(torch.softmax(torch.from_numpy(runner(x)), 1).numpy()
                  - torch.softmax(torch.from_numpy(want), 1).numpy()).max() < 1e-4


def test_blend_weights_are_a_partition_of_unity():
    from nanoseg.infer.tiling import _axis_plan, tile_layout

    for length, tile, margin in ((4096, 2304, 107), (1000 // 16 * 16, 400, 46), (4096, 1024, 46)):
        th, starts = tile_layout(length, tile_px=tile, margin_px=margin, ramp_px=16, multiple=16)
        total = np.zeros(length)
        for s, (w, (lo, hi), (c0, c1)) in zip(starts, _axis_plan(length, th, starts, margin_px=margin,
                                                                  ramp_px=16), strict=True):
            total[s: s + th] += w
            assert (w[lo:hi] > 0).all() and (w[:lo] == 0).all() and (w[hi:] == 0).all()
            assert (w[c0:c1] == 1).all()
        assert np.abs(total - 1).max() < 1e-6
    image = np.random.default_rng(4).standard_normal((96, 80)).astype(np.float32)
    from nanoseg.infer.tiling import tiled_apply

    def identity(tiles):
        return np.stack([tiles, -tiles], axis=1)

    out = tiled_apply(identity, image, tile_px=48, margin_px=4, multiple=16, ramp_px=4)
    assert out.dtype == np.float32 and np.abs(out[0] - image).max() < 1e-6


def test_predict_sees_weights_changed_after_the_first_call():
    """The runner cache must not keep a snapshot of old weights (issue #16 item 2)."""
    net = _randomized("unet3", seed=0)
    image = np.random.default_rng(5).standard_normal((32, 48)).astype(np.float32)

    def probability(engine):
        return predict(image, net, pixel_size_nm=0.1, tile_size=None, engine=engine, device="cpu",
                       ood=False).probability

    before = probability("fused")
    with torch.no_grad():  # in place, through the parameters (version counters bump)
        for p in net.parameters():
            p.mul_(-1.5)
    changed = probability("fused")
    assert np.abs(changed - before).max() > 1e-3
    assert np.abs(changed - probability("eager")).max() < 1e-4
    net.load_state_dict(_randomized("unet3", seed=7).state_dict())  # another checkpoint, same object
    loaded = probability("fused")
    assert np.abs(loaded - changed).max() > 1e-3 and np.abs(loaded - probability("eager")).max() < 1e-4
    for p in net.parameters():  # through .data: no version counter sees this, the content does
        p.data.copy_(p.data * 0.5)
    assert np.abs(probability("fused") - probability("eager")).max() < 1e-4


def test_tensor_padding_equals_array_padding():
    """explain pads tensors (differentiable), predict pads arrays: the same values, tiny images included."""
    from nanoseg.infer.tiling import pad_tensor_to_multiple, pad_to_multiple

    rng = np.random.default_rng(6)
    for shape in ((75, 83), (3, 5), (16, 7), (1, 2), (32, 32)):
        image = rng.standard_normal(shape).astype(np.float32)
        want = pad_to_multiple(image, 16)[0]
        got = pad_tensor_to_multiple(torch.from_numpy(image)[None], 16)[0].numpy()
        assert got.shape == want.shape and (got == want).all(), shape


def test_auto_engine_calibration_is_kept_per_machine(tmp_path, monkeypatch):
    """Issue #16 item 14: the auto engine times its candidates once per machine and network shape."""
    from nanoseg.infer import engine_choice as engines  # the auto engine's timing and calibration cache

    pytest.importorskip("onnxruntime")  # without ONNX Runtime there is one candidate and nothing to time
    pytest.importorskip("onnx")
    monkeypatch.setenv("NANOSEG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(engines, "CALIBRATION_PX", 64)  # a quick timing (the choice itself is not tested)
    monkeypatch.setattr(engines, "CALIBRATION_ROUNDS", 1)
    first = make_runner(_randomized("unet3", seed=0), engine="auto", device="cpu")
    files = list(tmp_path.glob("engine-calibration-*.json"))
    assert len(files) == 1 and first.calibration and not first.calibration_cached
    timed = []
    real_fastest = engines.fastest_runner
    monkeypatch.setattr(engines, "fastest_runner", lambda *a, **k: timed.append(1) or real_fastest(*a, **k))
    other_weights = _randomized("unet3", seed=3)  # same architecture, other weights: the same choice
    again = make_runner(other_weights, engine="auto", device="cpu")
    assert not timed and again.calibration_cached
    assert (again.engine, again.onnx_level, again.calibration) == (first.engine, first.onnx_level, first.calibration)
    x = np.random.default_rng(8).standard_normal((1, 40, 56)).astype(np.float32)
    want = make_runner(other_weights, engine="eager", device="cpu")(x)
    assert np.abs(torch.softmax(torch.from_numpy(again(x)), 1) - torch.softmax(torch.from_numpy(want), 1)).max() < 1e-4
    threads = torch.get_num_threads()
    try:  # another thread count (or CPU, torch/ONNX Runtime version, architecture) is measured anew
        torch.set_num_threads(1 if threads > 1 else 2)
        make_runner(_randomized("unet3"), engine="auto", device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert len(timed) == 1 and len(list(tmp_path.glob("engine-calibration-*.json"))) == 2
    files[0].write_text("{not json", encoding="utf-8")  # a corrupt file costs one measurement, no error
    assert not make_runner(_randomized("unet3"), engine="auto", device="cpu").calibration_cached
    assert len(timed) == 2 and make_runner(_randomized("unet3"), engine="auto", device="cpu").calibration_cached


def test_runner_cache_follows_the_weights_not_the_object():
    """A model reloaded for every call (predict(model=None), a checkpoint path) reuses the built engine."""
    from nanoseg.infer import get_runner

    a, b, other = _randomized("unet3", seed=0), _randomized("unet3", seed=0), _randomized("unet3", seed=1)
    assert get_runner(a, engine="fused", device="cpu") is get_runner(b, engine="fused", device="cpu")
    assert get_runner(other, engine="fused", device="cpu") is not get_runner(a, engine="fused", device="cpu")
    # eager runs the live module: never shared between objects (one could change its weights later)
    assert get_runner(a, engine="eager", device="cpu") is not get_runner(b, engine="eager", device="cpu")
    # a network outside the zoo may differ in plain attributes (DarkIsParticle's level): never shared
    dark, lighter = DarkIsParticle(level=0.8), DarkIsParticle(level=0.7)
    assert get_runner(dark, engine="fused", device="cpu") is not get_runner(lighter, engine="fused", device="cpu")
