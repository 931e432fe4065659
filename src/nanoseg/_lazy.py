"""Lazy attributes for packages (PEP 562) and callable packages: how ``import nanoseg`` stays fast.

:func:`lazy_attributes` gives a package a module-level ``__getattr__``/``__dir__`` that imports a name's
module on first access, so ``import nanoseg`` imports neither torch nor numpy, and names that left a package's
``__all__`` (internals) stay importable from the package for old code. :func:`make_callable` lets a
sub-package that shares its name with a user verb (``nanoseg.evaluate``, ``nanoseg.simulate``,
``nanoseg.train``) be called like that verb: ``ns.evaluate(...)`` runs the verb and ``ns.evaluate.dice`` is still
the sub-package's function.

This module imports only :mod:`sys` (loaded before any user code; even ``importlib``, ``typing`` or
``collections.abc`` would add 50 % or more to the time of ``import nanoseg``).

Example
-------
>>> getattr_, dir_ = lazy_attributes("nanoseg", {"read": "nanoseg.io"}, submodules=["io"])
>>> getattr_("read").__module__, "read" in dir_()
('nanoseg.io.readers', True)
"""

from __future__ import annotations

import sys


def lazy_attributes(package: str, names: dict[str, str], *, submodules: tuple | list = ()) -> tuple:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps an attribute to the module defining it.

    An entry ``"name": "pkg.mod"`` returns ``pkg.mod.name``; ``"name": "pkg.mod:other"`` returns
    ``pkg.mod.other`` under the name ``name``. ``submodules`` are imported as ``package.<name>`` on access.
    Resolved values are cached in the package's namespace, so each import happens once.
    """
    subs = frozenset(submodules)

    def __getattr__(name: str):
        if name in names:
            module_name, _, attribute = names[name].partition(":")
            value = getattr(_import(module_name), attribute or name)
        elif name in subs:
            value = _import(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names) | subs)

    return __getattr__, __dir__


def _import(module_name: str):
    """``importlib.import_module`` for absolute names, with the builtin ``__import__``."""
    __import__(module_name)
    return sys.modules[module_name]


class CallablePackage(type(sys)):  # type(sys) is types.ModuleType, without importing types
    """A package that can be called: ``package(...)`` is ``package._call_target(...)``."""

    _call_target: object

    def __call__(self, *args, **kwargs):
        return self._call_target(*args, **kwargs)

    @property
    def __signature__(self):  # inspect.signature(nanoseg.evaluate) shows the verb's parameters
        import inspect

        return inspect.signature(self._call_target)


def make_callable(package: str, function) -> None:
    """Make the imported module ``package`` callable as ``function`` (its other attributes are unchanged)."""
    module = sys.modules[package]
    module.__class__ = CallablePackage
    module._call_target = function
