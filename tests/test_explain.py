"""nanoseg.explain: exact frequency filters, lattice peaks, Bragg filtering, raw maps, occlusion, saliency,
line profiles, and the key behaviour: a network trained on blurred data depends less on high frequencies."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import ndimage

from conftest import disks_image
from nanoseg.errors import NanosegError
from nanoseg.explain import (
    Band,
    bandstop,
    bragg_filter,
    choose_particle_lines,
    find_lattice_peaks,
    frequency_ablation,
    gradient_saliency,
    highpass,
    lowpass,
    occlusion_map,
    particle_line_profiles,
    prepare_input,
    raw_output_maps,
    raw_output_stats,
)
from nanoseg.explain.frequency import radial_frequency


def _spectrum(image):
    return np.abs(np.fft.fft2(np.asarray(image, dtype=np.float64)))


# ------------------------------------------------------------------------------------------ filters
@pytest.mark.parametrize("edge", [0.0, 0.03])
def test_filters_remove_exactly_the_band_and_keep_the_rest(rng, edge):
    image = rng.normal(size=(96, 80))
    k = radial_frequency(image.shape)
    original = _spectrum(image)
    scale = original.max()

    low = _spectrum(lowpass(image, cutoff_cycles_per_px=0.2, edge_cycles_per_px=edge))
    assert low[k >= 0.2].max() < 1e-5 * scale
    assert np.allclose(low[k < 0.2 - edge], original[k < 0.2 - edge], rtol=1e-4, atol=1e-4)

    high = _spectrum(highpass(image, cutoff_cycles_per_px=0.1, edge_cycles_per_px=edge))
    assert high[k < 0.1].max() < 1e-5 * scale
    assert np.allclose(high[k > 0.1 + edge], original[k > 0.1 + edge], rtol=1e-4, atol=1e-4)

    stop = _spectrum(bandstop(image, low_cycles_per_px=0.15, high_cycles_per_px=0.25, edge_cycles_per_px=edge))
    band = (k >= 0.15) & (k <= 0.25)
    assert stop[band].max() < 1e-5 * scale
    outside = (k < 0.15 - edge) | (k > 0.25 + edge)
    assert np.allclose(stop[outside], original[outside], rtol=1e-4, atol=1e-4)
    if edge:  # the taper lies on the kept side only: partly attenuated, never amplified
        taper = (k >= 0.25) & (k <= 0.25 + edge)
        assert np.all(stop[taper] <= original[taper] + 1e-6)


def test_lowpass_plus_highpass_is_the_identity(rng):
    image = rng.normal(size=(64, 64)) + 5
    parts = lowpass(image, cutoff_cycles_per_px=0.13) + highpass(image, cutoff_cycles_per_px=0.13)
    assert np.allclose(parts, image, atol=1e-4)


def test_filter_errors():
    with pytest.raises(NanosegError, match="cycles/px"):
        lowpass(np.zeros((16, 16)), cutoff_cycles_per_px=2.0)
    with pytest.raises(NanosegError, match="from ≤ to"):
        bandstop(np.zeros((16, 16)), low_cycles_per_px=0.3, high_cycles_per_px=0.1)
    with pytest.raises(NanosegError, match="NaN"):
        lowpass(np.full((16, 16), np.nan), cutoff_cycles_per_px=0.1)
    with pytest.raises(NanosegError, match="2-D"):
        lowpass(np.zeros(16), cutoff_cycles_per_px=0.1)


# ------------------------------------------------------------------------------------------ lattice
def fringe_particles(size=128, *, frequency=0.3, n=6, seed=0, contrast=0.25, fringe=1.0, noise=0.6):
    """Dark disks carrying lattice fringes of one spacing at random orientations, in noise (standardized)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size))
    mask = np.zeros((size, size), bool)
    for _ in range(n):
        cy, cx = rng.uniform(8, size - 8, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(5, 10) ** 2
        theta, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        wave = np.cos(2 * np.pi * frequency * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
        image[disk] = -contrast + fringe * wave[disk]
        mask |= disk
    image += rng.normal(0, noise, image.shape)
    return ((image - image.mean()) / image.std()).astype(np.float32), mask


def test_lattice_peak_is_found_with_its_spacing_in_nm():
    image, _ = fringe_particles(size=256, frequency=0.3, n=40, seed=3)
    peaks = find_lattice_peaks(image, pixel_size_nm=0.06)
    assert len(peaks) >= 1
    best = peaks.iloc[0]
    assert abs(best.frequency_cycles_per_px - 0.3) < 0.01
    assert abs(best.spacing_nm - 0.06 / 0.3) < 0.01  # 0.2 nm, Au-like
    # pure noise and a blurred copy (fringes gone) show no lattice
    assert find_lattice_peaks(np.random.default_rng(1).normal(size=(256, 256))).empty
    assert find_lattice_peaks(ndimage.gaussian_filter(image, 2)).empty


def test_bragg_filter_keeps_only_the_reflections(rng):
    image, mask = fringe_particles(size=128, frequency=0.3, n=8, seed=5)
    only = bragg_filter(image, [0.3])
    removed = bragg_filter(image, [0.3], complement=True)
    assert np.allclose(only + removed, image, atol=1e-4)
    k = radial_frequency(image.shape)
    spec = _spectrum(only)
    assert spec[np.abs(k - 0.3) > 0.3 * 0.08 + 2 / 128].max() < 1e-5 * _spectrum(image).max()
    # the kept fringes live on the particles: more filtered signal there than on the support
    assert np.abs(only[mask]).mean() > 2 * np.abs(only[~mask]).mean()
    with pytest.raises(NanosegError, match="no lattice"):
        bragg_filter(rng.normal(size=(64, 64)))


# ------------------------------------------------------------------------------------------ tiny networks
class Tiny(torch.nn.Module):
    """Three dilated 3×3 convolutions (receptive field 15 px)."""

    size_multiple = 1

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=2, dilation=2), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 2, 3, padding=4, dilation=4))

    def forward(self, x):
        return self.net(x)


def train_tiny(images, masks, *, blur_sigma_px=0.0, steps=150, seed=0):
    """A few seconds of Adam on (optionally blurred) inputs; labels unchanged (Horwath's protocol)."""
    torch.manual_seed(seed)
    if blur_sigma_px:
        images = np.stack([ndimage.gaussian_filter(im, blur_sigma_px) for im in images])
    x = torch.from_numpy(np.asarray(images, np.float32)[:, None])
    y = torch.from_numpy(np.asarray(masks, np.int64))
    net = Tiny()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (8,), generator=generator)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


class Darkness(torch.nn.Module):
    """A fixed 1×1 network: particle logit −x, background logit +x (dark = particle), receptive field 1."""

    size_multiple = 1

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(x)


def test_blur_trained_model_needs_high_frequencies_less_than_a_sharp_one():
    torch.set_num_threads(1)
    data = [fringe_particles(size=48, n=int(2 + i % 3), seed=100 + i) for i in range(24)]
    train_x, train_y = np.stack([d[0] for d in data]), np.stack([d[1] for d in data])
    test = [fringe_particles(size=48, n=3, seed=500 + i) for i in range(6)]
    test_x, test_y = [t[0] for t in test], [t[1] for t in test]
    bands = [Band("low-pass below lattice", "lowpass", 0.2), Band("high-pass", "highpass", 1 / 16)]
    tables = {}
    for sigma in (0.0, 2.0):
        net = train_tiny(train_x, train_y, blur_sigma_px=sigma)
        tables[sigma] = frequency_ablation(net, test_x, test_y, bands=bands, lattice=[0.3]).set_index("band")
    sharp, blurred = tables[0.0], tables[2.0]
    # both learned something on unblurred test frames
    assert sharp.loc["none", "dice"] > 0.8 and blurred.loc["none", "dice"] > 0.3
    # removing the lattice frequencies hurts the sharp model, not the blurred one
    assert sharp.loc["low-pass below lattice", "drop"] > 0.3
    assert blurred.loc["low-pass below lattice", "drop"] < 0.05
    assert blurred.loc["low-pass below lattice", "drop"] < sharp.loc["low-pass below lattice", "drop"] - 0.3
    # and the reverse for amplitude contrast (low frequencies)
    assert blurred.loc["high-pass", "drop"] > sharp.loc["high-pass", "drop"] + 0.2


def test_ablation_table_and_errors():
    image, mask = fringe_particles(size=64, n=3, seed=7)
    table = frequency_ablation(Darkness(), image, mask, pixel_size_nm=0.06, lattice=[0.3])
    assert table.band.iloc[0] == "none" and table["drop"].iloc[0] == 0
    assert set(table.kind) >= {"lowpass", "highpass", "bandstop", "bragg_only", "bragg_removed"}
    lp = table[table.kind == "lowpass"].iloc[0]
    assert lp.from_period_nm == pytest.approx(0.06 / lp.from_cycles_per_px)
    assert np.allclose(table.dice.iloc[0] - table.dice, table["drop"])
    assert ((table.variance_removed >= 0) & (table.variance_removed <= 1.0 + 1e-6)).all()
    with pytest.raises(NanosegError, match="does not match"):
        frequency_ablation(Darkness(), image, mask[:10])
    with pytest.raises(NanosegError, match="unknown ablation kind"):
        Band("x", "notch")
    with pytest.raises(NanosegError, match="2 images but 1 masks"):
        frequency_ablation(Darkness(), [image, image], [mask])


# ------------------------------------------------------------------------------------------ maps
def test_raw_maps_and_stats_of_a_known_network():
    image, mask = disks_image(shape=(64, 64), centers_radii=((20, 20, 8), (44, 40, 10)), noise=0.02)
    image = (image - image.mean()) / image.std()
    raw = raw_output_maps(Darkness(), image)
    assert np.allclose(raw.background_logit, image, atol=1e-6)
    assert np.allclose(raw.particle_logit, -image, atol=1e-6)
    assert np.allclose(raw.probability, 1 / (1 + np.exp(2 * image)), atol=1e-6)
    stats = raw_output_stats(raw, mask).set_index("channel")
    assert stats.loc["particle logit", "separation"] > 5
    assert stats.loc["background logit", "separation"] < -5
    assert stats.loc["particle logit", "mean_particle"] > stats.loc["particle logit", "mean_background"]


def test_occlusion_and_saliency_are_local_for_a_one_pixel_receptive_field():
    image, mask = disks_image(shape=(48, 48), centers_radii=((16, 16, 6),), noise=0.0)
    image = ((image - image.mean()) / image.std()).astype(np.float32)
    occ = occlusion_map(Darkness(), image, region=mask, patch_px=4, stride_px=4)
    assert occ.shape == image.shape
    far = ndimage.binary_dilation(mask, structure=np.ones((3, 3)), iterations=4)
    assert np.allclose(occ[~far], 0, atol=1e-7)  # hiding pixels the model cannot see changes nothing
    assert occ[mask].mean() > 0.01  # hiding the dark particle lowers its score
    sal = gradient_saliency(Darkness(), image, region=mask)
    assert np.all(sal[~mask] == 0)
    p = 1 / (1 + np.exp(2 * image[mask]))
    assert np.allclose(sal[mask], 2 * p * (1 - p) / mask.sum(), rtol=1e-4)
    smooth = gradient_saliency(Darkness(), image, region=mask, smoothgrad_samples=4)
    assert smooth.shape == image.shape and np.all(smooth[~mask] == 0)
    with pytest.raises(NanosegError, match="patch"):
        occlusion_map(Darkness(), image, patch_px=100)
    with pytest.raises(NanosegError, match="empty"):
        gradient_saliency(Darkness(), image, region=np.zeros_like(mask))


def test_line_profiles_cross_the_largest_particles():
    image, mask = disks_image(shape=(96, 96), centers_radii=((30, 30, 6), (60, 60, 14)), noise=0.0)
    lines = choose_particle_lines(mask, n_particles=2)
    assert [line.area_px for line in lines] == sorted((line.area_px for line in lines), reverse=True)
    probability = mask.astype(np.float32) * 0.9
    table = particle_line_profiles(image, probability, mask=mask, n_particles=1, pixel_size_nm=0.18)
    assert set(table.particle) == {0}
    assert table.truth.iloc[0] == 0 and table.truth.iloc[-1] == 0 and table.truth.max() == 1
    inside = table[table.truth == 1]
    assert (inside.intensity < 0.7).all() and np.allclose(inside.probability, 0.9, atol=0.05)
    assert table.distance_nm.iloc[-1] == pytest.approx(table.distance_px.iloc[-1] * 0.18)
    assert 2 * 14 * 1.5 < table.distance_px.iloc[-1] <= 2 * 14 * 2 + 2
    assert particle_line_profiles(image, np.zeros_like(probability)).empty


def test_prepare_input_resamples_to_the_card_pixel_size_and_runs_its_pipeline():
    from nanoseg.io import Micrograph
    from nanoseg.models import ModelCard

    card = ModelCard(architecture="norm_unet", pixel_size_nm=0.2,
                     preprocessing=[{"name": "standardize"}])
    loaded = SimpleNamespace(module=Darkness(), card=card, path=None)
    image, mask = disks_image(shape=(100, 100), centers_radii=((50, 50, 20),))
    prepared = prepare_input(loaded, Micrograph(image * 50 + 300, pixel_size_nm=0.1), mask)
    assert prepared.image.shape == (50, 50) and prepared.mask.shape == (50, 50)
    assert prepared.pixel_size_nm == pytest.approx(0.2)
    assert abs(prepared.image.mean()) < 1e-4 and prepared.image.std() == pytest.approx(1, abs=1e-3)
    assert abs(int(prepared.mask.sum()) - int(mask.sum()) / 4) < 0.05 * mask.sum() / 4
    assert prepared.steps[-1] == "standardize" and "resampled" in prepared.steps[0]


def test_known_lattice_spacings_become_frequencies_and_unresolved_ones_are_refused():
    from nanoseg.explain.ablation import lattice_frequencies

    assert lattice_frequencies([0.235, 0.204], 0.05) == pytest.approx([0.05 / 0.235, 0.05 / 0.204])
    assert lattice_frequencies([], None) == []
    with pytest.raises(NanosegError, match="not resolved at 0.18 nm/px"):
        lattice_frequencies([0.235], 0.18)  # Au (111) at the in situ pixel size: a 1.3 px period
    with pytest.raises(NanosegError, match="pixel size"):
        lattice_frequencies([0.235], None)
    with pytest.raises(NanosegError, match="positive"):
        lattice_frequencies([-0.2], 0.05)


def _random_unet3(seed: int = 0):
    from nanoseg.models import build_model

    torch.manual_seed(seed)
    net = build_model("unet3")
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("preprocessing,input_px", [
    ([], 0.2 * 1.005),  # no pipeline; a 0.5 % pixel-size mismatch (resampled by predict, not by explain)
    ([{"name": "standardize"}], 0.1),  # standardized, resampled 2×
    (None, None),  # a bare network: no card at all
])
def test_explain_sees_the_network_input_predict_sees(preprocessing, input_px):
    """Issue #16 item 1: one function builds the network input; predict's probability = explain's softmax."""
    from nanoseg.infer import predict
    from nanoseg.io import Micrograph
    from nanoseg.models import LoadedModel, ModelCard

    net = _random_unet3()
    model = net if preprocessing is None else LoadedModel(
        net, ModelCard(architecture="unet3", pixel_size_nm=0.2, preprocessing=preprocessing), path=None)
    image, _ = disks_image(shape=(150, 166), centers_radii=((50, 60, 18), (100, 110, 24)), noise=0.05)
    micrograph = Micrograph(image * 50 + 300, pixel_size_nm=input_px)  # raw counts: standardizing matters
    pred = predict(micrograph, model, pixel_size_nm=None if input_px else 0.2, tile_size=None, engine="eager",
                   device="cpu", ood=False)
    prepared = prepare_input(model, micrograph)
    assert list(prepared.image.shape) == pred.metadata["models"][0]["network_grid_shape"]
    assert prepared.image.shape[0] % 8 and prepared.image.shape[1] % 8  # padded to the size multiple
    raw = raw_output_maps(model, prepared.image)
    explained = prepared.network_input.to_input_grid(raw.probability)
    assert explained.shape == pred.probability.shape
    assert np.abs(explained - pred.probability).max() < 1e-5
