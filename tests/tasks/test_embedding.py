"""``task: embedding`` end to end on a small BERT encoder and its INT8 and fp16 variants.

The encoder (a small BERT-style torch module, random init, masked mean pooling; transformers
5's BertModel does not trace under the TorchScript exporter) is exported with
``torch.onnx.export`` (the TorchScript exporter: the dynamo one needs onnxscript, not a
dependency); the INT8 variant is ONNX Runtime's ``quantize_dynamic`` of that file, the fp16 one
onnxruntime's own ``convert_float_to_float16`` (inputs and outputs kept float32). Every
reported quantity is recomputed here from the models' outputs with numpy, scipy and sklearn.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from scipy.stats import spearmanr  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

from compval import run_validation  # noqa: E402
from compval.errors import AdapterError, SpecValidationError  # noqa: E402
from compval.spec import AcceptanceSpec  # noqa: E402
from compval.tasks.embedding import load_qrels  # noqa: E402

N_DOCS, N_QUERIES, SEQ, BATCH = 240, 40, 16, 40


def _export(*args, **kwargs):
    # dynamo=False: the exporter that needs no onnxscript; its deprecation warning is torch's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(*args, **kwargs)


class _Layer(torch.nn.Module):
    """One post-norm BERT layer: self-attention over unmasked tokens, then a GELU MLP."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Linear(width, width)
        self.norm1 = torch.nn.LayerNorm(width)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, 2 * width), torch.nn.GELU(), torch.nn.Linear(2 * width, width)
        )
        self.norm2 = torch.nn.LayerNorm(width)

    def forward(self, x, bias):
        b, s, w = x.shape
        q, k, v = self.qkv(x).reshape(b, s, 3, self.heads, w // self.heads).unbind(2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / (w // self.heads) ** 0.5
        att = torch.softmax(scores + bias, dim=-1)
        mixed = torch.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, s, w)
        x = self.norm1(x + self.out(mixed))
        return self.norm2(x + self.mlp(x))


class _Encoder(torch.nn.Module):
    """A small BERT-style encoder with masked mean pooling (sentence-transformers style)."""

    def __init__(self, vocab=300, width=64, heads=4, layers=2, max_len=64):
        super().__init__()
        self.tokens = torch.nn.Embedding(vocab, width)
        self.positions = torch.nn.Embedding(max_len, width)
        self.norm = torch.nn.LayerNorm(width)
        self.layers = torch.nn.ModuleList(_Layer(width, heads) for _ in range(layers))

    def forward(self, input_ids, attention_mask):
        pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.norm(self.tokens(input_ids) + self.positions(pos))
        mask = attention_mask.to(x.dtype)
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        return (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)


@pytest.fixture(scope="session")
def encoder_files(tmp_path_factory):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = tmp_path_factory.mktemp("embedding")
    torch.manual_seed(0)
    model = _Encoder().eval()
    ids = torch.randint(1, 300, (2, SEQ))
    mask = torch.ones(2, SEQ, dtype=torch.int64)
    fp32 = out / "encoder.onnx"
    _export(
        model,
        (ids, mask),
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["sentence_embedding"],
        dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}},
        dynamo=False,
    )
    int8 = out / "encoder_int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    fp16 = out / "encoder_fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(fp16))

    # Documents: random token rows of varying length; query q is the first half of document
    # 3q, which is its one relevant document (relevance 2), and document 3q+1 is partly
    # relevant (relevance 1).
    rng = np.random.default_rng(1)
    lengths = rng.integers(4, SEQ + 1, N_DOCS)
    docs = rng.integers(1, 300, (N_DOCS, SEQ))
    docs[np.arange(SEQ)[None, :] >= lengths[:, None]] = 0
    queries = np.zeros((N_QUERIES, SEQ), dtype=np.int64)
    for q in range(N_QUERIES):
        half = max(2, lengths[3 * q] // 2)
        queries[q, :half] = docs[3 * q, :half]
    input_ids = np.vstack([queries, docs]).astype(np.int64)
    attention = (input_ids > 0).astype(np.int64)
    ids = np.array([f"q{q}" for q in range(N_QUERIES)] + [f"d{d}" for d in range(N_DOCS)])
    kind = np.array(["query"] * N_QUERIES + ["document"] * N_DOCS)
    data = out / "rows.npz"
    np.savez(data, input_ids=input_ids, attention_mask=attention, id=ids, kind=kind)
    qrels = out / "qrels.tsv"
    lines = ["query_id\tdoc_id\trelevance"]
    for q in range(N_QUERIES):
        lines += [f"q{q}\td{3 * q}\t2", f"q{q}\td{3 * q + 1}\t1"]
    qrels.write_text("\n".join(lines) + "\n")
    return {"fp32": fp32, "int8": int8, "fp16": fp16, "data": data, "qrels": qrels}


def _embed(path, data):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # The same batches as the run: dynamic INT8 quantizes activations per batch.
    parts = []
    for start in range(0, len(data["input_ids"]), BATCH):
        feed = {k: data[k][start : start + BATCH] for k in ("input_ids", "attention_mask")}
        parts.append(sess.run(None, feed)[0])
    return np.vstack(parts).astype(np.float64)


def _spec(files, **embedding):
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": {
                "type": "embedding",
                "embedding": {"neighbours_k": [5, 10], "qrels": str(files["qrels"]), **embedding},
            },
            "reference": {"path": str(files["fp32"]), "name": "fp32"},
            "candidates": [
                {"path": str(files["int8"]), "name": "int8"},
                {"path": str(files["fp16"]), "name": "fp16"},
            ],
            "data": {
                "path": str(files["data"]),
                "features": ["input_ids", "attention_mask"],
                "labels": "id",
                "segments": ["kind"],
            },
            "batch_size": BATCH,
            "statistics": {"replicates": 200},
            "criteria": [
                {"id": "cos", "metric": "cosine_similarity", "min": 0.9},
                {"id": "nn", "metric": "neighbour_agreement[k=10]", "min": 0.5},
                {"id": "ndcg", "metric": "ndcg_score[k=10]", "max_drop": 0.2},
            ],
        }
    )


@pytest.fixture(scope="module")
def report(encoder_files):
    return run_validation(_spec(encoder_files))


def _value(report, candidate, metric, segment=None):
    (m,) = [
        m
        for m in report.metrics
        if m.candidate == candidate and m.metric == metric and m.segment == segment
    ]
    return m


def _neighbours(x, k):
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x)
    idx = nn.kneighbors(x, return_distance=False)
    return [[j for j in row if j != i][:k] for i, row in enumerate(idx)]


def _ranking_scores(emb, k):
    """recall@k, nDCG@k and MRR@k per query, written out directly."""
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = unit[:N_QUERIES] @ unit[N_QUERIES:].T
    out = []
    for q in range(N_QUERIES):
        top = np.argsort(-sims[q], kind="stable")[:k]
        gains = np.array([2.0 if d == 3 * q else 1.0 if d == 3 * q + 1 else 0.0 for d in top])
        dcg = (gains / np.log2(np.arange(2, k + 2))).sum()
        idcg = 2.0 + 1.0 / np.log2(3)
        hits = np.flatnonzero(gains > 0)
        out.append([(gains > 0).sum() / 2, dcg / idcg, 1 / (hits[0] + 1) if hits.size else 0.0])
    return np.array(out)


@pytest.mark.parametrize("candidate", ["int8", "fp16"])
def test_every_quantity_matches_an_independent_computation(report, encoder_files, candidate):
    data = dict(np.load(encoder_files["data"]))
    ref = _embed(encoder_files["fp32"], data)
    cand = _embed(encoder_files[candidate], data)
    assert not np.allclose(ref, cand)  # the variant really differs
    cos = (ref * cand).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(cand, axis=1)

    # Fidelity.
    assert _value(report, candidate, "cosine_similarity").candidate_value == pytest.approx(
        cos.mean(), abs=1e-9
    )
    docs = data["kind"] == "document"
    assert _value(
        report, candidate, "cosine_similarity", "kind=document"
    ).candidate_value == pytest.approx(cos[docs].mean(), abs=1e-9)
    assert _value(report, candidate, "min_cosine_similarity").candidate_value == pytest.approx(
        cos.min(), abs=1e-9
    )
    p1 = _value(report, candidate, "p1_cosine_similarity")
    exact_p1 = np.quantile(cos, 0.01)
    assert abs((1 - p1.candidate_value) / (1 - exact_p1) - 1) < 0.04
    norm = _value(report, candidate, "embedding_norm")
    assert norm.reference_value == pytest.approx(np.linalg.norm(ref, axis=1).mean(), rel=1e-9)
    assert norm.candidate_value == pytest.approx(np.linalg.norm(cand, axis=1).mean(), rel=1e-9)

    # Neighbour agreement (float32 buffers: compare with sklearn on float32 embeddings).
    for k in (5, 10):
        a = _neighbours(ref.astype(np.float32), k)
        b = _neighbours(cand.astype(np.float32), k)
        share = np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)])
        same = np.mean([set(x) == set(y) for x, y in zip(a, b, strict=True)])
        got = _value(report, candidate, f"neighbour_agreement[k={k}]")
        assert got.candidate_value == pytest.approx(share, abs=1e-9)
        assert got.ci_low <= share <= got.ci_high
        assert _value(
            report, candidate, f"neighbour_set_agreement[k={k}]"
        ).candidate_value == pytest.approx(same, abs=1e-9)

    # Spearman of every pairwise similarity (280 rows: 39,060 pairs).
    i, j = np.triu_indices(len(ref), k=1)
    ru = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    cu = cand / np.linalg.norm(cand, axis=1, keepdims=True)
    rho = spearmanr((ru[i] * ru[j]).sum(1), (cu[i] * cu[j]).sum(1)).statistic
    assert _value(report, candidate, "similarity_spearman_score").candidate_value == (
        pytest.approx(rho, abs=1e-4)
    )

    # Retrieval: queries rank the documents.
    per_ref, per_cand = _ranking_scores(ref, 10), _ranking_scores(cand, 10)
    for col, metric in enumerate(("retrieval_recall_score", "ndcg_score", "mrr_score")):
        got = _value(report, candidate, f"{metric}[k=10]")
        assert got.n == N_QUERIES
        assert got.reference_value == pytest.approx(per_ref[:, col].mean(), abs=1e-9)
        assert got.candidate_value == pytest.approx(per_cand[:, col].mean(), abs=1e-9)
        assert got.ci_low <= got.delta <= got.ci_high
    # The queries really find their documents (a test that could fail if ids were mixed up).
    assert per_ref[:, 2].mean() > 0.5


def test_checks_gate_on_embedding_metrics(report):
    by_id = {(c.id, c.candidate): c for c in report.checks}
    for cand in ("int8", "fp16"):
        for check in ("cos", "nn", "ndcg"):
            assert (check, cand) in by_id
    assert by_id[("cos", "fp16")].verdict == "pass"


def test_per_token_output_is_refused_with_advice(tmp_path):
    class _Tokens(torch.nn.Module):
        def forward(self, x):
            return x.unsqueeze(-1).repeat(1, 1, 3)

    path = tmp_path / "tokens.onnx"
    _export(
        _Tokens(),
        (torch.zeros(2, 4),),
        str(path),
        dynamic_axes={"x": {0: "b"}},
        dynamo=False,
        input_names=["x"],
    )
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32))
    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": "embedding",
            "reference": {"path": str(path), "name": "ref"},
            "candidate": {"path": str(path), "name": "cand"},
            "data": {"path": str(tmp_path / "x.npy")},
        }
    )
    with pytest.raises(AdapterError, match="pooled output"):
        run_validation(spec)


def _qrels_spec(path, **keys):
    return AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": {"type": "embedding", "embedding": {"qrels": str(path), **keys}},
            "reference": {"path": "a.onnx"},
            "candidate": {"path": "b.onnx"},
            "data": {"path": "x.npy"},
        }
    )


def test_qrels_are_read_and_bad_ones_refused_with_the_field(tmp_path):
    good = tmp_path / "qrels.csv"
    good.write_text("qid,docid\nq1,d1\nq1,d2\nq2,d9\n")
    qrels = load_qrels(_qrels_spec(good, query_column="qid", document_column="docid"))
    assert qrels.judgements == {"q1": {"d1": 1.0, "d2": 1.0}, "q2": {"d9": 1.0}}
    with pytest.raises(SpecValidationError, match="no such file") as err:
        load_qrels(_qrels_spec(tmp_path / "missing.tsv"))
    assert err.value.path == "task.embedding.qrels"
    with pytest.raises(SpecValidationError, match="no column 'query_id'"):
        load_qrels(_qrels_spec(good))
    bad = tmp_path / "bad.tsv"
    bad.write_text("query_id\tdoc_id\trelevance\nq1\td1\thigh\n")
    with pytest.raises(SpecValidationError, match=r"line 2 .* not a finite number"):
        load_qrels(_qrels_spec(bad))


def test_text_column_with_a_local_tokenizer_end_to_end(encoder_files, tmp_path):
    """data.text + data.tokenizer: the rows are tokenized per batch, then compared as above."""
    pytest.importorskip("tokenizers")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import inspect
    import textwrap

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    source = inspect.getsource(textwrap)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(source.splitlines(), trainer)
    (tmp_path / "tok").mkdir()
    tok.save(str(tmp_path / "tok" / "tokenizer.json"))
    lines = list(dict.fromkeys(x.strip() for x in source.splitlines() if len(x.strip()) > 30))
    docs = lines[:120]
    queries = [docs[3 * q][: len(docs[3 * q]) // 2] for q in range(20)]
    texts = queries + docs
    ids = [f"q{q}" for q in range(20)] + [f"d{d}" for d in range(120)]
    pq.write_table(pa.table({"body": texts, "id": ids}), tmp_path / "rows.parquet")
    (tmp_path / "qrels.csv").write_text(
        "query_id,doc_id\n" + "".join(f"q{q},d{3 * q}\n" for q in range(20))
    )
    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": {"type": "embedding", "embedding": {"qrels": str(tmp_path / "qrels.csv")}},
            "reference": {"path": str(encoder_files["fp32"]), "name": "fp32"},
            "candidate": {"path": str(encoder_files["int8"]), "name": "int8"},
            "data": {
                "path": str(tmp_path / "rows.parquet"),
                "text": "body",
                "tokenizer": str(tmp_path / "tok"),
                "max_length": 48,
                "labels": "id",
            },
            "batch_size": BATCH,
            "statistics": {"replicates": 50},
        }
    )
    report = run_validation(spec)
    # Independent path: tokenizers directly, right-padded per batch with <pad>, then ORT.
    pad = tok.token_to_id("<pad>")
    embs = {}
    for name in ("fp32", "int8"):
        sess = ort.InferenceSession(str(encoder_files[name]), providers=["CPUExecutionProvider"])
        parts = []
        for start in range(0, len(texts), BATCH):
            enc = [e.ids[:48] for e in tok.encode_batch(texts[start : start + BATCH])]
            width = max(len(e) for e in enc)
            input_ids = np.full((len(enc), width), pad, dtype=np.int64)
            mask = np.zeros((len(enc), width), dtype=np.int64)
            for r, e in enumerate(enc):
                input_ids[r, : len(e)], mask[r, : len(e)] = e, 1
            parts.append(sess.run(None, {"input_ids": input_ids, "attention_mask": mask})[0])
        embs[name] = np.vstack(parts).astype(np.float64)
    ref, cand = embs["fp32"], embs["int8"]
    cos = (ref * cand).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(cand, axis=1)
    assert _value(report, "int8", "cosine_similarity").candidate_value == pytest.approx(
        cos.mean(), abs=1e-9
    )
    a, b = _neighbours(ref.astype(np.float32), 10), _neighbours(cand.astype(np.float32), 10)
    share = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)])
    assert _value(report, "int8", "neighbour_agreement[k=10]").candidate_value == pytest.approx(
        share, abs=1e-9
    )
    unit = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    sims = unit[:20] @ unit[20:].T
    rr = []
    for q in range(20):
        rank = int(np.flatnonzero(np.argsort(-sims[q], kind="stable") == 3 * q)[0]) + 1
        rr.append(1 / rank if rank <= 10 else 0.0)
    assert np.mean(rr) > 0.5  # the half-line queries find their lines (0.72 measured)
    assert _value(report, "int8", "mrr_score[k=10]").reference_value == pytest.approx(
        np.mean(rr), abs=1e-9
    )


def test_relative_qrels_are_read_from_the_spec_folder(encoder_files, report, tmp_path, monkeypatch):
    """A spec file's relative qrels path is the spec's folder's, whatever the working folder."""
    import shutil

    import yaml

    folder = tmp_path / "suite"
    folder.mkdir()
    shutil.copy(encoder_files["qrels"], folder / "judgements.tsv")
    raw = _spec(encoder_files).model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["task"]["embedding"]["qrels"] = "judgements.tsv"
    (folder / "spec.yaml").write_text(yaml.safe_dump(raw))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = run_validation(folder / "spec.yaml")
    wanted = {
        (m.candidate, m.metric, m.segment): m.candidate_value
        for m in report.metrics
        if m.metric.startswith(("ndcg_score", "mrr_score", "retrieval_recall_score"))
    }
    assert wanted
    got = {
        (m.candidate, m.metric, m.segment): m.candidate_value
        for m in relative.metrics
        if (m.candidate, m.metric, m.segment) in wanted
    }
    assert got == wanted
    # In Python, the base folder is explicit; without it, the working folder.
    spec = _qrels_spec("judgements.tsv")
    assert load_qrels(spec, folder) is not None
    with pytest.raises(SpecValidationError, match="relative paths are read from the spec"):
        load_qrels(spec)
