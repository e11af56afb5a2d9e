"""What public objects say their module is (``compval._public``): functions name their
package, classes keep the module that defines them, and re-exports are never renamed."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import subprocess
import sys
import typing

import pytest

import compval
import compval.results

PACKAGES = [
    "compval",
    *sorted(f"compval.{m.name}" for m in pkgutil.iter_modules(compval.__path__) if m.ispkg),
]


def _public(kind: typing.Callable[[object], bool]) -> list[tuple[str, str, object]]:
    out = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if kind(obj):
                out.append((package, name, obj))
    return out


def test_every_public_class_resolves_its_type_hints() -> None:
    # Before: renamed to their package, 18 classes (ModelAdapter, Batch, ModelProfile, ...)
    # raised NameError here, as they would in pydantic or a dataclass serializer.
    failures = []
    for package, name, cls in _public(inspect.isclass):
        try:
            typing.get_type_hints(cls)
        except Exception as exc:  # every failure is listed
            failures.append(f"{package}.{name}: {type(exc).__name__}: {exc}")
    assert failures == []


# Names these functions' hints use that their modules import only for type checkers, to keep
# an import light: pandas (compval.data works without it), rich's Console (a renderer's
# caller brings one), and the spec's DataRef (``import compval.data`` loads no pydantic).
LAZY_HINTS = {
    "compval.data.from_dataframe": "pd",
    "compval.data.load_dataset": "DataRef",
    "compval.data.load_text_dataset": "DataRef",
    "compval.reports.render_console": "Console",
}


def test_every_public_function_resolves_its_type_hints() -> None:
    failures = []
    for package, name, fn in _public(inspect.isfunction):
        try:
            typing.get_type_hints(fn)
        except NameError as exc:
            if LAZY_HINTS.get(f"{package}.{name}") != exc.name:
                failures.append(f"{package}.{name}: NameError: {exc}")
        except Exception as exc:  # every failure is listed
            failures.append(f"{package}.{name}: {type(exc).__name__}: {exc}")
    # Before: run_validation's ``ModelLike | None`` raised TypeError (ModelLike was a string).
    assert failures == []


def _defining_module(cls: type) -> str | None:
    """The module whose globals the class body's functions run in (None without one)."""
    for attr in vars(cls).values():
        func = getattr(attr, "__func__", getattr(attr, "fget", attr))
        if inspect.isfunction(func) and func.__qualname__.startswith(cls.__qualname__ + "."):
            return str(func.__globals__["__name__"])
    return None


def test_every_public_class_names_the_module_that_defines_it() -> None:
    classes = [
        (p, n, c) for p, n, c in _public(inspect.isclass) if c.__module__.startswith("compval")
    ]
    checked = [(p, n, c, m) for p, n, c in classes if (m := _defining_module(c)) is not None]
    assert len(checked) > 50
    wrong = [
        f"{p}.{n} says {c.__module__}, defined in {m}"
        for p, n, c, m in checked
        if c.__module__ != m
    ]
    assert wrong == []


def test_functions_defined_in_private_modules_name_their_package() -> None:
    functions = _public(inspect.isfunction)
    private = [
        (package, name, fn)
        for package, name, fn in functions
        if fn.__globals__["__name__"].startswith(package + "._")
    ]
    assert len(private) > 100
    wrong = [f"{p}.{n} says {fn.__module__}" for p, n, fn in private if fn.__module__ != p]
    assert wrong == []
    from compval import stats

    # and pickle finds them through the package
    assert stats.bca_intervals.__module__ == "compval.stats"
    assert pickle.loads(pickle.dumps(stats.bca_intervals)) is stats.bca_intervals


@pytest.mark.parametrize("first", ["compval.profiling", "compval.stats", "compval"])
def test_results_classes_keep_their_module_whatever_is_imported_first(first: str) -> None:
    # A Report's pickle must not depend on, or import, the packages that re-export its parts.
    code = (
        "import importlib, pickle, sys\n"
        f"importlib.import_module({first!r})\n"
        "import compval.results as r\n"
        "bad = [n for n in r.__all__ if isinstance(getattr(r, n), type)\n"
        "       and not getattr(r, n).__module__.startswith('compval.results')]\n"
        "print(bad)\n"
        "classes = [getattr(r, n) for n in r.__all__ if isinstance(getattr(r, n), type)]\n"
        "print(pickle.dumps(classes).hex())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out[0] == "[]"
    load = (
        "import pickle, sys\n"
        f"pickle.loads(bytes.fromhex({out[1]!r}))\n"
        "heavy = ('compval.stats', 'compval.profiling', 'numpy')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", load], capture_output=True, text=True, check=True, timeout=120
    )
    assert loaded.stdout.strip() == "[]"
