"""Phases: a distillation run as a list of phases (TinyBERT's two stages in one run, MobileBERT's progressive
transfer), each with its matches, learning-rate multipliers and selection; and the MobileBERT losses."""
import json
import math
import os

import numpy as np
import paddle
import pytest
from conftest import kill_then_resume, write

import task_distill
from utils import loop
from utils.errors import UserError
from utils.presets import build_config

S2 = {"layers": 2, "hidden": 32, "heads": 2, "projection": None, "fit_size": None}
T2 = {"layers": 2, "hidden": 32, "heads": 2}


def run_args(glue, teacher, out, config, *extra, steps=12):
    return [str(a) for a in ["--task_name", "SST-2", "--glue_dir", glue, "--teacher_path", teacher,
                             "--output_dir", out, "--max_steps", steps, "--save_steps", 3, "--logging_steps", 3,
                             "--batch_size", 16, "--learning_rate", 1e-3, "--max_seq_length", 32,
                             "--student_model_name_or_path", "2l-32d", "--student_init", "random",
                             "--distill_config", config, *extra]]


# ---- the config

def test_tinybert_phases_are_the_two_stages():
    config = build_config({"phases": {"preset": "tinybert", "inter_share": 0.25},
                           "intermediate_matches": [{"preset": "tinybert"}], "hard_label_weight": 0.5}, S2, [T2])
    inter, pred = config["phases"]
    assert inter == dict(name="intermediate", matches=list(range(len(config["intermediate_matches"]))), kd_weight=0.0,
                         hard_label_weight=0.0, select="inter_loss", share=0.25, lr={})
    assert pred == dict(name="prediction", matches=[], kd_weight=1.0, hard_label_weight=0.5, select="metric",
                        share=0.75, lr={})


def test_progressive_phases_one_per_layer_with_multipliers():
    config = build_config({"phases": {"preset": "progressive", "layer_share": 0.4}}, S2, [T2])
    matches = config["intermediate_matches"]
    assert [(m["feature"], m["layer_S"], m["layer_T"], m["loss"]) for m in matches] == [
        ("embedding", 0, 0, "feature_map"), ("hidden", 1, 1, "feature_map"), ("attention", 1, 1, "attention_kl"),
        ("hidden", 2, 2, "feature_map"), ("attention", 2, 2, "attention_kl")]
    layer1, layer2, pred = config["phases"]
    assert (layer1["matches"], layer2["matches"], pred["matches"]) == ([0, 1, 2], [3, 4], [])
    assert layer1["lr"] == {"embeddings": 3.0, "layers": [3.0, 0.0], "head": 0.0}
    assert layer2["lr"] == {"embeddings": 0.3, "layers": [0.3, 3.0], "head": 0.0}
    assert [p["select"] for p in config["phases"]] == ["last", "last", "metric"]
    assert [p["share"] for p in config["phases"]] == pytest.approx([0.2, 0.2, 0.6])


@pytest.mark.parametrize("phases,message", [
    ([{"matches": [9]}], "phases[0]: matches must be \"all\" or indices into intermediate_matches (0..0)"),
    ([{"matches": []}], "phases[0]: the phase trains nothing"),
    ([{"select": "best"}], "phases[0]: select 'best' is not one of: inter_loss, metric, last"),
    ([{"lr": {"layers": [1, 2, 3]}}], "phases[0]: lr layers lists 3 multipliers; the student has 2 layers"),
    ([{"lr": {"head": -1}}], "phases[0]: lr head must be multipliers >= 0"),
    ([{"name": "a"}, {"name": "a"}], "phases: names must differ"),
    ([{"matches": [], "kd_weight": 1, "select": "inter_loss"}], "select inter_loss needs an intermediate match with a weight > 0"),
    ([{"select": "metric"}], "phases[0]: select metric needs kd_weight or hard_label_weight > 0"),
    ([{"name": "../up"}], "phases[0]: name must be letters, digits"),
    ([{"matches": [0, 0]}], "phases[0]: matches lists an index twice"),
    ("mobile", "phases: preset 'mobile' is not one of: tinybert, progressive"),
    ({"preset": "progressive", "during": "3"}, "phases: preset parameters must be numbers"),
])
def test_phase_config_errors(phases, message):
    raw = {"intermediate_matches": [{"layer_S": 1, "layer_T": 1, "feature": "hidden", "loss": "hidden_mse"}],
           "phases": phases}
    with pytest.raises(UserError) as info:
        build_config(raw, S2, [T2])
    assert message in str(info.value)


def test_a_phase_whose_matches_all_weigh_nothing_is_refused():
    raw = {"intermediate_matches": [{"layer_S": 1, "layer_T": 1, "feature": "hidden", "loss": "hidden_mse",
                                     "weight": 0}], "kd_weight": 1.0, "phases": [{"matches": [0]}, {"matches": []}]}
    with pytest.raises(UserError) as info:
        build_config(raw, S2, [T2])
    assert "phases[0]: the phase trains nothing (no match with a weight > 0" in str(info.value)


def test_lr_multipliers_by_part_of_the_model(tiny_teacher):
    from utils.adapters import load_teachers
    from utils.distill import DistillOutputs, lr_multipliers
    teacher = load_teachers([tiny_teacher], {"num_labels": 2})[0]
    out = DistillOutputs(teacher, [("hidden", 1, ["linear", 32, 32])])
    found = lr_multipliers({"lr": {"embeddings": 0.5, "layers": [2.0, 0.0], "head": 0.25}}, out, teacher)
    for name, mult in found.items():
        expected = (0.5 if ".embeddings." in name else 2.0 if ".layers.0." in name else 0.0 if ".layers.1." in name
                    else 1.0 if name.startswith("projections.") else 0.25)
        assert mult == expected, name
    assert {found[n] for n in found if "classifier" in n or "pooler" in n} == {0.25}
    assert lr_multipliers({"lr": {}}, out, teacher) == {}


def test_a_multiplier_scales_the_step_and_zero_freezes():
    from utils.training import build_optimizer

    def first_step(mult):
        paddle.seed(0)
        layer = paddle.nn.Linear(3, 3)
        job = loop.Job(name="t", output_dir="", checkpoint_dir="", trainable=layer, optimizer=None, scheduler=None,
                       batch_at=None, phases=[loop.Phase("p", 1, None, None, None, None,
                                                         multipliers={"weight": mult})])
        optimizer, _ = build_optimizer(layer, 0.1, 10, 0.0, 0.0)
        loop._enter_phase(job, 0)
        before = layer.weight.numpy().copy()
        layer(paddle.ones([2, 3])).sum().backward()
        optimizer.step()
        return layer.weight.numpy() - before, layer.weight.stop_gradient

    full, _ = first_step(1.0)
    third, _ = first_step(0.3)
    frozen, stopped = first_step(0.0)
    np.testing.assert_allclose(third, 0.3 * full, rtol=1e-5)
    assert stopped and not frozen.any()  # bit for bit unchanged: no gradient was even computed


def test_gradient_clipping_by_global_norm_with_hand_computed_norms():
    from utils.training import build_optimizer
    weight = paddle.create_parameter([2], "float32")
    for max_norm, expected in ((10.0, [3.0, 4.0]), (5.0, [3.0, 4.0]), (1.0, [0.6, 0.8]), (2.5, [1.5, 2.0])):
        grad = paddle.to_tensor([3.0, 4.0])  # global norm 5 (clipping scales it in place)
        optimizer, _ = build_optimizer([weight], 0.1, 10, 0.0, 0.0, max_grad_norm=max_norm)
        (clipped,) = [g for _, g in optimizer._grad_clip([(weight, grad)])]
        np.testing.assert_allclose(clipped.numpy(), expected, rtol=1e-6)
    assert build_optimizer([weight], 0.1, 10, 0.0, 0.0, max_grad_norm=0)[0]._grad_clip is None


def test_phased_schedule_restarts_warmup_in_each_phase():
    from utils.training import phased_schedule
    scheduler = phased_schedule(1.0, [4, 6], 0.5)
    lrs = []
    for _ in range(10):
        lrs.append(scheduler.get_lr())
        scheduler.step()
    assert lrs == pytest.approx([0, 0.5, 1.0, 0.5, 0, 1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3])


# ---- runs

@pytest.fixture()
def progressive(tmp_path):
    return write(str(tmp_path / "progressive.json"), json.dumps(
        {"phases": {"preset": "progressive", "layer_share": 0.5}, "hard_label_weight": 0.5}))


def snapshots_at_phase_starts(monkeypatch):
    shots, real = [], loop._enter_phase

    def enter(job, index):
        real(job, index)
        shots.append((index, {n: p.numpy().copy() for n, p in job.trainable.named_parameters()}))
    monkeypatch.setattr(loop, "_enter_phase", enter)
    return shots


def test_progressive_run_trains_only_what_each_phase_allows(tmp_path, demo_glue, tiny_teacher, progressive,
                                                            monkeypatch):
    shots = snapshots_at_phase_starts(monkeypatch)
    results = task_distill.main(run_args(demo_glue, tiny_teacher, tmp_path / "out", progressive))
    final = {n: p.numpy() for n, p in paddle.load(str(tmp_path / "out" / "checkpoint" / "trainable.pdparams")).items()}
    (_, start), (_, after1), (_, after2) = shots  # phase layer1 ran from start to after1, layer2 to after2
    changed = {phase: {n for n in start if not np.array_equal(a[n], b[n])}
               for phase, (a, b) in {"layer1": (start, after1), "layer2": (after1, after2),
                                     "prediction": (after2, final)}.items()}
    head = {n for n in start if "classifier" in n or "pooler" in n}
    layer = {i: {n for n in start if f".layers.{i - 1}." in n} for i in (1, 2)}
    embeddings = {n for n in start if ".embeddings." in n}
    assert not changed["layer1"] & (head | layer[2]) and layer[1] <= changed["layer1"]
    assert embeddings & changed["layer1"]
    assert not changed["layer2"] & head and layer[2] <= changed["layer2"] and layer[1] & changed["layer2"]
    assert head & changed["prediction"]
    assert [p["phase"] for p in results["phases"]] == ["layer1", "layer2", "prediction"]
    assert results["train_steps"] == 12 and os.path.isdir(tmp_path / "out" / "best_model")
    with open(tmp_path / "out" / "distill_config.json") as f:
        assert [p["name"] for p in json.load(f)["phases"]] == ["layer1", "layer2", "prediction"]


def final_weights(folder):
    return {n: p.numpy() for n, p in paddle.load(str(folder / "trainable.pdparams")).items()}


# phases of 3, 3 and 6 steps, checkpoints every 3: killed at 4 resumes across the layer1 -> layer2 boundary (and
# at 7 into prediction); killed at 11 resumes inside the prediction phase, from step 9
@pytest.mark.parametrize("die_at", [4, 11])
def test_killed_between_or_inside_phases_resumes_exactly(tmp_path, demo_glue, tiny_teacher, progressive,
                                                         monkeypatch, die_at):
    task_distill.main(run_args(demo_glue, tiny_teacher, tmp_path / "full", progressive))
    killed = run_args(demo_glue, tiny_teacher, tmp_path / "killed", progressive)
    kill_then_resume(monkeypatch, die_at, lambda: task_distill.main(killed),
                     lambda: task_distill.main(killed + ["--resume"]))
    full, resumed = final_weights(tmp_path / "full" / "checkpoint"), final_weights(tmp_path / "killed" / "checkpoint")
    assert full.keys() == resumed.keys()
    for name in full:
        assert np.array_equal(full[name], resumed[name]), name
    with open(tmp_path / "killed" / "all_results.json") as f, open(tmp_path / "full" / "all_results.json") as g:
        a, b = json.load(f), json.load(g)
    assert a["phases"] == b["phases"]


def test_tinybert_phases_in_one_run_continue_from_the_best_intermediate_model(tmp_path, demo_glue, tiny_teacher,
                                                                              monkeypatch):
    config = write(str(tmp_path / "tinybert.json"), json.dumps(
        {"phases": "tinybert", "intermediate_matches": [{"preset": "tinybert"}]}))
    restored = []
    from utils.adapters.base import Adapter
    real = Adapter.restore
    monkeypatch.setattr(Adapter, "restore", lambda self, folder: (restored.append(folder), real(self, folder)))
    results = task_distill.main(run_args(demo_glue, tiny_teacher, tmp_path / "out", config))
    assert restored == [str(tmp_path / "out" / "best_inter_model")]
    assert os.path.isdir(tmp_path / "out" / "best_model")
    inter, pred = results["phases"]
    assert inter["phase"] == "intermediate" and "eval_inter_loss" in inter and 1 <= inter["best_step"] <= 6
    assert pred["phase"] == "prediction" and "eval_accuracy" in pred and 7 <= pred["best_step"] <= 12


def test_resume_refuses_other_phases(tmp_path, demo_glue, tiny_teacher, progressive, capsys):
    argv = run_args(demo_glue, tiny_teacher, tmp_path / "out", progressive, steps=4)
    task_distill.main(argv)
    write(progressive, json.dumps({"phases": {"preset": "progressive", "layer_share": 0.25}, "hard_label_weight": 0.5}))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        task_distill.main(argv + ["--resume"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "cannot resume: this run's config differs from the checkpoint's" in err


# ---- the MobileBERT losses, against hand computations

def test_feature_map_loss_standardises_each_token_and_ignores_padding():
    from utils.losses import feature_map
    h_S = paddle.to_tensor([[[1.0, 3.0], [5.0, 5.0]]])  # token 2 is padding
    h_T = paddle.to_tensor([[[10.0, 0.0], [1.0, 2.0]]])
    mask = paddle.to_tensor([[1.0, 0.0]])
    # token 1: student standardised to (-1, 1), teacher to (1, -1) (up to the 1e-6 in the variance)
    assert float(feature_map(h_S, h_T, mask)) == pytest.approx((4 + 4) / 2, rel=1e-5)


def test_mean_variance_loss_hand_computed():
    from utils.losses import mean_variance
    h_S = paddle.to_tensor([[[1.0, 3.0, 5.0], [0.0, 0.0, 0.0]]])
    h_T = paddle.to_tensor([[[2.0, 2.0], [9.0, 9.0]]])  # widths may differ
    mask = paddle.to_tensor([[1.0, 0.0]])
    # token 1: student mean 3, variance 8/3; teacher mean 2, variance 0
    assert float(mean_variance(h_S, h_T, mask)) == pytest.approx(1 + (8 / 3) ** 2, rel=1e-5)


def test_attention_kl_over_real_keys_with_teacher_heads_grouped():
    from utils.losses import attention_kl
    rng = np.random.default_rng(0)
    s_S = rng.normal(size=(1, 1, 3, 3)).astype("float32")
    s_T = rng.normal(size=(1, 2, 3, 3)).astype("float32")
    mask = np.array([[1.0, 1.0, 0.0]], dtype="float32")

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    p_T = softmax(s_T[..., :2]).mean(1)  # two teacher heads averaged into the student's one; key 3 is padding
    p_S = softmax(s_S[..., :2])[:, 0]
    expected = np.mean([(p_T[0, q] * np.log(p_T[0, q] / p_S[0, q])).sum() for q in range(2)])
    got = attention_kl(*(paddle.to_tensor(x) for x in (s_S, s_T, mask)))
    assert float(got) == pytest.approx(expected, rel=1e-4)
    assert float(attention_kl(paddle.to_tensor(s_T), paddle.to_tensor(s_T), paddle.to_tensor(mask))) == \
        pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(float(got))


def test_fewer_steps_than_phases_is_refused_before_anything_is_written(tmp_path, demo_glue, tiny_teacher,
                                                                      progressive, capsys):
    with pytest.raises(SystemExit) as info:
        task_distill.main(run_args(demo_glue, tiny_teacher, tmp_path / "out", progressive, steps=2))
    err = capsys.readouterr().err.strip().split("\n")[-1]
    assert info.value.code == 2 and err == "error: 2 training steps cannot hold 3 phases; train longer"
    assert not os.path.exists(tmp_path / "out")


TWO_PHASES = {"phases": [{"name": "soft", "kd_weight": 1.0, "share": 0.5},
                         {"name": "prediction", "kd_weight": 1.0, "hard_label_weight": 1.0}]}


@pytest.mark.parametrize("student,phases", [("2l-32d", False), ("2l-32d", True), ("cnn", False)])
def test_freeze_embeddings_keeps_them_bit_for_bit_and_trains_the_rest(tmp_path, demo_glue, tiny_teacher, student,
                                                                      phases, monkeypatch):
    from utils.demo import vocabulary, write_vectors
    shots = snapshots_at_phase_starts(monkeypatch)
    args = ["--task_name", "SST-2", "--glue_dir", demo_glue, "--teacher_path", tiny_teacher, "--output_dir",
            tmp_path / "out", "--max_steps", 6, "--save_steps", 3, "--logging_steps", 3, "--batch_size", 16,
            "--learning_rate", 1e-3, "--max_seq_length", 32, "--student_model_name_or_path", student,
            "--student_init", "teacher", "--freeze_embeddings"]
    if phases:
        args += ["--distill_config", write(tmp_path / "two.json", json.dumps(TWO_PHASES))]
    else:
        args += ["--hard_label_weight", 1]
    if student == "cnn":
        write_vectors(str(tmp_path / "vectors.txt"), vocabulary())
        args += ["--glove_embs", tmp_path / "vectors.txt"]
    task_distill.main([str(a) for a in args])
    final = final_weights(tmp_path / "out" / ("checkpoint" if phases else "checkpoint-prediction"))
    start = shots[0][1]
    embeddings = {n for n in start if (".embeddings." in n if student != "cnn" else ".embedding." in n)}
    changed = {n for n in start if not np.array_equal(start[n], final[n])}
    assert embeddings and not embeddings & changed  # word (and position, type) embeddings untouched
    unused = {n for n in start if ".fit_dense" in n}  # TinyBERT's projections serve intermediate matches only
    assert changed == set(start) - embeddings - unused
    with open(tmp_path / "out" / "distill_config.json") as f:
        assert [p["lr"] for p in json.load(f)["phases"]] == [{"embeddings": 0.0}] * (2 if phases else 1)


@pytest.mark.parametrize("student,init,message", [
    ("2l-32d", "random", "would keep random embeddings"),
    ("cnn", "pretrained", "would keep random embeddings"),  # a word student without --glove_embs
    ("bow", "pretrained", "the bow student has no embeddings to keep")])
def test_freeze_embeddings_refuses_what_it_cannot_keep(tmp_path, demo_glue, tiny_teacher, capsys, student, init,
                                                       message):
    args = ["--task_name", "SST-2", "--glue_dir", demo_glue, "--teacher_path", tiny_teacher, "--output_dir",
            tmp_path / "out", "--max_steps", 2, "--student_model_name_or_path", student, "--student_init", init,
            "--hard_label_weight", 1, "--freeze_embeddings"]
    with pytest.raises(SystemExit) as stop:
        task_distill.main([str(a) for a in args])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")
