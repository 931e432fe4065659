"""Make docs/figures/napari_segment.png: the "Segment particles" widget run on the example micrograph.

Headless: ``QT_QPA_PLATFORM=offscreen xvfb-run -a .venv/bin/python scripts/napari_screenshot.py``
(Qt's offscreen platform takes its OpenGL context from the X display). Needs ``pip install -e '.[napari]'``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "napari_segment.png"


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import napari
    from napari._vispy.utils.gl import get_gl_extensions
    from qtpy.QtWidgets import QApplication

    get_gl_extensions()  # from a canvas of its own, before the viewer's (see tests/test_napari.py)
    viewer = napari.Viewer(show=False)
    viewer.window.resize(1100, 720)
    viewer.open_sample("nanoseg", "example")
    _, widget = viewer.window.add_plugin_dock_widget("nanoseg", "Segment particles")
    panel = widget._nanoseg_panel
    panel.layer.value = "nanoseg example"
    panel.tta.value = True
    panel.run_button.changed.emit(True)
    deadline = time.monotonic() + 300
    while panel.result is None and panel.error is None and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    if panel.error or panel.result is None:
        print(f"segmentation did not finish: {panel.error}", file=sys.stderr)
        return 1
    viewer.layers["nanoseg example probability"].visible = False  # the labels over the image read better
    viewer.scale_bar.visible = True  # in nm: the layers' units
    for _ in range(20):
        QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    from skimage.io import imsave
    from skimage.transform import rescale

    small = rescale(shot[..., :3], 0.75, channel_axis=-1, anti_aliasing=True, preserve_range=True)
    imsave(OUT, small.astype("uint8"), check_contrast=False)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB); {panel.result.summary.splitlines()[0]}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
