"""data_augmentation.py: candidates, --N, pair tasks, formats, determinism, resume, vectors, Tang's methods."""
import os

import numpy as np
import pytest
from conftest import SHARED_GLUE, needs_shared_glue, write

import data_augmentation
from utils.augment import MaskedLM, Neighbours, load_vectors, variants, word_spans
from utils.tasks.sequence import TsvFile, get_task, read_examples
from utils.tang import MASK, BasicTagger, TangSampler

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "the", "a", "movie", "film", "was", "is", "great",
         "good", "bad", "dull", "plot", "cast", "story", "and", "not", ".", ",", "'", "won", "t", "un", "##watch",
         "##able", "##s", "dread", "##ful"]
# 2-d vectors with a known cosine order: around "unwatchable" lie dreadful, then awful, then dull; great points away
VECTORS = {"unwatchable": (1.0, 0.0), "dreadful": (0.95, 0.1), "awful": (0.8, 0.3), "dull": (0.5, 0.5),
           "great": (-1.0, 0.0), "good": (-0.9, 0.2), "movie": (0.0, 1.0), "film": (0.1, 0.95), "plot": (0.2, 0.9),
           "cast": (-0.1, 0.9), "story": (0.15, 0.92)}


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    from paddlenlp.transformers import BertForMaskedLM

    from utils.demo import make_tiny_bert
    return make_tiny_bert(str(tmp_path_factory.mktemp("mlm") / "tiny-mlm"), words=WORDS, model_class=BertForMaskedLM)


@pytest.fixture(scope="module")
def glove(tmp_path_factory):
    path = tmp_path_factory.mktemp("vec") / "glove.txt"
    return write(str(path), "".join(f"{w} {x} {y}\n" for w, (x, y) in VECTORS.items()))


SST2 = "sentence\tlabel\n" + "".join(f"{t} \t{label}\n" for t, label in [
    ("the movie was great", 1), ("the plot was dull and unwatchable", 0), ("a film , not a story", 0),
    ("the cast won't save it", 0), ("great story", 1), ("the plot is good", 1), ("dull .", 0)] * 3)


def sst2_dir(tmp_path, text=SST2):
    write(str(tmp_path / "glue" / "SST-2" / "train.tsv"), text)
    return str(tmp_path / "glue")


def run(argv):
    return data_augmentation.main(argv)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# ---- algorithm pieces

def test_neighbours_are_cosine_ordered_and_cached(glove):
    near = Neighbours(load_vectors(glove), top_m=3)
    assert near.lookup(["unwatchable"])["unwatchable"] == ["dreadful", "awful", "dull"]
    assert near.lookup(["great"])["great"][0] == "good"
    assert near.lookup(["zzz"])["zzz"] == []  # no vector: no candidates, the word stays
    assert "unwatchable" in near.cache


def test_max_vectors_keeps_the_first_rows(glove):
    assert load_vectors(glove, max_vectors=4).index_to_key == ["unwatchable", "dreadful", "awful", "dull"]


def test_npy_parquet_layout_matches_text_format(glove, tmp_path):
    import pandas as pd
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "glove_6B_50d_emb.npy", np.array(list(VECTORS.values()), dtype=np.float32))
    pd.DataFrame({"word": list(VECTORS)}).to_parquet(folder / "glove_6B_index.parquet")
    for path in (str(folder), str(folder / "glove_6B_50d_emb.npy")):
        kv = load_vectors(path)
        assert kv.index_to_key == list(VECTORS)
        np.testing.assert_allclose(kv["awful"], VECTORS["awful"])
    assert Neighbours(load_vectors(str(folder)), 2).lookup(["unwatchable"])["unwatchable"] == ["dreadful", "awful"]


def test_masked_lm_candidates_are_whole_words_from_the_vocabulary(mlm_dir):
    from paddlenlp.transformers import BertForMaskedLM, BertTokenizer
    tok = BertTokenizer.from_pretrained(mlm_dir)
    mlm = MaskedLM(BertForMaskedLM.from_pretrained(mlm_dir), tok, top_m=5)
    words = tok.basic_tokenizer.tokenize("the movie was great")
    pieces = [mlm.pieces(w) for w in words]
    got = mlm.predict([("k", pieces, 3)])["k"]
    assert len(got) == 5 and all(w in WORDS and not w.startswith(("##", "[")) for w in got)
    # the prediction for a sequence does not depend on the batch it is in
    more = mlm.predict([("k", pieces, 3), ("j", pieces, 1), ("l", [mlm.pieces("dull")], 0)])
    assert more["k"] == got
    # too long for 128 positions: a window around the word, not a crash
    long_pieces = [mlm.pieces("movie")] * 300
    assert len(mlm.predict([("long", long_pieces, 250)])["long"]) == 5


def test_variants_keep_original_first_unique_and_respect_n():
    text = "the plot was dull and long"
    words = text.split()
    cands = {3: ["bad", "slow", "flat"], 5: ["short", "tiring"]}
    out = variants(text, words, word_spans(text, words), cands, n_tries=4, p=1.0, rng=np.random.default_rng(0))
    assert out[0] == text and len(out) == len(set(out)) and 2 <= len(out) <= 5
    for v in out[1:]:
        w = v.split()
        assert w[:3] == words[:3] and w[4] == "and" and w[3] in cands[3] and w[5] in cands[5]
    assert variants(text, words, word_spans(text, words), cands, 0, 1.0, np.random.default_rng(0)) == [text]


def test_word_spans_keep_punctuation_verbatim():
    text = "The cast won't save it "
    words = ["the", "cast", "won", "'", "t", "save", "it"]
    spans = word_spans(text, words)
    assert [text[a:b] for a, b in spans] == ["The", "cast", "won", "'", "t", "save", "it"]


# ---- the script

def test_n_is_respected_and_candidates_come_from_mlm_and_vectors(tmp_path, mlm_dir, glove):
    glue = sst2_dir(tmp_path)
    out = run(["--task_name", "sst-2", "--glue_dir", glue, "--pretrained_bert_model", mlm_dir, "--glove_embs", glove,
               "--N", "2", "--p", "1.0", "--M", "3"])
    assert out == os.path.join(glue, "SST-2", "train_aug.tsv")
    lines = read_bytes(out).decode().splitlines()
    assert lines[0] == "sentence\tlabel"
    originals = SST2.splitlines()[1:]
    # each original row is followed by at most N=2 variants (the task default 20 would give more)
    groups, current = [], None
    for line in lines[1:]:
        if originals and line == originals[0]:
            originals.pop(0)
            current = [line]
            groups.append(current)
        else:
            current.append(line)
    assert not originals and len(groups) == 21
    assert all(len(g) <= 3 for g in groups) and sum(len(g) for g in groups) > 21
    # "unwatchable" is three pieces: its replacements are vector neighbours
    unwatchable = [g for g in groups if "unwatchable" in g[0]][0]
    assert {v.split()[5] for v in unwatchable[1:]} <= {"dreadful", "awful", "dull"}
    assert all(line.endswith(" \t0") or line.endswith(" \t1") for line in lines[1:])  # SST-2's trailing space kept
    assert "won't" in "".join(lines)  # re-joined in place: no "won ' t"
    assert len(read_examples(get_task("SST-2"), os.path.dirname(out), "train_aug")) == len(lines) - 1


def test_n_zero_reproduces_the_input(tmp_path, glove):
    glue = sst2_dir(tmp_path)
    out = run(["--task_name", "SST-2", "--glue_dir", glue, "--pretrained_bert_model", "none", "--glove_embs", glove,
               "--N", "0"])
    assert read_bytes(out) == SST2.encode()


MRPC = ("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        "1\t1\t2\tthe movie was great .\tthe film was good .\n"
        "0\t3\t4\tthe plot was dull \"indeed\"\tthe story is great\n")
COLA = "gj04\t1\t\tthe movie was great .\nclc95\t0\t*\tthe film was dull good .\ncj99\t1\t\tthe plot is good ."
RTE = "index\tsentence1\tsentence2\tlabel\n0\tthe cast was great\tthe movie was good\tentailment\n"
STSB = ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tthe movie was great\tthe film was good\t5.000\n")


@pytest.mark.parametrize("task,text,cols", [("MRPC", MRPC, (3, 4)), ("CoLA", COLA, (3,)), ("RTE", RTE, (1, 2)),
                                            ("STS-B", STSB, (7, 8))])
def test_format_preserved_and_pairs_keep_the_other_column(tmp_path, glove, task, text, cols):
    folder = tmp_path / "glue" / task
    write(str(folder / "train.tsv"), text)
    out = run(["--task_name", task, "--glue_dir", str(tmp_path / "glue"), "--pretrained_bert_model", "none",
               "--glove_embs", glove, "--N", "4", "--p", "1.0"])
    raw = read_bytes(out).decode("utf-8")
    source = text.lstrip("\ufeff").splitlines()
    assert raw.startswith("\ufeff") == text.startswith("\ufeff")
    lines = raw.lstrip("\ufeff").splitlines()
    spec = get_task(task)
    if spec.header:
        assert lines[0] == source[0]
        source, lines = source[1:], lines[1:]
    assert lines[0] == source[0]  # the original row first
    rows = [line.split("\t") for line in lines]
    originals = [row.split("\t") for row in source]
    assert len(rows) > len(originals)
    for row in rows:
        assert len(row) == len(originals[0])
        # a variant differs from its original in exactly one text column (pairs: the other stays original)
        match = [o for o in originals if sum(row[i] != o[i] for i in range(len(o))) <= 1
                 and all(row[i] == o[i] for i in range(len(o)) if i not in cols)]
        assert match, row
    assert len(list(TsvFile(out, spec).examples())) == len(rows)  # the task's own reader loads it


def test_same_seed_same_bytes_whatever_batch_chunk_or_workers(tmp_path, mlm_dir, glove):
    glue = sst2_dir(tmp_path)
    base = ["--task_name", "SST-2", "--glue_dir", glue, "--pretrained_bert_model", mlm_dir, "--glove_embs", glove,
            "--N", "5", "--method", "tinybert,tang", "--p_pos", "0"]
    outputs = []
    for i, extra in enumerate([[], ["--batch_size", "1", "--chunk_size", "4"],
                               ["--num_workers", "2", "--chunk_size", "5"]]):
        outputs.append(read_bytes(run(base + ["--output", str(tmp_path / f"out{i}.tsv")] + extra)))
    assert outputs[0] == outputs[1] == outputs[2]
    import paddle
    assert paddle.is_grad_enabled()  # the masked LM runs under no_grad without switching gradients off globally
    other = read_bytes(run(base + ["--output", str(tmp_path / "seed.tsv"), "--seed", "7"]))
    assert other != outputs[0]


class Killed(Exception):
    pass


def test_killed_and_resumed_is_byte_identical(tmp_path, glove, monkeypatch):
    glue = sst2_dir(tmp_path)
    base = ["--task_name", "SST-2", "--glue_dir", glue, "--pretrained_bert_model", "none", "--glove_embs", glove,
            "--N", "6", "--chunk_size", "4"]
    full = read_bytes(run(base + ["--output", str(tmp_path / "full.tsv")]))
    target = str(tmp_path / "resumed.tsv")
    real, calls = data_augmentation.augment_chunk, []

    def dies_on_third(ctx, chunk, cols):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        return real(ctx, chunk, cols)

    monkeypatch.setattr(data_augmentation, "augment_chunk", dies_on_third)
    with pytest.raises(Killed):
        run(base + ["--output", target])
    assert not os.path.exists(target)  # a half-written file never carries the final name
    with open(target + ".tmp", "ab") as f:
        f.write(b"half a line that was never committ")  # killed mid-write
    monkeypatch.setattr(data_augmentation, "augment_chunk", real)
    run(base + ["--output", target, "--resume"])
    assert read_bytes(target) == full
    assert not os.path.exists(target + ".tmp") and not os.path.exists(target + ".progress.json")


def test_shards_merge_to_the_single_run(tmp_path, glove):
    glue = sst2_dir(tmp_path)
    base = ["--task_name", "SST-2", "--glue_dir", glue, "--pretrained_bert_model", "none", "--glove_embs", glove,
            "--N", "3"]
    full = read_bytes(run(base + ["--output", str(tmp_path / "full.tsv")]))
    target = str(tmp_path / "sharded.tsv")
    for i in range(3):
        run(base + ["--output", target, "--shard", f"{i}/3"])
    run(base + ["--output", target, "--merge", "3"])
    assert read_bytes(target) == full


@pytest.mark.parametrize("case,expected", [
    ("row", "train.tsv:3: expected 2 tab-separated columns, found 3"),
    ("label", "train.tsv:2: label 'x' is not one of 0, 1"),
    ("vectors", "unreadable word vectors"),
    ("model", "no such"),
    ("no_head", "no masked-LM head"),
    ("p", "--p must be a probability"),
])
def test_bad_input_one_error_nothing_written(tmp_path, glove, tiny_bert, capsys, case, expected):
    text = {"row": "sentence\tlabel\nok \t1\nbad \t1\textra\n", "label": "sentence\tlabel\nok \tx\n"}.get(case, SST2)
    glue = sst2_dir(tmp_path, text)
    vectors = write(str(tmp_path / "bad.txt"), "word 0.1 zzz\nother 0.2\n") if case == "vectors" else glove
    model = {"model": str(tmp_path / "missing"), "no_head": tiny_bert}.get(case, "none")
    argv = ["--task_name", "SST-2", "--glue_dir", glue, "--pretrained_bert_model", model, "--glove_embs", vectors]
    with pytest.raises(SystemExit) as exit_info:
        run(argv + (["--p", "1.5"] if case == "p" else []))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert sorted(os.listdir(os.path.join(glue, "SST-2"))) == ["train.tsv"]


# ---- Tang et al.

class FakeTagger(BasicTagger):
    """Whitespace words tagged from a fixed table (spaCy is optional)."""
    TAGS = {"movie": "NOUN", "film": "NOUN", "plot": "NOUN", "great": "ADJ", "dull": "ADJ", "was": "AUX"}

    def __init__(self):
        pass

    def __call__(self, texts):
        out = []
        for text in texts:
            words, cursor = [], 0
            for w in text.split():
                start = text.index(w, cursor)
                cursor = start + len(w)
                words.append((w, self.TAGS.get(w, "X"), (start, cursor)))
            out.append(words)
        return out


def test_tang_masking_rate():
    sampler = TangSampler(0.3, 0.0, 0.0, tagger=FakeTagger())
    text = " ".join(["movie"] * 400)
    tokens = FakeTagger()([text])[0]
    rng = np.random.default_rng(0)
    masked = [sampler.sample(text, tokens, rng).split().count(MASK) for _ in range(50)]
    assert abs(np.mean(masked) / 400 - 0.3) < 0.01  # 20,000 draws: sd 0.003


def test_tang_pos_replacement_follows_unigram_counts_per_tag():
    corpus = ["movie movie movie film", "plot great dull dull"] * 5  # NOUN: movie 15, film 5, plot 5
    sampler = TangSampler(0.0, 1.0, 0.0, tagger=FakeTagger()).fit(corpus)
    words, cum = sampler.pos_words["NOUN"]
    assert words == ["film", "movie", "plot"] and list(cum) == [5, 20, 25]
    text = " ".join(["movie", "great"] * 1000)
    out = sampler.sample(text, FakeTagger()([text])[0], np.random.default_rng(1)).split()
    nouns, adjs = out[0::2], out[1::2]
    assert set(nouns) <= {"movie", "film", "plot"} and set(adjs) <= {"great", "dull"}
    assert abs(nouns.count("movie") / 1000 - 0.6) < 0.05 and abs(adjs.count("dull") / 1000 - 2 / 3) < 0.05


def test_tang_ngram_and_sentence_sampling():
    text = "the movie was great . the plot was dull ! a film"
    tokens = FakeTagger()([text])[0]
    rng = np.random.default_rng(2)
    only_ngrams = TangSampler(0.0, 0.0, 1.0, max_ngram=5, p_sent=0.0, tagger=FakeTagger())
    for _ in range(200):
        out = only_ngrams.sample(text, tokens, rng)
        assert 1 <= len(out.split()) <= 5 and out in text
    sentences = TangSampler(0.0, 0.0, 1.0, p_sent=1.0, tagger=FakeTagger())
    seen = {sentences.sample(text, tokens, rng) for _ in range(100)}
    assert seen == {"the movie was great .", "the plot was dull !", "a film"}
    quarter = TangSampler(0.0, 0.0, 0.25, p_sent=0.0, tagger=FakeTagger())
    shortened = np.mean([quarter.sample(text, tokens, rng) != text for _ in range(4000)])
    assert abs(shortened - 0.25) < 0.03


def test_tang_variants_unique_original_first():
    sampler = TangSampler(0.2, 0.0, 0.25, tagger=FakeTagger())
    got = sampler.variants(["the movie was great", "dull"], 10, [np.random.default_rng(i) for i in range(2)])
    assert got[0][0] == "the movie was great" and len(got[0]) == len(set(got[0])) and 3 <= len(got[0]) <= 11
    assert got[1][0] == "dull" and set(got[1]) <= {"dull", MASK}


def test_spacy_tagger_when_installed():
    pytest.importorskip("spacy")
    from utils.errors import UserError
    from utils.tang import SpacyTagger
    try:
        tagger = SpacyTagger()
    except UserError:
        pytest.skip("no English spaCy model installed")
    (tokens,) = tagger(["The movie was great ."])
    assert [(w, tag) for w, tag, _ in tokens][:4] == [("the", "DET"), ("movie", "NOUN"), ("was", "AUX"),
                                                     ("great", "ADJ")]
    assert tokens[1][2] == (4, 9)


def test_fast_word_split_matches_the_basic_tokenizer():
    from paddlenlp.transformers.bert.tokenizer import BasicTokenizer

    from utils.augment import split_words
    texts = ["The cast won't save it ", "a -- b...c (d) [e] {f} 3.5% $10 #1 @x ~y", "tab\tand\nnew line",
             "ctrl\x0bchar", "Café naïve résumé", "中文 text", "x [MASK] y"] + SST2.splitlines()
    for lower in (True, False):
        basic = BasicTokenizer(do_lower_case=lower, never_split=["[MASK]"])
        for text in texts:
            words, spans = split_words(text, basic)
            assert words == basic.tokenize(text), text
            assert all(s is None or text[s[0]:s[1]].lower() == (w if lower else w.lower())
                       for w, s in zip(words, spans) if s is not None and text.isascii())


def test_block_top_k_equals_a_full_sort(tmp_path):
    from gensim.models import KeyedVectors
    rng = np.random.default_rng(0)
    kv = KeyedVectors(vector_size=8)
    kv.add_vectors([f"w{i}" for i in range(1000)], rng.standard_normal((1000, 8)).astype(np.float32))
    unit = kv.vectors / np.linalg.norm(kv.vectors, axis=1, keepdims=True)
    near = Neighbours(kv, top_m=15, batch_size=7)
    queries = [f"w{i}" for i in range(0, 1000, 37)]
    got = near.lookup(queries)
    for q in queries:
        sims = unit @ unit[kv.key_to_index[q]]
        sims[kv.key_to_index[q]] = -np.inf
        assert got[q] == [f"w{j}" for j in np.argsort(-sims)[:15]]


@needs_shared_glue
def test_fast_word_split_on_real_glue_text():
    from paddlenlp.transformers.bert.tokenizer import BasicTokenizer

    from utils.augment import split_words
    basic = BasicTokenizer(do_lower_case=True)
    for task in ("SST-2", "MRPC", "RTE", "CoLA"):
        spec = get_task(task)
        for example in read_examples(spec, os.path.join(SHARED_GLUE, spec.name), "train", max_samples=3000):
            for text in (example.text_a, example.text_b):
                if text is not None:
                    assert split_words(text, basic)[0] == basic.tokenize(text), text
