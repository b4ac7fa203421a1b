"""export_model.py -> predict.py: the deployed model predicts what the trained one does."""
import json
import os

import numpy as np
import pytest
from conftest import write

import export_model
import predict
import run_glue


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_glue, tiny_bert):
    out = tmp_path_factory.mktemp("teacher")
    run_glue.main(["--task_name", "SST-2", "--glue_dir", demo_glue, "--model_name_or_path", tiny_bert,
                   "--output_dir", str(out), "--max_steps", "6", "--learning_rate", "1e-3", "--save_steps", "6"])
    return str(out / "best_model")


def dygraph_logits(model_dir, examples, max_seq_length=128):
    from conftest import model_logits
    return model_logits(model_dir, examples, max_seq_length)


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def test_export_then_predict_equals_dygraph(tmp_path, trained, demo_glue):
    from utils.tasks.sequence import get_task, read_examples
    export = str(tmp_path / "export")
    assert export_model.main(["--model_dir", trained, "--output_dir", export, "--onnx", "--max_seq_length", "64"]) \
        == export
    files = set(os.listdir(export))
    assert {"inference.pdiparams", "model.onnx", "config.json", "vocab.txt", "export.json"} <= files
    assert "inference.json" in files or "inference.pdmodel" in files
    with open(os.path.join(export, "export.json"), encoding="utf-8") as f:
        info = json.load(f)
    from utils.files import load_model_state
    state = load_model_state(trained)
    assert info["parameters"] == sum(int(np.prod(v.shape)) for v in state.values())

    results = predict.main(["--model_dir", export, "--task_name", "SST-2", "--glue_dir", demo_glue,
                            "--split", "dev", "--output_file", str(tmp_path / "pred.tsv"), "--batch_size", "7"])
    rows = read_tsv(tmp_path / "pred.tsv")
    dev = read_examples(get_task("SST-2"), os.path.join(demo_glue, "SST-2"), "dev")
    assert rows[0] == ["index", "text", "prediction", "prob_0", "prob_1"] and len(rows) == len(dev) + 1
    reference = dygraph_logits(trained, dev, 64)
    z = np.exp(reference - reference.max(1, keepdims=True))
    probs = z / z.sum(1, keepdims=True)
    got = np.array([[float(x) for x in r[3:]] for r in rows[1:]])
    assert np.abs(got - probs).max() <= 1e-5  # the file rounds to 6 decimals
    assert [r[2] for r in rows[1:]] == [str(i) for i in reference.argmax(1)]
    accuracy = float((reference.argmax(1) == np.array([e.label for e in dev])).mean())
    assert results["dev_accuracy"] == pytest.approx(accuracy)
    with open(tmp_path / "pred.json", encoding="utf-8") as f:
        assert json.load(f)["dev_accuracy"] == pytest.approx(accuracy)


def test_predictor_logits_within_1e4_of_dygraph_and_onnx(tmp_path, trained, capfd):
    from utils.adapters import load_encoder
    from utils.batches import collate
    from utils.tasks.sequence import Example
    from utils.inference import PaddlePredictor
    export = str(tmp_path / "export")
    capfd.readouterr()
    export_model.main(["--model_dir", trained, "--output_dir", export, "--onnx"])
    printed = capfd.readouterr()  # quiet: one line saying what was written (paddle2onnx's chatter silenced)
    assert printed.out.strip().splitlines() == [printed.out.strip()] and printed.out.startswith("exported "), printed
    examples = [Example("the movie was good .", None, 0), Example("the plot was not very dull but the cast was "
                                                                   "weak from start to finish .", None, 1)]
    reference = dygraph_logits(trained, examples)
    batch = collate(load_encoder(export).encode(examples, 128), np.arange(2))
    for onednn in (True, False):
        got = PaddlePredictor(export, onednn=onednn)(batch)
        assert np.abs(got - reference).max() <= 1e-4
    pytest.importorskip("onnxruntime")
    from utils.inference import OnnxPredictor
    assert np.abs(OnnxPredictor(export)(batch) - reference).max() <= 1e-4


def test_predict_a_text_file(tmp_path, trained):
    export = str(tmp_path / "export")
    export_model.main(["--model_dir", trained, "--output_dir", export])
    texts = write(str(tmp_path / "texts.txt"), "the movie was good .\n\nthe cast was weak .\n")
    out = predict.main(["--model_dir", export, "--input", texts])
    assert out == os.path.join(export, "predictions-texts.tsv")
    rows = read_tsv(out)
    assert [r[1] for r in rows[1:]] == ["the movie was good .", "the cast was weak ."]
    assert all(abs(float(r[3]) + float(r[4]) - 1) < 1e-5 for r in rows[1:])


@pytest.mark.parametrize("case,expected", [
    ("not_export", "expected a folder written by export_model.py"),
    ("both", "pass either --task_name"),
    ("bad_text", "texts.txt:2: expected a text or two tab-separated texts, found 3 fields"),
])
def test_predict_bad_input(tmp_path, trained, capsys, case, expected):
    export = str(tmp_path / "export")
    export_model.main(["--model_dir", trained, "--output_dir", export])
    texts = write(str(tmp_path / "texts.txt"), "good\na\tb\tc\n")
    argv = {"not_export": ["--model_dir", trained, "--input", texts],
            "both": ["--model_dir", export],
            "bad_text": ["--model_dir", export, "--input", texts]}[case]
    with pytest.raises(SystemExit) as info:
        predict.main(argv)
    assert info.value.code == 2 and expected in capsys.readouterr().err
    assert not any(name.startswith("predictions") for name in os.listdir(export))


def test_export_refuses_a_missing_folder_and_writes_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_model.main(["--model_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "export")])
    assert "no such folder" in capsys.readouterr().err and os.listdir(tmp_path) == []


def test_exported_graph_has_no_dropout_and_the_model_keeps_its_own(tmp_path, trained):
    # eval-mode dropout is an identity, but a traced one stays in the graph as a copy op per call site
    from utils.adapters import load_adapter
    from utils.inference import export_static
    model = load_adapter(trained)
    before = [(type(m).__name__, getattr(m, "p", None), getattr(m, "dropout", None)) for m in model.sublayers()]
    assert any(p for _, p, _ in before), "the fixture should have dropout to remove"
    export_static(model, str(tmp_path))
    with open(tmp_path / "inference.json", encoding="utf-8") as f:
        graph = f.read()
    assert "layer_norm" in graph and "dropout" not in graph
    after = [(type(m).__name__, getattr(m, "p", None), getattr(m, "dropout", None)) for m in model.sublayers()]
    assert after == before  # restored, so training can go on after an export


def test_every_process_keeps_freed_memory_on_glibc_unless_told_not_to(monkeypatch):
    import platform

    from utils.process import keep_freed_memory
    assert keep_freed_memory() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    monkeypatch.setenv("DISTILL_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False


@pytest.mark.parametrize("setting, expected", [(None, "False"), ("1", "True")])
def test_strided_views_are_off_unless_asked_for(setting, expected):
    """paddle imported first (its flag then read from the environment already), the process settings second."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "FLAGS_use_stride_kernel"}
    if setting is not None:
        env["FLAGS_use_stride_kernel"] = setting
    code = ("import paddle\nfrom utils.process import configure\nconfigure()\n"
            "print(paddle.get_flags(['FLAGS_use_stride_kernel'])['FLAGS_use_stride_kernel'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip().splitlines()[-1] == expected


def test_parameter_and_flop_counts(trained):
    from utils.adapters import load_adapter
    from utils.inference import flops_per_example
    adapter = load_adapter(trained)
    config = adapter.model.config.to_dict()
    h, f, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    embeddings = (config["vocab_size"] + config["max_position_embeddings"] + config["type_vocab_size"]) * h + 2 * h
    layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h  # q,k,v,out; FFN in, out; two layer norms
    assert embeddings + n * layer + (h * h + h) + (h * 2 + 2) == adapter.num_parameters() \
        == sum(int(p.size) for p in adapter.model.parameters())  # + pooler + 2-label classifier
    assert adapter.flops(10) == flops_per_example(config, 10)
    h, f, n, s = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"], 10
    per_layer = 3 * s * h * h + s * s * h + s * s * h + s * h * h + s * h * f + s * f * h  # q,k,v; QK^T; AV; out; FFN
    assert flops_per_example(config, s) == 2 * (n * per_layer + h * h)  # + pooler; x2 for multiply and add


def test_median_seconds_runs_at_least_repeats_and_min_seconds():
    import time

    from utils.inference import median_seconds
    calls = []
    assert median_seconds(lambda: calls.append(1), 2, 5) < 0.01
    assert len(calls) == 7
    calls.clear()
    median_seconds(lambda: (calls.append(1), time.sleep(0.01)), 0, 3, min_seconds=0.1)
    assert 3 < len(calls) <= 10  # more than `repeats`, because 3 runs of 10 ms fill only 30 ms


def test_interleaved_medians_alternate_blocks_of_calls():
    import time

    from utils.inference import interleaved_medians
    calls = []
    slow = lambda: (calls.append("T"), time.sleep(0.02))  # noqa: E731
    fast = lambda: calls.append("S")  # noqa: E731
    medians = interleaved_medians([slow, fast], 1, 3, block_seconds=0.05)
    assert calls[:2] == ["T", "S"]  # the warm-up round, which also measures each call
    rounds = "".join(calls[2:])
    assert rounds.startswith("TT") and "TTS" in rounds and rounds.endswith("S")
    assert rounds.count("T") >= 3 and rounds.count("S") > rounds.count("T")  # fast calls come in bigger blocks
    assert medians[0] >= 0.02 > medians[1]


def test_latency_speedups_and_fastest_exported_engine():
    from utils.inference import fastest_exported, speedups
    # (role, engine, batch, seq) -> (seconds, parameters, FLOPs per example); FLOP ratio 10 at seq 64
    rows = {("teacher", "dygraph", 1, 64): (0.500, 100, 10.0), ("student", "dygraph", 1, 64): (0.010, 10, 1.0),
            ("teacher", "paddle_inference", 1, 64): (0.090, 100, 10.0),
            ("student", "paddle_inference", 1, 64): (0.012, 10, 1.0),
            ("teacher", "onnxruntime", 1, 64): (0.100, 100, 10.0),
            ("student", "onnxruntime", 1, 64): (0.010, 10, 1.0)}
    got = speedups(rows)
    assert got[("dygraph", 1, 64)] == pytest.approx((50.0, 10.0))
    assert got[("paddle_inference", 1, 64)] == pytest.approx((7.5, 10.0))
    assert got[("onnxruntime", 1, 64)] == pytest.approx((10.0, 10.0))
    # teacher fastest on Paddle Inference (90 ms), student on onnxruntime (10 ms); dygraph's 10 ms is no export
    (teacher_on, student_on, speedup, ratio), = fastest_exported(rows).values()
    assert (teacher_on, student_on) == ("paddle_inference", "onnxruntime")
    assert speedup == pytest.approx(9.0) and ratio == pytest.approx(10.0)
    assert fastest_exported({k: v for k, v in rows.items() if k[1] == "dygraph"}) == {}
