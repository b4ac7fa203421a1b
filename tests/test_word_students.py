"""The word students: tokenizer and vocabulary, embedding init from word vectors, and the bilstm/cnn/bow adapters
(shapes, padding invariance, save/load, multi-task twins, FLOPs, export)."""
import json
import os

import numpy as np
import paddle
import pytest

from conftest import write
from utils.adapters.bilstm import BiLSTMAdapter, BiLSTMText
from utils.adapters.bow import PRIME, BoWAdapter
from utils.adapters.cnn import CNNAdapter
from utils.adapters.words import WordEncoder, example_texts, tokenize, vector_init
from utils.batches import collate
from utils.errors import UserError
from utils.tasks.sequence import Example
from utils.models import WORD_OPTIONS

ADAPTERS = (BiLSTMAdapter, CNNAdapter, BoWAdapter)
SMALL = {"emb_dim": 8, "hidden_size": 6, "mlp_size": 10, "num_filters": 4, "kernel_sizes": "2,3", "num_buckets": 97}
TEXTS = ["the film is great", "a dull , boring film", "great", "not the worst film of the year , not at all", "ok"]
OTHER = ["yes", "the year is ok", "no", "great film", "a"]


# ---- tokenizer and vocabulary

def test_tokenize_splits_punctuation_lowercases_and_strips_accents():
    assert tokenize("Café, isn't it?") == ["cafe", ",", "isn", "'", "t", "it", "?"]
    assert tokenize("  HELLO   World!!\t") == ["hello", "world", "!", "!"]
    assert tokenize("naïve Résumé snake_case 3.5") == ["naive", "resume", "snake", "_", "case", "3", ".", "5"]
    assert tokenize("中文abc") == ["中", "文", "abc"]
    assert tokenize("") == [] and tokenize(" \n ") == []


def _encoder(pair=False, **kw):
    return WordEncoder.build(["b a a", "c b a", "d"], pair, **kw)


def test_vocabulary_most_frequent_first_ties_alphabetical_and_limits():
    assert _encoder().tokens == ["[PAD]", "[UNK]", "a", "b", "c", "d"]  # a:3 b:2, then c and d once each
    assert WordEncoder.build(["d", "c b a", "b a a"], False).tokens == _encoder().tokens  # order of texts is moot
    assert _encoder(min_count=2).tokens == ["[PAD]", "[UNK]", "a", "b"]
    assert _encoder(max_vocab_size=3).tokens == ["[PAD]", "[UNK]", "a"]
    assert _encoder(max_vocab_size=0).tokens == _encoder().tokens
    examples = [Example("x y", "y", 0), Example("y", None, 1)]
    assert list(example_texts(examples)) == ["x y", "y", "y"]


def test_encode_hand_checked_ids_unk_truncation_and_empty_text():
    enc = _encoder()
    feats = enc.encode([Example("A b, zzz", None, 1), Example("", None, 0), Example("d d d d", None, 1)], 3)
    assert [x.tolist() for x in feats.columns["ids_a"]] == [[2, 3, 1], [1], [5, 5, 5]]
    assert feats.columns["ids_a"][0].dtype == np.int64 and feats.labels.tolist() == [1, 0, 1]
    assert enc.input_names == ("ids_a",) and enc.pads == {"ids_a": 0}
    pair = _encoder(pair=True)
    feats = pair.encode([Example("c", "a b", 0.5)], 64, regression=True)
    assert [x.tolist() for x in feats.columns["ids_b"]] == [[2, 3]] and feats.labels.dtype == np.float32
    assert pair.input_names == ("ids_a", "ids_b") and feats.pads == {"ids_a": 0, "ids_b": 0}


def test_vocabulary_save_load_same_ids_and_signature(tmp_path):
    enc = _encoder(pair=True)
    enc.save(str(tmp_path))
    assert open(tmp_path / "vocab.txt", encoding="utf-8").read() == "[PAD]\n[UNK]\na\nb\nc\nd\n"
    back = WordEncoder.load(str(tmp_path))
    examples = [Example("d c b a e", "a", 0)]
    assert back.tokens == enc.tokens and back.pair
    assert [x.tolist() for x in back.encode(examples, 9).columns["ids_a"]] == [[5, 4, 3, 2, 1]]
    assert back.signature() == enc.signature() and hash(back.signature()) == hash(enc.signature())
    assert _encoder(pair=False).signature() != enc.signature()
    assert _encoder(pair=True, min_count=2).signature() != enc.signature()


def test_vocabulary_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="vocab.txt: no such file"):
        WordEncoder.load(str(tmp_path))
    _encoder().save(str(tmp_path))
    os.remove(tmp_path / "tokenizer_config.json")
    with pytest.raises(UserError, match="tokenizer_config.json: no such file"):
        WordEncoder.load(str(tmp_path))
    _encoder().save(str(tmp_path))
    cases = {"[UNK]\n[PAD]\na\n": r"vocab.txt:1: found '\[UNK\]' where \[PAD\] belongs",
             "[PAD]\n[UNK]\na\nb c\n": r"vocab.txt:4: token 'b c'",
             "[PAD]\n[UNK]\na\n\nb\n": r"vocab.txt:4: token ''",
             "[PAD]\n[UNK]\na\nb\na\n": r"vocab.txt:5: token 'a' appears twice",
             "[PAD]\n": r"vocab.txt: 1 line"}
    for text, message in cases.items():
        write(str(tmp_path / "vocab.txt"), text)
        with pytest.raises(UserError, match=message):
            WordEncoder.load(str(tmp_path))


# ---- embeddings from word vectors

def test_vector_init_hand_checked_rows_coverage_and_pad(tmp_path):
    path = write(str(tmp_path / "glove.txt"), "a 1 2 3\nzzz 0 0 1\nc -1 0.5 2\n")
    tokens = _encoder().tokens  # [PAD] [UNK] a b c d
    matrix, coverage = vector_init(tokens, path)
    assert matrix.shape == (6, 3) and matrix.dtype == np.float32
    assert matrix[2].tolist() == [1, 2, 3] and matrix[4].tolist() == [-1, 0.5, 2]
    assert matrix[0].tolist() == [0, 0, 0] and coverage == 0.5  # a and c of a, b, c, d
    assert np.isfinite(matrix).all() and not (matrix[3] == 0).all()  # b: noise, not zeros
    adapter = BiLSTMAdapter.build(_encoder(), 2, dict(SMALL, emb_dim=300), vectors=path)
    assert adapter.options["emb_dim"] == 3 and adapter.vector_coverage == 0.5
    assert adapter.model.text.embedding.weight.numpy()[4].tolist() == [-1, 0.5, 2]


def test_bad_vectors_are_user_errors(tmp_path):
    bad = write(str(tmp_path / "bad.txt"), "a 1 2 3\nb 1 x\n")
    with pytest.raises(UserError, match="bad.txt"):
        vector_init(_encoder().tokens, bad)
    with pytest.raises(UserError, match="missing.txt: no such file"):
        vector_init(_encoder().tokens, str(tmp_path / "missing.txt"))
    assert BoWAdapter.build(_encoder(), 2, SMALL, vectors=bad).vector_coverage is None  # no embeddings to fill


# ---- adapters

def _examples(pair):
    return [Example(t, OTHER[i] if pair else None, i % 2) for i, t in enumerate(TEXTS)]


def _build(cls, pair, num_labels=3, seed=0):
    paddle.seed(seed)
    examples = _examples(pair)
    adapter = cls.build(WordEncoder.build(example_texts(examples), pair), num_labels, SMALL)
    if cls is BoWAdapter:  # trained-looking weights, so that a wrong feature would show
        adapter.model.table.weight.set_value(paddle.randn(adapter.model.table.weight.shape))
    adapter.eval()
    return adapter, adapter.encoder.encode(examples, 64)


def _logits(adapter, arrays):
    with paddle.no_grad():
        return adapter({k: paddle.to_tensor(v) for k, v in arrays.items()})["logits"].numpy()


def _batch(adapter, feats, rows, extra=0):
    """Rows of feats padded to their longest, plus `extra` more padding columns."""
    batch = collate(feats, np.asarray(rows))
    return {k: np.pad(batch[k], ((0, 0), (0, extra))) for k in adapter.encoder.input_names}


@pytest.mark.parametrize("cls", ADAPTERS)
@pytest.mark.parametrize("pair", [False, True])
def test_forward_shapes_and_mask(cls, pair):
    adapter, feats = _build(cls, pair)
    arrays = _batch(adapter, feats, range(5))
    out = adapter({k: paddle.to_tensor(v) for k, v in arrays.items()})
    assert out["logits"].shape == [5, 3] and out["features"] == []
    assert (out["mask"].numpy() == (arrays["ids_a"] != 0)).all() and out["mask"].dtype == paddle.float32
    assert adapter.shape()["layers"] is None and adapter.shape()["heads"] is None
    with pytest.raises(UserError, match="prediction-layer distillation"):
        adapter({k: paddle.to_tensor(v) for k, v in arrays.items()}, requests=[("hidden", 1, None)])


@pytest.mark.parametrize("cls", ADAPTERS)
@pytest.mark.parametrize("pair", [False, True])
def test_logits_do_not_depend_on_padding(cls, pair):
    adapter, feats = _build(cls, pair)
    together = _logits(adapter, _batch(adapter, feats, range(5), extra=4))
    alone = np.concatenate([_logits(adapter, _batch(adapter, feats, [i])) for i in range(5)])
    assert np.abs(together).max() > 1e-3  # not trivially equal
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_bilstm_reads_each_direction_over_the_real_words_only():
    adapter, feats = _build(BiLSTMAdapter, False)
    text = adapter.model.text
    ids = _batch(adapter, feats, range(5), extra=2)["ids_a"]
    with paddle.no_grad():
        got = text(paddle.to_tensor(ids)).numpy()
        for row, x in enumerate(feats.columns["ids_a"]):
            forward, _ = text.forward_lstm(text.embedding(paddle.to_tensor(x[None])))
            backward, _ = text.backward_lstm(text.embedding(paddle.to_tensor(x[None, ::-1].copy())))
            want = np.concatenate([forward.numpy()[0].max(0), backward.numpy()[0].max(0)])
            np.testing.assert_allclose(got[row], want, atol=1e-6)
    assert isinstance(text, BiLSTMText) and got.shape == (5, 12)


def test_cnn_pools_windows_inside_the_text_and_handles_short_texts():
    adapter, _ = _build(CNNAdapter, False)
    text = adapter.model.text
    emb = text.embedding.weight.numpy()
    ids = np.array([[5, 0, 0, 0], [2, 3, 4, 5]], dtype=np.int64)
    with paddle.no_grad():
        got = text(paddle.to_tensor(ids)).numpy()
    for k, conv, block in zip((2, 3), text.convs, (slice(0, 4), slice(4, 8))):
        w, b = conv.weight.numpy(), conv.bias.numpy()  # [filters, emb, k]
        # the 1-word text: its only window is the word followed by zero vectors
        np.testing.assert_allclose(got[0, block], np.maximum(w[:, :, 0] @ emb[5] + b, 0), atol=1e-5)
        windows = [sum(w[:, :, j] @ emb[ids[1, t + j]] for j in range(k)) + b for t in range(4 - k + 1)]
        np.testing.assert_allclose(got[1, block], np.maximum(np.max(windows, axis=0), 0), atol=1e-5)


def test_bow_sees_word_order_and_which_text_a_word_is_in():
    adapter, _ = _build(BoWAdapter, True)
    enc = adapter.encoder
    rows = lambda a, b: _logits(adapter, {"ids_a": np.array([a]), "ids_b": np.array([b])})[0]  # noqa: E731
    x, y = enc.vocab["film"], enc.vocab["great"]
    assert np.abs(rows([x, y], [x]) - rows([y, x], [x])).max() > 1e-3  # bigrams
    assert np.abs(rows([x], [y]) - rows([y], [x])).max() > 1e-3  # separate regions for text_b
    table, bias = adapter.model.table.weight.numpy(), adapter.model.bias.numpy()
    v, start = len(enc), 2 * len(enc)
    want = table[x] + table[y] + table[start + (x * PRIME + y) % 97] + table[v + x] + bias
    np.testing.assert_allclose(rows([x, y], [x]), want, atol=1e-5)


@pytest.mark.parametrize("cls", ADAPTERS)
def test_save_load_identical_logits_and_label_info(cls, tmp_path):
    adapter, feats = _build(cls, True)
    adapter.label_info = {"id2label": {"0": "no", "1": "yes", "2": "maybe"}}
    adapter.save(str(tmp_path))
    config = json.load(open(tmp_path / "config.json"))
    assert config["distill_arch"] == cls.arch and config["num_labels"] == 3 and config["pair"] is True
    assert all(name in config for name in WORD_OPTIONS) and config["id2label"]["2"] == "maybe"
    back = cls.load(str(tmp_path))
    back.eval()
    arrays = _batch(adapter, feats, range(5))
    np.testing.assert_array_equal(_logits(back, arrays), _logits(adapter, arrays))
    assert back.label_info == adapter.label_info and back.encoder.signature() == adapter.encoder.signature()
    resized = cls.load(str(tmp_path), num_labels=5)
    resized.eval()
    assert _logits(resized, arrays).shape == (5, 5) and resized.num_labels == 5


def test_load_refuses_another_architecture(tmp_path):
    _build(BoWAdapter, False)[0].save(str(tmp_path))
    with pytest.raises(UserError, match='config.json: expected "distill_arch": "cnn"'):
        CNNAdapter.load(str(tmp_path))


@pytest.mark.parametrize("cls", ADAPTERS)
def test_with_labels_shares_the_encoder_not_the_classifier(cls):
    adapter, feats = _build(cls, False)
    twin = adapter.with_labels(4)
    twin.eval()
    assert twin.encoder is adapter.encoder and _logits(twin, _batch(adapter, feats, range(5))).shape == (5, 4)
    mine = {id(p) for p in adapter.model.parameters()}
    shared = [p for p in twin.model.parameters() if id(p) in mine]
    if cls is BoWAdapter:  # the table is the classifier
        assert shared == []
    else:
        assert {id(p) for p in shared} == {id(p) for n, p in adapter.model.named_parameters()
                                           if not n.startswith("classifier")}
        assert twin.model.classifier.weight.shape == [10, 4] and twin.model.text is adapter.model.text


def test_flops_hand_checked():
    cnn, _ = _build(CNNAdapter, False)  # emb 8, 4 filters of widths 2 and 3, mlp 10, 3 labels
    assert cnn.flops(5) == 2 * (5 * (2 + 3) * 8 * 4 + 8 * 10 + 10 * 3)
    bilstm, _ = _build(BiLSTMAdapter, False)  # hidden 6: per word and direction 4 gates x 6 x (8 + 6)
    assert bilstm.flops(5) == 2 * (5 * 2 * 4 * 6 * 14 + 12 * 10 + 10 * 3)
    bow, _ = _build(BoWAdapter, False)
    assert bow.flops(4) == 3 * (4 + 3)  # 4 words + 3 bigrams, 3 labels
    bow_pair, _ = _build(BoWAdapter, True)
    assert bow_pair.flops(5) == 3 * ((3 + 2) + (2 + 1))  # texts of 3 and 2 words
    assert bow.num_parameters() == (len(bow.encoder) + 97) * 3 + 3


def test_dropout_only_in_training():
    adapter, feats = _build(CNNAdapter, False)
    adapter.model.dropout = 0.5
    arrays = _batch(adapter, feats, range(5))
    np.testing.assert_array_equal(_logits(adapter, arrays), _logits(adapter, arrays))
    adapter.train()
    assert np.abs(_logits(adapter, arrays) - _logits(adapter, arrays)).max() > 1e-4


@pytest.mark.parametrize("cls", ADAPTERS)
def test_export_runs_in_onnxruntime_with_the_same_logits(cls, tmp_path):
    import onnxruntime

    from utils.inference import export_onnx, export_static
    adapter, feats = _build(cls, True)
    export_static(adapter, str(tmp_path))
    export_onnx(str(tmp_path))
    arrays = _batch(adapter, feats, range(5))
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, arrays)[0], _logits(adapter, arrays), atol=1e-5)
