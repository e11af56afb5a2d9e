"""Performance metric names and their directions.

Names follow the shared vocabulary: a base name, optionally with one selector in brackets,
``latency_p95_ms[batch=1]`` or ``concurrent_throughput_sps[clients=4]``. Direction follows the
suffix convention: ``throughput*`` and ``speedup*`` are higher-is-better, ``_ms``, ``_mb`` and
``_count`` lower-is-better. ``weight_sparsity`` (fraction of exact zeros in the weights) counts
as higher-is-better because compression aims to raise it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from compval.spec._numerics import NUMERICS_METRIC_DIRECTIONS
from compval.spec._types import echo

__all__ = ["PERF_METRIC_DIRECTIONS", "PERF_METRIC_SELECTORS", "parse_perf_metric"]

#: Base metric name (without ``[...]``) -> higher_is_better.
PERF_METRIC_DIRECTIONS: Mapping[str, bool] = MappingProxyType(
    {
        "latency_p50_ms": False,
        "latency_p90_ms": False,
        "latency_p95_ms": False,
        "latency_p99_ms": False,
        "latency_mean_ms": False,
        "throughput_sps": True,
        "speedup": True,
        "model_size_mb": False,
        "parameter_count": False,
        "weight_sparsity": True,
        "load_time_ms": False,
        "peak_memory_mb": False,
        "concurrent_throughput_sps": True,
        "concurrent_latency_p95_ms": False,
        "unsupported_op_count": False,
        # Nodes a mobile execution provider would leave to the CPU (onnxruntime's usability
        # checker tables); one name per provider, since selector values are integers.
        "nnapi_fallback_node_count": False,
        "coreml_neuralnetwork_fallback_node_count": False,
        "coreml_mlprogram_fallback_node_count": False,
    }
)

#: Base metric name -> the selector it requires (``batch`` or ``clients``), or None for none.
PERF_METRIC_SELECTORS: Mapping[str, str | None] = MappingProxyType(
    {
        name: (
            "batch"
            if name.startswith(("latency_", "throughput_", "speedup"))
            else "clients"
            if name.startswith("concurrent_")
            else None
        )
        for name in PERF_METRIC_DIRECTIONS
    }
)

_NAME = re.compile(r"^(?P<base>[a-z0-9_]+)(?:\[(?P<key>[a-z]+)=(?P<value>[0-9]+)\])?$")


def parse_perf_metric(name: str) -> tuple[str, str | None, int | None]:
    """Split a performance metric name into base name, selector key and selector value.

    Args:
        name: A name such as ``latency_p95_ms[batch=1]`` or ``model_size_mb``.

    Returns:
        ``(base, key, value)``; ``key`` and ``value`` are None for names without a selector.

    Raises:
        ValueError: The name is not a performance metric, or its selector is missing or wrong.
            (Raised as ValueError so that pydantic validators turn it into a field error.)

    Example:
        >>> parse_perf_metric("latency_p95_ms[batch=8]")
        ('latency_p95_ms', 'batch', 8)
    """
    match = _NAME.match(name)
    base = match.group("base") if match else name
    # The numerics section's metrics are criteria (the metric registry lists them), not
    # budgets: said plainly rather than "unknown".
    if base in NUMERICS_METRIC_DIRECTIONS:
        raise ValueError(
            f"{echo(name)} is a numerics metric, not a performance budget; gate it under "
            "'criteria:' with a 'numerics:' section in the spec"
        )
    if match is None or base not in PERF_METRIC_DIRECTIONS:
        known = ", ".join(_example(b) for b in PERF_METRIC_DIRECTIONS)
        raise ValueError(
            f"unknown performance metric; got {echo(name)}, expected one of: {known}. "
            "Check the spelling and the [batch=B] / [clients=N] selector"
        )
    key = match.group("key")
    value = None if match.group("value") is None else int(match.group("value"))
    wanted = PERF_METRIC_SELECTORS[base]
    if key != wanted or (value is not None and value < 1):
        raise ValueError(
            f"metric {echo(name)} needs {_selector_text(wanted)}; got "
            f"{'no selector' if key is None else f'[{key}={value}]'}, expected "
            f"{_example(base)} with a positive count"
        )
    return base, key, value


def _selector_text(key: str | None) -> str:
    return "no selector" if key is None else f"a [{key}=N] selector"


def _example(base: str) -> str:
    key = PERF_METRIC_SELECTORS[base]
    return base if key is None else f"{base}[{key}=N]"
