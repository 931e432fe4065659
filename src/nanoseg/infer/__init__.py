"""Inference on frames of any size: tiling with exact blending, resampling to the model's pixel size,
ensembles and test-time augmentation with uncertainty, out-of-distribution warnings, fast engines, batches.

Example
-------
>>> import numpy as np
>>> from nanoseg.models import build_model
>>> pred = predict(np.zeros((48, 48), np.float32), build_model("unet3"), pixel_size_nm=0.2, engine="fused")
>>> pred.mask.shape
(48, 48)
"""

from nanoseg.infer.batch import BatchResult, output_paths, predict_file, predict_files, write_prediction
from nanoseg.infer.engine import ENGINES, Runner, fold_batchnorm, make_runner, onnx_available, resolve_device
from nanoseg.infer.network_input import NetworkInput, network_input
from nanoseg.infer.ood import check_distribution, image_statistics
from nanoseg.infer.predict import (
    DEFAULT_TILE_PX,
    GPU_TILE_PX,
    Prediction,
    forward_logits,
    get_runner,
    predict,
    predict_many,
    probability_from_logits,
    resolve_models,
)
from nanoseg.infer.tiling import (
    axis_weights,
    context_px,
    pad_to_multiple,
    tile_layout,
    tile_starts,
    tiled_apply,
)

__all__ = [
    "BatchResult", "DEFAULT_TILE_PX", "ENGINES", "GPU_TILE_PX", "NetworkInput", "Prediction", "Runner", "axis_weights",
    "check_distribution", "context_px", "fold_batchnorm", "forward_logits", "get_runner", "image_statistics",
    "make_runner", "network_input", "onnx_available", "output_paths", "pad_to_multiple", "predict", "predict_file",
    "predict_files", "predict_many", "probability_from_logits", "resolve_device", "resolve_models", "tile_layout",
    "tile_starts", "tiled_apply", "write_prediction",
]
