"""StatResult: one statistic with the evidence behind it.

Every function in ``compval.stats`` that tests or measures something returns a
:class:`StatResult`. Its ``kind`` says which field carries the headline number and its
``higher_is_worse`` says which way that number points, so that callers never guess a test's
direction from its name (the cautionary case is a function documented as returning a p-value
that returns a distance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from compval.errors import InvalidParameterError

__all__ = ["StatKind", "StatResult"]

#: ``"p_value"``: the headline is ``p_value`` (small means evidence of a difference);
#: ``"distance"``: the headline is ``estimate``, a non-negative distance between distributions;
#: ``"effect"``: the headline is ``estimate``, a signed effect such as candidate - reference.
StatKind = Literal["p_value", "distance", "effect"]
_KINDS = ("p_value", "distance", "effect")


@dataclass(frozen=True, slots=True, kw_only=True)
class StatResult:
    """One statistic: a point estimate, optionally an interval and a p-value, and its direction.

    Attributes:
        method: Short name of the method, e.g. ``"mcnemar_exact"``, ``"chi_square"``,
            ``"poisson_bootstrap"``.
        estimate: The point estimate. For tests whose headline is a p-value this is the
            effect size that goes with it (documented by each function).
        ci: ``(low, high)`` interval for ``estimate`` at ``confidence``, or None.
        confidence: The interval's confidence level, or None when there is no interval.
        p_value: The test's p-value, or None when the method has none.
        n: Number of rows (or pairs, or observations) the statistic is computed from.
        kind: Which field is the headline: ``"p_value"``, ``"distance"`` or ``"effect"``.
        higher_is_worse: Direction of the headline value: True when a larger value means a
            larger difference between reference and candidate (distances), False when a larger
            value means less evidence of a problem (p-values, and effects where larger is
            better), None when the direction depends on the metric the caller measured.
        statistic: The raw test statistic (chi-square, G, KS D), when there is one.
    """

    method: str
    estimate: float
    ci: tuple[float, float] | None = None
    confidence: float | None = None
    p_value: float | None = None
    n: int
    kind: StatKind = "effect"
    higher_is_worse: bool | None = None
    statistic: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidParameterError(
                f"StatResult.kind: unknown kind; got {self.kind!r}, expected one of {_KINDS}."
            )
        if (self.ci is None) != (self.confidence is None):
            raise InvalidParameterError(
                f"StatResult.ci: interval and confidence must come together; got "
                f"ci={self.ci!r}, confidence={self.confidence!r}, expected both or neither."
            )
        if self.confidence is not None and not 0.0 < self.confidence < 1.0:
            raise InvalidParameterError(
                f"StatResult.confidence: out of range; got {self.confidence!r}, expected a "
                "float in (0, 1)."
            )
        if self.p_value is not None and not (
            math.isnan(self.p_value) or 0.0 <= self.p_value <= 1.0
        ):
            raise InvalidParameterError(
                f"StatResult.p_value: out of range; got {self.p_value!r}, expected a float in "
                "[0, 1] or NaN."
            )
        if self.n < 0:
            raise InvalidParameterError(
                f"StatResult.n: negative; got {self.n!r}, expected an integer >= 0."
            )

    @property
    def headline(self) -> float | None:
        """The value ``kind`` names: ``p_value`` for p-value tests, else ``estimate``."""
        return self.p_value if self.kind == "p_value" else self.estimate

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the interval becomes ``ci_low``/``ci_high``."""
        return {
            "method": self.method,
            "estimate": self.estimate,
            "ci_low": None if self.ci is None else self.ci[0],
            "ci_high": None if self.ci is None else self.ci[1],
            "confidence": self.confidence,
            "p_value": self.p_value,
            "n": self.n,
            "kind": self.kind,
            "higher_is_worse": self.higher_is_worse,
            "statistic": self.statistic,
        }
