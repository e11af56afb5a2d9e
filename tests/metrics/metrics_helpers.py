from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.special import softmax as _softmax

from compval.metrics import ClassTable, PairedRows, SegmentTable
from compval.stats import row_blocks
from compval.tasks import segment_ids


def softmax(x):
    return _softmax(x, axis=1)


def make_rows(
    table: SegmentTable,
    *,
    ref: np.ndarray,
    cand: np.ndarray,
    labels: np.ndarray | None = None,
    region: np.ndarray | None = None,
    row_ids: np.ndarray | None = None,
    classification: bool = True,
    seed: int = 0,
) -> PairedRows:
    """PairedRows for a batch: ref/cand are logits (classification) or values (regression)."""
    n = ref.shape[0]
    row_ids = np.arange(n, dtype=np.int64) if row_ids is None else row_ids
    segs = {"region": region} if region is not None else {}
    use_labels = classification and labels is not None
    classes = ClassTable(list(range(int(labels.max()) + 1))) if use_labels else None
    seg = segment_ids(
        table,
        n=n,
        labels=labels if use_labels else None,
        classes=classes,
        segments=segs,
        columns=list(segs),
    )
    blocks = row_blocks(row_ids, seed=seed, n_blocks=256)
    ref2 = ref.reshape(n, -1).astype(np.float64)
    cand2 = cand.reshape(n, -1).astype(np.float64)
    finite = np.isfinite(ref2).all(1) & np.isfinite(cand2).all(1)
    if not classification:
        return PairedRows(
            reference=ref2,
            candidate=cand2,
            row_ids=row_ids,
            blocks=blocks,
            segment_ids=seg,
            finite=finite,
            labels=None if labels is None else labels.reshape(n, -1).astype(float),
        )
    p_ref = softmax(np.where(finite[:, None], ref2, 0))
    p_cand = softmax(np.where(finite[:, None], cand2, 0))
    return PairedRows(
        reference=p_ref,
        candidate=p_cand,
        row_ids=row_ids,
        blocks=blocks,
        segment_ids=seg,
        finite=finite,
        labels=labels,
        ref_pred=np.where(finite, p_ref.argmax(1), -1),
        cand_pred=np.where(finite, p_cand.argmax(1), -1),
        ref_prob=p_ref,
        cand_prob=p_cand,
    )


@pytest.fixture
def rows_factory() -> Callable[..., PairedRows]:
    return make_rows


def synthetic_classification(n: int = 3000, k: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    ref = rng.normal(size=(n, k))
    ref[np.arange(n), labels] += 2.0
    cand = ref + rng.normal(scale=0.8, size=(n, k))
    cand[labels == 2, 2] -= 1.5  # the candidate loses recall on class 2
    region = rng.choice(np.array(["north", "south", "east"]), n, p=[0.5, 0.3, 0.2])
    return {"labels": labels, "ref": ref, "cand": cand, "region": region}
