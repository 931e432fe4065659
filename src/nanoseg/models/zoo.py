"""The architectures: the Horwath family, the Sytwu residual U-Net and a configurable modern U-Net.

Every network takes a ``(N, 1, H, W)`` float32 preprocessed image and returns ``(N, 2, H, W)`` logits
(channel 0 background, channel 1 particle), and has an integer ``size_multiple``: H and W must be
multiples of it (``nanoseg.infer`` pads). Each architecture has a config dataclass; the network keeps it
as ``model.config`` and its registry name as ``model.architecture`` so a checkpoint can rebuild it.

The Horwath and Sytwu layer choices were reconstructed from the authors' public scripts so that the
parameter counts match those quoted in the papers' code (see ``docs/models.md``):

==================== ========== ==============================================================
name                 parameters structure
==================== ========== ==============================================================
encoder_decoder      35,848     conv 20×20 → pool → conv 10×10 → pool → conv 3×3 → pool, 3× (conv
                                + upsample), conv 3×3 → 2, conv 1×1; no skips
unet3                16,002     conv 8/16/32 (+ pool each), 3 transposed convs with skips, conv → 2
norm_unet            86,590     4 levels 8/16/32/64, one conv per step, LeakyReLU then BatchNorm
twoconv_unet         221,146    norm_unet without BN + a second 3×3 conv per decoder step
twoconv_norm_unet    222,046    the same with BatchNorm
dilated_unet         86,138     norm_unet without BN, encoder dilations 6, 3, 2, 1
sytwu_resunet        130,682    residual blocks 4/8/16/32 + 64 bottleneck, nearest upsampling
modern_unet          (config)   residual blocks, BatchNorm or none, transposed-conv upsampling
==================== ========== ==============================================================

Example
-------
>>> import torch
>>> net = build_model("sytwu_resunet")
>>> net(torch.zeros(1, 1, 32, 32)).shape, net.size_multiple, count_parameters(net)
(torch.Size([1, 2, 32, 32]), 16, 130682)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nanoseg.errors import NanosegError


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (BatchNorm running statistics are buffers, not counted).

    >>> count_parameters(nn.Conv2d(1, 8, 3))
    80
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------------------------- configs
@dataclass
class EncoderDecoderConfig:
    """Horwath's first network: large kernels, three pools, three upsamplings, no skip connections."""

    widths: tuple[int, ...] = (8, 16, 32)
    first_kernel: int = 20
    second_kernel: int = 10


@dataclass
class UNet3Config:
    """Horwath's 3-level U-Net (ReLU, transposed-conv decoder with skips).

    ``final_activation=True`` keeps the author's ReLU on the output logits (as in their code).
    """

    widths: tuple[int, int, int] = (8, 16, 32)
    decoder_widths: tuple[int, int] = (16, 8)
    up_width: int = 8
    final_activation: bool = True


@dataclass
class HorwathUNetConfig:
    """Horwath's 4-level U-Net family ("Norm", "TwoConv", "TwoConv_Norm", dilated).

    Each step is conv → LeakyReLU (→ BatchNorm when ``batchnorm``). The encoder has one 3×3 conv per
    level with ``dilations``; the decoder uses stride-2 transposed convs to ``decoder_widths`` and,
    with ``two_conv``, a second 3×3 conv after each concatenation and after the head conv.
    ``final_activation`` keeps the authors' LeakyReLU (and BN) on the output logits.
    """

    widths: tuple[int, int, int, int] = (8, 16, 32, 64)
    decoder_widths: tuple[int, int, int, int] = (32, 32, 16, 16)
    head_width: int = 8
    batchnorm: bool = True
    two_conv: bool = False
    dilations: tuple[int, int, int, int] = (1, 1, 1, 1)
    negative_slope: float = 0.01
    final_activation: bool = True


@dataclass
class SytwuResUNetConfig:
    """Sytwu et al.'s residual U-Net: ``depth`` levels of residual blocks (conv-BN-ReLU-conv-BN + 1×1
    skip, ReLU), max-pool, a bottleneck block, nearest upsampling, concatenation, residual blocks, 1×1 head.

    ``filters`` has ``depth + 1`` entries (the last is the bottleneck); ``kernel_sizes`` and
    ``dilations`` have ``depth + 1`` entries too (per level, the bottleneck last).
    """

    depth: int = 4
    filters: tuple[int, ...] = (4, 8, 16, 32, 64)
    kernel_sizes: tuple[int, ...] | None = None
    dilations: tuple[int, ...] | None = None
    norm: str = "batch"  # "batch" (the paper) | "instance" | "group" | "none"; see norm_layer

    def __post_init__(self) -> None:
        n = self.depth + 1
        if self.kernel_sizes is None:
            self.kernel_sizes = (3,) * n
        if self.dilations is None:
            self.dilations = (1,) * n


@dataclass
class ModernUNetConfig:
    """A configurable U-Net for going beyond the papers: width doubling per level, residual blocks,
    BatchNorm or no normalisation, transposed-conv (2×2) upsampling."""

    depth: int = 4
    width: int = 8
    norm: str = "batch"  # "batch" | "instance" | "group" | "none"; see norm_layer
    residual: bool = True
    convs_per_block: int = 2
    kernel_size: int = 3
    dropout: float = 0.0


# --------------------------------------------------------------------------------------------- networks
NORMS = ("batch", "instance", "group", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation after a convolution: ``"batch"`` (BatchNorm, running statistics at inference),
    ``"instance"`` (InstanceNorm with affine weights: every image and channel normalised on its own, so
    image-to-image contrast changes cancel; statistics come from the tile being processed, so tiled inference is
    no longer exactly equal to one whole-image pass), ``"group"`` (GroupNorm with up to 4 groups, same caveat)
    or ``"none"``.

    >>> type(norm_layer("instance", 8)).__name__, type(norm_layer("group", 8)).__name__
    ('InstanceNorm2d', 'GroupNorm')
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(4, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise NanosegError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


def _check_positive(name: str, values) -> None:
    for v in values:
        if int(v) < 1:
            raise NanosegError(f"model config: {name} must be positive integers, got {tuple(values)}")


class EncoderDecoder(nn.Module):
    """Horwath's encoder–decoder (35,848 parameters with the defaults)."""

    architecture = "encoder_decoder"

    def __init__(self, config: EncoderDecoderConfig):
        super().__init__()
        self.config = config
        w = config.widths
        if len(w) != 3:
            raise NanosegError("encoder_decoder: widths must have 3 entries")
        _check_positive("widths", w)
        k1, k2 = config.first_kernel, config.second_kernel
        self.conv1 = nn.Conv2d(1, w[0], k1, padding=k1 // 2)
        self.conv2 = nn.Conv2d(w[0], w[1], k2, padding=k2 // 2)
        self.conv3 = nn.Conv2d(w[1], w[2], 3, padding=1)
        self.conv4 = nn.Conv2d(w[2], w[2], 3, padding=1)
        self.conv5 = nn.Conv2d(w[2], w[1], 3, padding=1)
        self.conv6 = nn.Conv2d(w[1], w[0], 3, padding=1)
        self.conv7 = nn.Conv2d(w[0], 2, 3, padding=1)
        self.conv8 = nn.Conv2d(2, 2, 1)
        self.pool = nn.MaxPool2d(2, 2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.size_multiple = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))
        x = F.relu(self.pool(self.conv3(x)))
        x = F.relu(self.upsample(self.conv4(x)))
        x = F.relu(self.upsample(self.conv5(x)))
        x = F.relu(self.upsample(self.conv6(x)))
        return self.conv8(self.conv7(x))


class UNet3(nn.Module):
    """Horwath's 3-level U-Net (16,002 parameters with the defaults)."""

    architecture = "unet3"

    def __init__(self, config: UNet3Config):
        super().__init__()
        self.config = config
        w, d = config.widths, config.decoder_widths
        _check_positive("widths", (*w, *d, config.up_width))
        self.conv1 = nn.Conv2d(1, w[0], 3, padding=1)
        self.conv2 = nn.Conv2d(w[0], w[1], 3, padding=1)
        self.conv3 = nn.Conv2d(w[1], w[2], 3, padding=1)
        self.up1 = nn.ConvTranspose2d(w[2], d[0], 3, stride=2, padding=1, output_padding=1)
        self.up2 = nn.ConvTranspose2d(d[0] + w[2], d[1], 3, stride=2, padding=1, output_padding=1)
        self.up3 = nn.ConvTranspose2d(d[1] + w[1], config.up_width, 3, stride=2, padding=1, output_padding=1)
        self.head = nn.Conv2d(config.up_width + w[0], 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.size_multiple = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = F.relu(self.conv1(x))
        c2 = F.relu(self.conv2(self.pool(c1)))
        c3 = F.relu(self.conv3(self.pool(c2)))
        u = F.relu(self.up1(self.pool(c3)))
        u = F.relu(self.up2(torch.cat((u, c3), dim=1)))
        u = F.relu(self.up3(torch.cat((u, c2), dim=1)))
        out = self.head(torch.cat((u, c1), dim=1))
        return F.relu(out) if self.config.final_activation else out


class _ConvAct(nn.Module):
    """conv → LeakyReLU (→ BatchNorm), the step of Horwath's U-Nets (BN after the activation, as in the code)."""

    def __init__(self, conv: nn.Module, channels: int, batchnorm: bool, slope: float, act: bool = True):
        super().__init__()
        self.conv = conv
        self.act = nn.LeakyReLU(slope) if act else nn.Identity()
        self.bn = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.act(self.conv(x)))


class HorwathUNet(nn.Module):
    """Horwath's 4-level U-Net family; see :class:`HorwathUNetConfig`."""

    architecture = "norm_unet"

    def __init__(self, config: HorwathUNetConfig, architecture: str = "norm_unet"):
        super().__init__()
        self.config = config
        self.architecture = architecture
        w, d, dil = config.widths, config.decoder_widths, config.dilations
        if not (len(w) == len(d) == len(dil) == 4):
            raise NanosegError("Horwath U-Net: widths, decoder_widths and dilations need 4 entries each")
        _check_positive("widths", (*w, *d, *dil, config.head_width))
        bn, s = config.batchnorm, config.negative_slope
        self.encoder = nn.ModuleList()
        cin = 1
        for width, dl in zip(w, dil, strict=True):
            self.encoder.append(_ConvAct(nn.Conv2d(cin, width, 3, dilation=dl, padding=dl), width, bn, s))
            cin = width
        self.ups = nn.ModuleList()
        self.refine = nn.ModuleList()
        skips = list(reversed(w))  # 64, 32, 16, 8
        for dw, skip in zip(d, skips, strict=True):
            up = nn.ConvTranspose2d(cin, dw, 3, stride=2, padding=1, output_padding=1)
            self.ups.append(_ConvAct(up, dw, bn, s))
            cin = dw + skip
            if config.two_conv:
                self.refine.append(_ConvAct(nn.Conv2d(cin, cin, 3, padding=1), cin, bn, s))
        hw = config.head_width
        self.head = _ConvAct(nn.Conv2d(cin, hw, 3, padding=1), hw, bn, s)
        self.head2 = _ConvAct(nn.Conv2d(hw, hw, 3, padding=1), hw, bn, s) if config.two_conv else None
        fa = config.final_activation
        self.out = _ConvAct(nn.Conv2d(hw, 2, 1), 2, bn and fa, s, act=fa)
        self.pool = nn.MaxPool2d(2, 2)
        self.size_multiple = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        for i, up in enumerate(self.ups):
            x = torch.cat((up(x), skips[-1 - i]), dim=1)
            if self.config.two_conv:
                x = self.refine[i](x)
        x = self.head(x)
        if self.head2 is not None:
            x = self.head2(x)
        return self.out(x)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a 1×1 projection of the input, then ReLU (Sytwu et al.)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, dilation: int = 1, norm: str = "batch"):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv1 = nn.Conv2d(cin, cout, kernel_size, padding=pad, dilation=dilation)
        self.bn1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size, padding=pad, dilation=dilation)
        self.bn2 = norm_layer(norm, cout)
        self.skip = nn.Conv2d(cin, cout, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.skip(x))


class SytwuResUNet(nn.Module):
    """Sytwu et al.'s residual U-Net (130,682 parameters with the defaults)."""

    architecture = "sytwu_resunet"

    def __init__(self, config: SytwuResUNetConfig):
        super().__init__()
        self.config = config
        n = config.depth
        f, ks, dl = tuple(config.filters), tuple(config.kernel_sizes), tuple(config.dilations)
        if n < 1 or len(f) != n + 1 or len(ks) != n + 1 or len(dl) != n + 1:
            raise NanosegError(f"sytwu_resunet: depth {n} needs {n + 1} filters, kernel_sizes and dilations",
                               hint="e.g. depth: 4, filters: [4, 8, 16, 32, 64]")
        _check_positive("filters/kernel_sizes/dilations", (*f, *ks, *dl))
        if any(k % 2 == 0 for k in ks):
            raise NanosegError(f"sytwu_resunet: kernel sizes must be odd, got {ks}")
        self.downs = nn.ModuleList()
        cin = 1
        for i in range(n):
            self.downs.append(ResidualBlock(cin, f[i], ks[i], dl[i], config.norm))
            cin = f[i]
        self.bottleneck = ResidualBlock(f[n - 1], f[n], ks[n], dl[n], config.norm)
        self.ups = nn.ModuleList(ResidualBlock(f[i] + f[i + 1], f[i], ks[i], dl[i], config.norm)
                                 for i in reversed(range(n)))
        self.pool = nn.MaxPool2d(2, 2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.final_conv = nn.Conv2d(f[0], 2, 1)
        self.size_multiple = 2**n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.downs:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for i, block in enumerate(self.ups):
            x = block(torch.cat((skips[-1 - i], self.upsample(x)), dim=1))
        return self.final_conv(x)


class _ModernBlock(nn.Module):
    def __init__(self, cin: int, cout: int, config: ModernUNetConfig):
        super().__init__()
        layers: list[nn.Module] = []
        k = config.kernel_size
        c = cin
        for i in range(config.convs_per_block):
            layers.append(nn.Conv2d(c, cout, k, padding=k // 2, bias=config.norm == "none"))
            layers.append(norm_layer(config.norm, cout))
            if i < config.convs_per_block - 1 or not config.residual:
                layers.append(nn.ReLU(inplace=False))
            c = cout
        if config.dropout > 0:
            layers.append(nn.Dropout2d(config.dropout))
        self.body = nn.Sequential(*layers)
        self.residual = config.residual
        self.project = (nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()) if config.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.project is not None:
            out = F.relu(out + self.project(x))
        return out


class ModernUNet(nn.Module):
    """A configurable residual U-Net; see :class:`ModernUNetConfig`."""

    architecture = "modern_unet"

    def __init__(self, config: ModernUNetConfig):
        super().__init__()
        self.config = config
        if config.norm not in NORMS:
            raise NanosegError(f"modern_unet: norm must be one of {', '.join(NORMS)}, got {config.norm!r}")
        if config.depth < 1 or config.width < 1 or config.convs_per_block < 1 or config.kernel_size % 2 == 0:
            raise NanosegError("modern_unet: depth, width, convs_per_block ≥ 1 and an odd kernel_size needed")
        widths = [config.width * 2**i for i in range(config.depth + 1)]
        self.downs = nn.ModuleList()
        cin = 1
        for w in widths[:-1]:
            self.downs.append(_ModernBlock(cin, w, config))
            cin = w
        self.bottleneck = _ModernBlock(cin, widths[-1], config)
        self.upconvs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in reversed(range(config.depth)):
            self.upconvs.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            self.ups.append(_ModernBlock(2 * widths[i], widths[i], config))
        self.head = nn.Conv2d(widths[0], 2, 1)
        self.pool = nn.MaxPool2d(2, 2)
        self.size_multiple = 2**config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.downs:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for i, (upconv, block) in enumerate(zip(self.upconvs, self.ups, strict=True)):
            x = block(torch.cat((skips[-1 - i], upconv(x)), dim=1))
        return self.head(x)


# --------------------------------------------------------------------------------------------- registry
@dataclass
class _Entry:
    config_class: type
    factory: Callable[[Any], nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, _Entry] = {
    "encoder_decoder": _Entry(EncoderDecoderConfig, EncoderDecoder,
                              description="Horwath encoder–decoder, 20×20/10×10 kernels, no skips"),
    "unet3": _Entry(UNet3Config, UNet3, description="Horwath 3-level U-Net 8/16/32"),
    "norm_unet": _Entry(HorwathUNetConfig, lambda c: HorwathUNet(c, "norm_unet"),
                        description="Horwath 'Norm': 4-level U-Net, one conv per step, LeakyReLU + BatchNorm"),
    "twoconv_unet": _Entry(HorwathUNetConfig, lambda c: HorwathUNet(c, "twoconv_unet"),
                           {"batchnorm": False, "two_conv": True},
                           "Horwath 'TwoConv': two convs per decoder step, no BatchNorm"),
    "twoconv_norm_unet": _Entry(HorwathUNetConfig, lambda c: HorwathUNet(c, "twoconv_norm_unet"),
                                {"batchnorm": True, "two_conv": True},
                                "Horwath 'TwoConv_Norm': two convs per decoder step, BatchNorm"),
    "dilated_unet": _Entry(HorwathUNetConfig, lambda c: HorwathUNet(c, "dilated_unet"),
                           {"batchnorm": False, "dilations": (6, 3, 2, 1)},
                           "Horwath dilated U-Net: encoder dilations 6, 3, 2, 1, no BatchNorm"),
    "sytwu_resunet": _Entry(SytwuResUNetConfig, SytwuResUNet,
                            description="Sytwu et al. residual U-Net 4/8/16/32 + 64"),
    "modern_unet": _Entry(ModernUNetConfig, ModernUNet,
                          description="configurable residual U-Net (depth, width, norm, residual)"),
}


def list_models() -> list[str]:
    """Registered architecture names.

    >>> "norm_unet" in list_models()
    True
    """
    return list(_REGISTRY)


def describe_models() -> dict[str, str]:
    """One-line description per registered architecture."""
    return {name: entry.description for name, entry in _REGISTRY.items()}


def _plain_config(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_plain_config(v) for v in value)
    return value


def model_config(name: str, **config: Any) -> Any:
    """The config dataclass for ``name`` with the registry defaults and ``config`` overrides applied."""
    if name not in _REGISTRY:
        raise NanosegError(f"unknown model {name!r}", hint=f"choose one of: {', '.join(_REGISTRY)}")
    entry = _REGISTRY[name]
    known = {f.name for f in dataclasses.fields(entry.config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise NanosegError(f"model {name!r} has no option(s) {', '.join(unknown)}",
                           hint=f"options are: {', '.join(sorted(known))}")
    values = {**entry.defaults, **{k: _plain_config(v) for k, v in config.items()}}
    try:
        return entry.config_class(**values)
    except (TypeError, ValueError) as exc:
        raise NanosegError(f"invalid config for model {name!r}: {exc}") from exc


def build_model(name: str, **config: Any) -> nn.Module:
    """Build a registered architecture; keyword arguments override its config dataclass fields.

    >>> build_model("norm_unet").config.batchnorm
    True
    >>> build_model("twoconv_unet", widths=[4, 8, 16, 32]).config.widths
    (4, 8, 16, 32)
    """
    cfg = model_config(name, **config)
    model = _REGISTRY[name].factory(cfg)
    model.architecture = name
    return model


def config_dict(model: nn.Module) -> dict[str, Any]:
    """The JSON-able config of a built model (what goes into the model card)."""
    cfg = getattr(model, "config", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        raise NanosegError("this network was not built by nanoseg.models.build_model (it has no config)")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
