"""The packages that resolve their public names lazily (so DAG files can import them cheaply at parse time) must
give the same object whatever was imported before: a public name equal to a submodule's name would be replaced by
that submodule as soon as anything imports it (Python sets ``package.<submodule>`` on import), which once made
``from teamsops.sync import publish`` return the module instead of the function, depending on test order."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

LAZY_PACKAGES = ["teamsops.sync", "teamsops.reports"]


@pytest.mark.parametrize("package_name", LAZY_PACKAGES)
def test_lazy_names_are_never_shadowed_by_submodules(package_name: str) -> None:
    package = importlib.import_module(package_name)
    lazy = package._LAZY
    submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert not set(lazy) & submodules, f"{package_name}: public names that are also submodule names"
    for name in submodules:  # import everything, as a busy worker process eventually does
        importlib.import_module(f"{package_name}.{name}")
    for name in lazy:
        value = getattr(package, name)
        assert not isinstance(value, types.ModuleType), f"{package_name}.{name} is a module"
        assert value is getattr(importlib.import_module(f"{package_name}.{lazy[name]}"), name)
