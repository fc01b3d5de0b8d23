"""Late binding: methods of a lower room that a room above it carries out.

Imports flow one way (``cli -> convert -> {sklearn, model} -> _engine -> _kernels -> _config``),
yet users call ``Model.to_sklearn`` and ``MLPClassifier.from_sklearn`` on classes that sit below
:mod:`fastmlp.convert`, the room that does the work and imports them both. Such a method asks
this module for the room by name (:func:`load`); ``fastmlp/__init__.py``, the package's front
door, which Python runs before any module of the package and which sits above every room,
registers how to import it (:func:`provide`). No module imports one above it, lazily or not:
the lower room owns the name, the top of the house wires it to the room that answers.
"""

_LOADERS = {}


def provide(name, loader):
    """Register ``loader()``, returning the module that carries out the hook ``name``."""
    _LOADERS[name] = loader


def load(name):
    """Return the module registered as ``name``, imported on the first call."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise RuntimeError(f"no module is registered as {name!r}: fastmlp/__init__.py "
                           "registers them when the package is imported") from None
    return loader()
