"""Span extraction (SQuAD v1.1): the metric against hand-computed cases, windows and labels, answers mapped back
to the original text exactly, the logits mask, teacher and both distillation stages through main() on tiny
models, export and prediction, and bad input."""
import json
import os

import numpy as np
import paddle
import pytest
from conftest import write

import export_model
import predict
import run_qa
import task_distill
from utils.errors import UserError
from utils.tasks.spans import (END, IGNORE, START, SpanTask, answer_f1, decode, encode, normalize_answer,
                               read_squad, span_problems, squad_scores)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "who", "visited", "in", "zoe", "cafe", "muller", "1999", ".",
         "where", "did", "go", "she", "then", "home", "went"]
QUICK = ["--max_seq_length", 32, "--batch_size", 16, "--logging_steps", 50, "--save_steps", 100, "--learning_rate",
         3e-3, "--doc_stride", 8]


def argv(*args):
    return [str(a) for a in args]


def squad_file(path, context, qas):
    return write(path, json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from paddlenlp.transformers import BertTokenizer
    path = write(str(tmp_path_factory.mktemp("vocab") / "vocab.txt"), "\n".join(VOCAB) + "\n")
    return BertTokenizer(path, do_lower_case=True)


def test_squad_metric_by_hand():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert normalize_answer("an apple a day") == "apple day"
    assert answer_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)  # P 2/2, R 2/3
    assert answer_f1("dog", "cat") == 0.0

    class Q:
        def __init__(self, id, answers):
            self.id, self.answers = id, [(a, 0) for a in answers]
    questions = [Q("1", ["Paris", "the city of Paris"]), Q("2", ["blue whale"]), Q("3", ["42"])]
    scores = squad_scores({"1": "city of Paris", "2": "whale", "3": "41"}, questions)
    # q1: exact with the second answer; q2: F1 2*(1*0.5)/1.5 = 2/3; q3: 0
    assert scores == pytest.approx({"exact_match": 1 / 3, "f1": (1 + 2 / 3 + 0) / 3})


def test_answers_map_back_exactly_through_windows(tokenizer, tmp_path):
    context = "Zoë visited Café Müller in 1999 . She then went home ."
    start = context.index("Café Müller")
    path = squad_file(str(tmp_path / "dev.json"), context, [
        {"id": "q1", "question": "Where did Zoë go?", "answers": [{"text": "Café Müller", "answer_start": start}]}])
    task = SpanTask(doc_stride=3, max_query_length=8)
    (q,) = read_squad(path, task)
    features = encode([q], tokenizer, 14)  # 14 - 3 separators - 5 question pieces = 6 context pieces a window
    assert len(features) > 1 and set(features.groups) == {0}
    covered = set()
    for row, labels in enumerate(features.labels):
        words = features.extra["word_index"][row]
        covered |= set(words[words >= 0].tolist())
        in_window = (labels[labels != IGNORE] & START).any() and labels[0] == 0
        assert in_window or labels[0] == START | END
    assert covered == set(range(len(q.words)))  # every context word lies in some window
    # logits that pick the labelled span in the window holding it: the answer comes back character for character
    logits = []
    for labels in features.labels:
        z = np.zeros((len(labels), 2), dtype=np.float32)
        if labels[0] == 0:
            z[np.nonzero(labels == START)[0], 0] = z[np.nonzero(labels == END)[0], 1] = 5.0
            z[np.nonzero(labels == START | END)[0]] = 5.0
        logits.append(z)
    assert decode(logits, features, max_answer_length=30, n_best_size=20) == {"q1": "Café Müller"}
    assert squad_scores({"q1": "Café Müller"}, [q]) == {"exact_match": 1.0, "f1": 1.0}


def test_span_logits_become_two_masked_classifications():
    logits = paddle.to_tensor(np.arange(12, dtype="float32").reshape([1, 6, 2]))
    labels = paddle.to_tensor([[0, IGNORE, IGNORE, START, END, IGNORE]])
    flat, targets = span_problems(logits, labels)
    assert flat.shape == [2, 6] and targets.tolist() == [3, 4]
    expected_start = [0, -1e4, -1e4, 6, 8, -1e4]
    np.testing.assert_allclose(flat.numpy(), [expected_start, [1, -1e4, -1e4, 7, 9, -1e4]])


@pytest.fixture(scope="module")
def qa(tmp_path_factory, tiny_bert):
    from utils.demo import write_squad
    root = tmp_path_factory.mktemp("qa")
    data = str(root / "data")
    write_squad(data, n_train=300, n_dev=60)
    teacher = run_qa.main(argv("--data_dir", data, "--model_name_or_path", tiny_bert, "--output_dir",
                               root / "teacher", "--max_steps", 200, *QUICK))
    config = write(str(root / "phases.json"), json.dumps({"phases": "tinybert",
                                                           "intermediate_matches": [{"preset": "tinybert"}]}))
    student = task_distill.main(argv("--task_name", "squad", "--data_dir", data, "--teacher_path",
                                     root / "teacher" / "best_model", "--student_model_name_or_path", "1l-32d",
                                     "--student_init", "random", "--max_steps", 200, "--distill_config", config,
                                     "--output_dir", root / "pred", *QUICK))
    return {"root": root, "data": data, "teacher": teacher, "student": student}


def test_teacher_and_student_train_and_predictions_match_the_run(qa, tmp_path):
    t, s = qa["teacher"], qa["student"]
    assert t["main_metric"] == "eval_f1" and {"eval_exact_match", "eval_f1"} <= set(t)
    assert t["eval_f1"] > 0.2  # chance is about 1/9 (a context has ~9 words)
    assert [p["phase"] for p in s["phases"]] == ["intermediate", "prediction"]
    assert s["eval_f1"] > 0.2  # measured 0.36: the student learnt spans too (chance about 1/9)
    export = str(tmp_path / "export")
    export_model.main(argv("--model_dir", qa["root"] / "pred" / "best_model", "--output_dir", export, "--onnx",
                           "--max_seq_length", 32))
    for backend in ("paddle", "onnx"):
        out = str(tmp_path / f"{backend}.json")
        results = predict.main(argv("--model_dir", export, "--task_name", "squad", "--data_dir", qa["data"],
                                    "--backend", backend, "--output_file", out, "--doc_stride", 8))
        assert results["dev_f1"] == pytest.approx(s["eval_f1"], abs=1e-9)
        answers = json.load(open(out))
        assert len(answers) == 60 and all(isinstance(a, str) for a in answers.values())
        assert json.load(open(str(tmp_path / f"{backend}.metrics.json")))["dev_f1"] == results["dev_f1"]


@pytest.mark.parametrize("case,expected", [
    ("moved_answer", "dev.json: question q7: answer 'Café' is not at answer_start 3 of its context"),
    ("empty_context", "dev.json: question q7: empty context"),
    ("invalid_json", "dev.json:2: not valid JSON"),
])
def test_bad_squad_input_is_refused_cleanly(case, expected, qa, tmp_path, capsys):
    data = str(tmp_path / "data")
    write(f"{data}/train.json", open(os.path.join(qa["data"], "train.json")).read())
    if case == "invalid_json":
        write(f"{data}/dev.json", '{"data": [\n{"title": }]}\n')
    else:
        squad_file(f"{data}/dev.json", "" if case == "empty_context" else "Zoë visited Café Müller .",
                   [{"id": "q7", "question": "where", "answers": [{"text": "Café", "answer_start": 3}]}])
    out = str(tmp_path / "out")
    with pytest.raises(SystemExit) as info:
        run_qa.main(argv("--data_dir", data, "--model_name_or_path", qa["root"] / "teacher" / "best_model",
                         "--output_dir", out, "--max_steps", 2))
    err = capsys.readouterr().err
    assert info.value.code == 2 and expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not os.path.exists(out)


def test_a_qa_model_refuses_plain_text_input(qa, tmp_path, capsys):
    export = str(tmp_path / "export")
    export_model.main(argv("--model_dir", qa["root"] / "teacher" / "best_model", "--output_dir", export))
    with pytest.raises(SystemExit) as info:
        predict.main(argv("--model_dir", export, "--input", write(str(tmp_path / "t.txt"), "a question\n")))
    assert info.value.code == 2 and "reads questions with their contexts" in capsys.readouterr().err


def test_reader_errors_without_the_scripts(tmp_path):
    with pytest.raises(UserError, match="expected a \"data\" list"):
        read_squad(write(str(tmp_path / "x.json"), '{"data": 3}'), SpanTask())
