"""The adapter contract, run over every architecture; word students distilled end to end through main()."""
import json
import os
import random

import numpy as np
import pytest
from conftest import model_logits, write

import export_model
import predict
import task_distill
from utils.tasks.sequence import Example

WORD_ARCHS = ("bilstm", "cnn", "bow")
SMALL = ["--emb_dim", "16", "--hidden_size", "16", "--mlp_size", "16", "--num_filters", "8", "--num_buckets", "512"]


def distill_argv(glue, teacher, out, student, *extra, steps=12):
    return [str(a) for a in ["--task_name", "SST-2", "--glue_dir", glue, "--teacher_path", teacher,
                             "--output_dir", out, "--student_model_name_or_path", student, "--max_steps", steps,
                             "--save_steps", 6, "--logging_steps", 3, "--batch_size", 16, "--learning_rate", 3e-3,
                             "--max_seq_length", 32, *SMALL, *extra]]


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    from utils.demo import vocabulary, write_vectors
    path = str(tmp_path_factory.mktemp("vectors") / "vectors.txt")
    return write_vectors(path, [w for w in vocabulary() if w.isalpha()], dim=16)


@pytest.fixture(scope="module")
def students(tmp_path_factory, demo_glue, tiny_teacher, vectors):
    """One distilled student folder per word architecture (a short run each)."""
    out = tmp_path_factory.mktemp("students")
    results = {}
    for arch in WORD_ARCHS:
        results[arch] = task_distill.main(distill_argv(demo_glue, tiny_teacher, out / arch, arch,
                                                       "--glove_embs", vectors))
    return out, results


@pytest.fixture(scope="module")
def tinybert_student(tmp_path_factory, demo_glue, tiny_teacher):
    out = tmp_path_factory.mktemp("tinybert")
    task_distill.main(distill_argv(demo_glue, tiny_teacher, out, "2l-16d", "--student_init", "random", steps=4)
                      + ["--learning_rate", "1e-4"])
    return str(out / "best_model")


@pytest.fixture(scope="module")
def mobilebert_student(tmp_path_factory, demo_glue, tiny_teacher):
    """A MobileBERT-style student (2 layers, 32 wide like the teacher, a 16-unit bottleneck) after progressive
    transfer: a feature-map and attention phase per layer, then prediction-layer distillation."""
    out = tmp_path_factory.mktemp("mobilebert")
    config = write(str(out / "progressive.json"), json.dumps({"phases": "progressive"}))
    results = task_distill.main(distill_argv(demo_glue, tiny_teacher, out / "run", "mobilebert-2l-32d-16b",
                                             "--student_init", "random", "--distill_config", config, steps=6))
    assert [p["phase"] for p in results["phases"]] == ["layer1", "layer2", "prediction"]
    return str(out / "run" / "best_model")


def folders(students, tinybert_student, mobilebert_student, tiny_teacher):
    out, _ = students
    return {"bert-teacher": tiny_teacher, "tinybert": tinybert_student, "mobilebert": mobilebert_student,
            **{arch: str(out / arch / "best_model") for arch in WORD_ARCHS}}


EXAMPLES = [Example("the movie was good .", None, 1),
            Example("the plot was not very dull but the cast was weak from start to finish .", None, 0),
            Example("zzz unknownword", None, 0)]


@pytest.mark.parametrize("name", ["bert-teacher", "tinybert", "mobilebert", *WORD_ARCHS])
def test_adapter_contract(name, students, tinybert_student, mobilebert_student, tiny_teacher, tmp_path):
    import paddle

    from utils.adapters import arch_of, load_adapter, load_encoder
    from utils.batches import collate
    from utils.inference import OnnxPredictor, PaddlePredictor
    folder = folders(students, tinybert_student, mobilebert_student, tiny_teacher)[name]
    adapter = load_adapter(folder)
    adapter.eval()
    assert adapter.arch == arch_of(folder) == ("bert" if name in ("bert-teacher", "tinybert") else name)
    batch = collate(adapter.encoder.encode(EXAMPLES, 32), np.arange(3))
    inputs = {k: paddle.to_tensor(v) for k, v in batch.items() if k != "labels"}
    out = adapter(inputs)
    logits = out["logits"].numpy()
    assert logits.shape == (3, 2) and np.isfinite(logits).all()
    assert out["mask"].shape[0] == 3
    # parameters and FLOPs
    assert adapter.num_parameters() == sum(int(p.size) for p in adapter.model.parameters()) > 0
    assert adapter.flops(64) > adapter.flops(16) > 0
    # save -> load -> the same logits
    from utils.adapters import save_adapter
    save_adapter(adapter, str(tmp_path / "again"))
    again = load_adapter(str(tmp_path / "again"))
    again.eval()
    np.testing.assert_allclose(again(inputs)["logits"].numpy(), logits, atol=1e-6)
    # export -> Paddle Inference and onnxruntime give the same logits (within 1e-4)
    export = str(tmp_path / "export")
    export_model.main(["--model_dir", folder, "--output_dir", export, "--onnx", "--max_seq_length", "32"])
    with open(os.path.join(export, "export.json"), encoding="utf-8") as f:
        info = json.load(f)
    assert info["arch"] == adapter.arch and info["parameters"] == adapter.num_parameters()
    assert info["inputs"] == list(adapter.encoder.input_names)
    exported = collate(load_encoder(export).encode(EXAMPLES, 32), np.arange(3))
    for engine in (PaddlePredictor(export), OnnxPredictor(export)):
        assert np.abs(engine(exported) - logits).max() <= 1e-4


def test_word_students_train_and_report(students, demo_glue):
    out, results = students
    for arch in WORD_ARCHS:
        r = results[arch]
        assert r["student"].startswith(arch) and r["student_parameters"] > 0
        assert r["best_step"] in (6, 12)  # its accuracy is checked below: the saved best model scores it again
        saved = json.load(open(out / arch / "best_model" / "config.json", encoding="utf-8"))
        assert saved["distill_arch"] == arch and saved["id2label"] == {"0": "0", "1": "1"}
        vocab = open(out / arch / "best_model" / "vocab.txt", encoding="utf-8").read().split("\n")
        assert vocab[:2] == ["[PAD]", "[UNK]"] and "movie" in vocab  # built from the training file
        # the saved best model scores what the run reported
        from utils.tasks.sequence import get_task, read_examples
        dev = read_examples(get_task("SST-2"), os.path.join(demo_glue, "SST-2"), "dev")
        logits = model_logits(out / arch / "best_model", dev, 32)
        accuracy = float((logits.argmax(1) == np.array([e.label for e in dev])).mean())
        assert accuracy == pytest.approx(r["eval_accuracy"], abs=1e-6)


def test_predict_writes_labels_for_a_word_student(students, tmp_path, demo_glue):
    out, results = students
    export = str(tmp_path / "export")
    export_model.main(["--model_dir", str(out / "bilstm" / "best_model"), "--output_dir", export])
    got = predict.main(["--model_dir", export, "--task_name", "SST-2", "--glue_dir", demo_glue, "--split", "dev",
                        "--output_file", str(tmp_path / "pred.tsv")])
    assert got["dev_accuracy"] == pytest.approx(results["bilstm"]["eval_accuracy"], abs=1e-6)


# ---- distillation beats gold labels when the teacher knows more than the labels show

def noisy_copy(demo_glue, folder, flip=0.35, seed=3):
    """The demo task with a share of its training labels flipped (dev untouched): gold labels now mislead."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(folder, "SST-2"), exist_ok=True)
    with open(os.path.join(demo_glue, "SST-2", "train.tsv"), encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    flipped = []
    for row in rows:
        text, label = row.rsplit("\t", 1)
        flipped.append(f"{text}\t{1 - int(label) if rng.random() < flip else label}")
    write(os.path.join(folder, "SST-2", "train.tsv"), "\n".join([header] + flipped) + "\n")
    with open(os.path.join(demo_glue, "SST-2", "dev.tsv"), encoding="utf-8") as f:
        write(os.path.join(folder, "SST-2", "dev.tsv"), f.read())
    return folder


@pytest.fixture(scope="module")
def noisy_task(tmp_path_factory, learnt_task):
    """The demo task with 35% of its training labels flipped, and a teacher fine-tuned on the clean labels."""
    clean, teacher_dir, teacher = learnt_task
    root = tmp_path_factory.mktemp("noisy")
    noisy = noisy_copy(clean, str(root / "noisy"))
    return root, noisy, teacher, teacher_dir, clean


# the quality floor: a student distilled from the teacher beats the same student trained on the (noisy) gold labels
# by a clear margin, with a fixed seed; both see the same data, steps and learning rate
@pytest.mark.parametrize("student,extra", [("bilstm", ["--learning_rate", "5e-3"]),
                                           ("2l-32d", ["--learning_rate", "2e-3", "--student_init", "random"])])
def test_distilled_student_beats_its_gold_only_twin_on_noisy_labels(noisy_task, student, extra):
    root, noisy, teacher, teacher_dir, _ = noisy_task
    assert teacher["eval_accuracy"] >= 0.8  # the teacher learnt the rule from clean labels
    common = ["--max_steps", "150", "--save_steps", "50", *extra]
    distilled = task_distill.main(distill_argv(noisy, teacher_dir, root / student / "kd",
                                               student, *common))
    gold = task_distill.main(distill_argv(noisy, teacher_dir, root / student / "gold", student,
                                          "--pred_weight", "0", "--hard_label_weight", "1", *common))
    assert distilled["eval_accuracy"] >= gold["eval_accuracy"] + 0.15, (distilled, gold)


def low_label_copy(clean, folder, labelled=24):
    """The clean demo task with only its first rows labelled; the other training sentences, without labels, become
    the transfer file (the setting of the real demo: a few labels, much more text)."""
    with open(os.path.join(clean, "SST-2", "train.tsv"), encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    write(os.path.join(folder, "SST-2", "train.tsv"), "\n".join([header] + rows[:labelled]) + "\n")
    with open(os.path.join(clean, "SST-2", "dev.tsv"), encoding="utf-8") as f:
        write(os.path.join(folder, "SST-2", "dev.tsv"), f.read())
    return write(os.path.join(folder, "transfer.txt"), "\n".join(r.rsplit("\t", 1)[0] for r in rows[labelled:]) + "\n")


# the quality floor of transfer sets: with 24 labelled sentences, a student that learns the teacher's outputs on the
# other 976 (unlabeled) beats its twin, which has the same vocabulary and steps but only the 24 gold labels
@pytest.mark.parametrize("student", ["cnn", "bow"])
def test_transfer_text_lifts_a_student_above_its_gold_only_twin(noisy_task, student):
    root, _, teacher, teacher_dir, clean = noisy_task
    assert teacher["eval_accuracy"] >= 0.8
    low = str(root / "low")
    transfer = low_label_copy(clean, low)
    common = ["--max_steps", "250", "--save_steps", "50", "--learning_rate", "5e-3", "--transfer_file", transfer]
    distilled = task_distill.main(distill_argv(low, teacher_dir, root / student / "low-kd",
                                               student, "--hard_label_weight", "1", *common))
    twin = task_distill.main(distill_argv(low, teacher_dir, root / student / "low-gold", student,
                                          "--pred_weight", "0", "--hard_label_weight", "1", *common))
    assert distilled["transfer_examples"] > 900 and twin["transfer_examples"] == 0
    assert distilled["eval_accuracy"] >= twin["eval_accuracy"] + 0.1, (distilled, twin)


# ---- bad input: one error line naming what is wrong, exit 2, nothing written

def expect_error(capsys, argv, message, out):
    with pytest.raises(SystemExit) as info:
        task_distill.main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and message in err and err.startswith("error: ") and "\n" not in err, err
    assert not os.path.exists(out)


def test_intermediate_distillation_of_a_bilstm_is_refused(tmp_path, capsys, demo_glue, tiny_teacher):
    expect_error(capsys, distill_argv(demo_glue, tiny_teacher, tmp_path / "out", "bilstm", "--intermediate_distill"),
                 "a bilstm student has no transformer layers to match", tmp_path / "out")


def test_intermediate_matches_in_a_config_are_refused_for_a_cnn(tmp_path, capsys, demo_glue, tiny_teacher):
    config = write(str(tmp_path / "c.json"), json.dumps({"intermediate_matches": [{"preset": "tinybert"}]}))
    expect_error(capsys, distill_argv(demo_glue, tiny_teacher, tmp_path / "out", "cnn", "--distill_config", config),
                 "c.json: intermediate_matches need a student with transformer layers", tmp_path / "out")


def test_missing_vectors_file(tmp_path, capsys, demo_glue, tiny_teacher):
    expect_error(capsys, distill_argv(demo_glue, tiny_teacher, tmp_path / "out", "bilstm", "--glove_embs",
                                      tmp_path / "nope.txt"), "nope.txt: no such file", tmp_path / "out")


def test_malformed_vectors_file(tmp_path, capsys, demo_glue, tiny_teacher):
    bad = write(str(tmp_path / "bad.txt"), "good 0.1 0.2 0.3\nbad 0.1 oops\n")
    expect_error(capsys, distill_argv(demo_glue, tiny_teacher, tmp_path / "out", "bilstm", "--glove_embs", bad),
                 "bad.txt", tmp_path / "out")


def test_student_folder_without_its_vocabulary(tmp_path, capsys, demo_glue, tiny_teacher, students):
    import shutil
    out, _ = students
    broken = tmp_path / "broken"
    shutil.copytree(out / "cnn" / "best_model", broken)
    os.remove(broken / "vocab.txt")
    expect_error(capsys, distill_argv(demo_glue, tiny_teacher, tmp_path / "out", broken), "vocab.txt",
                 tmp_path / "out")


def test_cached_teacher_logits_spare_the_teacher_side_on_a_hit(tmp_path, demo_glue, tiny_teacher, monkeypatch,
                                                                 capsys):
    """A word student's second run over the same data reads the cached logits and never tokenises the training
    set for the teacher (on a million augmented rows that is minutes)."""
    from utils.adapters.bert import BertEncoder
    sizes = []
    real = BertEncoder.encode
    monkeypatch.setattr(BertEncoder, "encode", lambda self, ex, *a, **k: sizes.append(len(ex)) or real(self, ex, *a, **k))
    common = ["--cache_teacher_logits", "--cache_dir", str(tmp_path / "cache")]
    first = task_distill.main(distill_argv(demo_glue, tiny_teacher, tmp_path / "a", "bilstm", *common))
    assert "teacher logits: wrote" in capsys.readouterr().out and 240 in sizes
    sizes.clear()
    second = task_distill.main(distill_argv(demo_glue, tiny_teacher, tmp_path / "b", "bilstm", *common))
    assert "teacher logits: reusing" in capsys.readouterr().out
    assert 240 not in sizes  # only the 60 dev rows went through the teacher's tokenizer
    assert second["eval_accuracy"] == first["eval_accuracy"]


def test_a_word_student_folder_refuses_intermediate_distillation(tmp_path, capsys, demo_glue, tiny_teacher, students):
    out, _ = students
    expect_error(capsys, distill_argv(demo_glue, tiny_teacher, tmp_path / "out", out / "bilstm" / "best_model",
                                      "--intermediate_distill"), "a bilstm student has no transformer layers",
                 tmp_path / "out")


def test_a_word_teacher_cannot_teach_a_tinybert_student(tmp_path, capsys, demo_glue, students):
    out, _ = students
    expect_error(capsys, distill_argv(demo_glue, out / "cnn" / "best_model", tmp_path / "out", "2l-16d",
                                      "--student_init", "random"),
                 "the first teacher is a cnn model: use a BERT-family teacher", tmp_path / "out")


def test_a_teacher_with_another_label_count_is_refused(tmp_path, capsys, tiny_bert):
    three = tmp_path / "three"
    import paddle
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer
    paddle.seed(0)
    AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3).save_pretrained(str(three))
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(str(three))
    from utils.demo import write_sst2
    write_sst2(str(tmp_path / "glue" / "SST-2"), n_train=40, n_dev=10)
    expect_error(capsys, distill_argv(str(tmp_path / "glue"), three, tmp_path / "out", "bilstm"),
                 "three: the teacher has 3 outputs; the task needs 2", tmp_path / "out")
    # a gold-only twin reads no teacher output: the same folder only lends its tokenizer, and the twin trains
    task_distill.main(distill_argv(str(tmp_path / "glue"), three, tmp_path / "twin", "bilstm", "--pred_weight", "0",
                                   "--hard_label_weight", "1", steps=2))
    assert os.path.isfile(tmp_path / "twin" / "all_results.json")


def test_predict_refuses_pairs_for_a_single_text_word_student(tmp_path, capsys, students):
    out, _ = students
    export = str(tmp_path / "export")
    export_model.main(["--model_dir", str(out / "bow" / "best_model"), "--output_dir", export])
    pairs = write(str(tmp_path / "pairs.txt"), "good\tbad\n")
    with pytest.raises(SystemExit) as info:
        predict.main(["--model_dir", export, "--input", pairs])
    assert info.value.code == 2 and "this student reads single texts; the examples are pairs" in capsys.readouterr().err


def test_int8_bilstm_runs_quantized_lstms_and_agrees_with_fp32(students, demo_glue, tmp_path):
    """export_model.py --quantize int8 turns a BiLSTM's two LSTM nodes into onnxruntime's DynamicQuantizeLSTM
    (INT8 weights), and its logits on the demo's dev sentences stay close to FP32's: within a quarter of the FP32
    logits' range at worst and a tenth on average (measured 0.18 and 0.05 for this 16-unit student; a wrong
    weight layout moves them by about the whole range), and at least 90% of the labels agree."""
    import onnx

    from utils.adapters import load_encoder
    from utils.batches import collate
    from utils.inference import OnnxPredictor
    from utils.tasks.sequence import get_task, read_examples
    out, _ = students
    export = tmp_path / "export"
    export_model.main(["--model_dir", str(out / "bilstm" / "best_model"), "--output_dir", str(export),
                       "--quantize", "int8", "--max_seq_length", "32"])
    ops = [node.op_type for node in onnx.load(str(export / "model.int8.onnx")).graph.node]
    assert ops.count("DynamicQuantizeLSTM") == 2 and "LSTM" not in ops
    dev = read_examples(get_task("SST-2"), os.path.join(demo_glue, "SST-2"), "dev")
    batch = collate(load_encoder(str(export)).encode(dev, 32), np.arange(len(dev)))
    fp32, int8 = OnnxPredictor(str(export))(batch), OnnxPredictor(str(export), model_file="model.int8.onnx")(batch)
    spread, gap = np.ptp(fp32), np.abs(int8 - fp32)
    assert gap.max() <= 0.25 * spread and gap.mean() <= 0.1 * spread
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.9


def test_lstm_quantization_leaves_a_graph_without_lstms_alone(students, tmp_path):
    from utils.inference import quantize_lstms
    out, _ = students
    export = tmp_path / "export"
    export_model.main(["--model_dir", str(out / "cnn" / "best_model"), "--output_dir", str(export), "--onnx"])
    assert quantize_lstms(str(export / "model.onnx"), str(tmp_path / "lstm.onnx")) == str(export / "model.onnx")
    assert not os.path.exists(tmp_path / "lstm.onnx")
