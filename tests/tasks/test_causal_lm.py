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
from compval.tasks.causal_lm import (  # noqa: E402
    choice_log_likelihoods,
    position_bucket,
    token_values,
)

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


# -- multiple choice ---------------------------------------------------------------------------
N_CHOICES, CHOICE_BATCH = 4, 8  # two questions (eight sequences) per batch


def _questions():
    """Each question: the first half of a line of textwrap; the choices: its true second half
    (at index q % 4) and three second halves written backwards."""
    lines = [ln.strip() for ln in SOURCE.splitlines() if len(ln.strip()) >= 24][:40]
    cut = [len(ln) // 2 + max(ln[len(ln) // 2 :].find(" "), 0) for ln in lines]
    heads = [ln[:c] for ln, c in zip(lines, cut, strict=True)]
    tails = [ln[c:] for ln, c in zip(lines, cut, strict=True)]
    prompts, choices, answers = [], [], []
    for q in range(24):
        # Distractors: the true half and two other lines' halves written backwards, text
        # the model never saw.
        others = [" " + tails[(q + 7 * j) % len(lines)].strip()[::-1] for j in (0, 1, 2)]
        answer = q % N_CHOICES
        options = [*others[:answer], tails[q], *others[answer:]]
        prompts.append(heads[q])
        choices.append(options)
        answers.append(answer)
    return prompts, choices, answers


def _choice_spec(lm, path):
    from compval.spec import AcceptanceSpec, DataRef

    data = DataRef(
        path=str(path),
        text="prompt",
        tokenizer=str(lm.folder / "tok"),
        labels="answer",
        segments=["source"],
        max_length=MAX_LENGTH,
        choices="choices",
    )
    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "task": "causal_lm",
            "reference": {"name": "fp32", "path": str(lm.folder / "fp32.onnx")},
            "candidates": [{"name": "int8", "path": str(lm.folder / "int8.onnx")}],
            "data": {"path": str(path)},
            "batch_size": CHOICE_BATCH,
            "statistics": {"replicates": 400, "seed": 5},
            "criteria": [
                {"id": "mc-accuracy", "metric": "choice_accuracy_score", "max_drop": 0.5},
                {"id": "mc-agreement", "metric": "choice_agreement", "min": 0.5},
            ],
        }
    )
    return spec.model_copy(update={"data": data})


@pytest.fixture(scope="module")
def choices(lm):
    prompts, options, answers = _questions()
    sources = ["even" if q % 2 == 0 else "odd" for q in range(len(prompts))]
    path = lm.folder / "choices.parquet"
    table = {"prompt": prompts, "choices": options, "answer": answers, "source": sources}
    pq.write_table(pa.table(table), path)
    # "noisy": the fp32 model with its logits disturbed, so that some choices change.
    modules = {"bf16": lm.bf16, "noisy": _Logits(lm.fp32.model, _disturb).eval()}
    report = run_validation(
        _choice_spec(lm, path),
        candidates={name: _torch_adapter(m, name) for name, m in modules.items()},
    )
    # Criteria may name the multiple-choice metrics (one check per candidate, decided).
    checks = {(c.id, c.candidate): c.verdict for c in report.checks if c.id.startswith("mc-")}
    assert set(checks) == {
        (i, n) for i in ("mc-accuracy", "mc-agreement") for n in report.candidates
    }
    assert all(v in ("pass", "fail", "inconclusive") for v in checks.values())
    assert all(c.observed is not None for c in report.checks if c.id.startswith("mc-")), (
        "a criterion on a multiple-choice metric found no value"
    )
    return SimpleNamespace(
        modules=modules,
        prompts=prompts,
        options=options,
        answers=np.array(answers),
        report=report,
        path=path,
        log_likelihoods={},
    )


def _disturb(logits):
    return logits + 1.5 * torch.sin(17.0 * logits)


def _choice_log_likelihoods(lm, choices, candidate):
    """Per question and choice, the summed log-probability of the choice's tokens given the
    prompt, from the model's logits in float64 (the run's batches: int8 quantizes per batch)."""
    if candidate in choices.log_likelihoods:
        return choices.log_likelihoods[candidate]
    module = choices.modules.get(candidate)
    sess = None if module else ort.InferenceSession(str(lm.folder / f"{candidate}.onnx"))
    per_question = CHOICE_BATCH // N_CHOICES
    out = np.zeros((len(choices.prompts), N_CHOICES))
    for start in range(0, len(choices.prompts), per_question):
        pieces = []
        for q in range(start, start + per_question):
            head = lm.tok.encode(choices.prompts[q]).ids
            for c in choices.options[q]:
                tail = lm.tok.encode(c).ids
                head_kept = head[-(MAX_LENGTH - len(tail)) :]
                pieces.append((q, len(head_kept), head_kept + tail))
        ids, mask = _pad([p[2] for p in pieces])
        if sess is None:
            with torch.no_grad():
                logits = module(torch.from_numpy(ids), torch.from_numpy(mask)).double()
        else:
            feed = {"input_ids": ids, "attention_mask": mask}
            logits = torch.from_numpy(sess.run(None, feed)[0]).double()
        logp = torch.log_softmax(logits, -1).numpy()
        for i, (q, ctx, seq) in enumerate(pieces):
            total = sum(logp[i, t - 1, seq[t]] for t in range(ctx, len(seq)))
            out[q, i % N_CHOICES] = total
    choices.log_likelihoods[candidate] = out
    return out


@pytest.mark.parametrize("candidate", ["int8", "bf16", "noisy"])
def test_choice_accuracy_matches_hand_computed_log_likelihoods(lm, choices, candidate):
    ref = _choice_log_likelihoods(lm, choices, "fp32").argmax(1)
    cand = _choice_log_likelihoods(lm, choices, candidate).argmax(1)
    got = _metrics(choices.report, candidate)
    acc = got[("choice_accuracy_score", None)]
    assert acc.n == len(choices.prompts)
    assert acc.reference_value == pytest.approx(np.mean(ref == choices.answers))
    assert acc.candidate_value == pytest.approx(np.mean(cand == choices.answers))
    assert acc.delta == pytest.approx(acc.candidate_value - acc.reference_value)
    assert acc.ci_low <= acc.delta <= acc.ci_high
    agreement = got[("choice_agreement", None)]
    assert agreement.candidate_value == pytest.approx(np.mean(ref == cand))
    even = np.arange(len(choices.prompts)) % 2 == 0
    by_source = got[("choice_accuracy_score", "source=even")]
    assert by_source.n == even.sum()
    assert by_source.reference_value == pytest.approx(np.mean(ref[even] == choices.answers[even]))
    # The briefly trained model prefers its text to text written backwards more often than
    # chance (0.25; measured 0.46): the answers line up with the choices.
    assert np.mean(ref == choices.answers) > 0.35
    # Question rows: no per-token metrics in this mode.
    assert ("mean_kl_divergence", None) not in got


def test_choice_accuracy_interval_is_a_bootstrap_over_questions(lm, choices):
    """The delta's interval width matches a Poisson bootstrap over questions computed here."""
    ref = _choice_log_likelihoods(lm, choices, "fp32").argmax(1) == choices.answers
    cand = _choice_log_likelihoods(lm, choices, "noisy").argmax(1) == choices.answers
    assert (ref != cand).sum() >= 3  # the disturbed model changes some answers
    got = _metrics(choices.report, "noisy")[("choice_accuracy_score", None)]
    weights = np.random.default_rng(0).poisson(1.0, size=(4000, ref.size))
    delta = (weights @ (cand.astype(float) - ref)) / weights.sum(1)
    width = (got.ci_high - got.ci_low) / (2 * 1.96)
    assert width == pytest.approx(np.std(delta), rel=0.35)


def test_choice_log_likelihoods_by_hand():
    # One row, vocabulary 3: tokens [0, 2, 1], the choice starts at position 1.
    logits = np.log(
        np.array([[[0.2, 0.3, 0.5], [0.6, 0.1, 0.3], [0.4, 0.4, 0.2]]], dtype=np.float64)
    )
    cand = np.log(np.array([[[1 / 3] * 3] * 3]))
    ids = np.array([[0, 2, 1]])
    mask = np.ones_like(ids)
    ref_ll, (cand_ll,) = choice_log_likelihoods(logits, [cand], ids, mask, np.array([1]))
    assert ref_ll[0] == pytest.approx(np.log(0.5) + np.log(0.1))
    assert cand_ll[0] == pytest.approx(2 * np.log(1 / 3))
    ref_ll, _ = choice_log_likelihoods(logits, [cand], ids, mask, np.array([2]))
    assert ref_ll[0] == pytest.approx(np.log(0.1))
    # The torch path gives the same.
    t_ref, (t_cand,) = choice_log_likelihoods(
        torch.from_numpy(logits), [torch.from_numpy(cand)], ids, mask, np.array([1])
    )
    assert t_ref[0] == pytest.approx(np.log(0.5) + np.log(0.1), abs=1e-6)
    assert t_cand[0] == pytest.approx(2 * np.log(1 / 3), abs=1e-6)


def test_choice_data_csv_and_errors(lm, choices, tmp_path):
    from compval.data import load_dataset
    from compval.spec import DataRef

    def ref(path, labels="answer", max_length=512):
        base = {"path": str(path), "text": "prompt", "tokenizer": str(lm.folder / "tok")}
        return DataRef(**base, labels=labels, max_length=max_length, choices="choices")

    def load(data):
        return load_dataset(data, base_dir=tmp_path)

    # CSV: choices as a JSON array per cell, the same sequences as the parquet file.
    csv = tmp_path / "choices.csv"
    import csv as csvlib
    import json

    with csv.open("w", newline="") as handle:
        writer = csvlib.writer(handle)
        writer.writerow(["prompt", "choices", "answer"])
        for p, o, a in zip(choices.prompts, choices.options, choices.answers, strict=True):
            writer.writerow([p, json.dumps(o), int(a)])
    a = list(load(ref(csv)).batches(CHOICE_BATCH))
    b = list(load(ref(choices.path)).batches(CHOICE_BATCH))
    assert len(a) == len(b) == len(choices.prompts) // 2
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.inputs["input_ids"], y.inputs["input_ids"])
        np.testing.assert_array_equal(x.labels, y.labels)
    first = b[0].labels
    assert first["question"].tolist() == [0] * 4 + [1] * 4
    assert first["choice"].tolist() == [0, 1, 2, 3] * 2
    # The first choice token sits right after the prompt's tokens.
    head = lm.tok.encode(choices.prompts[0]).ids
    assert first["context_length"][0] == len(head)
    np.testing.assert_array_equal(b[0].inputs["input_ids"][0, : len(head)], head)

    bad = tmp_path / "bad.parquet"
    rows = {"prompt": ["a b", "c d"], "choices": [[" x", " y"], [" x", " y"]], "answer": [0, 2]}
    pq.write_table(pa.table(rows), bad)
    with pytest.raises(DataError, match="not an index into their question's choices"):
        load(ref(bad))
    pq.write_table(pa.table(rows | {"choices": [[" x"], [" x", " y"]], "answer": [0, 0]}), bad)
    with pytest.raises(DataError, match="at least two strings"):
        load(ref(bad))
    # Without the answers' column the spec itself is refused (the data reader says so too).
    with pytest.raises(ValueError, match="'choices' makes a multiple-choice set"):
        ref(bad, labels=None)
    csv.write_text('prompt,choices,answer\na,"[x, y",0\n')
    with pytest.raises(DataError, match="not a JSON array"):
        load(ref(csv))
    # A choice that fills max_length on its own has nothing to be predicted from.
    long = {"choices": [[" x", " y"], [" x", " the longest words"]], "answer": [0, 1]}
    pq.write_table(pa.table(rows | long), bad)
    with pytest.raises(DataError, match="max_length"):
        list(load(ref(bad, max_length=4)).batches(8))


def test_reduce_batch_refuses_a_question_split_across_batches():
    from compval.data import Batch
    from compval.spec import AcceptanceSpec
    from compval.tasks import TaskState

    spec = AcceptanceSpec.model_validate(
        {
            "version": 1,
            "reference": {"path": "a"},
            "candidate": {"path": "b"},
            "data": {"path": "d"},
        }
    )
    fields = [
        (f, np.int64) for f in ("answer", "question", "choice", "n_choices", "context_length")
    ]
    labels = np.zeros(3, dtype=fields)
    labels["question"] = [0, 0, 1]
    labels["choice"] = [0, 1, 0]
    labels["n_choices"] = 2
    labels["context_length"] = 1
    batch = Batch(
        inputs={"input_ids": np.ones((3, 3), np.int64), "attention_mask": np.ones((3, 3))},
        labels=labels,
        row_ids=np.arange(3),
        segments={},
    )
    logits = np.zeros((3, 3, 5), np.float32)
    task = get_task("causal_lm")
    state = TaskState(spec=spec, has_labels=True)
    with pytest.raises(DataError, match="question 1 has 2 choices but 1"):
        task.reduce_batch(state, batch, logits, [logits], models=["r", "c"])
    # Whole questions: one row per question, ties go to the lower choice index.
    labels["question"] = [0, 0, 1]
    labels["n_choices"] = [2, 2, 1]
    questions, ref, (cand,) = task.reduce_batch(state, batch, logits, [logits], models=["r", "c"])
    np.testing.assert_array_equal(questions.row_ids, [0, 1])
    np.testing.assert_array_equal(ref, [[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(cand, [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])


def test_choice_accuracy_merges_exactly():
    from compval.metrics import PairedRows, Resampling, SegmentTable
    from compval.metrics.tokens import ChoiceAccuracy
    from compval.stats import row_blocks

    rng = np.random.default_rng(0)
    n = 300
    ref_ok = (rng.random(n) < 0.6).astype(float)
    cand_ok = np.where(rng.random(n) < 0.9, ref_ok, 1 - ref_ok)
    ref = np.stack([ref_ok, np.zeros(n)], axis=1)
    cand = np.stack([cand_ok, np.zeros(n), (cand_ok == ref_ok).astype(float)], axis=1)
    cand[5, 0] = np.nan  # a question without a choice under the candidate: left out

    def fed(part):
        acc = ChoiceAccuracy(SegmentTable())
        ids = np.arange(n)[part]
        acc.update(
            PairedRows(
                reference=ref[part],
                candidate=cand[part],
                row_ids=ids,
                blocks=row_blocks(ids, seed=0, n_blocks=256),
                segment_ids=np.zeros((1, ids.size), dtype=np.int64),
                finite=np.isfinite(ref[part]).all(1) & np.isfinite(cand[part]).all(1),
            )
        )
        return acc

    resampling = Resampling(replicates=100, confidence=0.9, seed=1)

    def snapshot(acc):
        return sorted(
            (e.metric, e.n, e.reference, e.candidate, e.ci) for e in acc.estimates(resampling)
        )

    whole = fed(slice(None))
    assert snapshot(fed(slice(0, 120)).merge(fed(slice(120, None)))) == snapshot(whole)
    assert snapshot(ChoiceAccuracy.from_state(whole.state())) == snapshot(whole)
    keep = np.arange(n) != 5
    est = {e.metric: e for e in whole.estimates(resampling)}
    assert est["choice_accuracy_score"].n == n - 1
    assert est["choice_accuracy_score"].reference == pytest.approx(ref_ok[keep].mean())
    assert est["choice_accuracy_score"].candidate == pytest.approx(cand_ok[keep].mean())
    assert est["choice_agreement"].candidate == pytest.approx((cand_ok == ref_ok)[keep].mean())


class _OnDevice(TorchAdapter):
    """A torch adapter whose logits stay torch tensors, as on a GPU (here on the CPU).

    It takes the engine's device path (``Task.device_outputs`` -> ``predict_on_device``) on a
    machine without a GPU, and counts which path the engine used.
    """

    def __init__(self, module, name):
        super().__init__(
            module, name=name, input_names=("input_ids", "attention_mask"), input_dtype=np.int64
        )
        self.host_calls = 0
        self.device_calls = 0

    def predict(self, inputs):
        self.host_calls += 1
        return super().predict(inputs)

    def _predict_on_device(self, inputs):
        self.device_calls += 1
        return {k: torch.from_numpy(np.asarray(v)) for k, v in self._predict(inputs).items()}


def test_the_device_path_gives_the_host_paths_numbers(lm, report):
    """Logits handed over as torch tensors are reduced with torch (float32) and give the numpy
    (float64) run's numbers within 1e-5; the engine never asks for host copies."""
    on_device = _OnDevice(lm.bf16, "bf16")
    device_report = run_validation(_spec(lm), candidates={"bf16": on_device})
    assert on_device.host_calls == 0
    assert on_device.device_calls == -(-len(TEXTS) // BATCH)
    host = _metrics(report, "bf16")
    device = _metrics(device_report, "bf16")
    assert set(device) == set(host)
    for key, m in host.items():
        d = device[key]
        assert d.n == m.n, key
        for field in ("candidate_value", "reference_value", "delta"):
            a, b = getattr(m, field), getattr(d, field)
            if a is None:
                assert b is None, (key, field)
            else:
                assert b == pytest.approx(a, rel=1e-5, abs=1e-5), (key, field)
