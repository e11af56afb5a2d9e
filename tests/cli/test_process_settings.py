"""Settings the ``compval`` command makes for its own process (cli.main.run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from compval.cli.main import PROCESS_ENVIRONMENT

# The variables run() sets unless the user did, with the value it sets.
_SETTINGS = {
    "OPENBLAS_THREAD_TIMEOUT": "20",
    "NUMPY_MADVISE_HUGEPAGE": "0",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}

# A child process runs the command; a finder notes the variables when numpy is first imported,
# which is when numpy and OpenBLAS (loaded by numpy) read theirs. After the run, the child asks
# numpy and pyarrow what they actually use.
_CHILD = textwrap.dedent(
    """
    import json, os, sys
    NAMES = %r
    seen = {}
    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name == "numpy" and not seen:
                seen.update({k: os.environ.get(k) for k in NAMES})
            return None
    sys.meta_path.insert(0, Watch())
    sys.argv = ["compval", "validate", "missing-spec.yaml"]
    from compval.cli.main import run
    try:
        run()
    finally:
        import numpy._core.multiarray as multiarray
        import pyarrow
        used = {
            "numpy_hugepages": multiarray._get_madvise_hugepage(),
            "arrow_pool": pyarrow.default_memory_pool().backend_name,
        }
        print("seen", json.dumps({"env": seen, "used": used}))
    """
) % (sorted(_SETTINGS),)


def _run_child(env: dict[str, str]) -> tuple[int, dict[str, dict[str, object]]]:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, timeout=120
    )
    line = [x for x in child.stdout.splitlines() if x.startswith("seen ")]
    assert line, child.stderr
    return child.returncode, json.loads(line[-1].removeprefix("seen "))


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _SETTINGS}


def test_the_table_is_what_run_sets() -> None:
    assert dict(PROCESS_ENVIRONMENT) == _SETTINGS


def test_settings_are_made_before_numpy_loads_and_take_effect() -> None:
    code, seen = _run_child(_clean_env())
    assert code == 4  # the missing spec: the command ran up to its usage error
    assert seen["env"] == _SETTINGS
    # What the libraries use, not only what the environment says.
    assert seen["used"] == {"numpy_hugepages": False, "arrow_pool": "system"}


@pytest.mark.parametrize("name", sorted(_SETTINGS))
def test_a_value_the_user_set_wins(name: str) -> None:
    preset = {
        "OPENBLAS_THREAD_TIMEOUT": "28",
        "NUMPY_MADVISE_HUGEPAGE": "1",
        "ARROW_DEFAULT_MEMORY_POOL": "jemalloc",
    }[name]
    env = _clean_env()
    env[name] = preset
    code, seen = _run_child(env)
    assert code == 4
    assert seen["env"] == {**_SETTINGS, name: preset}
    if name == "NUMPY_MADVISE_HUGEPAGE":
        assert seen["used"]["numpy_hugepages"] is True


# The command defers numpy's Fortran wrapper generator and test helpers, which scipy.special's
# import touches through scipy's array-API layer: bound, not run, until something uses them.
_DEFERRED_CHILD = textwrap.dedent(
    """
    import sys
    sys.argv = ["compval", "validate", "missing-spec.yaml"]
    from compval.cli.main import run
    try:
        run()
    finally:
        import numpy, scipy.special
        ran = lambda: sorted(m for m in ("numpy.f2py.f2py2e", "numpy.testing._private.utils")
                             if m in sys.modules)
        before = ran()
        assert abs(scipy.special.bdtr(3, 10, 0.5) - 0.171875) < 1e-12
        import numpy.testing
        from numpy.testing import assert_allclose
        assert_allclose(numpy.float32(1), 1.0)
        assert numpy.testing is sys.modules["numpy.testing"]
        assert numpy.f2py.get_include().endswith("src")
        print("ran", before, ran())
    """
)


def test_numpys_unused_submodules_run_only_when_used() -> None:
    child = subprocess.run(
        [sys.executable, "-c", _DEFERRED_CHILD], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 4, child.stderr
    # Not run by the imports of compval and scipy.special; run, whole, when used.
    assert child.stdout.split("\n")[-2] == (
        "ran [] ['numpy.f2py.f2py2e', 'numpy.testing._private.utils']"
    )


def test_without_the_command_scipy_special_runs_them() -> None:
    # What the deferral saves: scipy.special's import alone runs both (if scipy stops doing
    # so, the deferral in cli.main.run can go).
    names = ("numpy.f2py.f2py2e", "numpy.testing._private.utils")
    code = f"import sys, scipy.special; print(all(m in sys.modules for m in {names!r}))"
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert child.stdout.strip() == "True", child.stderr
