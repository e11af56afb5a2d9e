"""``python -m compval``: the same as the ``compval`` command."""

from __future__ import annotations

from compval.cli.main import run

if __name__ == "__main__":
    run()
