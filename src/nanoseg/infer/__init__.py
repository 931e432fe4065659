"""Inference on frames of any size: tiling with exact blending, resampling to the model's pixel size,
ensembles and test-time augmentation with uncertainty, out-of-distribution warnings, fast engines (batches of
files: :mod:`nanoseg.workflows.predict`).

Example
-------
>>> import numpy as np
>>> from nanoseg.models import build_model
>>> pred = predict(np.zeros((48, 48), np.float32), build_model("unet3"), pixel_size_nm=0.2, engine="fused")
>>> pred.mask.shape
(48, 48)
"""

from nanoseg._lazy import lazy_attributes
from nanoseg.infer.engine import ENGINES
from nanoseg.infer.network_input import NetworkInput, network_input
from nanoseg.infer.ood import check_distribution
from nanoseg.infer.predict import DEFAULT_TILE_PX, Prediction, predict, predict_many, resolve_models

__all__ = [
    "DEFAULT_TILE_PX", "ENGINES", "NetworkInput", "Prediction", "check_distribution", "network_input", "predict",
    "predict_many", "resolve_models",
]
# batches of files (predict_files, write_prediction, resuming a folder) are the workflow nanoseg.workflows.predict

# internals (tiling, engines, raw network calls): importable from here for old code, documented in their
# modules, not in __all__
__getattr__, __dir__ = lazy_attributes(__name__, {
    "Runner": "nanoseg.infer.engine", "fold_batchnorm": "nanoseg.infer.engine", "make_runner": "nanoseg.infer.engine",
    "onnx_available": "nanoseg.infer.engine", "resolve_device": "nanoseg.infer.engine",
    "image_statistics": "nanoseg.infer.ood", "GPU_TILE_PX": "nanoseg.infer.predict",
    "forward_logits": "nanoseg.infer.predict", "get_runner": "nanoseg.infer.predict",
    "probability_from_logits": "nanoseg.infer.predict", "axis_weights": "nanoseg.infer.tiling",
    "context_px": "nanoseg.infer.tiling", "pad_to_multiple": "nanoseg.infer.tiling",
    "tile_layout": "nanoseg.infer.tiling", "tile_starts": "nanoseg.infer.tiling", "tiled_apply": "nanoseg.infer.tiling",
}, submodules=["engine", "fingerprint", "network_input", "ood", "predict", "tiling"])
