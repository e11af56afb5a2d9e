"""Report.to_dict(): JSON-ready values whatever types the producers used."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from types import MappingProxyType

import numpy as np

from compval.results import Report


class _Op(enum.Enum):
    GE = ">="


@dataclasses.dataclass(frozen=True)
class _Nested:
    level: float
    values: tuple[float, ...]


def test_to_dict_converts_numpy_enums_proxies_and_nonfinite(report: Report, check_factory) -> None:
    check = dataclasses.replace(
        check_factory("x", "int8", "pass"),
        observed=np.float32(np.nan),
        criterion=MappingProxyType({"op": _Op.GE, "threshold": np.float64(0.5)}),
        details={
            "array": np.array([1.0, np.nan, np.inf]),
            "count": np.int64(7),
            "flag": np.bool_(True),
            "nested": _Nested(level=-np.inf, values=(1.5, np.nan)),
        },
    )
    data = dataclasses.replace(report, checks=(check,)).to_dict()
    out = data["checks"][0]
    assert out["observed"] is None
    assert out["criterion"] == {"op": ">=", "threshold": 0.5}
    assert out["details"] == {
        "array": [1.0, None, None],
        "count": 7,
        "flag": True,
        "nested": {"level": None, "values": [1.5, None]},
    }
    assert type(out["details"]["count"]) is int
    assert type(out["details"]["flag"]) is bool
    assert out["name"] == "x[int8][overall]"


def test_to_dict_is_strict_json(report: Report) -> None:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    text = json.dumps(report.to_dict(), allow_nan=False)
    data = json.loads(text, parse_constant=refuse)
    metric = next(m for m in data["metrics"] if m["metric"] == "mean_kl_divergence")
    assert metric["candidate_value"] is None
    segment = next(m for m in data["metrics"] if m["segment"] and "script" in m["segment"])
    assert segment["reference_value"] is None and segment["delta"] is None
    assert segment["candidate_value"] == 0.5


def test_passed_and_candidates(report: Report) -> None:
    data = report.to_dict()
    assert data["passed"] is False
    assert data["candidates"] == [
        {"name": "int8", "passed": True},
        {"name": "pruned", "passed": False},
    ]
    assert math.isclose(data["run"]["duration_s"], 5.25)
    assert data["run"]["segment_columns"] == ["lang"]
