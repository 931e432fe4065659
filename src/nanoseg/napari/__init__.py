"""napari plugin for nanoseg (``pip install 'nanoseg[napari]'``): open, segment, track.

The plugin is declared in ``napari.yaml`` (npe2) and registered through the ``napari.manifest`` entry point:

* a **reader** for every format :mod:`nanoseg.io` reads (:data:`nanoseg.io.FORMATS`): the image layer's
  ``scale`` is the file's pixel size in nm (``units`` nm) and its ``metadata["nanoseg"]`` keeps the calibration,
  the frame times of a movie and the file's metadata;
* a **Segment particles** widget: model, threshold, TTA, pixel-size override; adds the probability, the
  particle labels (their ``features`` are the particle table, sizes in nm) and shows the table with the
  quality estimate (out-of-distribution checks, per-particle ``diameter_std_nm`` with TTA);
* a **Track movie** widget: a Tracks layer (coalescences drawn as the track graph and marked by points),
  the kinetics fits and the mechanism verdict of :func:`nanoseg.insitu.track_movie`;
* **sample data**: the bundled example micrograph and a small simulated coarsening movie.

Long work runs in a napari worker thread with progress. The modules that need Qt import it when a widget
is made, so this package imports (and its doctests run) without napari installed.
"""
