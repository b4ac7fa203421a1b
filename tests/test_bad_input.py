"""Bad input across entry points: one `error:` line naming the flag, key or file, exit status 2, nothing written."""
import json
import os

import pytest
from conftest import write

import data_augmentation
import export_model
import predict
import run_glue
import task_distill


def refused(capsys, main, argv, message, out=None):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    err = err.replace("\r", "\n").split("\n")[-1] if "error: " in err and "Traceback" not in err else err
    assert info.value.code == 2, err  # (a progress bar may stand before the error line)
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert message in err, err
    if out is not None:
        assert not os.path.exists(out)


def distill(glue, teacher, out, *extra):
    return ["--task_name", "SST-2", "--glue_dir", glue, "--teacher_path", teacher, "--output_dir", out,
            "--student_model_name_or_path", "2l-16d", "--student_init", "random", "--max_steps", 4,
            "--max_seq_length", 32, *extra]


@pytest.mark.parametrize("flags,message", [
    (["--T", "nan"], "--T must be a finite number, got nan"),
    (["--T", "inf"], "--T must be a finite number, got inf"),
    (["--learning_rate", "nan"], "--learning_rate must be a finite number"),
    (["--pred_weight", "nan"], "--pred_weight must be a finite number"),
    (["--hard_label_weight=-inf"], "--hard_label_weight must be a finite number"),
])
def test_non_finite_flags(tmp_path, capsys, demo_glue, tiny_teacher, flags, message):
    refused(capsys, task_distill.main, distill(demo_glue, tiny_teacher, tmp_path / "out", *flags), message,
            tmp_path / "out")


LAYER_MAP = "intermediate_matches[0]: preset 'tinybert': layer_map: "


@pytest.mark.parametrize("config,message", [
    ('{"temperature": NaN}', "temperature must be a positive number, got nan"),
    ('{"kd_weight": Infinity}', "kd_weight must be a finite number >= 0, got inf"),
    ('{"t2_scaling": "no"}', "t2_scaling must be true or false, got 'no'"),
    ('{"intermediate_matches": 3}', "intermediate_matches must be a list of matches, got 3"),
    ('{"kd_weight_schedule": 5}', "kd_weight_schedule must be a name or an object"),
    ('{"temperature_schedule": {"name": "flsw", "beta": "1"}}', "temperature_schedule: parameters must be finite"),
    ('{"intermediate_matches": [{"preset": "tinybert", "layer_map": 7}]}', "intermediate_matches[0]"),
    # a malformed layer map (the teacher and the 2l-16d student have 2 layers each)
    ('{"intermediate_matches": [{"preset": "tinybert", "layer_map": "3,6"}]}', LAYER_MAP + "expected a list of "
     "[student layer, teacher layer] pairs of integers, student 1..2, teacher 1..2 (e.g. [[1, 1], [2, 2]]), got '3,6'"),
    ('{"intermediate_matches": [{"preset": "tinybert", "layer_map": [1, 2]}]}', LAYER_MAP + "1 is not a pair of "
     "integers; expected a list of [student layer, teacher layer] pairs"),
    ('{"intermediate_matches": [{"preset": "tinybert", "layer_map": [[1, 2, 3]]}]}', LAYER_MAP + "[1, 2, 3] is not "
     "a pair of integers"),
    ('{"intermediate_matches": [{"preset": "tinybert", "layer_map": [[1, 1.5]]}]}', LAYER_MAP + "[1, 1.5] is not a "
     "pair of integers"),
    ('{"intermediate_matches": [{"preset": "tinybert", "layer_map": [[1, 1], [2, 9]]}]}', LAYER_MAP + "[2, 9] is out "
     "of range (student layers 1..2, teacher layers 1..2)"),
    ('{"intermediate_matches": [{"preset": "tinybert", "layer_map": []}]}', LAYER_MAP + "expected a list"),
])
def test_config_values_of_the_wrong_kind(tmp_path, capsys, demo_glue, tiny_teacher, config, message):
    path = write(str(tmp_path / "c.json"), config)
    refused(capsys, task_distill.main, distill(demo_glue, tiny_teacher, tmp_path / "out", "--distill_config", path),
            f"c.json: {message}", tmp_path / "out")


@pytest.mark.parametrize("stage", [[], ["--intermediate_distill"]])
def test_a_malformed_layer_map_in_either_stage(tmp_path, capsys, demo_glue, tiny_teacher, stage):
    path = write(str(tmp_path / "c.json"), '{"kd_weight": 1, "intermediate_matches": [{"preset": "tinybert", '
                                           '"layer_map": "3,6"}]}')
    refused(capsys, task_distill.main, distill(demo_glue, tiny_teacher, tmp_path / "out", "--distill_config", path,
                                               *stage), f"c.json: {LAYER_MAP}expected a list of [student layer, teacher layer] pairs", tmp_path / "out")


def test_run_glue_refuses_nan_learning_rate(tmp_path, capsys, demo_glue, tiny_bert):
    refused(capsys, run_glue.main, ["--task_name", "SST-2", "--glue_dir", demo_glue, "--model_name_or_path",
                                    tiny_bert, "--output_dir", tmp_path / "out", "--learning_rate", "nan"],
            "--learning_rate must be a finite number", tmp_path / "out")


def test_max_seq_length_beyond_the_models_positions(tmp_path, capsys, demo_glue, tiny_teacher):
    # the tiny BERTs have 128 position embeddings: 512 would fail deep inside a Paddle kernel
    refused(capsys, task_distill.main, distill(demo_glue, tiny_teacher, tmp_path / "out", "--max_seq_length", 512),
            "--max_seq_length 512 is longer than this model reads (128 positions)", tmp_path / "out")


def test_export_value_checks(tmp_path, capsys, tiny_teacher):
    refused(capsys, export_model.main, ["--model_dir", tiny_teacher, "--output_dir", tmp_path / "e", "--opset", 3],
            "--opset must be between 7 and 21, got 3", tmp_path / "e")
    refused(capsys, export_model.main, ["--model_dir", tiny_teacher, "--output_dir", tmp_path / "e",
                                        "--max_seq_length", -5], "--max_seq_length must be positive", tmp_path / "e")


def test_predict_value_checks(tmp_path, capsys, tiny_teacher):
    texts = write(str(tmp_path / "t.txt"), "good\n")
    for flag in ("--batch_size", "--max_seq_length"):
        refused(capsys, predict.main, ["--model_dir", tiny_teacher, "--input", texts, flag, 0],
                f"{flag} must be positive, got 0")


def test_augmentation_refuses_empty_input(tmp_path, capsys, demo_glue):
    refused(capsys, data_augmentation.main, ["--task_name", "SST-2", "--glue_dir", demo_glue, "--max_examples", -5,
                                             "--output", tmp_path / "aug.tsv"], "--max_examples must be positive",
            tmp_path / "aug.tsv")
    folder = tmp_path / "glue" / "SST-2"
    write(str(folder / "train.tsv"), "sentence\tlabel\n")
    write(str(folder / "dev.tsv"), "sentence\tlabel\ngood \t1\n")
    refused(capsys, data_augmentation.main, ["--task_name", "SST-2", "--glue_dir", tmp_path / "glue",
                                             "--pretrained_bert_model", "none", "--method", "tang", "--p_pos", 0],
            "no examples to augment", folder / "train_aug.tsv")


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_step(tmp_path, capsys, demo_glue, tiny_teacher):
    # an absurd learning rate overflows the weights within a few steps; the run must stop, not save NaN weights
    out = tmp_path / "out"
    refused(capsys, task_distill.main, distill(demo_glue, tiny_teacher, out, "--learning_rate", "1e30",
                                               "--max_steps", 20, "--save_steps", 20, "--max_grad_norm", 0),
            "the training loss became nan at step")
    assert not (out / "best_model").exists() and not (out / "all_results.json").exists()


def test_outputs_follow_the_umask(tmp_path, demo_glue, tiny_bert):
    old = os.umask(0o022)
    try:
        run_glue.main(["--task_name", "SST-2", "--glue_dir", demo_glue, "--model_name_or_path", tiny_bert,
                       "--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--save_steps", "2"])
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "out" / "best_model").st_mode & 0o777) == oct(0o755)
    assert oct(os.stat(tmp_path / "out" / "best_model" / "config.json").st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(tmp_path / "out" / "all_results.json").st_mode & 0o777) == oct(0o644)
    with open(tmp_path / "out" / "all_results.json") as f:
        assert json.load(f)["train_steps"] == 2


def test_a_library_error_is_reported_by_its_first_line():
    from utils.errors import first_line
    assert first_line(RuntimeError("\n  shape mismatch: [2, 3] vs [3]\n  at layer 4\n")) == "shape mismatch: [2, 3] vs [3]"
    assert first_line(ValueError("x" * 300)) == "x" * 160
    assert first_line(ValueError("abcdef"), width=3) == "abc"
    assert first_line(KeyError()) == "KeyError"  # an empty message still says what was raised
