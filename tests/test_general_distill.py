"""general_distill.py: task-agnostic distillation on a streamed corpus, its student loading everywhere, exact
resume, flat memory, and bad corpora refused."""
import json
import os
import random

import numpy as np
import paddle
import pytest
from conftest import kill_then_resume, write

import general_distill
import run_glue
import task_distill


def corpus_text(n=400, seed=0, words=None):
    from utils.demo import vocabulary
    words = words or [w for w in vocabulary() if w.isalpha()]
    rng = random.Random(seed)
    return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(2, 60))) + "\n" for _ in range(n))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write(str(tmp_path_factory.mktemp("corpus") / "corpus.txt"), corpus_text())


def argv(teacher, files, out, *extra, steps=8):
    return [str(a) for a in ["--teacher_path", teacher, "--input_file", *files, "--output_dir", out,
                             "--student_model_name_or_path", "2l-16d", "--max_steps", steps, "--save_steps", 4,
                             "--logging_steps", 2, "--batch_size", 16, "--max_seq_length", 24, "--block_lines", 50,
                             *extra]]


def test_general_model_is_a_student_for_both_stages_and_run_glue(tmp_path, corpus, tiny_teacher, demo_glue,
                                                                  learnt_task):
    tsv = os.path.join(demo_glue, "SST-2", "train.tsv")
    results = general_distill.main(argv(tiny_teacher, [corpus, tsv], tmp_path / "general"))
    assert results["corpus_texts"] == 400 + 240  # every line of the text file, the TSV's sentence column
    assert results["held_out_windows"] >= 6 and results["eval_inter_loss"] > 0
    model = tmp_path / "general" / "general_model"
    with open(model / "config.json") as f:
        assert json.load(f)["distill_arch"] == "bert"
    common = ["--task_name", "SST-2", "--glue_dir", demo_glue, "--max_steps", "2", "--max_seq_length", "32"]
    inter = task_distill.main(common + ["--teacher_path", tiny_teacher, "--student_model_name_or_path", str(model),
                                        "--intermediate_distill", "--output_dir", str(tmp_path / "inter")])
    assert inter["eval_inter_loss"] > 0
    # long enough to learn the task from a teacher that knows it (the majority label scores 0.525)
    glue, learnt_teacher, _ = learnt_task
    learn = ["--task_name", "SST-2", "--glue_dir", glue, "--max_steps", "150", "--save_steps", "50",
             "--learning_rate", "3e-3", "--max_seq_length", "32"]
    pred = task_distill.main(learn + ["--teacher_path", learnt_teacher, "--student_model_name_or_path", str(model),
                                      "--output_dir", str(tmp_path / "pred")])
    tuned = run_glue.main(learn + ["--model_name_or_path", str(model), "--output_dir", str(tmp_path / "tuned")])
    assert pred["eval_accuracy"] >= 0.7 and tuned["eval_accuracy"] >= 0.7  # measured 0.775 and 0.805


def test_general_distillation_lowers_the_held_out_loss(tmp_path, corpus, tiny_teacher):
    results = general_distill.main(argv(tiny_teacher, [corpus], tmp_path / "out", "--learning_rate", "3e-3",
                                        steps=40) + ["--save_steps", "20"])
    with open(tmp_path / "out" / "all_results.json") as f:
        assert json.load(f)["eval_inter_loss"] == results["eval_inter_loss"]
    from visualdl import LogReader
    import glob
    reader = LogReader(file_path=glob.glob(str(tmp_path / "out" / "runs" / "vdlrecords.*"))[0])
    losses = [r.value for r in reader.get_data("scalar", "eval/inter_loss")]
    assert len(losses) == 2 and losses[1] < losses[0]


def test_progressive_mobilebert_general_distillation(tmp_path, corpus, tiny_teacher):
    out = tmp_path / "mobile"
    results = general_distill.main(argv(tiny_teacher, [corpus], out, "--progressive") + [
        "--student_model_name_or_path", "mobilebert-2l-32d-16b"])
    assert [p["phase"] for p in results["phases"]] == ["layer1", "layer2"]
    with open(out / "general_model" / "config.json") as f:
        assert json.load(f)["distill_arch"] == "mobilebert"


def weights(folder):
    return {k: v.numpy() for k, v in paddle.load(str(folder / "checkpoint" / "trainable.pdparams")).items()}


def test_killed_and_resumed_equals_uninterrupted(tmp_path, corpus, tiny_teacher, monkeypatch):
    general_distill.main(argv(tiny_teacher, [corpus], tmp_path / "full", steps=12))
    killed = argv(tiny_teacher, [corpus], tmp_path / "killed", steps=12)
    kill_then_resume(monkeypatch, 7, lambda: general_distill.main(killed),
                     lambda: general_distill.main(killed + ["--resume"]))
    full, resumed = weights(tmp_path / "full"), weights(tmp_path / "killed")
    assert full.keys() == resumed.keys()
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_an_epoch_visits_every_training_window_once_and_never_a_held_out_text(tmp_path, tiny_bert):
    from utils.corpus import Corpus, CorpusPlan
    from utils.models import load_tokenizer
    lines = [f"w{i}" for i in range(1, 251)]  # one distinct word piece ... tokenised as [UNK]: use line numbers
    path = write(str(tmp_path / "c.txt"), "\n".join(lines) + "\n")
    tokenizer = load_tokenizer(tiny_bert)
    corpus = Corpus([path], tokenizer, 16, block_lines=40, held_out_every=10, max_held_out=1000)
    assert corpus.texts == 250 and len(corpus.held_out) == 25  # texts 9, 19, ..., 249 (0-based)
    plan = CorpusPlan(corpus, 8, seed=3)
    seen = []
    for step in range(1, plan.steps_per_epoch + 1):
        block, index = plan.at(step)
        seen += [(block, int(i)) for i in index]
    per_block = [len(b[5]) for b in corpus.blocks]
    assert sorted(seen) == [(b, i) for b, n in enumerate(per_block) for i in range(n)]
    assert sum(per_block) == 225
    again = CorpusPlan(corpus, 8, seed=3)
    assert all(np.array_equal(plan.at(s)[1], again.at(s)[1]) for s in (1, 17, plan.steps_per_epoch + 5))


def test_long_lines_become_windows(tiny_bert):
    from utils.corpus import windows
    from utils.models import load_tokenizer
    tokenizer = load_tokenizer(tiny_bert)
    text = " ".join(["good"] * 25)
    out = windows(tokenizer, [text], 12)  # 10 word pieces a window
    assert [len(w) for w in out] == [12, 12, 7]
    assert all(w[0] == tokenizer.cls_token_id and w[-1] == tokenizer.sep_token_id for w in out)


class WordTokenizer:
    """A stand-in for the WordPiece tokenizer (one id per word): the memory test measures the corpus, not it."""
    cls_token_id, sep_token_id, pad_token_id = 1, 2, 0

    def __call__(self, texts, **kwargs):
        return {"input_ids": [[3 + len(w) for w in t.split()] for t in texts]}


def test_memory_stays_flat_as_the_corpus_grows(tmp_path):
    import tracemalloc

    from utils.corpus import Corpus, CorpusPlan
    peaks = []
    for n in (5000, 20000):
        path = write(str(tmp_path / f"c{n}.txt"), corpus_text(n, seed=n))
        tracemalloc.start()
        corpus = Corpus([path], WordTokenizer(), 64, block_lines=500)
        plan = CorpusPlan(corpus, 32, seed=0)
        for step in range(1, plan.steps_per_epoch + 1, 5):
            corpus.block_features(plan.at(step)[0])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks  # 4x the text, about the same peak: one block at a time


@pytest.mark.parametrize("content,message", [
    (b"", "no text to train on"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "c.txt:3: a NUL byte: this looks like a binary file"),
    (b"fine line\nalso fine\nbad \xff\xfe line\n", "c.txt:3: not UTF-8 text"),
])
def test_bad_corpus_one_error_nothing_written(tmp_path, tiny_teacher, capsys, content, message):
    path = write(str(tmp_path / "c.txt"), content)
    with pytest.raises(SystemExit) as info:
        general_distill.main(argv(tiny_teacher, [path], tmp_path / "out"))
    err = capsys.readouterr().err.strip().replace("\r", "\n").split("\n")[-1]
    assert info.value.code == 2 and err.startswith("error: ") and message in err, err
    assert not os.path.exists(tmp_path / "out")


def test_a_tsv_without_a_text_column_is_refused(tmp_path, tiny_teacher, capsys):
    path = write(str(tmp_path / "c.tsv"), "id\tscore\n1\t2\n")
    with pytest.raises(SystemExit):
        general_distill.main(argv(tiny_teacher, [path], tmp_path / "out"))
    assert "c.tsv:1: no text column in the header" in capsys.readouterr().err


def test_glue_files_give_their_text_columns_cola_without_a_header(tmp_path):
    from utils.corpus import read_lines
    cola = write(str(tmp_path / "CoLA" / "train.tsv"), "gj04\t1\t\tOur friends won't buy this.\nx\t0\t*\tBad one .\n")
    mrpc = write(str(tmp_path / "MRPC" / "train.tsv"), "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                                                          "1\t1\t2\tFirst text .\tSecond text .\n")
    assert [texts for _, _, texts in read_lines(cola)] == [["Our friends won't buy this."], ["Bad one ."]]
    assert [(n, texts) for n, _, texts in read_lines(mrpc)] == [(2, ["First text .", "Second text ."])]
