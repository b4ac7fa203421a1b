"""multitask_distill.py: task sampling by size^tau, one student for two tasks, a from_pretrained folder per task."""
import glob
import json
import os
import random

import numpy as np
import pytest
from conftest import write

import multitask_distill


def test_task_probabilities():
    assert multitask_distill.task_probabilities([300, 100], 1.0) == pytest.approx([0.75, 0.25])
    assert multitask_distill.task_probabilities([300, 100], 0.0) == pytest.approx([0.5, 0.5])
    assert multitask_distill.task_probabilities([400, 100], 0.5) == pytest.approx([2 / 3, 1 / 3])


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory, demo_glue):
    """The demo SST-2 task plus a CoLA-format task (no header, 4 columns): 'not' makes a sentence label 0."""
    from utils.demo import sentence
    root = tmp_path_factory.mktemp("multi")
    os.symlink(os.path.join(demo_glue, "SST-2"), root / "SST-2")
    rng = random.Random(3)
    for split, n in (("train", 80), ("dev", 40)):
        rows = []
        for i in range(n):
            text = sentence(rng)[0]
            rows.append(f"src{i}\t{0 if ' not ' in text else 1}\t\t{text}")
        write(str(root / "CoLA" / f"{split}.tsv"), "\n".join(rows))
    return str(root)


def test_two_tasks_one_student(tmp_path, two_tasks, tiny_teacher, other_teacher):
    out = tmp_path / "out"
    results = multitask_distill.main([str(a) for a in [
        "--task_name", "SST-2", "cola", "--glue_dir", two_tasks, "--teacher_path", tiny_teacher, other_teacher,
        "--student_model_name_or_path", "2l-16d", "--student_init", "random", "--output_dir", out,
        "--max_steps", 40, "--save_steps", 20, "--logging_steps", 5, "--batch_size", 16, "--learning_rate", 1e-3,
        "--max_seq_length", 32, "--tau", 1.0, "--hard_label_weight", 0.5]])
    # 240 vs 80 training rows: 3/4 of the steps go to SST-2 (binomial sd ~2.7 steps over 40)
    assert sum(results["steps_per_task"].values()) == 40 and abs(results["steps_per_task"]["SST-2"] - 30) <= 8
    assert results["eval_mean_main"] == pytest.approx((results["eval_SST-2_accuracy"] + results["eval_CoLA_mcc"]) / 2)
    from conftest import model_logits
    from utils.tasks.sequence import get_task, read_examples
    from utils.metrics import compute_metrics
    for task, key in (("SST-2", "eval_SST-2_accuracy"), ("CoLA", "eval_CoLA_mcc")):
        folder = str(out / "best_model" / task)
        spec = get_task(task)
        dev = read_examples(spec, os.path.join(two_tasks, spec.name), "dev")
        logits = model_logits(folder, dev, 32, 64)
        metric = compute_metrics(spec, logits, np.array([e.label for e in dev]))[spec.main_metric]
        assert metric == pytest.approx(results[key], abs=1e-6)
    from visualdl import LogReader
    tags = set(LogReader(file_path=glob.glob(str(out / "runs" / "vdlrecords.*"))[0]).get_tags()["scalar"])
    assert {"train/SST-2/pred_loss", "train/CoLA/pred_loss", "train/CoLA/hard_loss", "eval/SST-2_accuracy",
            "eval/CoLA_mcc", "eval/mean_main"} <= tags
    with open(out / "args.json") as f:
        assert json.load(f)["task_probabilities"] == pytest.approx([0.75, 0.25])


def test_multitask_needs_a_teacher_per_task(tmp_path, two_tasks, tiny_teacher, capsys):
    with pytest.raises(SystemExit):
        multitask_distill.main(["--task_name", "SST-2", "CoLA", "--glue_dir", two_tasks, "--teacher_path",
                                tiny_teacher, "--output_dir", str(tmp_path / "out")])
    assert "one teacher per task" in capsys.readouterr().err and not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("student", ["2l-16d", "bilstm"])
def test_max_seq_length_beyond_the_teachers_positions(tmp_path, two_tasks, tiny_teacher, other_teacher, capsys,
                                                      student):
    # the tiny teachers read 128 positions; past them Paddle failed inside the embedding lookup, after the output
    # folder was made: now the shared check refuses first (a word student has no limit, its teachers do)
    with pytest.raises(SystemExit) as info:
        multitask_distill.main([str(a) for a in [
            "--task_name", "SST-2", "CoLA", "--glue_dir", two_tasks, "--teacher_path", tiny_teacher, other_teacher,
            "--student_model_name_or_path", student, "--student_init", "random", "--output_dir", tmp_path / "out",
            "--max_seq_length", 100000]])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1, err
    assert err[0] == (f"error: {tiny_teacher}: --max_seq_length 100000 is longer than this model reads (128 "
                      "positions); use at most 128")
    assert not os.path.exists(tmp_path / "out")
