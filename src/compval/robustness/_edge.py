"""``edge_cases.npz``: the search's found cases as a dataset that compval replays directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compval.results import RobustnessSection

__all__ = ["EDGE_CASES_FILE", "write_edge_cases"]

EDGE_CASES_FILE = "edge_cases.npz"


def write_edge_cases(section: RobustnessSection | None, directory: str | Path) -> list[Path]:
    """Write each candidate's found cases; return the files written (none when nothing found).

    One candidate: ``<directory>/edge_cases.npz``; several: ``edge_cases_<candidate>.npz``.
    Keys: the model's input name (the found inputs), ``labels`` (the reference's prediction
    at each input), ``seed_row_ids``, ``size`` and ``candidate_predictions``. Replay with
    ``data: {path: edge_cases.npz, features: [<input>], labels: labels}``.
    """
    if section is None:
        return []
    results = [r for r in section.search_results if r.edge_cases]
    out: list[Path] = []
    for result in results:
        name = (
            EDGE_CASES_FILE
            if len(section.search_results) == 1
            else f"edge_cases_{result.candidate}.npz"
        )
        path = Path(directory) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in result.edge_cases.items()}
        np.savez(tmp, **arrays)
        tmp.replace(path)
        out.append(path)
    return out
