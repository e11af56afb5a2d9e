"""task: causal_lm on a real tiny GPT-2 (transformers), its INT8 ONNX and bf16 variants.

The models are built once per session: a byte-level BPE tokenizer and a 2-layer, 64-wide GPT-2
trained for a few seconds on the source of Python's ``textwrap``, exported to ONNX, quantized
with ONNX Runtime's ``quantize_dynamic``, and cast to bfloat16 in torch. Every reported
quantity is recomputed here from the models' own logits with torch in float64.
"""

from __future__ import annotations

import inspect
import textwrap
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
ort = pytest.importorskip("onnxruntime")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from compval.adapters import TorchAdapter  # noqa: E402
from compval.engine import run_validation  # noqa: E402
from compval.errors import AdapterError, DataError, InputMismatchError  # noqa: E402
from compval.tasks import get_task  # noqa: E402
from compval.tasks.causal_lm import position_bucket, token_values  # noqa: E402

SOURCE = inspect.getsource(textwrap)
TEXTS = [p.strip() for p in SOURCE.split("\n\n") if p.strip()][:48]
MAX_LENGTH = 40
BATCH = 8


class _Logits(torch.nn.Module):
    """GPT-2 -> its logits only (one output, as exported)."""

    def __init__(self, model, transform=None):
        super().__init__()
        self.model = model
        self.transform = transform

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        logits = out.logits
        return logits if self.transform is None else self.transform(logits)


def _tokenizer(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SOURCE.splitlines(), trainer)
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    return tok


def _pad(rows, width=None):
    width = width or max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    return ids, mask


@pytest.fixture(scope="session")
def lm(tmp_path_factory):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("causal_lm")
    tok = _tokenizer(folder / "tok")
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=64, n_layer=2, n_head=2
    )
    model = GPT2LMHeadModel(config)
    lines = [tok.encode(line).ids[:48] for line in SOURCE.splitlines() if line.strip()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(25):
        ids, mask = _pad([lines[i] for i in rng.choice(len(lines), 16)])
        x, m = torch.from_numpy(ids), torch.from_numpy(mask)
        loss = model(input_ids=x, attention_mask=m, labels=x.masked_fill(m == 0, -100)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    wrapped = _Logits(model).eval()
    example = (torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]]))
    axes = {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            example,
            str(folder / "fp32.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "b", 1: "s"}},
            dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript
        )
    quantize_dynamic(folder / "fp32.onnx", folder / "int8.onnx", weight_type=QuantType.QInt8)
    bf16 = GPT2LMHeadModel(config)
    bf16.load_state_dict(model.state_dict())
    bf16 = _Logits(bf16.to(torch.bfloat16)).eval()
    sources = ["prose" if i % 3 else "code" for i in range(len(TEXTS))]
    pq.write_table(pa.table({"text": TEXTS, "source": sources}), folder / "eval.parquet")
    return SimpleNamespace(
        folder=folder, tok=tok, fp32=wrapped, bf16=bf16, sources=np.array(sources)
    )


def _spec(lm, *, extra="", data=None):
    data = data or (
        f"{{path: eval.parquet, text: text, tokenizer: tok, max_length: {MAX_LENGTH}, "
        "segments: [source]}"
    )
    path = lm.folder / "spec.yaml"
    path.write_text(
        "version: 1\ntask: causal_lm\n"
        "reference: {name: fp32, path: fp32.onnx}\n"
        "candidates:\n  - {name: int8, path: int8.onnx}\n"
        f"data: {data}\nbatch_size: {BATCH}\nstatistics: {{replicates: 300, seed: 3}}\n" + extra
    )
    return path


def _torch_adapter(module, name):
    return TorchAdapter(
        module, name=name, input_names=("input_ids", "attention_mask"), input_dtype=np.int64
    )


def _expected(lm, candidate):
    """Per-token values recomputed from the models' logits with torch in float64."""
    sessions = {m: ort.InferenceSession(str(lm.folder / f"{m}.onnx")) for m in ("fp32", "int8")}
    out = {k: [] for k in ("kl", "nll_ref", "nll_cand", "same", "seq", "pos", "length")}
    for start in range(0, len(TEXTS), BATCH):
        rows = [lm.tok.encode(t).ids[:MAX_LENGTH] for t in TEXTS[start : start + BATCH]]
        ids, mask = _pad(rows)
        feed = {"input_ids": ids, "attention_mask": mask}
        ref = torch.from_numpy(sessions["fp32"].run(None, feed)[0]).double()
        if candidate == "int8":
            cand = torch.from_numpy(sessions["int8"].run(None, feed)[0]).double()
        else:
            with torch.no_grad():
                cand = lm.bf16(torch.from_numpy(ids), torch.from_numpy(mask)).double()
        for i, r in enumerate(rows):
            n = len(r) - 1  # predictions of tokens 1..len-1
            if n < 1:
                continue
            lp = torch.log_softmax(ref[i, :n], -1)
            lq = torch.log_softmax(cand[i, :n], -1)
            target = torch.tensor(r[1:])
            kl = torch.nn.functional.kl_div(lq, lp, log_target=True, reduction="none").sum(-1)
            out["kl"].append(kl.numpy())
            out["nll_ref"].append(-lp[torch.arange(n), target].numpy())
            out["nll_cand"].append(-lq[torch.arange(n), target].numpy())
            out["same"].append((lp.argmax(-1) == lq.argmax(-1)).numpy())
            out["seq"].append(np.full(n, start + i))
            out["pos"].append(np.arange(1, n + 1))
            out["length"].append(np.full(n, len(r)))
    return {k: np.concatenate(v) for k, v in out.items()}


def _metrics(report, candidate):
    return {(m.metric, m.segment): m for m in report.metrics if m.candidate == candidate}


@pytest.fixture(scope="session")
def report(lm):
    return run_validation(_spec(lm), candidates={"bf16": _torch_adapter(lm.bf16, "bf16")})


@pytest.mark.parametrize("candidate", ["int8", "bf16"])
def test_every_quantity_matches_a_direct_computation(lm, report, candidate):
    exp = _expected(lm, candidate)
    got = _metrics(report, candidate)
    n = exp["kl"].size
    assert got[("mean_kl_divergence", None)].n == n
    assert got[("mean_kl_divergence", None)].candidate_value == pytest.approx(
        exp["kl"].mean(), rel=1e-6, abs=1e-9
    )
    assert got[("max_kl_divergence", None)].candidate_value == pytest.approx(
        exp["kl"].max(), rel=1e-6
    )
    # Histogram quantiles: within one bin (a factor 10**(1/64)) of the exact ones.
    for name, q in (("median_kl_divergence", 0.5), ("p99_kl_divergence", 0.99)):
        assert got[(name, None)].candidate_value == pytest.approx(
            np.quantile(exp["kl"], q), rel=0.05
        )
    assert got[("top1_agreement", None)].candidate_value == pytest.approx(exp["same"].mean())
    ppl = got[("perplexity", None)]
    assert ppl.reference_value == pytest.approx(np.exp(exp["nll_ref"].mean()), rel=1e-6)
    assert ppl.candidate_value == pytest.approx(np.exp(exp["nll_cand"].mean()), rel=1e-6)
    assert ppl.delta == pytest.approx(ppl.candidate_value - ppl.reference_value, rel=1e-6)
    for key in [("mean_kl_divergence", None), ("top1_agreement", None), ("perplexity", None)]:
        m = got[key]
        point = m.delta if key[0] == "perplexity" else m.candidate_value
        assert m.ci_low <= point <= m.ci_high and m.ci_method == "block_bootstrap_bca"
    # Segments: per source (per sequence), per position and sequence-length bucket (per token).
    seg_values = {
        "source=code": lm.sources[exp["seq"]] == "code",
        "source=prose": lm.sources[exp["seq"]] == "prose",
        "token_position=1-15": position_bucket(exp["pos"]) == "1-15",
        "token_position=16-63": position_bucket(exp["pos"]) == "16-63",
        "sequence_length=16-63": position_bucket(exp["length"]) == "16-63",
    }
    for segment, keep in seg_values.items():
        m = got[("mean_kl_divergence", segment)]
        assert m.n == keep.sum()
        assert m.candidate_value == pytest.approx(exp["kl"][keep].mean(), rel=1e-6, abs=1e-9)


def test_intervals_resample_sequences(lm, report):
    """Interval widths match a Poisson bootstrap over whole sequences computed here."""
    exp = _expected(lm, "int8")
    got = _metrics(report, "int8")
    rng = np.random.default_rng(0)
    seqs, which = np.unique(exp["seq"], return_inverse=True)
    count = np.bincount(which)
    weights = rng.poisson(1.0, size=(4000, seqs.size))
    for metric, values in (("top1_agreement", exp["same"]), ("mean_kl_divergence", exp["kl"])):
        per_sequence = np.bincount(which, weights=values.astype(float))
        by_sequence = np.std((weights @ per_sequence) / (weights @ count))
        m = got[(metric, None)]
        assert (m.ci_high - m.ci_low) / (2 * 1.96) == pytest.approx(by_sequence, rel=0.3)


def test_default_criteria_pass_and_are_gated(report):
    assert report.passed
    ids = {c.id for c in report.checks}
    assert {"nonfinite-outputs"} <= ids
    criteria = get_task("causal_lm").default_criteria(has_labels=False)
    assert [c["metric"] for c in criteria] == [
        "mean_kl_divergence",
        "top1_agreement",
        "perplexity",
    ]


def test_numpy_and_torch_paths_agree_per_token(lm):
    rows = [lm.tok.encode(t).ids[:MAX_LENGTH] for t in TEXTS[:6]]
    ids, mask = _pad(rows)
    with torch.no_grad():
        ref = lm.fp32(torch.from_numpy(ids), torch.from_numpy(mask))
        cand = lm.bf16(torch.from_numpy(ids), torch.from_numpy(mask))
    ref_np, cand_np = ref.numpy(), cand.float().numpy()
    host = token_values(ref_np, cand_np, ids, mask)
    device = token_values(ref, cand, ids, mask)  # torch tensors: the torch path
    lp = torch.log_softmax(ref.double(), -1)
    lq = torch.log_softmax(cand.double(), -1)
    direct = (lp.exp() * (lp - lq)).sum(-1)
    np.testing.assert_allclose(host.kl, direct[host.row, host.position - 1].numpy(), atol=1e-9)
    for field in ("kl", "nll_ref", "nll_cand", "same_top"):
        np.testing.assert_allclose(getattr(device, field), getattr(host, field), atol=1e-5)
    np.testing.assert_array_equal(device.position, host.position)
    assert host.row.size == sum(len(r) - 1 for r in rows)


def test_pretokenized_arrays_give_the_same_numbers(lm, report):
    rows = [lm.tok.encode(t).ids[:MAX_LENGTH] for t in TEXTS]
    ids, mask = _pad(rows, width=MAX_LENGTH)
    np.savez(lm.folder / "tokens.npz", input_ids=ids, attention_mask=mask)
    again = run_validation(
        _spec(lm, data="{path: tokens.npz, features: [input_ids, attention_mask]}")
    )
    a = _metrics(report, "int8")[("mean_kl_divergence", None)]
    b = _metrics(again, "int8")[("mean_kl_divergence", None)]
    assert b.n == a.n
    assert b.candidate_value == pytest.approx(a.candidate_value, rel=1e-6)


def test_nonfinite_candidate_fails(lm):
    def poison(logits):
        logits = logits.clone()
        logits[0, 1] = float("nan")
        return logits

    nan = _torch_adapter(_Logits(lm.fp32.model, poison).eval(), "nan")
    report = run_validation(_spec(lm), candidates={"nan": nan}, options=_no_resampling())
    check = next(c for c in report.checks if c.candidate == "nan" and c.id == "nonfinite-outputs")
    assert check.verdict == "fail"
    got = _metrics(report, "nan")
    assert got[("nan_count", None)].candidate_value >= 1


def _no_resampling():
    from compval.engine import RunOptions

    return RunOptions(replicates=0)


@pytest.mark.parametrize(
    ("transform", "error", "match"),
    [
        (lambda x: x[:, -1], AdapterError, "next-token logits"),
        (lambda x: x[..., :-1], AdapterError, "vocabulary"),
    ],
)
def test_bad_outputs_are_refused(lm, transform, error, match):
    bad = _torch_adapter(_Logits(lm.fp32.model, transform).eval(), "bad")
    with pytest.raises(error, match=match):
        run_validation(_spec(lm), candidates={"bad": bad}, options=_no_resampling())


def test_data_errors(lm):
    np.savez(lm.folder / "plain.npz", x=np.zeros((4, 3), np.int64))
    with pytest.raises(InputMismatchError, match="input names do not match"):
        run_validation(_spec(lm, data="{path: plain.npz}"), options=_no_resampling())
    pq.write_table(
        pa.table({"text": TEXTS[:4], "token_position": ["a"] * 4}), lm.folder / "clash.parquet"
    )
    segments = "segments: [token_position]"
    with pytest.raises(DataError, match="clash"):
        run_validation(
            _spec(lm, data=f"{{path: clash.parquet, text: text, tokenizer: tok, {segments}}}"),
            options=_no_resampling(),
        )


def test_reduce_batch_needs_token_ids_and_notes_a_missing_mask(lm):
    from compval.data import Batch
    from compval.spec import AcceptanceSpec
    from compval.tasks import TaskState

    task = get_task("causal_lm")
    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"path": "a"},
            "candidate": {"path": "b"},
            "data": {"path": "d"},
        }
    )
    state = TaskState(spec=spec, has_labels=False)
    logits = np.zeros((2, 3, 5), np.float32)
    no_ids = Batch(inputs={"x": np.zeros((2, 3))}, labels=None, row_ids=np.arange(2), segments={})
    with pytest.raises(DataError, match="needs the token ids"):
        task.reduce_batch(state, no_ids, logits, [logits], models=["r", "c"])
    ids = Batch(
        inputs={"input_ids": np.ones((2, 3), np.int64)},
        labels=None,
        row_ids=np.array([7, 9]),
        segments={},
    )
    tokens, ref, (cand,) = task.reduce_batch(state, ids, logits, [logits], models=["r", "c"])
    assert "no attention_mask" in state.notes[0]
    np.testing.assert_array_equal(tokens.row_ids, [7, 7, 9, 9])  # a block per sequence
    assert ref.shape == (4, 1) and cand.shape == (4, 3)
    np.testing.assert_allclose(ref[:, 0], np.log(5))  # uniform logits: NLL = log V
