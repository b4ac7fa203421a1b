import glob
import json
import os

import numpy as np
import paddle
import pytest
from conftest import kill_then_resume

import task_distill


def args(glue, teacher, out, *extra, steps=12):
    return [str(a) for a in ["--task_name", "SST-2", "--glue_dir", glue, "--teacher_path", teacher,
                             "--output_dir", out, "--max_steps", steps, "--save_steps", 4, "--logging_steps", 2,
                             "--batch_size", 16, "--learning_rate", 1e-3, "--max_seq_length", 32, *extra]]


INTER = ["--intermediate_distill", "--student_model_name_or_path", "2l-16d", "--student_init", "random"]


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory, learnt_task):
    """Both stages from a teacher that learnt the task; the second long enough for the student to learn it too."""
    glue, teacher, _ = learnt_task
    out = tmp_path_factory.mktemp("distill")
    inter = task_distill.main(args(glue, teacher, out / "inter", *INTER))
    pred = task_distill.main(args(glue, teacher, out / "pred", "--student_model_name_or_path",
                                  out / "inter" / "best_inter_model", "--hard_label_weight", 0.5, "--T", 2.5,
                                  "--learning_rate", 3e-3, "--save_steps", 50, steps=150))
    return out, inter, pred


def test_intermediate_stage_outputs(two_stages):
    out, inter, _ = two_stages
    assert inter["stage"] == "intermediate" and inter["eval_inter_loss"] > 0 and inter["best_step"] in (4, 8, 12)
    with open(out / "inter" / "all_results.json") as f:
        assert json.load(f)["eval_inter_loss"] == inter["eval_inter_loss"]
    with open(out / "inter" / "args.json") as f:
        saved = json.load(f)
    assert saved["layer_map"] == [[0, 0], [1, 1], [2, 2]] and saved["projection"] == "shared"
    assert os.path.isfile(out / "inter" / "checkpoint-intermediate" / "optimizer.pdopt")
    from paddlenlp.transformers import TinyBertForSequenceClassification
    model = TinyBertForSequenceClassification.from_pretrained(str(out / "inter" / "best_inter_model"))
    assert model.config.num_hidden_layers == 2 and model.config.fit_size == 32


def test_intermediate_loss_terms_logged(two_stages):
    out, _, _ = two_stages
    from visualdl import LogReader
    tags = set(LogReader(file_path=glob.glob(str(out / "inter" / "runs" / "vdlrecords.*"))[0]).get_tags()["scalar"])
    assert {"train/emb_loss", "train/hidden_loss", "train/attn_loss", "train/loss", "train/lr",
            "train/examples_per_second", "eval/inter_loss"} <= tags


def test_prediction_stage_outputs(two_stages):
    out, _, pred = two_stages
    # a quality floor: the distilled student learnt the task (0.825 measured; the majority label scores 0.525)
    assert pred["stage"] == "prediction" and pred["eval_accuracy"] >= 0.7
    from visualdl import LogReader
    tags = set(LogReader(file_path=glob.glob(str(out / "pred" / "runs" / "vdlrecords.*"))[0]).get_tags()["scalar"])
    assert {"train/pred_loss", "train/hard_loss", "train/loss", "eval/accuracy"} <= tags
    with open(out / "pred" / "args.json") as f:
        assert json.load(f)["T"] == 2.5  # a float temperature survives


def test_loss_decreases_in_intermediate_stage(tmp_path, demo_glue, tiny_teacher):
    task_distill.main(args(demo_glue, tiny_teacher, tmp_path, *INTER, steps=40))
    from visualdl import LogReader
    reader = LogReader(file_path=glob.glob(str(tmp_path / "runs" / "vdlrecords.*"))[0])
    losses = [r.value for r in reader.get_data("scalar", "train/loss")]
    assert losses[-1] < 0.85 * losses[0]


def final_weights(folder):
    return paddle.load(os.path.join(folder, "trainable.pdparams"))


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, demo_glue, tiny_teacher, monkeypatch):
    base = args(demo_glue, tiny_teacher, tmp_path / "full", *INTER)
    task_distill.main(base)

    killed = args(demo_glue, tiny_teacher, tmp_path / "killed", *INTER)

    def resume():
        with open(tmp_path / "killed" / "checkpoint-intermediate" / "trainer_state.json") as f:
            assert json.load(f)["step"] == 8
        task_distill.main(killed + ["--resume"])
    # killed at step 10's reseed, between the checkpoints at 8 and 12
    kill_then_resume(monkeypatch, 10, lambda: task_distill.main(killed), resume)

    full = final_weights(tmp_path / "full" / "checkpoint-intermediate")
    resumed = final_weights(tmp_path / "killed" / "checkpoint-intermediate")
    assert full.keys() == resumed.keys()
    for name in full:
        assert np.array_equal(full[name].numpy(), resumed[name].numpy()), name


def test_resume_from_an_incomplete_checkpoint_is_one_clear_error(tmp_path, demo_glue, tiny_teacher, capsys):
    argv = args(demo_glue, tiny_teacher, tmp_path, *INTER, steps=4)
    task_distill.main(argv)
    os.remove(tmp_path / "checkpoint-intermediate" / "optimizer.pdopt")
    capsys.readouterr()
    expect_error(capsys, argv + ["--resume"], "cannot resume: the checkpoint lacks optimizer.pdopt",
                 tmp_path / "checkpoint-intermediate" / "optimizer.pdopt")


def test_resume_refuses_a_checkpoint_of_another_run_before_writing(tmp_path, demo_glue, tiny_teacher, capsys):
    argv = args(demo_glue, tiny_teacher, tmp_path, *INTER, steps=4)
    task_distill.main(argv)
    with open(tmp_path / "args.json") as f:
        before = f.read()
    capsys.readouterr()
    other = args(demo_glue, tiny_teacher, tmp_path, "--intermediate_distill", "--student_model_name_or_path", "1l-16d",
                 "--student_init", "random", steps=4)
    with pytest.raises(SystemExit) as info:
        task_distill.main(other + ["--resume"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "\n" not in err
    assert err.startswith(f"error: {tmp_path / 'checkpoint-intermediate'}: cannot resume: this run's "
                          "--student_model_name_or_path, config differ from the checkpoint's")
    with open(tmp_path / "args.json") as f:
        assert f.read() == before  # the earlier run's record is untouched


def test_teacher_runs_in_eval_mode(tiny_teacher):
    from utils.adapters import load_teachers
    from utils.cli import label_config
    from utils.tasks.sequence import get_task
    (teacher,) = load_teachers([tiny_teacher], label_config(get_task("SST-2")))
    assert not teacher.training and all(not layer.training for layer in teacher.sublayers())


def test_student_init_teacher_copies_mapped_layers(tiny_teacher):
    from utils.adapters import build_student, load_teachers
    from utils.cli import label_config
    from utils.tasks.sequence import get_task
    from utils.intermediate import uniform_layer_map
    (teacher,) = load_teachers([tiny_teacher], label_config(get_task("SST-2")))
    student = build_student("1l-32d", teacher, 2, init="teacher", layer_map_fn=lambda n: uniform_layer_map(n, 2))
    s, t = student.model.base_model, teacher.model.base_model
    assert np.array_equal(s.encoder.layers[0].linear1.weight.numpy(), t.encoder.layers[1].linear1.weight.numpy())
    assert np.array_equal(s.embeddings.word_embeddings.weight.numpy(), t.embeddings.word_embeddings.weight.numpy())


# ---- bad input: one line, exit 2, nothing written

def expect_error(capsys, argv, message, out):
    with pytest.raises(SystemExit) as info:
        task_distill.main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and message in err and err.startswith("error: ") and "\n" not in err
    assert not os.path.exists(out)


def test_missing_teacher(tmp_path, capsys, demo_glue):
    expect_error(capsys, args(demo_glue, tmp_path / "nope", tmp_path / "out", *INTER), "nope: no such model folder",
                 tmp_path / "out")


def test_layer_map_out_of_range(tmp_path, capsys, demo_glue, tiny_teacher):
    expect_error(capsys, args(demo_glue, tiny_teacher, tmp_path / "out", *INTER, "--layer_map", "1,3"),
                 "--layer_map entry 3 is out of range: the teacher has layers 1..2", tmp_path / "out")


def test_use_aug_without_augmented_file(tmp_path, capsys, demo_glue, tiny_teacher):
    expect_error(capsys, args(demo_glue, tiny_teacher, tmp_path / "out", *INTER, "--use_aug"),
                 "train_aug.tsv: no such file; --use_aug needs data_augmentation.py", tmp_path / "out")


def test_vocabulary_mismatch(tmp_path, capsys, demo_glue, tiny_teacher):
    from utils.demo import make_tiny_bert, vocabulary
    other = make_tiny_bert(str(tmp_path / "other"), words=vocabulary() + ["extra"])
    expect_error(capsys, args(demo_glue, tiny_teacher, tmp_path / "out", "--student_model_name_or_path", other),
                 "differs from the teacher's", tmp_path / "out")


def test_student_folder_without_projection(tmp_path, capsys, demo_glue, tiny_teacher, tiny_bert):
    expect_error(capsys, args(demo_glue, tiny_teacher, tmp_path / "out", "--intermediate_distill",
                              "--student_model_name_or_path", tiny_bert),
                 "no shared projection weights (TinyBERT's fit_dense)", tmp_path / "out")


def test_teacher_init_needs_matching_width(tmp_path, capsys, demo_glue, tiny_teacher):
    expect_error(capsys, args(demo_glue, tiny_teacher, tmp_path / "out", *INTER[:-1], "teacher"),
                 "--student_init teacher needs the teacher's width", tmp_path / "out")


def test_data_parallel_on_two_cpu_processes(tmp_path, demo_glue, tiny_teacher):
    """paddle.distributed.launch with 2 CPU workers: gradients sync (or the reducer errors), only rank 0 writes."""
    import subprocess
    import sys
    from conftest import ROOT
    argv = args(demo_glue, tiny_teacher, tmp_path / "out", *INTER, steps=8)
    run = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                          "--log_dir", str(tmp_path / "log"), "task_distill.py", *argv], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    logs = "".join(open(p, errors="replace").read()[-3000:] for p in glob.glob(str(tmp_path / "log" / "workerlog.*")))
    assert run.returncode == 0, logs
    with open(tmp_path / "out" / "all_results.json") as f:
        results = json.load(f)
    # 240 examples in batches of 16 = 15 batches; two ranks take 7 each per epoch, 8 steps see 2 x 16 x 8
    assert results["train_steps"] == 8 and results["train_examples_per_second"] > 0
    assert len(glob.glob(str(tmp_path / "out" / "runs" / "vdlrecords.*"))) == 1  # rank 1 wrote nothing


def test_gold_label_baseline_skips_the_teacher(tmp_path, demo_glue, tiny_teacher):
    results = task_distill.main(args(demo_glue, tiny_teacher, tmp_path, "--student_model_name_or_path", "2l-16d",
                                     "--student_init", "random", "--pred_weight", 0, "--hard_label_weight", 1))
    from visualdl import LogReader
    tags = set(LogReader(file_path=glob.glob(str(tmp_path / "runs" / "vdlrecords.*"))[0]).get_tags()["scalar"])
    assert "train/hard_loss" in tags and "train/pred_loss" not in tags and "eval_accuracy" in results


def test_select_last_keeps_the_final_evaluation_not_the_best(tmp_path, demo_glue, tiny_teacher):
    from visualdl import LogReader
    runs = {}
    for select in ("metric", "last"):
        out = tmp_path / select
        results = task_distill.main(args(demo_glue, tiny_teacher, out, "--student_model_name_or_path", "2l-16d",
                                         "--student_init", "random", "--hard_label_weight", 1, "--select", select,
                                         "--learning_rate", 3e-2))
        curve = LogReader(file_path=glob.glob(str(out / "runs" / "vdlrecords.*"))[0]).get_data("scalar",
                                                                                              "eval/accuracy")
        runs[select] = (results, {p.id: p.value for p in curve})
    (best, curve), (last, same_curve) = runs["metric"], runs["last"]
    assert sorted(curve) == [4, 8, 12] and curve == pytest.approx(same_curve)  # one run, kept two ways
    assert best["eval_accuracy"] == pytest.approx(max(curve.values()))
    assert last["eval_accuracy"] == pytest.approx(curve[12]) and last["best_step"] == 12
    assert last["main_metric"] == "eval_accuracy"
    assert curve[12] < max(curve.values())  # this run's curve tells the two apart (0.6, 0.4, 0.4 measured)


def test_all_zero_weights_rejected(tmp_path, capsys, demo_glue, tiny_teacher):
    expect_error(capsys, args(demo_glue, tiny_teacher, tmp_path / "out", "--pred_weight", 0),
                 "at least one of this stage's weights > 0", tmp_path / "out")


# ---- the teacher's forward as a Paddle Inference program (--teacher_engine)

def test_inference_teacher_equals_the_dygraph_teacher(tiny_teacher):
    from utils.adapters import load_adapter
    from utils.distill import DistillOutputs
    from utils.inference import InferenceTeacher
    teacher = load_adapter(tiny_teacher)
    wanted = [("hidden", 0, None), ("hidden", 2, None), ("attention", 1, None), ("attention", 2, None)]
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 60, (4, 9)).astype("int64")
    ids[1:, 6:] = 0  # padding: the mask and padded positions must agree too
    batch = {"input_ids": paddle.to_tensor(ids), "token_type_ids": paddle.zeros_like(paddle.to_tensor(ids))}
    program = InferenceTeacher(teacher, wanted, logits=True)
    with paddle.no_grad():
        eager = DistillOutputs(teacher, wanted)(batch)
    got = program(batch, active=[0, 2])  # a phase that needs only some of them
    assert got["features"][1] is None and got["features"][3] is None
    np.testing.assert_array_equal(got["mask"].numpy(), eager["mask"].numpy())
    np.testing.assert_allclose(got["logits"].numpy(), eager["logits"].numpy(), atol=1e-5)
    for i in (0, 2):
        np.testing.assert_allclose(got["features"][i].numpy(), eager["features"][i].numpy(), atol=1e-5)
    assert "logits" not in program(batch, logits=False)


def test_teacher_engines_distil_the_same_student(tmp_path, demo_glue, tiny_teacher):
    runs = {engine: task_distill.main(args(demo_glue, tiny_teacher, tmp_path / engine, *INTER, "--teacher_engine",
                                           engine, steps=8)) for engine in ("dygraph", "inference")}
    assert runs["inference"]["eval_inter_loss"] == pytest.approx(runs["dygraph"]["eval_inter_loss"], rel=1e-4)
    w = [paddle.load(str(tmp_path / e / "checkpoint-intermediate" / "trainable.pdparams")) for e in runs]
    for name in w[0]:
        np.testing.assert_allclose(w[0][name].numpy(), w[1][name].numpy(), atol=1e-4, err_msg=name)


def test_a_teacher_that_does_not_trace_falls_back_or_is_refused(tmp_path, demo_glue, tiny_teacher, capsys,
                                                                 monkeypatch):
    import utils.inference

    def untraceable(*a, **k):
        raise RuntimeError("cannot trace this\nsecond line")
    monkeypatch.setattr(utils.inference, "InferenceTeacher", untraceable)
    task_distill.main(args(demo_glue, tiny_teacher, tmp_path / "tiny", *INTER, steps=4))
    assert "note:" not in capsys.readouterr().out  # auto never traces a teacher this small (32 wide)
    import utils.distill
    monkeypatch.setattr(utils.distill, "TRACE_MIN_WIDTH", 16)
    fallback = task_distill.main(args(demo_glue, tiny_teacher, tmp_path / "auto", *INTER, steps=4))
    assert "note: the teacher runs in dygraph, not as a Paddle Inference program (RuntimeError: cannot trace this)" \
        in capsys.readouterr().out and fallback["train_steps"] == 4
    expect_error(capsys, args(demo_glue, tiny_teacher, tmp_path / "out", *INTER, "--teacher_engine", "inference"),
                 "--teacher_engine inference: the teacher does not run as a program (RuntimeError: cannot trace this)",
                 tmp_path / "out")
