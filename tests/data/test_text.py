"""Text in: a local tokenizer, per-batch tokenization, text columns in parquet/CSV."""

from __future__ import annotations

import inspect
import json
import textwrap

import numpy as np
import pytest

pytest.importorskip("tokenizers")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from compval.adapters import bind_inputs  # noqa: E402
from compval.data import TEXT_INPUTS, TextDataset, load_dataset, load_tokenizer  # noqa: E402
from compval.errors import DataError, InputMismatchError, InvalidParameterError  # noqa: E402
from compval.spec import DataRef  # noqa: E402
from compval.types import TensorSpec  # noqa: E402

TEXTS = [p.strip() for p in inspect.getsource(textwrap).split("\n\n") if p.strip()][:40]


def _train(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(inspect.getsource(textwrap).splitlines(), trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return tok


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text") / "tok"
    _train(folder)
    return folder


@pytest.fixture(scope="module")
def raw(tok_dir):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tok_dir / "tokenizer.json"))


def test_encode_pads_right_truncates_and_masks(tok_dir, raw):
    tok = load_tokenizer(tok_dir, max_length=12)
    texts = [TEXTS[0], "x = 1", ""]
    out = tok.encode(texts)
    assert set(out) == set(TEXT_INPUTS)
    expected = [raw.encode(t).ids[:12] for t in texts]
    width = max(len(e) for e in expected)
    assert out["input_ids"].shape == (3, width) and out["input_ids"].dtype == np.int64
    pad = raw.token_to_id("<pad>")
    assert tok.pad_id == pad
    for row, ids in enumerate(expected):
        np.testing.assert_array_equal(out["input_ids"][row, : len(ids)], ids)
        assert (out["input_ids"][row, len(ids) :] == pad).all()
        np.testing.assert_array_equal(out["attention_mask"][row], np.arange(width) < len(ids))
    np.testing.assert_array_equal(out["position_ids"], np.tile(np.arange(width), (3, 1)))
    assert not out["token_type_ids"].any()
    # Every text empty: still one (masked) column, so models get a valid shape.
    empty = tok.encode(["", ""])
    assert empty["input_ids"].shape == (2, 1) and not empty["attention_mask"].any()


def test_dataset_batches_are_tokenized_per_batch(tok_dir, raw):
    tok = load_tokenizer(tok_dir, max_length=64)
    ds = TextDataset(TEXTS[:5], tok, segments={"src": ["a", "b", "a", "b", "a"]})
    batches = list(ds.batches(2))
    assert [len(b) for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([b.row_ids for b in batches]), np.arange(5))
    last = batches[1]
    lengths = [len(raw.encode(t).ids[:64]) for t in TEXTS[2:4]]
    assert last.inputs["input_ids"].shape == (2, max(lengths))  # padded to its own longest
    assert list(last.segments["src"]) == ["a", "b"]
    assert ds.fingerprint() == TextDataset(TEXTS[:5], tok).fingerprint()
    assert ds.fingerprint() != TextDataset(TEXTS[1:6], tok).fingerprint()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_load_dataset_reads_a_text_column(tmp_path, tok_dir, raw, fmt):
    table = pa.table({"body": TEXTS[:7], "source": ["doc", "code"] * 3 + ["doc"]})
    path = tmp_path / f"eval.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    ref = DataRef(path=path.name, text="body", tokenizer="tok", max_length=16, segments=["source"])
    (tmp_path / "tok").symlink_to(tok_dir, target_is_directory=True)
    ds = load_dataset(ref, base_dir=tmp_path)
    assert len(ds) == 7 and ds.segment_columns == ("source",)
    (batch,) = list(ds.batches(8))
    for row, text in enumerate(TEXTS[:7]):
        ids = raw.encode(text).ids[:16]
        np.testing.assert_array_equal(batch.inputs["input_ids"][row, : len(ids)], ids)
    assert list(batch.segments["source"]) == ["doc", "code"] * 3 + ["doc"]
    assert ds.segment_value_counts["source"] == {"doc": 4, "code": 3}


def test_transformers_tokenizer_folder(tmp_path, raw):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "slow"
    folder.mkdir()
    raw.model.save(str(folder))  # vocab.json + merges.txt: a GPT-2 style tokenizer, no json
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    tok = load_tokenizer(folder, max_length=10)
    assert tok.backend == "transformers"
    direct = transformers.GPT2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    out = tok.encode(["def f(x):", TEXTS[1]])
    for row, text in enumerate(["def f(x):", TEXTS[1]]):
        ids = direct(text)["input_ids"][:10]
        np.testing.assert_array_equal(out["input_ids"][row, : len(ids)], ids)
        assert out["attention_mask"][row].sum() == len(ids)


def test_bind_inputs_feeds_each_model_what_it_declares(tok_dir):
    tok = load_tokenizer(tok_dir)
    padded = tok.encode(["a b c", "a"])
    full = tok.encode(["a b", "c d"])
    ids_only = {"input_ids": TensorSpec("input_ids", np.dtype(np.int64), (None, None))}
    with_mask = {
        **ids_only,
        "attention_mask": TensorSpec("attention_mask", np.dtype(np.int64), (None, None)),
    }
    assert set(bind_inputs("m", padded, with_mask)) == {"input_ids", "attention_mask"}
    assert set(bind_inputs("m", full, ids_only)) == {"input_ids"}  # no padding: mask not needed
    with pytest.raises(InputMismatchError, match=r"declares no 'attention_mask'.*padded"):
        bind_inputs("m", padded, ids_only)


def test_errors(tmp_path, tok_dir):
    with pytest.raises(DataError, match=r"not found.*never downloads"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(InvalidParameterError, match="max_length"):
        load_tokenizer(tok_dir, max_length=0)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot be loaded"):
        load_tokenizer(tmp_path / "bad")
    with pytest.raises(ValueError, match="'text' and 'tokenizer' go together"):
        DataRef(path="x.parquet", text="body")
    tok = load_tokenizer(tok_dir)
    with pytest.raises(DataError, match="no text"):
        TextDataset(["a", None], tok)  # type: ignore[list-item]
    pq.write_table(pa.table({"body": [1, 2], "t": ["a", None]}), tmp_path / "d.parquet")
    base = {"path": "d.parquet", "tokenizer": str(tok_dir)}
    with pytest.raises(DataError, match="holds int64, expected strings"):
        load_dataset(DataRef(**base, text="body"), base_dir=tmp_path)
    with pytest.raises(DataError, match="no text column 'nope'"):
        load_dataset(DataRef(**base, text="nope"), base_dir=tmp_path)
    with pytest.raises(DataError, match="no text"):
        load_dataset(DataRef(**base, text="t"), base_dir=tmp_path)
    with pytest.raises(DataError, match="exclusive"):
        load_dataset(DataRef(**base, text="t", features=["body"]), base_dir=tmp_path)
    np.savez(tmp_path / "d.npz", x=np.zeros(2))
    with pytest.raises(DataError, match="parquet or CSV"):
        load_dataset(DataRef(path="d.npz", text="t", tokenizer=str(tok_dir)), base_dir=tmp_path)
