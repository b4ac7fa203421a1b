"""--distill_config: presets, validation, schedules logged, multi-teacher, the teacher-logit cache."""
import glob
import json
import os

import numpy as np
import pytest
from conftest import write

import task_distill
from utils.errors import UserError
from utils.presets import build_config

S = {"layers": 4, "hidden": 312, "heads": 12, "projection": "shared", "fit_size": 768}
T12 = {"layers": 12, "hidden": 768, "heads": 12}
T6 = {"layers": 6, "hidden": 384, "heads": 12}


def matches(raw, teachers=(T12,), student=S):
    return build_config({"intermediate_matches": raw}, student, list(teachers))["intermediate_matches"]


def test_tinybert_preset_is_uniform_with_the_students_projection():
    got = matches([{"preset": "tinybert"}])
    hidden = [(m["layer_S"], m["layer_T"]) for m in got if m["feature"] == "hidden"]
    assert hidden == [(1, 3), (2, 6), (3, 9), (4, 12)]
    assert [m["group"] for m in got].count("attn_loss") == 4 and got[0]["feature"] == "embedding"
    assert {m["proj"] for m in got if m["feature"] != "attention"} == {"student"}
    # a second teacher of another width gets a new projection, not the student's fit_dense
    got = matches([{"preset": "tinybert", "teacher": 1, "attn_weight": 0}], teachers=(T12, T6))
    assert {tuple(m["proj"]) for m in got} == {("linear", 312, 384)} and {m["teacher"] for m in got} == {1}
    assert [(m["layer_S"], m["layer_T"]) for m in got][1:] == [(1, 1), (2, 3), (3, 4), (4, 6)]


def test_pkd_distilbert_minilm_presets():
    pkd = matches([{"preset": "pkd"}])
    assert [(m["layer_S"], m["layer_T"], m["loss"]) for m in pkd] == [(1, 3, "pkd"), (2, 6, "pkd"), (3, 9, "pkd")]
    last = matches([{"preset": "pkd", "strategy": "last", "k": 2}])
    assert [(m["layer_S"], m["layer_T"]) for m in last] == [(1, 10), (2, 11)]
    assert {m["loss"] for m in matches([{"preset": "distilbert"}])} == {"cos"}
    (minilm,) = matches([{"preset": "minilm"}])
    assert (minilm["layer_S"], minilm["layer_T"], minilm["loss"]) == (4, 12, "attention_ce")


@pytest.mark.parametrize("raw,message", [
    ({"kd_loss": "kld"}, "kd_loss 'kld' is not one of: soft_ce, kl, mse"),
    ({"temperature_schedule": "cosine"}, "temperature_schedule 'cosine' is not one of: constant, flsw, cwsm"),
    ({"temperature_schedule": {"name": "flsw", "alpha": 1}}, "unexpected keyword argument 'alpha'"),
    ({"kd_weight_schedule": "exp"}, "is not one of: constant, linear_decay, linear_growth"),
    ({"temperature": 0}, "temperature must be a positive number"),
    ({"tempreature": 2}, "unknown config key 'tempreature'"),
    ({"intermediate_matches": [{"preset": "bert"}]}, "preset 'bert' is not one of: tinybert, pkd, distilbert, minilm"),
    ({"intermediate_matches": [{"layer_S": 5, "layer_T": 12, "feature": "hidden", "loss": "cos",
                                "proj": ["linear", 312, 768]}]}, "layer_S 5 is out of range for hidden (0..4)"),
    ({"intermediate_matches": [{"layer_S": 4, "layer_T": 12, "feature": "hidden", "loss": "cosine"}]},
     "loss 'cosine' is not one of: hidden_mse, attention_mse, attention_ce, cos, pkd, nst, mmd, gram, fsp"),
    ({"intermediate_matches": [{"layer_S": 4, "layer_T": 12, "feature": "hidden", "loss": "cos"}]},
     "widths differ (student 312, teacher 768)"),
    ({"intermediate_matches": [{"layer_S": 4, "layer_T": 12, "feature": "attention", "loss": "cos"}]},
     "loss 'cos' does not apply to attention"),
    ({"intermediate_matches": [{"layer_S": 4, "layer_T": 12, "feature": "hidden", "loss": "cos",
                                "proj": ["gelu", 312, 768]}]}, "proj kind 'gelu' is not one of: linear, relu, tanh"),
    ({"intermediate_matches": [{"layer_S": 4, "layer_T": 12, "feature": "hidden", "loss": "cos",
                                "proj": ["linear", 312, 384]}]}, "proj dims 312->384 do not match"),
    ({"intermediate_matches": [{"layer_S": 1, "layer_T": 1, "feature": "hidden", "loss": "nst", "teacher": 2}]},
     "teacher 2 does not exist"),
    ({"kd_weight": 0}, "the config trains nothing"),
])
def test_config_validation_names_what_is_valid(raw, message):
    with pytest.raises(UserError, match=None) as info:
        build_config(raw, S, [T12])
    assert message in str(info.value)


def test_regression_needs_mse():
    with pytest.raises(UserError, match="a regression task takes 'mse'"):
        build_config({"kd_loss": "kl"}, S, [T12], regression=True)
    assert build_config({"kd_loss": "mse"}, S, [T12], regression=True)["kd_loss"] == "mse"


def run(glue, teachers, out, *extra, steps=8):
    argv = ["--task_name", "SST-2", "--glue_dir", glue, "--teacher_path", *teachers, "--output_dir", out,
            "--student_model_name_or_path", "2l-16d", "--student_init", "random", "--max_steps", steps,
            "--save_steps", 4, "--logging_steps", 2, "--batch_size", 16, "--learning_rate", 1e-3,
            "--max_seq_length", 32, *extra]
    return task_distill.main([str(a) for a in argv])


def scalar_tags(folder):
    from visualdl import LogReader
    return set(LogReader(file_path=glob.glob(os.path.join(folder, "runs", "vdlrecords.*"))[0]).get_tags()["scalar"])


def test_config_run_with_matches_schedules_and_two_teachers(tmp_path, demo_glue, tiny_teacher, other_teacher):
    config = write(str(tmp_path / "config.json"), json.dumps({
        "temperature": 2.0, "temperature_schedule": {"name": "flsw", "beta": 1.0, "gamma": 2.0},
        "kd_loss": "kl", "hard_label_weight": 0.5, "hard_weight_schedule": "linear_growth",
        "intermediate_matches": [
            {"preset": "pkd", "weight": 10},
            {"layer_S": 2, "layer_T": 3, "feature": "hidden", "loss": "nst", "teacher": 1},
            {"layer_S": 2, "layer_T": 3, "feature": "hidden", "loss": "cos", "teacher": 1,
             "proj": ["tanh", 16, 48]},
            {"layer_S": 2, "layer_T": 2, "feature": "attention", "loss": "attention_ce"}]}))
    out = tmp_path / "out"
    results = run(demo_glue, [tiny_teacher, other_teacher], out, "--distill_config", config,
                  "--teacher_weights", 2, 1)
    assert results["stage"] == "prediction" and "eval_accuracy" in results
    tags = scalar_tags(out)
    assert {"train/pred_loss", "train/hard_loss", "train/hidden1_pkd", "train/t1_hidden2_nst", "train/t1_hidden2_cos",
            "train/attention2_attention_ce", "train/temperature", "train/kd_weight", "train/hard_weight"} <= tags
    with open(out / "distill_config.json") as f:
        resolved = json.load(f)
    assert len(resolved["intermediate_matches"]) == 4 and resolved["temperature_schedule"]["name"] == "flsw"
    # the new tanh projection is trained and checkpointed beside the student
    import paddle
    projections = {k: v for k, v in paddle.load(str(out / "checkpoint-prediction" / "trainable.pdparams")).items()
                   if k.startswith("projections.")}
    assert [tuple(v.shape) for k, v in projections.items() if k.endswith("weight")] == [(16, 48)]


def test_config_errors_name_the_file(tmp_path, demo_glue, tiny_teacher, capsys):
    config = write(str(tmp_path / "config.json"), '{"kd_loss": "soft_ce",\n "temperature": }')
    with pytest.raises(SystemExit):
        run(demo_glue, [tiny_teacher], tmp_path / "out", "--distill_config", config)
    assert "config.json:2: not valid JSON" in capsys.readouterr().err
    config = write(str(tmp_path / "config2.json"), '{"kd_loss": "xent"}')
    with pytest.raises(SystemExit):
        run(demo_glue, [tiny_teacher], tmp_path / "out", "--distill_config", config)
    assert "config2.json: kd_loss 'xent' is not one of" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("flag, value, key", [("--T", 2, '"temperature"'), ("--hard_label_weight", 0.5,
                                              '"hard_label_weight"'), ("--no-t2_scaling", None, '"t2_scaling"')])
def test_a_loss_flag_beside_a_config_is_refused_not_ignored(flag, value, key, tmp_path, demo_glue, tiny_teacher,
                                                            capsys):
    config = write(str(tmp_path / "config.json"), '{"kd_loss": "mse"}')
    extra = [flag] if value is None else [flag, value]
    with pytest.raises(SystemExit) as exit_:
        run(demo_glue, [tiny_teacher], tmp_path / "out", "--distill_config", config, *extra)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert f"{flag.replace('no-', '')} has no effect with --distill_config" in err and f"set {key} in {config}" in err
    assert not os.path.exists(tmp_path / "out")


def test_two_teachers_logits_are_weighted_means(tmp_path, demo_glue, tiny_teacher, other_teacher):
    """The cache holds exactly the weighted mean of the teachers' logits."""
    out = tmp_path / "out"
    run(demo_glue, [tiny_teacher, other_teacher], out, "--teacher_weights", 3, 1, "--cache_teacher_logits",
        steps=2)
    (store,) = glob.glob(str(out / "teacher_logits" / "teacher-*"))
    from conftest import model_logits
    from utils.tasks.sequence import get_task, read_examples
    from utils.labels import LabelStore, row_keys
    examples = read_examples(get_task("SST-2"), os.path.join(demo_glue, "SST-2"), "train")
    a, b = (model_logits(p, examples, 32, 64) for p in (tiny_teacher, other_teacher))
    np.testing.assert_allclose(LabelStore(store).gather(row_keys(examples)), (3 * a + b) / 4, atol=1e-5)


def test_logit_cache_reused_and_invalidated(tmp_path, demo_glue, tiny_teacher, capsys):
    cache_dir = tmp_path / "cache"
    common = ["--cache_teacher_logits", "--cache_dir", cache_dir]
    first = run(demo_glue, [tiny_teacher], tmp_path / "a", *common)
    assert "teacher logits: wrote" in capsys.readouterr().out
    second = run(demo_glue, [tiny_teacher], tmp_path / "b", *common)
    assert "teacher logits: reusing" in capsys.readouterr().out
    assert second["eval_accuracy"] == first["eval_accuracy"]
    # without the cache the same run gives the same student (teacher in eval mode: logits are deterministic)
    plain = run(demo_glue, [tiny_teacher], tmp_path / "c")
    import paddle
    w = [paddle.load(str(tmp_path / d / "checkpoint-prediction" / "trainable.pdparams")) for d in ("a", "c")]
    for name in w[0]:
        np.testing.assert_allclose(w[0][name].numpy(), w[1][name].numpy(), atol=1e-4, err_msg=name)
    assert plain["eval_accuracy"] == first["eval_accuracy"]
    # other data (shorter truncation) or another teacher: a new cache file, never the stale one
    run(demo_glue, [tiny_teacher], tmp_path / "d", *common, "--max_seq_length", 8)
    assert "teacher logits: wrote" in capsys.readouterr().out
    other = tmp_path / "teacher2"
    import shutil
    shutil.copytree(tiny_teacher, other)
    state = paddle.load(str(other / "model_state.pdparams"))
    key = next(k for k in state if k.endswith("classifier.weight"))
    state[key] = state[key] * 2
    paddle.save(state, str(other / "model_state.pdparams"))
    run(demo_glue, [str(other)], tmp_path / "e", *common)
    assert "teacher logits: wrote" in capsys.readouterr().out
    assert len(glob.glob(str(cache_dir / "teacher-*"))) == 3  # one store per teacher setting
