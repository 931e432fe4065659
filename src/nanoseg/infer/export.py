"""Export a trained network to ONNX or TorchScript with its model card inside, and load such a file back.

An exported file is one self-contained network that runs without nanoseg's architecture code (ONNX Runtime,
``torch.jit.load``, or any other ONNX consumer), and that ``nanoseg predict --model FILE`` runs with the same
preprocessing as the checkpoint it came from, because the card travels inside it:

``ONNX`` (``.onnx``)
    The graph of :func:`nanoseg.infer.engine.onnx_export` (opset 17, input ``x`` of shape ``(N, 1, H, W)``,
    output ``logits`` ``(N, 2, H, W)``, dynamic N, H, W); the card JSON is the model's ``metadata_props``
    entry ``"nanoseg_card"``. Needs ``nanoseg[fast]`` (onnx, onnxruntime).
``TorchScript`` (``.pt``)
    ``torch.jit.trace`` of the eval-mode network (every shipped architecture is a plain convolutional graph,
    so one trace serves every input size; checked on a second size); the card is the extra file
    ``nanoseg_card.json`` (``torch.jit.load(path, _extra_files={"nanoseg_card.json": ""})``).

The card is the checkpoint's (pixel size, preprocessing pipeline, training ranges, ...) plus an ``export``
entry: the format, ``input_multiple_px`` (H and W must be multiples of it; predict pads), ``context_px``
(the network's exact reach, for tiling), and the check made at export: the exported network and PyTorch
were run on one random standard-normal input of ``check_input_shape`` and the largest particle-probability
difference ``max_abs_dprob`` (must be ≤ :data:`EXPORT_TOLERANCE`, else the export is refused).

Example
-------
>>> import tempfile
>>> result = export_model("default", tempfile.mkdtemp() + "/m.pt")
>>> result.format, result.max_abs_dprob <= EXPORT_TOLERANCE, load_exported(result.path).card.pixel_size_nm
('torchscript', True, 0.04)
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nanoseg.errors import NanosegError
from nanoseg.models.card import ModelCard

FORMATS = ("onnx", "torchscript")
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".torchscript": "torchscript"}
ONNX_CARD_KEY = "nanoseg_card"  # metadata_props key of the card JSON in an .onnx file
TORCHSCRIPT_CARD_FILE = "nanoseg_card.json"  # _extra_files name of the card JSON in a TorchScript file
EXPORT_TOLERANCE = 1e-4  # largest accepted |Δ particle probability| between the export and PyTorch
CHECK_SIDE_PX = (80, 112)  # the export check's input, rounded up to the input multiple (differs from the trace's 64²)


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and how closely it matches PyTorch.

    ``max_abs_dprob``: max |p_export − p_torch| of the particle probability softmax(logits)[1] over one random
    standard-normal input of ``check_input_shape`` (N, 1, H, W), float32 on this machine's CPU.
    """

    path: Path
    format: str
    max_abs_dprob: float
    check_input_shape: tuple[int, int, int, int]
    card: ModelCard

    def summary(self) -> str:
        shape = "×".join(str(s) for s in self.check_input_shape)
        return (f"wrote {self.path} ({self.format}); max |Δp| vs PyTorch = {self.max_abs_dprob:.2e} on a random "
                f"{shape} input (float32, CPU; limit {EXPORT_TOLERANCE:g})")


def export_format(out: str | os.PathLike, fmt: str | None = None) -> str:
    """The export format: ``fmt`` when given (checked), else from the suffix of ``out``."""
    if fmt is not None:
        name = fmt.strip().lower()
        if name not in FORMATS:
            raise NanosegError(f"unknown export format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}")
        return name
    suffix = Path(out).suffix.lower()
    if suffix not in SUFFIXES:
        raise NanosegError("cannot tell the export format from the file name", path=out,
                           hint="give fmt=onnx|torchscript, or name the file .onnx or .pt")
    return SUFFIXES[suffix]


def _probability(logits: np.ndarray) -> np.ndarray:
    """softmax(logits)[1] per pixel of (N, 2, H, W) logits, float64."""
    diff = np.asarray(logits[:, 1], np.float64) - np.asarray(logits[:, 0], np.float64)
    return 1.0 / (1.0 + np.exp(-np.clip(diff, -80, 80)))


def check_input_shape(multiple: int) -> tuple[int, int, int, int]:
    """(1, 1, H, W) for the export check: :data:`CHECK_SIDE_PX` rounded up to the input multiple."""
    h, w = (int(multiple) * max(1, -(-side // int(multiple))) for side in CHECK_SIDE_PX)
    return 1, 1, h, w


def _network_graph(name: str, module: nn.Module):
    """The exported graph, built once: an ``onnx.ModelProto`` (the inference engine's exporter) or a traced
    ``torch.jit.ScriptModule``."""
    if name == "onnx":
        import onnx

        from nanoseg.infer.engine import onnx_export

        return onnx.load_from_string(onnx_export(module))
    multiple = int(getattr(module, "size_multiple", 1))
    side = multiple * max(1, -(-64 // multiple))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(module.eval(), torch.zeros(1, 1, side, side), check_trace=False)


def _file_bytes(name: str, graph, card_json: str) -> bytes:
    """The file's bytes: ``graph`` with the card JSON as ONNX ``metadata_props`` or a TorchScript extra file."""
    if name == "onnx":
        del graph.metadata_props[:]
        entry = graph.metadata_props.add()
        entry.key, entry.value = ONNX_CARD_KEY, card_json
        return graph.SerializeToString()
    buffer = io.BytesIO()
    torch.jit.save(graph, buffer, _extra_files={TORCHSCRIPT_CARD_FILE: card_json})
    return buffer.getvalue()


def _resolve_loaded(model):
    """A ``LoadedModel`` from a checkpoint path, ``"default"``/None, or a ``LoadedModel``."""
    from nanoseg.models.checkpoint import LoadedModel, load_default_model, load_model

    if isinstance(model, LoadedModel):
        return model
    if model is None or (isinstance(model, str) and model == "default"):
        return load_default_model()
    if isinstance(model, (str, os.PathLike)):
        if Path(model).suffix.lower() in SUFFIXES and Path(model).is_file():
            raise NanosegError("this is already an exported network", path=model,
                               hint="export from the checkpoint (a folder with card.json, or a .nanoseg file)")
        return load_model(model)
    raise NanosegError(f"cannot export {type(model).__name__}",
                       hint="give a checkpoint path, 'default', or a nanoseg.models.LoadedModel")


def export_model(model, out: str | os.PathLike, *, fmt: str | None = None,
                 tolerance: float = EXPORT_TOLERANCE) -> ExportResult:
    """Write ``model`` (a checkpoint path, ``"default"``, or a ``LoadedModel``) to ``out`` as ONNX or TorchScript.

    ``fmt``: ``"onnx"`` or ``"torchscript"`` (default: from the suffix, ``.onnx`` / ``.pt``). The exported file is
    run and compared with PyTorch on a random input (see :class:`ExportResult`); a difference above
    ``tolerance`` is refused with a :class:`NanosegError` and nothing is written.
    """
    from nanoseg.infer.engine import onnx_available
    from nanoseg.infer.tiling import context_px
    from nanoseg.models.checkpoint import complete_card

    name = export_format(out, fmt)
    out = Path(out)
    if out.is_dir():
        raise NanosegError("the export path is a folder", path=out, hint="give a file name, e.g. out=model.onnx")
    if name == "onnx" and not onnx_available():
        raise NanosegError("ONNX export needs the onnx and onnxruntime packages",
                           hint="pip install 'nanoseg[fast]', or export with fmt=torchscript")
    _write_bytes(out, None)  # an unwritable place fails before the export work
    loaded = _resolve_loaded(model)
    module = loaded.module.to("cpu").eval()
    multiple = int(getattr(module, "size_multiple", 1))
    card = complete_card(module, loaded.card)
    shape = check_input_shape(multiple)
    export_info = {"format": name, "input_multiple_px": multiple,
                   "context_px": context_px(module, receptive_field_px=card.receptive_field_px),
                   "source": str(loaded.path), "torch": torch.__version__, "tolerance": tolerance,
                   "check_input_shape": list(shape)}
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    graph = _network_graph(name, module)
    got = _exported_forward(name, _file_bytes(name, graph, card.model_copy(update={"export": export_info})
                                              .model_dump_json()))(x)
    if got.shape != want.shape:
        raise NanosegError(f"the exported network returns shape {got.shape}, PyTorch {want.shape}", path=out)
    err = float(np.max(np.abs(_probability(got) - _probability(want))))
    if not np.isfinite(err) or err > tolerance:
        raise NanosegError(f"the exported {name} network differs from PyTorch by max |Δp| = {err:.2e} > {tolerance:g} "
                           f"on a random {shape} input; nothing written", path=out,
                           hint="try the other format (fmt=onnx|torchscript); report this network's architecture as a bug")
    final = card.model_copy(update={"export": {**export_info, "max_abs_dprob": err}})
    data = _file_bytes(name, graph, final.model_dump_json())  # the same graph, only the card gains the check
    _write_bytes(out, data)
    return ExportResult(path=out, format=name, max_abs_dprob=err, check_input_shape=shape, card=final)


def _write_bytes(out: Path, data: bytes | None) -> None:
    """Write ``data`` to ``out`` atomically (``None``: only prove a file can be written next to it); an OS
    failure (no folder permission, read-only disk, a file in the way) is one :class:`NanosegError`."""
    from nanoseg._util import atomic_path, probe_writable

    try:
        probe_writable(out.parent)
        if data is None:
            return
        with atomic_path(out) as tmp:
            Path(tmp).write_bytes(data)
    except OSError as exc:
        raise NanosegError(f"cannot write {out}: {exc.strerror or exc}", hint="choose another out=FILE") from None


def _exported_forward(name: str, data: bytes):
    """``(N, 1, H, W) float32 → (N, 2, H, W) float32`` through ONNX Runtime or ``torch.jit`` of the file bytes."""
    if name == "onnx":
        from nanoseg.infer.engine import onnx_forward

        forward = onnx_forward(data, "all")
    else:
        forward = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return forward(torch.from_numpy(np.ascontiguousarray(x, np.float32))).float().numpy()

    return run


# ------------------------------------------------------------------------------------------ loading
class ExportedNetwork(nn.Module):
    """An exported file as a network for :func:`nanoseg.infer.predict`: ``(N, 1, H, W) → (N, 2, H, W)`` logits.

    ``exported_format`` tells :func:`nanoseg.infer.engine.make_runner` to run it as it is (the file is the
    optimized graph); ``size_multiple`` and ``context_px`` come from the card's ``export`` entry.
    """

    def __init__(self, forward, *, exported_format: str, size_multiple: int, context_px: int | None,
                 architecture: str):
        super().__init__()
        if isinstance(forward, nn.Module):
            self.script = forward  # the TorchScript module: a submodule, so .to(device) moves it
        else:
            self.script, self._onnx_run = None, forward
        self.exported_format = exported_format
        self.size_multiple = int(size_multiple)
        self.context_px = None if context_px is None else int(context_px)
        self.architecture = architecture

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script(x) if self.script is not None else self._onnx_run(x)


def _card_of(text: str | bytes | None, path: Path, where: str) -> ModelCard:
    from nanoseg.models.checkpoint import read_card

    if not text:
        raise NanosegError(f"this {where} file has no nanoseg model card, so its preprocessing and pixel size "
                           "are unknown", path=path, hint="export it with `nanoseg export MODEL --out FILE`")
    card = read_card(text, path=path)
    if not isinstance(card.model_extra.get("export"), dict):
        raise NanosegError("the model card has no 'export' entry", path=path,
                           hint="export it again with `nanoseg export MODEL --out FILE`")
    return card


def _load_onnx(path: Path):
    from nanoseg.infer.engine import onnx_available, onnx_forward

    if not onnx_available():
        raise NanosegError("running an .onnx model needs onnx and onnxruntime", path=path,
                           hint="pip install 'nanoseg[fast]'")
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
        data = path.read_bytes()
        forward = onnx_forward(data, "all")
    except Exception as exc:  # onnx and onnxruntime raise many types for damaged files
        raise NanosegError(f"cannot read this ONNX file ({type(exc).__name__}: {str(exc)[:200]})", path=path,
                           hint="the file is damaged or not ONNX; export it again") from None
    text = next((p.value for p in proto.metadata_props if p.key == ONNX_CARD_KEY), None)
    return _card_of(text, path, "ONNX"), forward


def _load_torchscript(path: Path):
    extra = {TORCHSCRIPT_CARD_FILE: ""}
    if not zipfile.is_zipfile(path):
        raise NanosegError("not a TorchScript file", path=path,
                           hint="give a file written by `nanoseg export --format torchscript`")
    try:
        script = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
    except Exception as exc:  # torch raises RuntimeError and others for pickles and damaged archives
        raise NanosegError(f"cannot load this TorchScript file ({type(exc).__name__}: {str(exc)[:200]})", path=path,
                           hint="a .pt model must be written by `nanoseg export --format torchscript`, "
                                "not a state dict") from None
    return _card_of(extra[TORCHSCRIPT_CARD_FILE], path, "TorchScript"), script


def is_exported(path: str | os.PathLike) -> bool:
    """True for a file whose suffix is an export format's (``.onnx``, ``.pt``, ``.torchscript``)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in SUFFIXES


def load_exported(path: str | os.PathLike):
    """A ``LoadedModel`` (card from the file, module an :class:`ExportedNetwork`) of an exported file."""
    from nanoseg.models.checkpoint import LoadedModel

    path = Path(path)
    if not path.is_file():
        raise NanosegError("exported model not found", path=path)
    name = SUFFIXES.get(path.suffix.lower())
    if name is None:
        raise NanosegError("not an exported model file", path=path, hint="expected a .onnx or .pt file")
    card, forward = _load_onnx(path) if name == "onnx" else _load_torchscript(path)
    info = card.model_extra["export"]
    try:
        multiple = int(info.get("input_multiple_px", 1))
        context = info.get("context_px")
        context = None if context is None else int(context)
    except (TypeError, ValueError):
        raise NanosegError("the card's export entry is damaged (input_multiple_px, context_px)", path=path) from None
    module = ExportedNetwork(forward, exported_format=name, size_multiple=multiple, context_px=context,
                             architecture=card.architecture)
    return LoadedModel(module=module.eval(), card=card, path=path)

