"""The benches that compare against other frameworks exit cleanly when those are absent."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def test_train_speed_without_torch_says_how_to_install_it(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")  # an interpreter where `import torch, transformers` fails
    fake.chmod(0o755)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "train_speed.py"), "--torch_python",
                           str(fake), "--model", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert "has no torch/transformers" in done.stderr and "pip install torch transformers" in done.stderr
    assert "Traceback" not in done.stderr


def test_student_latency_names_two_runs_of_one_architecture_apart():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from student_latency import student_names
    folders = ["out/a/bilstm/best_model", "demo/b/bilstm/best_model", "out/cnn/best_model", "x/teacher/best_model"]
    assert student_names(folders) == ["bilstm", "bilstm-2", "cnn", "teacher-2"]


def test_train_speed_counts_a_steps_matrix_products_by_hand():
    """The FLOPs behind the published GFLOP/s, at a padded length of 10 (hand-computed: 2 x multiply-adds of
    Q/K/V/output projections 4h^2, feed-forward 2hf per token, scores and context 2 L^2 h per layer, pooler h^2)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from train_speed import flops_per_timed_example, step_flops
    minilm_forward = 2 * (6 * (10 * (4 * 384 ** 2 + 2 * 384 * 1536) + 2 * 10 ** 2 * 384) + 384 ** 2)
    assert minilm_forward == 213_553_152
    assert step_flops("finetune", 10) == 3 * 213_553_152  # forward, input gradients, weight gradients
    student_forward = 2 * (4 * (10 * (4 * 312 ** 2 + 2 * 312 * 1200) + 2 * 10 ** 2 * 312) + 312 ** 2)  # 91,747,968
    projections = 5 * 2 * 10 * 312 * 384  # embeddings + 4 layers through the 312 -> 384 fit_dense
    assert step_flops("distill", 10) == 213_553_152 + 3 * (student_forward + projections) == 524_739_456
    import numpy as np
    batches = [{"input_ids": np.zeros((b, n)), "labels": np.zeros(b)} for b, n in ((4, 99), (2, 10), (6, 20))]
    expected = (2 * step_flops("finetune", 10) + 6 * step_flops("finetune", 20)) / 8  # the warm-up batch is left out
    assert flops_per_timed_example("finetune", batches, warmup=1) == expected


def test_int8_speed_times_batches_of_the_stated_shapes():
    """Batch 32 is 32 sentences cut or padded to exactly the length asked; batch 1 keeps each sentence's own
    length (cut at the same limit)."""
    import numpy as np
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from int8_speed import workloads
    from utils.batches import Features
    ids = [np.arange(1, n + 1) for n in (3, 70)] * 20  # 40 rows: 3 tokens and 70 tokens in turn
    features = Features({"input_ids": ids, "token_type_ids": [np.zeros(len(x), np.int64) for x in ids]},
                        np.zeros(40, np.int64), {"input_ids": 0})
    found = workloads(features, 64, 2)
    (batch,) = found["batch 32"]
    assert batch["input_ids"].shape == (32, 64) and batch["token_type_ids"].shape == (32, 64)
    assert batch["input_ids"][0].tolist() == [1, 2, 3] + [0] * 61 and batch["input_ids"][1].tolist() == list(range(1, 65))
    assert [x["input_ids"].tolist() for x in found["batch 1"]] == [[[1, 2, 3]], [list(range(1, 65))]]


def test_augmented_rows_keeps_whole_groups_in_source_order(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import augmented_rows
    source, augmented = tmp_path / "train.tsv", tmp_path / "aug.tsv"
    source.write_text("sentence\tlabel\na good film\t1\ngood\t1\na dull plot\t0\n", encoding="utf-8")
    # "good" is an n-gram of the first sentence and also the second original: only order tells them apart
    augmented.write_text("sentence\tlabel\na good film\t1\ngood\t1\na [MASK] film\t1\ngood\t1\ngreat\t1\n"
                         "a dull plot\t0\na dull story here\t0\n", encoding="utf-8")
    wanted = tmp_path / "wanted.txt"
    wanted.write_text("a good film\na dull plot\n", encoding="utf-8")
    out = tmp_path / "rows.txt"
    n = augmented_rows.main(["--augmented", str(augmented), "--source", str(source), "--of", str(wanted),
                             "--output", str(out)])
    assert n == 3 and out.read_text(encoding="utf-8") == "good\na [MASK] film\na dull story here\n"
    # the first group's n-gram "good" stayed in it; the second original's group ("great") was dropped
    held_out = tmp_path / "dev.tsv"
    held_out.write_text("sentence\tlabel\nsurely a dull story here of sorts\t0\n", encoding="utf-8")
    augmented_rows.main(["--augmented", str(augmented), "--source", str(source), "--of", str(wanted),
                         "--output", str(out), "--drop_fragments_of", str(held_out)])
    assert out.read_text(encoding="utf-8") == "good\na [MASK] film\n"  # "a dull story" is inside a held-out one
    reversed_source = tmp_path / "reversed.tsv"
    reversed_source.write_text("sentence\tlabel\na dull plot\t0\ngood\t1\na good film\t1\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        augmented_rows.main(["--augmented", str(augmented), "--source", str(reversed_source), "--of", str(wanted),
                             "--output", str(tmp_path / "other.txt")])
    assert stop.value.code == 2 and "is --source the file it was augmented from" in capsys.readouterr().err
    assert not (tmp_path / "other.txt").exists()


def test_augmented_rows_match_as_written_and_refuse_binary_input(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import augmented_rows
    # SST-2's rows end in a space; an n-gram of the whole short sentence does not, and stays an augmented row of
    # that sentence instead of reading as its original turning up again
    source = tmp_path / "train.tsv"
    source.write_text("sentence\tlabel\ndull \t0\nfine film \t1\n", encoding="utf-8")
    augmented = tmp_path / "aug.tsv"
    augmented.write_text("sentence\tlabel\ndull \t0\n[MASK] \t0\ndull\t0\nfine film \t1\nfine\t1\n",
                         encoding="utf-8")
    wanted = tmp_path / "wanted.txt"
    wanted.write_text("dull\n", encoding="utf-8")
    out = tmp_path / "rows.txt"
    augmented_rows.main(["--augmented", str(augmented), "--source", str(source), "--of", str(wanted),
                         "--output", str(out)])
    assert out.read_text(encoding="utf-8") == "[MASK]\ndull\n"
    augmented.write_bytes(b"sentence\tlabel\n\xff\xfe\t0\n")
    with pytest.raises(SystemExit) as stop:
        augmented_rows.main(["--augmented", str(augmented), "--source", str(source), "--of", str(wanted),
                             "--output", str(tmp_path / "other.txt")])
    assert stop.value.code == 2 and f"{augmented}:2: not UTF-8 text" in capsys.readouterr().err
    assert not (tmp_path / "other.txt").exists()


def test_train_speed_parts_add_each_interval_to_the_part_it_ends(monkeypatch):
    """--parts: the time between marks goes to the part marked; warm-up steps are not timed; ms a timed step."""
    import types
    monkeypatch.syspath_prepend(os.path.join(ROOT, "bench"))
    import train_speed
    ticks = iter([0.0, 1.0, 3.0, 10.0, 12.0, 15.0])  # step 1: start, "a", "b"; step 2: the same
    monkeypatch.setattr(train_speed, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    seen = []

    def step(batch, mark=train_speed.no_mark):
        seen.append(batch)
        mark("a")
        mark("b")
    parts = train_speed.timed_parts(step, ["warm", "x", "y"], warmup=1)
    assert seen == ["warm", "x", "y"]
    assert parts == {"a": 1500.0, "b": 2500.0}  # a: 1 + 2 s, b: 2 + 3 s, over 2 steps


@pytest.mark.parametrize("extra", [["--paddle_static", "dynamic"], ["--paddle_static", "dynamic", "--ab"]])
def test_train_speed_parts_refuses_the_static_program(tmp_path, extra):
    """--parts times the dygraph step only: asking for the static program with it is one error, exit 2."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "train_speed.py"), "--parts", *extra,
                           "--model", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert "--parts times the dygraph step" in done.stderr and "Traceback" not in done.stderr
