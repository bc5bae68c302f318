"""Registries derived from modules: a package offers what its modules define, so a new
subcommand, experiment, sweep or audit row is one new file (docs/design/layout.md).

    modules(package) -> the package's public modules, imported, in name order
    collect(package, attribute) -> what each of them defines as ``attribute``
    by_name(entries, what) -> {entry.name: entry}, refusing two entries of one name

The package's modules are listed at every call (nothing is cached), so a module added
to the package's ``__path__`` is found.
"""

import importlib
import pkgutil

__all__ = ["by_name", "collect", "modules"]


def modules(package):
    """The modules of ``package`` (its dotted name), imported, in name order; private
    ones (a leading "_") are left out."""
    path = importlib.import_module(package).__path__
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{package}.{info.name}")


def collect(package, attribute):
    """The value of ``attribute`` in every module of ``package`` that defines it, in
    module order."""
    return [getattr(m, attribute) for m in modules(package) if hasattr(m, attribute)]


def by_name(entries, what):
    """{entry.name: entry} in the order of ``entries``; RuntimeError when two entries
    share a name (two modules claiming one ``what``)."""
    out = {}
    for entry in entries:
        if entry.name in out:
            raise RuntimeError(f"two {what}s are named {entry.name!r}")
        out[entry.name] = entry
    return out
