"""Every package declares its public surface, and every name it declares exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import samizdat

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(samizdat.__path__, "samizdat.")
    if ".migrations" not in m.name and m.name != "samizdat.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_declared_public_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip(f"{name} declares no public surface")
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing members: {missing}"


@pytest.mark.parametrize(
    "name",
    [n for n in MODULES if n.count(".") == 1 and importlib.import_module(n).__doc__],
)
def test_packages_with_public_apis_declare_all(name: str) -> None:
    module = importlib.import_module(name)
    if module.__file__ and module.__file__.endswith("__init__.py") and hasattr(module, "__all__"):
        public = {
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", "").startswith("samizdat")
        }
        assert public <= set(module.__all__), f"{name} exports undeclared names"
