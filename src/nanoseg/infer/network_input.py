"""The one place where a raw micrograph becomes what a network sees (``predict`` and ``explain`` both use it).

:func:`network_input` does, for one model card, what training did to its images
(:func:`nanoseg.datasets.patches.prepare_image`):

1. **Pixel size.** An explicit ``pixel_size_nm`` overrides the micrograph's. Without one, a calibrated
   model (card ``pixel_size_nm``) needs a decision: ``assume_model_pixel_size=True`` takes the model's (and
   says so in ``notes``), otherwise a :class:`~nanoseg.errors.NanosegError` names the file and the fix.
2. **Resampling** to the card's pixel size (band-limited Fourier, :func:`nanoseg.preprocess.resample_micrograph`)
   whenever the two pixel sizes differ (relative tolerance 1e-6, as in training); when the rounded shape does
   not change the pixels stay as they are. A pipeline with its own ``resample`` step does the resampling itself.
3. The card's **preprocessing pipeline**, exactly as recorded: an empty pipeline (or no card: a bare
   ``nn.Module``) means the pixels are used as they are (float32), never an implicit standardization.
4. **Padding** (reflect, bottom/right) to a multiple of the network's ``size_multiple``:
   :func:`nanoseg.infer.tiling.pad_to_multiple` for arrays, :func:`~nanoseg.infer.tiling.pad_tensor_to_multiple`
   (same values, differentiable) for tensors. Outputs are cropped back to the unpadded grid.

:meth:`NetworkInput.to_input_grid` undoes step 2 for output maps (bilinear, pixel-centre aligned).

Example
-------
>>> import numpy as np
>>> from nanoseg.io import Micrograph
>>> from nanoseg.models import ModelCard
>>> card = ModelCard(architecture="unet3", pixel_size_nm=0.2, preprocessing=[{"name": "standardize"}])
>>> net_in = network_input(Micrograph(np.random.default_rng(0).random((50, 60)), pixel_size_nm=0.1), card)
>>> net_in.image.shape, net_in.pixel_size_nm, net_in.steps
((25, 30), 0.2, ['resampled 0.1 → 0.2 nm/px', 'standardize'])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nanoseg.errors import NanosegError

RESAMPLE_RTOL = 1e-6  # the tolerance training uses (nanoseg.datasets.patches.prepare_image)


@dataclass
class NetworkInput:
    """A micrograph as one network sees it.

    Attributes
    ----------
    image : float32 (h, w) on the model grid, after the card's pipeline (not yet padded).
    input_shape : (H, W) of the micrograph (the grid :meth:`to_input_grid` maps outputs back to).
    input_pixel_size_nm : the input's pixel size (None: unknown, assumed to be the model's or uncalibrated).
    pixel_size_nm : pixel size of the model grid (None when unknown).
    steps : what was done, in order (for reports).
    notes : warnings for the user (an assumed pixel size).
    """

    image: np.ndarray
    input_shape: tuple[int, int]
    input_pixel_size_nm: float | None
    pixel_size_nm: float | None
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def padded(self, size_multiple: int) -> np.ndarray:
        """The exact array the network runs on: :attr:`image` reflect-padded bottom/right to the multiple."""
        from nanoseg.infer.tiling import pad_to_multiple

        return pad_to_multiple(self.image, int(size_multiple))[0]

    def to_input_grid(self, maps: np.ndarray) -> np.ndarray:
        """Output maps ``(C, h, w)`` (or ``(h, w)``) on the model grid → the input grid (bilinear,
        pixel-centre aligned, anti-aliased when shrinking); unchanged when no resampling was done."""
        array = np.asarray(maps)
        if array.shape[-2:] == tuple(self.input_shape):
            return array
        from skimage.transform import resize

        single = array.ndim == 2
        stack = array[None] if single else array
        shrinking = stack.shape[-2] > self.input_shape[0] or stack.shape[-1] > self.input_shape[1]
        out = np.stack([resize(a, self.input_shape, order=1, mode="edge", anti_aliasing=shrinking,
                               preserve_range=True) for a in stack]).astype(np.float32)
        return out[0] if single else out


def input_pixel_size(micrograph, card, *, pixel_size_nm: float | None = None,
                     assume_model_pixel_size: bool = False) -> tuple[float | None, list[str]]:
    """The input's pixel size in nm (None = unknown and, for a calibrated model, assumed) and notes."""
    px = pixel_size_nm if pixel_size_nm is not None else micrograph.pixel_size_nm
    target = getattr(card, "pixel_size_nm", None)
    if px is not None:
        px = float(px)
        if not np.isfinite(px) or px <= 0:
            raise NanosegError(f"pixel size must be a positive number of nm, got {px}", path=micrograph.source)
        return px, []
    if target is None:
        return None, []  # an uncalibrated model: nothing to resample to
    if assume_model_pixel_size:
        return None, [f"the image has no pixel size; assumed the model's {target:g} nm/px "
                      "(sizes in nm are only as right as this assumption)"]
    raise NanosegError(
        "the image has no pixel size, and the model must know it to resample the image to its training "
        f"pixel size ({target:g} nm/px)",
        path=micrograph.source,
        hint="pass pixel_size_nm=NM, or assume_model_pixel_size=True if the image was taken "
             "at the model's pixel size",
    )


def network_input(micrograph, card=None, *, pixel_size_nm: float | None = None,
                  assume_model_pixel_size: bool = False, pipeline=None) -> NetworkInput:
    """The network input of ``micrograph`` for a model with this ``card`` (None: a bare network).

    ``micrograph`` is a :class:`nanoseg.io.Micrograph` (checked for NaN/inf). See the module docstring for
    the rules; :meth:`NetworkInput.padded` is the array the network runs on. ``pipeline`` (anything
    :meth:`nanoseg.preprocess.Pipeline.from_spec` takes) replaces the card's preprocessing. Notes of steps
    that had to fall back (a flat field that could not divide) go into ``notes``.
    """
    from nanoseg.preprocess import Pipeline, resample_micrograph

    micrograph.check_finite()
    px, notes = input_pixel_size(micrograph, card, pixel_size_nm=pixel_size_nm,
                                 assume_model_pixel_size=assume_model_pixel_size)
    spec = (list(getattr(card, "preprocessing", None) or []) if pipeline is None
            else Pipeline.from_spec(pipeline).to_spec())
    pipeline = Pipeline.from_spec(spec)
    target = getattr(card, "pixel_size_nm", None)
    steps: list[str] = []
    if px is None and target is not None:
        steps.append(f"image has no pixel size; assumed the model's {target:.4g} nm/px")
    if any(step.name == "resample" for step in pipeline):
        if px is None:  # assumed to be at the model's pixel size: nothing to resample
            pipeline = Pipeline([step for step in pipeline if step.name != "resample"])
            data, grid_px = pipeline(micrograph.data, warnings=notes), target
        else:
            out = pipeline.apply(micrograph.with_data(micrograph.data, pixel_size_nm=px), warnings=notes)
            data, grid_px = out.data, out.pixel_size_nm
        steps += [step.name for step in Pipeline.from_spec(spec)]
    else:
        data, grid_px = micrograph.data, px if px is not None else target
        if target is not None and px is not None and not np.isclose(px, target, rtol=RESAMPLE_RTOL, atol=0):
            resampled = resample_micrograph(micrograph.with_data(micrograph.data, pixel_size_nm=px), target)
            if resampled.shape != micrograph.shape:
                data, grid_px = resampled.data, resampled.pixel_size_nm
                steps.append(f"resampled {px:.4g} → {grid_px:.4g} nm/px")
        data = pipeline(data, warnings=notes) if len(pipeline) else np.asarray(data, np.float32)
        steps += [step.name for step in pipeline]
    return NetworkInput(image=np.asarray(data, np.float32), input_shape=tuple(micrograph.shape),
                        input_pixel_size_nm=px, pixel_size_nm=None if grid_px is None else float(grid_px),
                        steps=steps, notes=notes)
