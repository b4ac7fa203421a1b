"""INT8 students: export_model.py --quantize int8 writes model.int8.onnx, predict.py --int8 runs it and agrees
with FP32, report.py shows both side by side; a bad --quantize is refused."""
import json
import os

import numpy as np
import pytest

import export_model
import predict
import report
import run_glue
import task_distill


def argv(*args):
    return [str(a) for a in args]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, demo_glue, tiny_bert):
    """A small pipeline folder: a trained teacher, a distilled student, and both exported with INT8."""
    out = tmp_path_factory.mktemp("int8")
    quick = ["--task_name", "SST-2", "--glue_dir", demo_glue, "--max_seq_length", 32, "--save_steps", 40,
             "--logging_steps", 20]
    run_glue.main(argv(*quick, "--model_name_or_path", tiny_bert, "--output_dir", out / "teacher", "--max_steps", 80,
                       "--learning_rate", 2e-3))
    task_distill.main(argv(*quick, "--teacher_path", out / "teacher" / "best_model", "--student_model_name_or_path",
                           "1l-32d", "--student_init", "random", "--output_dir", out / "pred", "--max_steps", 80,
                           "--learning_rate", 2e-3))
    for role, src in (("teacher", "teacher"), ("student", "pred")):
        export_model.main(argv("--model_dir", out / src / "best_model", "--output_dir", out / "export" / role,
                               "--quantize", "int8", "--max_seq_length", 32))
    return out


def test_int8_export_is_smaller_and_agrees_with_fp32(pipeline, demo_glue, tmp_path):
    export = pipeline / "export" / "teacher"
    info = json.load(open(export / "export.json"))
    assert info["int8"] == "model.int8.onnx" and info["onnx"] == "model.onnx"  # --quantize implies --onnx
    assert os.path.getsize(export / "model.int8.onnx") < os.path.getsize(export / "model.onnx")
    outputs = {}
    for name, flags in (("fp32", ["--backend", "onnx"]), ("int8", ["--int8"])):
        path = tmp_path / f"{name}.tsv"
        predict.main(argv("--model_dir", export, "--task_name", "SST-2", "--glue_dir", demo_glue, "--output_file",
                          path, *flags))
        outputs[name] = [line.split("\t")[2] for line in open(path).read().splitlines()[1:]]
    agree = np.mean([a == b for a, b in zip(outputs["fp32"], outputs["int8"])])
    assert len(outputs["int8"]) == 60 and agree >= 0.95


def test_report_shows_fp32_and_int8_side_by_side(pipeline):
    report.main(argv("--out", pipeline, "--latency_repeats", 1))
    text = open(pipeline / "report.md").read()
    assert "## INT8 (onnxruntime dynamic quantization) vs FP32" in text
    rows = [line for line in text.splitlines() if line.startswith("| student |") and " / " in line]
    assert rows and rows[0].count(" / ") == 4  # size, batch 1, batch 32, dev metric: FP32 / INT8 each
    assert "onnxruntime_int8" in text


def test_int8_logits_stay_close_to_fp32_on_a_model_that_learnt(learnt_task, tmp_path, capsys):
    """The picked route (dynamic quantization) on a tiny model that learnt its task (0.83 dev accuracy): INT8
    logits against FP32's on the 200 dev rows. Measured: max abs difference 0.25 and mean 0.12 for logits up to
    1.72 (a 32-wide model quantizes coarsely), every argmax equal; the bounds leave room for other CPUs' kernels."""
    from utils.adapters import load_encoder
    from utils.inference import INT8_FILE, ONNX_FILE, OnnxPredictor
    from utils.tasks import load_task
    from utils.training import batched_logits
    glue, teacher, _ = learnt_task
    export = tmp_path / "export"
    export_model.main(argv("--model_dir", teacher, "--output_dir", export, "--quantize", "int8",
                           "--max_seq_length", 32))
    method = json.load(open(export / "export.json"))["int8_method"]
    assert method.startswith("onnxruntime dynamic quantization") and f"model.int8.onnx: {method})" in \
        capsys.readouterr().out  # the export says which INT8 route it took
    _, _, dev = load_task("SST-2", glue_dir=glue, with_train=False)
    features = load_encoder(export).encode(dev["dev"], 32)
    fp32, int8 = (batched_logits(OnnxPredictor(export, 1, f), features, 32) for f in (ONNX_FILE, INT8_FILE))
    assert np.abs(fp32).max() > 1  # a trained model's logits, not all near zero
    assert np.abs(int8 - fp32).max() < 0.4 and np.abs(int8 - fp32).mean() < 0.2
    assert np.mean(int8.argmax(1) == fp32.argmax(1)) >= 0.98


@pytest.mark.parametrize("flags,expected", [
    (["--quantize", "int4"], "argument --quantize: invalid choice: 'int4'"),
])
def test_a_bad_quantize_value_is_refused(flags, expected, pipeline, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        export_model.main(argv("--model_dir", pipeline / "pred" / "best_model", "--output_dir", tmp_path / "x", *flags))
    assert info.value.code == 2 and expected in capsys.readouterr().err and not os.path.exists(tmp_path / "x")


def test_predict_int8_without_an_int8_file_names_the_fix(pipeline, tmp_path, capsys):
    export = tmp_path / "fp32only"
    export_model.main(argv("--model_dir", pipeline / "pred" / "best_model", "--output_dir", export, "--onnx"))
    texts = tmp_path / "t.txt"
    texts.write_text("the movie was great .\n")
    with pytest.raises(SystemExit) as info:
        predict.main(argv("--model_dir", export, "--input", texts, "--int8"))
    assert info.value.code == 2 and "no model.int8.onnx; export with --quantize int8" in capsys.readouterr().err


def test_an_lstm_node_quantized_to_int8_tracks_fp32(tmp_path):
    """quantize_lstms on a lone ONNX LSTM (12 steps, batch 3, 8 inputs, 32 units, weights ~ N(0, 0.4)): the INT8
    node's hidden states (in [-1, 1]) are within 0.05 of FP32's, 0.01 on average (measured 0.019 and 0.002); the
    same weights with the gates of R in reverse order, the kind of error a wrong layout makes, are 0.81 and 0.11
    away."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    from utils.inference import quantize_lstms
    rng = np.random.default_rng(0)
    steps, batch, inputs, hidden = 12, 3, 8, 32
    weights = {"W": rng.normal(0, 0.4, (1, 4 * hidden, inputs)), "R": rng.normal(0, 0.4, (1, 4 * hidden, hidden)),
               "B": rng.normal(0, 0.1, (1, 8 * hidden))}
    graph = helper.make_graph([helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], hidden_size=hidden)], "lstm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, batch, inputs])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(tmp_path / "fp32.onnx"))
    assert quantize_lstms(str(tmp_path / "fp32.onnx"), str(tmp_path / "int8.onnx")) == str(tmp_path / "int8.onnx")
    assert [node.op_type for node in onnx.load(str(tmp_path / "int8.onnx")).graph.node] == ["DynamicQuantizeLSTM"]
    x = {"x": rng.normal(0, 1, (steps, batch, inputs)).astype(np.float32)}
    fp32, int8 = (onnxruntime.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
                  .run(None, x)[0] for name in ("fp32", "int8"))
    assert fp32.shape == (steps, 1, batch, hidden) and np.abs(fp32).max() > 0.5
    assert np.abs(int8 - fp32).max() <= 0.05 and np.abs(int8 - fp32).mean() <= 0.01
