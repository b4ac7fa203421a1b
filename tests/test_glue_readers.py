import hashlib
import os
import subprocess
import sys

import pytest
from conftest import ROOT, SHARED_GLUE, needs_shared_glue, write

from utils.errors import UserError
from utils.tasks.sequence import Example, TsvFile, get_task, read_examples

# One fixture per canonical layout, with its quirks: CoLA headerless with no final newline, MRPC's BOM,
# quotes inside sentences, SST-2's space before the tab, MNLI's different train/dev widths.
FIXTURES = {
    "CoLA": {"train.tsv": "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub \"dry\".\n",
             "dev.tsv": "gj04\t1\t\tThe sailors rode the breeze clear of the rocks."},
    "SST-2": {"train.tsv": "sentence\tlabel\nhide new secretions from the \"parental\" units \t0\ncharming \t1\n",
              "dev.tsv": "sentence\tlabel\nit 's a charming journey . \t1\n"},
    "MRPC": {"train.tsv": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                          "1\t702876\t702977\tAmrozi accused his brother , whom he called \" the witness \" .\t"
                          "Referring to him as only \" the witness \" , Amrozi accused his brother .\n",
             "dev.tsv": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\tA cat .\tA dog .\n"},
    "STS-B": {"train.tsv": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                           "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\t"
                           "An air plane is taking off.\t5.000\n",
              "dev.tsv": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                         "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man.\tA woman.\t1.5\n"},
    "QQP": {"train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tHow?\tWhy?\t0\n",
            "dev.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tWhat is \"x\"?\tWhat's x?\t1\n"},
    "MNLI": {"train.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                          "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
                          "0\t1\t1e\tgov\t( a )\t( b )\t(A)\t(B)\tPremise one.\tHypothesis one.\tneutral\tneutral\n",
             "dev_matched.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                                "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\t"
                                "label4\tlabel5\tgold_label\n0\t1\t1e\tgov\ta\tb\tA\tB\tP m.\tH m.\tneutral\t"
                                "neutral\tentailment\tneutral\tneutral\tneutral\n",
             "dev_mismatched.tsv": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                                   "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\t"
                                   "label4\tlabel5\tgold_label\n0\t1\t1e\tgov\ta\tb\tA\tB\tP mm.\tH mm.\t"
                                   "contradiction\tneutral\tcontradiction\tcontradiction\tneutral\tcontradiction\n"},
    "QNLI": {"train.tsv": "index\tquestion\tsentence\tlabel\n0\tWhen?\tIn 1990.\tentailment\n",
             "dev.tsv": "index\tquestion\tsentence\tlabel\n0\tWho?\tNobody.\tnot_entailment\n"},
    "RTE": {"train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA \"b\" c.\tA c.\tnot_entailment\n",
            "dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tX.\tY.\tentailment\n"},
    "WNLI": {"train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tI stuck a pin.\tThe pin.\t1\n",
             "dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\t0\n"},
}
EXPECTED_TRAIN = {
    "CoLA": [Example("Our friends won't buy this analysis.", None, 1), Example('They drank the pub "dry".', None, 0)],
    "SST-2": [Example('hide new secretions from the "parental" units ', None, 0), Example("charming ", None, 1)],
    "MRPC": [Example('Amrozi accused his brother , whom he called " the witness " .',
                     'Referring to him as only " the witness " , Amrozi accused his brother .', 1)],
    "STS-B": [Example("A plane is taking off.", "An air plane is taking off.", 5.0)],
    "QQP": [Example("How?", "Why?", 0)],
    "MNLI": [Example("Premise one.", "Hypothesis one.", 2)],
    "QNLI": [Example("When?", "In 1990.", 0)],
    "RTE": [Example('A "b" c.', "A c.", 1)],
    "WNLI": [Example("I stuck a pin.", "The pin.", 1)],
}


@pytest.fixture
def fixture_glue(tmp_path):
    for task, files in FIXTURES.items():
        for name, text in files.items():
            write(str(tmp_path / task / name), text)
    return tmp_path


@pytest.mark.parametrize("task", sorted(FIXTURES))
def test_reads_every_canonical_layout(fixture_glue, task):
    spec = get_task(task.lower())  # task names are case-insensitive
    assert read_examples(spec, str(fixture_glue / task), "train") == EXPECTED_TRAIN[task]
    for split in spec.dev_splits:
        assert len(read_examples(spec, str(fixture_glue / task), split)) >= 1


def test_mnli_dev_splits_and_labels(fixture_glue):
    spec = get_task("MNLI")
    assert read_examples(spec, str(fixture_glue / "MNLI"), "dev_matched") == [Example("P m.", "H m.", 2)]
    assert read_examples(spec, str(fixture_glue / "MNLI"), "dev_mismatched") == [Example("P mm.", "H mm.", 0)]


def test_cola_last_line_without_newline_is_read(fixture_glue):
    assert read_examples(get_task("cola"), str(fixture_glue / "CoLA"), "dev") == [
        Example("The sailors rode the breeze clear of the rocks.", None, 1)]


def test_task_name_spellings():
    assert get_task("sst2") is get_task("SST-2") is get_task("sst-2") is get_task("Sst_2")
    with pytest.raises(UserError, match="unknown task 'sst3'.*SST-2"):
        get_task("sst3")


# ---- custom tasks

def test_custom_task_by_names_discovers_labels(tmp_path):
    write(str(tmp_path / "train.tsv"), "id\ttext\tother\ttag\n1\tgood\tx\tpos\n2\tbad\ty\tneg\n3\tok\tz\tmid\n")
    write(str(tmp_path / "dev.tsv"), "id\ttext\tother\ttag\n1\tfine\tx\tpos\n")
    spec = get_task("custom", {"text_a_column": "text", "text_b_column": "other", "label_column": "tag",
                               "data_dir": str(tmp_path)})
    assert spec.labels == ("mid", "neg", "pos") and spec.metrics == ("accuracy",)
    assert read_examples(spec, str(tmp_path), "dev") == [Example("fine", "x", 2)]


def test_custom_task_by_indices_without_header_and_regression(tmp_path):
    write(str(tmp_path / "train.tsv"), "0.5\tsome text\n3\tmore text\n")
    spec = get_task("custom", {"text_a_column": "1", "label_column": "0", "no_header": True, "regression": True,
                               "data_dir": str(tmp_path)})
    assert spec.is_regression and spec.main_metric == "spearman"
    assert read_examples(spec, str(tmp_path), "train") == [Example("some text", None, 0.5), Example("more text", None, 3.0)]


def test_custom_integer_labels_sort_numerically(tmp_path):
    write(str(tmp_path / "train.tsv"), "t\tl\na\t10\nb\t9\nc\t2\n")
    spec = get_task("custom", {"text_a_column": "t", "label_column": "l", "data_dir": str(tmp_path)})
    assert spec.labels == ("2", "9", "10")


def test_custom_unknown_column_lists_header(tmp_path):
    write(str(tmp_path / "train.tsv"), "t\tl\na\t1\n")
    with pytest.raises(UserError, match=r"train.tsv:1: no column 'text'.*t, l"):
        get_task("custom", {"text_a_column": "text", "label_column": "l", "data_dir": str(tmp_path)})


# ---- bad input: file, line and expectation in one message

@pytest.mark.parametrize("content, message", [
    ("sentence\tlabel\ngood \t1\nbad\t0\textra\n", r"train.tsv:3: expected 2 tab-separated columns, found 3"),
    ("sentence\tlabel\ngood \t1\nbad \t2\n", r"train.tsv:3: label '2' is not one of 0, 1"),
    ("", r"train.tsv: empty file"),
    ("sentence\tlabel\n", r"train.tsv: no examples"),
    (b"sentence\tlabel\ncaf\xe9 \t1\n", r"train.tsv:2: not UTF-8"),
])
def test_bad_files(tmp_path, content, message):
    write(str(tmp_path / "SST-2" / "train.tsv"), content)
    with pytest.raises(UserError, match=message):
        read_examples(get_task("SST-2"), str(tmp_path / "SST-2"), "train")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UserError, match=r"dev.tsv: no such file; expected the SST-2 TSV"):
        read_examples(get_task("SST-2"), str(tmp_path), "dev")
    with pytest.raises(UserError, match=r"a directory"):
        TsvFile(str(tmp_path), get_task("SST-2"))


def test_regression_label_must_be_a_number(tmp_path):
    header = FIXTURES["STS-B"]["train.tsv"].splitlines()[0]
    write(str(tmp_path / "train.tsv"), header + "\n0\tg\tf\ty\t1\tn\tn\tA.\tB.\thigh\n")
    with pytest.raises(UserError, match=r"train.tsv:2: label 'high' is not a number"):
        read_examples(get_task("STS-B"), str(tmp_path), "train")


# ---- the real GLUE files, when ../shared is there

REAL = {"SST-2": (67349, 872, {0, 1}), "MRPC": (3668, 408, {0, 1}), "RTE": (2490, 277, {0, 1}),
        "CoLA": (8551, 1043, {0, 1})}


@needs_shared_glue
@pytest.mark.parametrize("task", sorted(REAL))
def test_real_glue_row_counts_and_labels(task):
    n_train, n_dev, labels = REAL[task]
    spec = get_task(task)
    train = read_examples(spec, os.path.join(SHARED_GLUE, task), "train")
    dev = read_examples(spec, os.path.join(SHARED_GLUE, task), "dev")
    assert (len(train), len(dev)) == (n_train, n_dev)
    assert {e.label for e in train} == labels == {e.label for e in dev}
    assert all(e.text_a for e in train + dev)
    assert all((e.text_b is not None) == (spec.text_b is not None) for e in train)


@needs_shared_glue
def test_paddlenlp_route_reads_cached_glue_like_the_local_reader(tmp_path):
    """PaddleNLP's load_dataset reads $PPNLP_HOME/datasets/Glue/TASK when the md5 matches: no download."""
    for task in ("SST-2", "CoLA"):
        os.makedirs(tmp_path / "datasets" / "Glue" / task)
        for split in ("train", "dev"):
            with open(os.path.join(SHARED_GLUE, task, f"{split}.tsv"), "rb") as f:
                write(str(tmp_path / "datasets" / "Glue" / task / f"{split}.tsv"), f.read())
    code = ("import sys\nfrom utils.process import configure\nconfigure()\nfrom utils.tasks.sequence import get_task, load_split, read_examples\n"
            "for task in ('SST-2', 'CoLA'):\n"
            "    spec = get_task(task)\n"
            "    online = load_split(spec, None, 'dev')\n"
            f"    local = read_examples(spec, {SHARED_GLUE!r} + '/' + task, 'dev')\n"
            "    assert [(e.text_a.strip(), e.label) for e in online] == [(e.text_a.strip(), e.label) for e in local]\n"
            "    print(task, len(online))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PPNLP_HOME=str(tmp_path)),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SST-2 872" in out.stdout and "CoLA 1043" in out.stdout


@needs_shared_glue
def test_shared_files_are_canonical():
    sums = {}
    with open(os.path.join(SHARED_GLUE, "SHA256SUMS")) as f:
        for line in f:
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    with open(os.path.join(SHARED_GLUE, "SST-2", "dev.tsv"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == sums["SST-2/dev.tsv"]
