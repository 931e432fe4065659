"""nanoseg — segment nanoparticles in HRTEM images with small, deliberate neural networks.

The package is organised as one module per concern (see docs/architecture.md):
``io`` → ``preprocess`` → ``datasets`` → ``train`` → ``models`` → ``infer`` → ``evaluate`` /
``particles`` → ``insitu`` → ``report``; ``simulate`` makes labelled data, ``study`` runs grids,
``explain`` asks what a network looks at, ``cli`` is a thin layer over all of it.
"""

from nanoseg.errors import NanosegError

__version__ = "0.1.0"

__all__ = ["NanosegError", "__version__"]
