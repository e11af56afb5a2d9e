from __future__ import annotations

import numpy as np
import pytest
from metrics_helpers import make_rows, synthetic_classification
from scipy import stats as sstats
from scipy.special import softmax as _softmax
from sklearn import metrics as skm

from compval.metrics import (
    Calibration,
    KLQuantiles,
    NonFiniteCounts,
    OutputFidelity,
    ProbabilityDivergence,
    RegressionErrors,
    Resampling,
    SegmentTable,
)


def softmax(x):
    return _softmax(x, axis=1)


def _fed(acc_cls, data, batch=500, classification=True, rows=None, **config):
    """An accumulator fed ``data`` (its ``rows`` only, when given) in batches, in row order."""
    table = SegmentTable()
    acc = acc_cls(table, **config)
    ids = np.arange(data["ref"].shape[0])[rows if rows is not None else slice(None)]
    for lo in range(0, ids.size, batch):
        sl = ids[lo : lo + batch]
        acc.update(
            make_rows(
                table,
                ref=data["ref"][sl],
                cand=data["cand"][sl],
                labels=None if data.get("labels") is None else data["labels"][sl],
                region=data.get("region")[sl] if data.get("region") is not None else None,
                row_ids=sl,
                classification=classification,
            )
        )
    return acc


def _run(acc_cls, data, batch=500, classification=True, resampling=None, **config):
    acc = _fed(acc_cls, data, batch=batch, classification=classification, **config)
    return {(e.metric, e.segment): e for e in acc.estimates(resampling)}


def test_fidelity_matches_numpy():
    data = synthetic_classification()
    est = _run(OutputFidelity, data)
    p, q = softmax(data["ref"]), softmax(data["cand"])
    assert est[("mean_abs_diff", None)].candidate == pytest.approx(np.abs(p - q).mean(), rel=1e-10)
    assert est[("max_abs_diff", None)].candidate == pytest.approx(np.abs(p - q).max(), rel=1e-12)
    sqnr = 10 * np.log10((p**2).sum() / ((p - q) ** 2).sum())
    assert est[("sqnr_db", None)].candidate == pytest.approx(sqnr, rel=1e-10)
    cos = (p * q).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(q, axis=1)
    assert est[("cosine_similarity", None)].candidate == pytest.approx(cos.mean(), rel=1e-10)
    north = data["region"] == "north"
    assert est[("mean_abs_diff", "region=north")].candidate == pytest.approx(
        np.abs(p - q)[north].mean(), rel=1e-10
    )


def test_kl_matches_scipy_entropy():
    data = synthetic_classification()
    est = _run(ProbabilityDivergence, data)
    p, q = softmax(data["ref"]), softmax(data["cand"])
    kl = sstats.entropy(p, q, axis=1)
    assert est[("mean_kl_divergence", None)].candidate == pytest.approx(kl.mean(), rel=1e-9)
    q99 = _run(KLQuantiles, data)[("p99_kl_divergence", None)].candidate
    true = np.quantile(kl, 0.99)
    assert true / 1.16 <= q99 <= true * 1.16


def test_calibration_matches_sklearn_and_direct_ece():
    data = synthetic_classification()
    est = _run(Calibration, data)
    y = data["labels"]
    for side, logits in (("reference", data["ref"]), ("candidate", data["cand"])):
        p = softmax(logits)
        onehot = np.eye(5)[y]
        brier = ((p - onehot) ** 2).sum(1).mean()
        e = est[("brier_loss", None)]
        assert getattr(e, side) == pytest.approx(brier, rel=1e-10)
        conf, pred = p.max(1), p.argmax(1)
        bins = np.minimum((conf * 15).astype(int), 14)
        ece = sum(
            (bins == b).mean() * abs((pred == y)[bins == b].mean() - conf[bins == b].mean())
            for b in range(15)
            if (bins == b).any()
        )
        assert getattr(est[("expected_calibration_error", None)], side) == pytest.approx(
            ece, rel=1e-9
        )


def test_regression_matches_sklearn_multioutput():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(1000, 2)) * [1.0, 3.0] + [0.5, -2.0]
    ref = y + rng.normal(scale=0.3, size=y.shape)
    cand = y + rng.normal(scale=0.5, size=y.shape)
    est = _run(
        RegressionErrors, {"ref": ref, "cand": cand, "labels": y}, classification=False, width=2
    )
    for side, pred in (("reference", ref), ("candidate", cand)):
        assert getattr(est[("mean_absolute_error", None)], side) == pytest.approx(
            skm.mean_absolute_error(y, pred), rel=1e-10
        )
        assert getattr(est[("root_mean_squared_error", None)], side) == pytest.approx(
            skm.root_mean_squared_error(y, pred), rel=1e-10
        )
        assert getattr(est[("r2_score", None)], side) == pytest.approx(
            skm.r2_score(y, pred), rel=1e-8
        )


@pytest.mark.parametrize("offset", [0.0, 1e6, 1e8, 1e10, -1e12])
def test_regression_r2_keeps_its_precision_for_targets_far_from_zero(offset):
    """R^2 against scikit-learn when the targets' mean dwarfs their spread.

    Without centring, sum y^2 - (sum y)^2 / n lost every digit: at 1e10 R^2 exceeded 1 and the
    worse model scored higher. Two outputs with different offsets, per segment too.
    """
    rng = np.random.default_rng(1)
    n = 2000
    y = rng.normal(size=(n, 2)) + np.array([offset, offset / 7])
    ref = y + rng.normal(scale=0.3, size=y.shape)
    cand = ref + 0.5
    region = np.where(rng.random(n) < 0.3, "north", "south")
    data = {"ref": ref, "cand": cand, "labels": y, "region": region}
    est = _run(RegressionErrors, data, classification=False, width=2)
    north = region == "north"
    # The inputs themselves hold targets to about 1e-16 * |offset|: at 1e12 that is 1e-4 of a
    # unit, and scikit-learn's own result moves in the ninth digit.
    tol = 1e-9 if abs(offset) <= 1e10 else 1e-7
    for side, pred in (("reference", ref), ("candidate", cand)):
        assert getattr(est[("r2_score", None)], side) == pytest.approx(
            skm.r2_score(y, pred), abs=tol
        )
        assert getattr(est[("r2_score", "region=north")], side) == pytest.approx(
            skm.r2_score(y[north], pred[north]), abs=tol
        )
    assert est[("r2_score", None)].candidate < est[("r2_score", None)].reference


@pytest.mark.parametrize("constant", [0.0, 3.0, 1e10])
def test_regression_r2_of_constant_targets_is_undefined_not_huge(constant):
    """A segment of constant targets has no variance: R^2 undefined (None), MAE still exact.

    Centring on the first targets' mean left rounding noise in the segment's total sum of
    squares (R^2 of -3e16, and a delta check that passed on it).
    """
    rng = np.random.default_rng(3)
    n = 600
    y = rng.normal(size=(n, 1)) * 2 + 1.0
    y[:100] = constant  # the first rows, so also the shift is set by other rows in a merge
    y = np.roll(y, 250, axis=0)
    region = np.where((np.arange(n) >= 250) & (np.arange(n) < 350), "flat", "varied")
    ref = y + rng.normal(scale=0.3, size=y.shape)
    cand = ref + 0.5
    data = {"ref": ref, "cand": cand, "labels": y, "region": region}
    est = _run(RegressionErrors, data, classification=False, width=1, batch=128)
    flat = region == "flat"
    assert np.all(y[flat] == constant)
    assert est[("r2_score", "region=flat")].reference is None
    assert est[("r2_score", "region=flat")].candidate is None
    assert est[("mean_absolute_error", "region=flat")].candidate == pytest.approx(
        skm.mean_absolute_error(y[flat], cand[flat]), rel=1e-9
    )
    assert est[("r2_score", "region=varied")].candidate == pytest.approx(
        skm.r2_score(y[~flat], cand[~flat]), abs=1e-9
    )


def test_regression_accumulators_with_different_shifts_merge_exactly():
    """Each accumulator centres on its own first targets; a merge moves one onto the other."""
    rng = np.random.default_rng(2)
    y = rng.normal(size=(1200, 1)) * 2 + 5e9
    y[600:] += 3.0  # the second half's first targets give a different shift
    ref = y + rng.normal(scale=0.4, size=y.shape)
    cand = y + rng.normal(scale=0.6, size=y.shape)

    data = {"ref": ref, "cand": cand, "labels": y}

    def fed(part):
        return _fed(RegressionErrors, data, batch=1200, classification=False, rows=part, width=1)

    first, second = fed(slice(0, 600)), fed(slice(600, 1200))
    assert first.state()["shift"] != second.state()["shift"]
    merged = first.merge(second)
    assert merged.state()["shift"] == first.state()["shift"]
    reverse = second.merge(first)
    one_pass = {(e.metric, e.segment): e for e in fed(slice(0, 1200)).estimates()}
    for acc in (merged, reverse, RegressionErrors.from_state(merged.state())):
        got = {(e.metric, e.segment): e for e in acc.estimates()}
        for key in one_pass:
            assert got[key].candidate == pytest.approx(one_pass[key].candidate, rel=1e-9)
            assert got[key].reference == pytest.approx(one_pass[key].reference, rel=1e-9)
    assert one_pass[("r2_score", None)].candidate == pytest.approx(skm.r2_score(y, cand), abs=1e-9)
    # The state of an empty accumulator keeps "no shift yet": its first rows still set one.
    empty = RegressionErrors.from_state(RegressionErrors(SegmentTable(), width=1).state())
    assert empty.state()["shift"] is None


def test_nonfinite_counts_and_exclusion():
    ref = np.ones((6, 3))
    cand = np.ones((6, 3))
    cand[0, 0] = np.nan
    cand[1, :] = np.inf
    ref[2, 1] = np.nan
    data = {"ref": ref, "cand": cand}
    est = _run(NonFiniteCounts, data, classification=False)
    assert est[("nan_count", None)].reference == 1
    assert est[("nan_count", None)].candidate == 1
    assert est[("inf_count", None)].candidate == 3
    assert est[("nonfinite_count", None)].candidate == 4
    fid = _run(OutputFidelity, data, classification=False)
    assert fid[("mean_abs_diff", None)].n == 3  # rows 0-2 left out
    assert fid[("mean_abs_diff", None)].candidate == 0.0


def test_block_bootstrap_interval_is_reasonable():
    rng = np.random.default_rng(5)
    y = rng.normal(size=(4000, 1))
    ref = y + rng.normal(scale=0.3, size=y.shape)
    cand = y + rng.normal(scale=0.35, size=y.shape)
    est = _run(
        RegressionErrors,
        {"ref": ref, "cand": cand, "labels": y},
        classification=False,
        resampling=Resampling(replicates=400, confidence=0.95, seed=1),
        width=1,
    )
    e = est[("mean_absolute_error", None)]
    d = np.abs(cand - y)[:, 0] - np.abs(ref - y)[:, 0]
    se = d.std(ddof=1) / np.sqrt(d.size)
    assert e.ci[0] < e.delta < e.ci[1]
    width = e.ci[1] - e.ci[0]
    assert 0.7 * 3.92 * se < width < 1.3 * 3.92 * se
