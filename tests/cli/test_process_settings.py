"""Settings the ``compval`` command makes for its own process (cli.main.run)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# A child process runs the command; a finder notes the variable when numpy is first imported,
# which is when OpenBLAS (loaded by numpy) reads it.
_CHILD = textwrap.dedent(
    """
    import os, sys
    seen = []
    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name == "numpy" and not seen:
                seen.append(os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
            return None
    sys.meta_path.insert(0, Watch())
    sys.argv = ["compval", "validate", "missing-spec.yaml"]
    from compval.cli.main import run
    try:
        run()
    finally:
        print("seen", seen)
    """
)


def _seen_by_numpy(env: dict[str, str]) -> tuple[int, str]:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, timeout=120
    )
    line = [x for x in child.stdout.splitlines() if x.startswith("seen")]
    assert line, child.stderr
    return child.returncode, line[-1]


@pytest.mark.parametrize(
    ("preset", "expected"), [(None, "['20']"), ("28", "['28']")], ids=["default", "user-set"]
)
def test_openblas_idle_wait_is_set_before_numpy_loads(preset: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code, seen = _seen_by_numpy(env)
    assert code == 4  # the missing spec: the command ran up to its usage error
    assert seen == f"seen {expected}"
