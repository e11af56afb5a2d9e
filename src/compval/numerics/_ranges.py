"""Error by input range: does the candidate's error concentrate on large or small inputs?

Two views of the same sample rows:

* ``error_by_row_norm``: rows binned by the L2 norm of their inputs at the sample's quantiles
  (right-closed bins, as ``pandas.qcut``), each bin with the output error and the agreement of
  the two models' predictions;
* ``error_by_feature_range``: for every input feature, the rows in its top and bottom tails
  (beyond the 95th / 5th percentile), where the mean output error is compared with the other
  rows' ("rows with feature 12 above 3.1 have 9x the error"), with a bootstrap interval and a
  p-value adjusted for every feature and side searched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from compval.results import FeatureRangeFinding, InputRangeBin
from compval.types import Array

__all__ = ["MAX_RANGE_FEATURES", "error_by_feature_range", "error_by_row_norm", "row_errors"]

#: Inputs with more values per row (images, sequences) are not searched feature by feature:
#: one pixel's tail is rarely a meaningful slice, and the permutation test grows with it.
MAX_RANGE_FEATURES = 1024
#: Rows searched (the first of the already random sample): bounds the tails x rows masks.
MAX_RANGE_ROWS = 4096
#: A tail with fewer rows is not tested (its mean is too noisy to mean anything).
MIN_TAIL_ROWS = 5


def error_by_row_norm(
    inputs: Mapping[str, Array], reference: Array, candidate: Array, *, bins: int = 5
) -> list[InputRangeBin]:
    """Output error per quantile bin of the rows' input norm.

    Args:
        inputs: The sample rows (axis 0 is the row), every input of the model; text inputs
            are left out of the norm.
        reference: The reference's compared output on those rows.
        candidate: The candidate's compared output on those rows.
        bins: Quantile bins; equal quantiles (many equal norms) merge bins.

    Returns:
        The non-empty bins in increasing norm: rows, norm range, mean and max absolute output
        difference, and the share of rows whose argmax agrees (None for outputs that are not
        score matrices).
    """
    rows = int(reference.shape[0])
    # Text inputs (a table's string columns) have no norm: the numbers make it.
    numeric = [np.asarray(a) for a in inputs.values() if np.asarray(a).dtype.kind in "fiub"]
    if not numeric:
        return []
    flat = np.concatenate([a.astype(np.float64).reshape(rows, -1) for a in numeric], axis=1)
    norms = np.linalg.norm(flat, axis=1)
    edges = np.unique(np.quantile(norms, np.linspace(0.0, 1.0, bins + 1)))
    index = np.searchsorted(edges[1:-1], norms, side="left")
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64)).reshape(rows, -1)
    per_row = diff.mean(axis=1)
    row_max = diff.max(axis=1, initial=0.0)
    scores = reference.ndim == 2 and reference.shape[1] > 1 and reference.dtype.kind == "f"
    agree = reference.argmax(axis=1) == candidate.argmax(axis=1) if scores else None
    out: list[InputRangeBin] = []
    for b in range(len(edges) - 1 if len(edges) > 1 else 1):
        mask = index == b
        if not mask.any():
            continue
        out.append(
            InputRangeBin(
                norm_low=float(norms[mask].min()),
                norm_high=float(norms[mask].max()),
                rows=int(mask.sum()),
                mean_abs_diff=float(per_row[mask].mean()),
                max_abs_diff=float(row_max[mask].max()),
                agreement=None if agree is None else float(agree[mask].mean()),
            )
        )
    return out


def row_errors(reference: Array, candidate: Array) -> Array:
    """Each row's mean absolute output difference (float64; NaN where a value is not finite)."""
    rows = int(reference.shape[0])
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    result: Array = diff.reshape(rows, -1).mean(axis=1)
    return result


def _tails(
    flat: Array, names: list[str], tail: float
) -> tuple[list[tuple[str, str, float]], list[Array]]:
    """The (feature, side, threshold) and row mask of every testable tail."""
    keys: list[tuple[str, str, float]] = []
    masks: list[Array] = []
    rows = flat.shape[0]
    high_q, low_q = np.quantile(flat, [1.0 - tail, tail], axis=0)
    for j, name in enumerate(names):
        column = flat[:, j]
        for side, threshold in (("high", high_q[j]), ("low", low_q[j])):
            mask = column > threshold if side == "high" else column < threshold
            if not mask.any():
                # Ties at the extreme (a binary or clipped feature): the tail is the rows at
                # the threshold, unless that is most of the data.
                mask = column >= threshold if side == "high" else column <= threshold
            count = int(mask.sum())
            if MIN_TAIL_ROWS <= count <= rows // 2:
                keys.append((name, side, float(threshold)))
                masks.append(mask)
    return keys, masks


def error_by_feature_range(
    inputs: Mapping[str, Array],
    errors: Array,
    *,
    seed: int,
    tail: float = 0.05,
    top: int = 5,
    alpha: float = 0.05,
    permutations: int = 1000,
    feature_names: Sequence[str] = (),
) -> tuple[list[FeatureRangeFinding], list[str]]:
    """The feature tails whose rows have a significantly larger output error than the rest.

    Every feature (each value of each input, named ``input[i]``, or ``input`` for a one-value
    input) gives up to two tails: the rows above its ``1 - tail`` quantile and those below its
    ``tail`` quantile. The statistic is the ratio of the tail's mean error to the other rows'.
    Its p-value is the Westfall-Young single-step max-statistic permutation p-value: the rows'
    errors are permuted ``permutations`` times, and the p-value is the share of permutations
    whose largest ratio over *all* tails reaches the observed one. This controls the chance of
    reporting any tail when the error does not depend on the inputs at ``alpha``, however many
    features are searched (tests/numerics/test_feature_ranges.py simulates it).

    Args:
        inputs: The sample rows, every input of the model (axis 0 is the row).
        errors: Each row's output error (``row_errors``).
        seed: Seed of the permutations and the bootstrap.
        tail: Share of rows in each tail.
        top: Most findings returned (largest ratio first).
        alpha: Family-wise error rate of the findings.
        permutations: Permutations of the test (and bootstrap replicates of the interval).
        feature_names: The data's column names of a single 2-D input (a table's feature
            columns), used instead of ``input[i]`` when their number matches.

    Returns:
        The findings, and notes on what was not searched.
    """
    notes: list[str] = []
    rows = int(errors.shape[0])
    if rows > MAX_RANGE_ROWS:
        notes.append(
            f"Error by feature range: searched on the first {MAX_RANGE_ROWS} of {rows} sample rows."
        )
        rows = MAX_RANGE_ROWS
        errors = errors[:rows]
        inputs = {k: v[:rows] for k, v in inputs.items()}
    if rows < 2 * MIN_TAIL_ROWS / tail:
        return [], [
            f"Error by feature range not searched: {rows} sample rows, at least "
            f"{int(np.ceil(2 * MIN_TAIL_ROWS / tail))} needed for {MIN_TAIL_ROWS}-row tails."
        ]
    if not np.isfinite(errors).all():
        return [], ["Error by feature range not searched: some outputs are not finite."]
    columns: list[Array] = []
    names: list[str] = []
    for name, array in inputs.items():
        values = np.asarray(array)
        if values.dtype.kind not in "fiub":
            continue
        flat = values.reshape(rows, -1).astype(np.float64)
        if flat.shape[1] > MAX_RANGE_FEATURES:
            notes.append(
                f"Error by feature range: input {name!r} has {flat.shape[1]} values per row "
                f"(more than {MAX_RANGE_FEATURES}); not searched feature by feature."
            )
            continue
        columns.append(flat)
        # A table's numeric array is "features" (its text columns are inputs of their own).
        table = len(inputs) == 1 or name == "features"
        if table and len(feature_names) == flat.shape[1] > 1:
            names.extend(str(n) for n in feature_names)
        else:
            names.extend(
                [name] if flat.shape[1] == 1 else [f"{name}[{i}]" for i in range(flat.shape[1])]
            )
    if not columns:
        return [], notes
    keys, masks = _tails(np.concatenate(columns, axis=1), names, tail)
    total = float(errors.sum())
    if not keys or total == 0.0:
        return [], notes
    m = np.stack(masks).astype(np.float64)  # tails x rows
    counts = m.sum(axis=1)

    def ratios(e: Array) -> Array:
        # e: rows x k error vectors -> tails x k ratios of means (inf where the rest is 0).
        inside = m @ e
        rest = e.sum(axis=0) - inside
        with np.errstate(divide="ignore", invalid="ignore"):
            r: Array = (inside / counts[:, None]) / (rest / (rows - counts)[:, None])
        return np.nan_to_num(r, nan=0.0, posinf=np.inf)

    observed = ratios(errors[:, None])[:, 0]
    rng = np.random.default_rng(seed)
    max_null = np.empty(permutations)
    for start in range(0, permutations, 64):  # blocks keep rows x block, not rows x all
        block = min(64, permutations - start)
        perm = np.stack([errors[rng.permutation(rows)] for _ in range(block)], axis=1)
        max_null[start : start + block] = ratios(perm).max(axis=0)
    p_values = (1.0 + (max_null[None, :] >= observed[:, None]).sum(axis=1)) / (1.0 + permutations)
    found = [i for i in np.argsort(-observed, kind="stable") if p_values[i] < alpha][:top]
    findings: list[FeatureRangeFinding] = []
    for i in found:
        mask = masks[i]
        inside, rest = errors[mask], errors[~mask]
        # Stratified bootstrap: each group resampled within itself, as the rows were chosen.
        boot_in = inside[rng.integers(0, inside.size, (permutations, inside.size))].mean(axis=1)
        boot_rest = rest[rng.integers(0, rest.size, (permutations, rest.size))].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = np.where(boot_rest > 0, boot_in / boot_rest, np.inf)
        # Order statistics, not interpolation: replicates may be infinite (no rest error).
        boot.sort()
        low, high = boot[int(0.025 * (boot.size - 1))], boot[int(np.ceil(0.975 * (boot.size - 1)))]
        feature, side, threshold = keys[i]
        findings.append(
            FeatureRangeFinding(
                feature=feature,
                side="high" if side == "high" else "low",
                threshold=threshold,
                rows=int(mask.sum()),
                mean_abs_diff=float(inside.mean()),
                rest_mean_abs_diff=float(rest.mean()),
                ratio=float(observed[i]),
                ratio_low=float(low),
                ratio_high=float(high),
                p_value=float(p_values[i]),
            )
        )
    return findings, notes
