"""Transfer sets (task_distill.py --transfer_file) and the teacher-label store (utils/labels.py): reading plain text
and TSVs, dev rows and repeats dropped, labelling resumed after a kill and split over processes (byte-identical
shards), engines against dygraph, a word student's vocabulary shared with its twin, bad transfer files."""
import functools
import glob
import os

import numpy as np
import pytest

import task_distill
from conftest import write
from utils.errors import UserError
from utils.tasks.sequence import Example, get_task
from utils.labels import LabelStore, label_rows, plan_shards, read_shard, row_keys, teacher_label_fn, write_shard
from utils.transfer import NO_LABEL, clean_transfer, read_transfer

SST2, MRPC = get_task("SST-2"), get_task("MRPC")


def distill(glue, teacher, out, *extra, steps=6):
    argv = ["--task_name", "SST-2", "--glue_dir", glue, "--teacher_path", teacher, "--output_dir", out,
            "--max_steps", steps, "--save_steps", 3, "--logging_steps", 3, "--batch_size", 16, "--max_seq_length", 32,
            *extra]
    return task_distill.main([str(a) for a in argv])


# ---- reading transfer files

def test_plain_text_tsv_and_pairs_are_read(tmp_path):
    plain = write(str(tmp_path / "plain.txt"), "\ufeffa fine film\n\n  \nthe plot was dull\t0\r\n")
    assert [(e.text_a, e.text_b, e.label) for e in read_transfer(plain, SST2)] == [
        ("a fine film", None, NO_LABEL), ("the plot was dull", None, NO_LABEL)]  # label column ignored
    tsv = write(str(tmp_path / "train.tsv"), "sentence\tlabel\nit works \t1\nit does not\t0\n")
    assert [e.text_a for e in read_transfer(tsv, SST2)] == ["it works ", "it does not"]  # header skipped
    pairs = write(str(tmp_path / "pairs.txt"), "one text\tits pair\nanother\tpair two\t1\n")
    assert [(e.text_a, e.text_b) for e in read_transfer(pairs, MRPC)] == [("one text", "its pair"),
                                                                            ("another", "pair two")]
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    mrpc_tsv = write(str(tmp_path / "mrpc.tsv"), header + "1\t7\t8\tfirst\tsecond\n")
    assert [(e.text_a, e.text_b) for e in read_transfer(mrpc_tsv, MRPC)] == [("first", "second")]
    regression = read_transfer(pairs, get_task("STS-B"))  # no label for regression is NaN, never a score
    assert np.isnan(regression[0].label)


@pytest.mark.parametrize("content,task,message", [
    (b"", SST2, "empty.txt: no examples; expected one text per line"),
    (b"\n \n", SST2, "empty.txt: no examples"),
    (b"fine\nbinary \x00\x01 stuff\n", SST2, "empty.txt:2: a NUL byte: this looks like a binary file"),
    (b"fine\n\xff\xfe bad\n", SST2, "empty.txt:2: not UTF-8 text"),
    (b"a\tb\tc\n", SST2, "empty.txt:1: expected one text per line (optionally a label column after), found 3"),
    (b"only one text\n", MRPC, "empty.txt:1: expected two tab-separated texts per line"),
])
def test_bad_transfer_files_are_named_with_the_line(tmp_path, content, task, message):
    path = write(str(tmp_path / "empty.txt"), content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_transfer(path, task)


def test_dev_rows_and_repeats_are_dropped_with_the_counts(capsys):
    labelled = [Example("A good film", None, 1)]
    dev = {"dev": [Example("the plot  was DULL", None, 0)]}
    rows = [Example(t, None, NO_LABEL) for t in ("new text", "The plot was dull", "a  GOOD film", "new text ",
                                                 "other")]
    kept = clean_transfer(rows, labelled, dev)
    assert [e.text_a for e in kept] == ["new text", "other"]
    assert "5 rows read; 1 equal to a dev row and 2 repeats dropped; 2 kept" in capsys.readouterr().out


# ---- the label store

def fake_logits(features):
    """Logits that depend on each row's ids only (so byte equality tests the store, not the model)."""
    ids = features.columns["input_ids"]
    return np.asarray([[float(np.sum(x)), float(len(x))] for x in ids], dtype=np.float32)


def encoded(n=50):
    from utils.batches import Features
    rng = np.random.default_rng(0)
    ids = [rng.integers(1, 30, rng.integers(2, 9)) for _ in range(n)]
    examples = [Example(" ".join(map(str, x)), None, 0) for x in ids]
    return examples, Features({"input_ids": ids}, np.zeros(n, np.int64))


def shard_bytes(folder):
    return {os.path.basename(p): open(p, "rb").read() for p in glob.glob(os.path.join(folder, "*.logits"))}


def test_labelling_killed_between_shards_resumes_to_the_same_bytes(tmp_path):
    examples, features = encoded()
    keys = row_keys(examples)
    whole = LabelStore(str(tmp_path / "whole"))
    assert label_rows(whole, fake_logits, features, keys, shard_rows=8) == (7, 50)

    calls = []

    def dies_after_three(f):
        if len(calls) == 3:
            raise KeyboardInterrupt  # kill -9 between shards: three shards are on disk, nothing else
        calls.append(1)
        return fake_logits(f)
    resumed = LabelStore(str(tmp_path / "resumed"))
    with pytest.raises(KeyboardInterrupt):
        label_rows(resumed, dies_after_three, features, keys, shard_rows=8)
    assert len(shard_bytes(resumed.folder)) == 3 and not glob.glob(os.path.join(resumed.folder, "*.tmp"))
    resumed = LabelStore(resumed.folder)  # the rerun
    assert label_rows(resumed, fake_logits, features, keys, shard_rows=8) == (4, 50 - 24)  # only what was missing
    assert shard_bytes(resumed.folder) == shard_bytes(whole.folder)
    np.testing.assert_array_equal(resumed.gather(keys), fake_logits(features))


def test_two_processes_label_parts_that_merge_into_the_one_process_store(tmp_path):
    examples, features = encoded()
    keys = row_keys(examples)
    one = LabelStore(str(tmp_path / "one"))
    label_rows(one, fake_logits, features, keys, shard_rows=8)
    for k in range(2):  # each "process" writes its own folder; merging is copying the shard files together
        label_rows(LabelStore(str(tmp_path / f"part{k}")), fake_logits, features, keys, part=(k, 2), shard_rows=8)
    parts = [shard_bytes(str(tmp_path / f"part{k}")) for k in range(2)]
    assert len(parts[0]) == 4 and len(parts[1]) == 3 and not set(parts[0]) & set(parts[1])
    assert {**parts[0], **parts[1]} == shard_bytes(one.folder)


def test_rows_are_keyed_one_by_one_and_repeats_labelled_once(tmp_path):
    examples, features = encoded(20)
    keys = row_keys(examples)
    store = LabelStore(str(tmp_path / "s"))
    label_rows(store, fake_logits, features, keys, shard_rows=8)
    # another run: a subset in another order plus a repeated row: found without labelling anything
    order = [5, 3, 3, 19, 0]
    from utils.batches import subset
    assert label_rows(store, fake_logits, subset(features, order), keys[order], shard_rows=8) == (0, 0)
    np.testing.assert_array_equal(store.gather(keys[order]), fake_logits(features)[order])
    assert sum(len(s) for s in plan_shards(keys[order], np.ones(5, np.int64), 8)) == 4  # the repeat counted once


def test_per_token_logits_round_trip_and_a_damaged_shard_is_named(tmp_path):
    keys = np.array([3, 1, 2], np.uint64)
    rows = [np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((1, 2), np.float32), np.zeros((2, 2), np.float32)]
    path = str(tmp_path / "s" / "shard-x.logits")
    write_shard(path, keys, np.array([0, 3, 4, 6]), np.concatenate(rows))
    got = LabelStore(str(tmp_path / "s")).gather(np.array([2, 3], np.uint64))
    np.testing.assert_array_equal(got[0], rows[2])
    np.testing.assert_array_equal(got[1], rows[0])
    assert b"pickle" not in open(path, "rb").read()
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 4)
    with pytest.raises(UserError, match="shard-x.logits: damaged teacher-logit shard"):
        read_shard(path)


@pytest.mark.parametrize("engine", ["paddle_inference", "onnxruntime"])
def test_engines_label_like_dygraph(demo_glue, tiny_teacher, engine, monkeypatch):
    from utils.adapters import load_adapter
    from utils.tasks.sequence import read_examples
    teacher = load_adapter(tiny_teacher)
    teacher.eval()
    features = teacher.encoder.encode(read_examples(SST2, os.path.join(demo_glue, "SST-2"), "train")[:64], 32)
    reference = teacher_label_fn([teacher], [1.0], "dygraph", 16)(features)
    exported, fused = [], []
    real = type(teacher).label_layer
    monkeypatch.setattr(type(teacher), "label_layer", lambda self: exported.append(1) or real(self))
    from utils import inference
    real_fuse = inference.fuse_attention
    monkeypatch.setattr(inference, "fuse_attention", lambda path: fused.append(real_fuse(path)) or fused[-1])
    np.testing.assert_allclose(teacher_label_fn([teacher], [1.0], engine, 16)(features), reference, atol=1e-3)
    assert exported == [1]  # the engine runs the label layer's export
    assert fused == ([] if engine == "paddle_inference" else [2])  # onnxruntime's file: both layers fused


def test_streams_run_batches_at_once_on_separate_predictors_in_order(demo_glue, tiny_teacher):
    import threading

    from utils.inference import Streams
    from utils.tasks.sequence import read_examples
    from utils.adapters import load_adapter
    from utils.training import batched_logits
    teacher = load_adapter(tiny_teacher)
    features = teacher.encoder.encode(read_examples(SST2, os.path.join(demo_glue, "SST-2"), "train")[:40], 32)
    meet, busy, used = threading.Barrier(2, timeout=10), set(), []

    def predictor(k):  # logits: each row's token count and a hash of its ids; a meeting only two calls at once pass
        def run(inputs):
            assert k not in busy  # never handed to two calls at once
            busy.add(k)
            if len(used) < 2:
                used.append(k)
                meet.wait()
            busy.discard(k)
            ids = inputs["input_ids"]
            return np.stack([(ids != 0).sum(1), (ids * np.arange(1, ids.shape[1] + 1)).sum(1)], 1).astype(np.float32)
        return run

    together = batched_logits(Streams([predictor(0), predictor(1)]), features, 4, streams=2)
    assert sorted(used) == [0, 1]  # the first two batches ran at once, one on each predictor
    alone = batched_logits(predictor(2), features, 4)
    np.testing.assert_array_equal(together, alone)  # every row back in its place
    ids = features.columns["input_ids"]
    np.testing.assert_array_equal(together, [[len(r), sum((i + 1) * t for i, t in enumerate(r))] for r in ids])

    def broken(inputs):
        raise ValueError("engine failed")
    with pytest.raises(ValueError, match="engine failed"):
        batched_logits(Streams([broken, broken]), features, 4, streams=2)


def test_int8_labels_use_fixed_batches_on_capped_streams(demo_glue, tiny_teacher, tmp_path, monkeypatch):
    """INT8 quantizes each batch's activations by their own range: labelling computes it in STREAM_BATCH rows
    whatever --eval_batch_size says, and the batch is part of its store's key; a concurrent engine runs one
    predictor per thread, at most MAX_STREAMS, the threads shared among them."""
    from utils import labels
    from utils.adapters import load_adapter
    from utils.inference import Streams, export_static, make_engines
    from utils.tasks.sequence import read_examples
    teacher = load_adapter(tiny_teacher)
    teacher.eval()
    features = teacher.encoder.encode(read_examples(SST2, os.path.join(demo_glue, "SST-2"), "train")[:96], 32)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # two predictors at once
    small, large = (teacher_label_fn([teacher], [1.0], "onnxruntime_int8", b)(features) for b in (8, 96))
    np.testing.assert_array_equal(small, large)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one predictor: machines of other sizes label alike
    np.testing.assert_array_equal(teacher_label_fn([teacher], [1.0], "onnxruntime_int8", 8)(features), small)
    monkeypatch.undo()
    export_static(teacher, str(tmp_path), teacher.label_layer())
    make_engines(str(tmp_path), ["onnxruntime_int8"], tuned=True)
    for threads, streams, each in ((2, 2, 1), (0, 1, 1), (12, labels.MAX_STREAMS, 3)):
        fn = labels.engine_label_fn(str(tmp_path), "onnxruntime_int8", 8, threads)
        assert isinstance(fn.args[0], Streams) and fn.args[0].count == streams == fn.keywords["streams"]
        assert fn.keywords["batch_size"] == labels.STREAM_BATCH
        assert {p.session.get_session_options().intra_op_num_threads for p in fn.args[0].predictors} == {each}
    pi = labels.engine_label_fn(str(tmp_path), "paddle_inference", 8, 2)
    assert pi.keywords == {"batch_size": 8}  # not concurrent: one predictor, the caller's batch
    key = functools.partial(labels.store_folder, str(tmp_path), [tiny_teacher], [1.0], "sig", 32)
    before = key("onnxruntime_int8"), key("onnxruntime")
    monkeypatch.setattr(labels, "STREAM_BATCH", 16)
    assert key("onnxruntime_int8") != before[0] and key("onnxruntime") == before[1]


def test_labelling_exports_fuse_attention_and_shipped_exports_do_not(tmp_path, demo_glue, tiny_teacher, monkeypatch):
    import onnx

    from utils import onnx_fusion
    from utils.adapters import load_adapter
    from utils.inference import ONNX_FILE, OnnxPredictor, export_static, make_engines
    from utils.tasks.sequence import read_examples
    teacher = load_adapter(tiny_teacher)
    teacher.eval()
    ops = lambda folder: [n.op_type for n in onnx.load(os.path.join(folder, ONNX_FILE)).graph.node]
    shipped, tuned = str(tmp_path / "shipped"), str(tmp_path / "tuned")
    for folder, flag in ((shipped, False), (tuned, True)):
        os.makedirs(folder)
        export_static(teacher, folder, teacher.label_layer())
        make_engines(folder, ["onnxruntime"], tuned=flag)
    layers = teacher.shape()["layers"]
    assert "MultiHeadAttention" not in ops(shipped) and ops(shipped).count("Transpose") >= 4 * layers
    assert ops(tuned).count("MultiHeadAttention") == layers and "Transpose" not in ops(tuned)
    features = teacher.encoder.encode(read_examples(SST2, os.path.join(demo_glue, "SST-2"), "train")[:48], 32)
    from utils.training import batched_logits
    plain, fused = (batched_logits(OnnxPredictor(f), features, 16) for f in (shipped, tuned))  # padded rows
    np.testing.assert_allclose(fused, plain, atol=1e-5)
    assert np.abs(plain).max() > 1e-3
    before = open(os.path.join(shipped, ONNX_FILE), "rb").read()
    monkeypatch.setattr(onnx_fusion, "PROBE_TOLERANCE", -1.0)  # any difference refuses the rewrite
    assert onnx_fusion.fuse_attention(os.path.join(shipped, ONNX_FILE)) == 0
    monkeypatch.setattr(onnx_fusion, "PROBE_TOLERANCE", 1e-4)
    monkeypatch.setattr(onnx_fusion, "same_outputs", lambda *a: 1 / 0)  # e.g. a runtime without the operator
    assert onnx_fusion.fuse_attention(os.path.join(shipped, ONNX_FILE)) == 0
    assert open(os.path.join(shipped, ONNX_FILE), "rb").read() == before
    assert sorted(os.listdir(shipped)) == sorted(os.listdir(tuned))  # no temporary files left behind


def test_int8_of_a_fused_file_skips_the_second_folding_and_computes_the_same(tmp_path, demo_glue, tiny_teacher,
                                                                           monkeypatch):
    from onnxruntime.quantization import shape_inference

    from utils import inference
    from utils.adapters import load_adapter
    from utils.inference import INT8_FILE, OnnxPredictor, export_static, make_engines
    from utils.tasks.sequence import read_examples
    from utils.training import batched_logits
    teacher = load_adapter(tiny_teacher)
    teacher.eval()
    folds, is_folded = [], inference.is_folded
    real = shape_inference.quant_pre_process
    monkeypatch.setattr(shape_inference, "quant_pre_process", lambda *a, **k: folds.append(1) or real(*a, **k))
    once, twice = str(tmp_path / "once"), str(tmp_path / "twice")
    for folder in (once, twice):
        os.makedirs(folder)
        export_static(teacher, folder, teacher.label_layer())
        if folder == twice:
            monkeypatch.setattr(inference, "is_folded", lambda path: False)
        folds.clear()
        make_engines(folder, ["onnxruntime_int8"], tuned=True)
        assert len(folds) == (1 if folder == once else 2)  # the fusion's fold, then (unmarked) the quantizer's
    assert is_folded(os.path.join(once, inference.ONNX_FILE))  # the fusion's fold tagged it
    features = teacher.encoder.encode(read_examples(SST2, os.path.join(demo_glue, "SST-2"), "train")[:48], 32)
    a, b = (batched_logits(OnnxPredictor(f, 1, INT8_FILE), features, 16) for f in (once, twice))
    np.testing.assert_array_equal(a, b)


def test_attention_fusion_keeps_a_core_whose_tensors_are_read_elsewhere(tmp_path, tiny_teacher):
    import onnx

    from utils.adapters import load_adapter
    from utils.inference import ONNX_FILE, export_static, make_engines
    from utils.onnx_fusion import rewrite_attention
    from onnxruntime.quantization.shape_inference import quant_pre_process
    teacher = load_adapter(tiny_teacher)
    export_static(teacher, str(tmp_path), teacher.label_layer())
    make_engines(str(tmp_path), ["onnxruntime"])
    quant_pre_process(str(tmp_path / ONNX_FILE), str(tmp_path / "folded.onnx"), skip_symbolic_shape=True)
    model = onnx.load(str(tmp_path / "folded.onnx"))
    first = next(n for n in model.graph.node if n.op_type == "Softmax")
    model.graph.output.append(onnx.helper.make_tensor_value_info(first.output[0], onnx.TensorProto.FLOAT, None))
    assert rewrite_attention(model.graph) == 1  # the other layer only: the returned probabilities keep theirs
    assert first in model.graph.node


def test_the_label_layer_runs_the_last_layer_at_cls_only_with_the_same_logits(demo_glue, tiny_teacher):
    import paddle

    from utils.adapters import load_adapter
    from utils.adapters.bert import _SequenceLabels, cls_only_last_layer
    from utils.batches import collate
    from utils.tasks.sequence import read_examples
    teacher = load_adapter(tiny_teacher)
    teacher.eval()
    rows = read_examples(SST2, os.path.join(demo_glue, "SST-2"), "train")[:16]  # unequal lengths: padded rows
    inputs = {k: paddle.to_tensor(v) for k, v in collate(teacher.encoder.encode(rows, 32), np.arange(16)).items()}
    assert len(set((inputs["input_ids"].numpy() != 0).sum(1).tolist())) > 1  # rows of several lengths, padded
    layer = teacher.label_layer()
    assert isinstance(layer, _SequenceLabels)
    with paddle.no_grad():
        cls_only = layer(inputs["input_ids"], inputs["token_type_ids"]).numpy()
        full = teacher.export_layer()(inputs["input_ids"], inputs["token_type_ids"]).numpy()
    np.testing.assert_allclose(cls_only, full, atol=1e-5)
    assert np.abs(full).max() > 1e-3  # not trivially equal
    assert not cls_only_last_layer(teacher.model, "token")  # a token head needs every position


def test_engine_agreement_counts_predictions_and_tokens():
    from utils.labels import agreement, describe_check
    a = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.5]], np.float32)
    b = np.array([[0.9, 0.0], [1.0, 0.0], [2.0, 0.0]], np.float32)
    measured = agreement(a, b)
    assert measured["rows"] == 3 and measured["agreement"] == 2 / 3 and measured["max_abs_diff"] == 1.0
    assert measured["mean_abs_diff"] == pytest.approx(2.6 / 6)
    tokens = lambda *rows: np.array([np.array(r, np.float32) for r in rows] + [None], dtype=object)[:-1]
    measured = agreement(tokens([[1, 0], [0, 1], [1, 0]], [[0, 3]]), tokens([[1, 0], [1, 0], [1, 0]], [[0, 1]]))
    assert measured == {"rows": 2, "agreement": 0.75, "max_abs_diff": 2.0, "mean_abs_diff": 0.5}  # 3 of 4 tokens
    scores = agreement(a[:, :1], b[:, :1])  # a regression's one output: no predictions to agree on
    assert scores["agreement"] is None and scores["max_abs_diff"] == pytest.approx(1.0)
    assert describe_check("onnxruntime_int8", scores).startswith(
        "label engine onnxruntime_int8: differs from the FP32 teacher on 3 dev rows (logits differ by 0.367 on")

def test_an_int8_label_engine_is_checked_on_dev_and_labels_into_a_store_of_its_own(tmp_path, demo_glue,
                                                                                   tiny_teacher, capsys, monkeypatch):
    import json

    from utils import labels
    store = tmp_path / "store"
    common = ["--student_model_name_or_path", "1l-16d", "--student_init", "random", "--cache_teacher_logits",
              "--cache_dir", store]
    distill(demo_glue, tiny_teacher, tmp_path / "fp32", *common, "--label_engine", "dygraph")
    capsys.readouterr()
    exports, real_export = [], labels.export_static
    monkeypatch.setattr(labels, "export_static", lambda *a: exports.append(1) or real_export(*a))
    distill(demo_glue, tiny_teacher, tmp_path / "int8", *common, "--label_engine", "onnxruntime_int8")
    assert exports == [1]  # the check's FP32 engine and the INT8 one come from one export
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("label engine onnxruntime_int8: agrees with the FP32"))
    folders = glob.glob(str(store / "teacher-*"))
    assert len(folders) == 2  # INT8 labels never mix with FP32's
    (int8,) = [f for f in folders if os.path.exists(os.path.join(f, "label_engine.json"))]
    measured = json.load(open(os.path.join(int8, "label_engine.json")))
    assert measured["engine"] == "onnxruntime_int8" and measured["rows"] == 60  # the dev rows
    assert f"{measured['agreement']:.2%} of the predictions over 60 dev rows" in line
    assert 0.5 <= measured["agreement"] <= 1.0
    assert 0 < measured["max_abs_diff"] < 1.0  # quantized: close to FP32, not equal
    assert "teacher logits: wrote" in out
    (fp32,) = set(folders) - {int8}
    stores = [LabelStore(f) for f in (fp32, int8)]
    keys = np.sort(stores[0].keys)
    assert np.array_equal(keys, np.sort(stores[1].keys))
    moved = np.abs(stores[0].gather(keys) - stores[1].gather(keys)).max()
    assert 0 < moved < 1.0
    # every exact engine shares the FP32 store; a run reusing INT8 labels says again how they were checked
    distill(demo_glue, tiny_teacher, tmp_path / "pi", *common, "--label_engine", "paddle_inference")
    assert "teacher logits: reusing " + fp32 in capsys.readouterr().out
    distill(demo_glue, tiny_teacher, tmp_path / "int8b", *common, "--label_engine", "onnxruntime_int8")
    out = capsys.readouterr().out
    assert "teacher logits: reusing " + int8 in out and line in out
    # a checkpoint trained on INT8 labels does not resume on FP32 ones
    with pytest.raises(SystemExit) as info:
        distill(demo_glue, tiny_teacher, tmp_path / "int8", *common, "--label_engine", "auto", "--resume")
    assert info.value.code == 2 and "cannot resume" in capsys.readouterr().err


# ---- through task_distill.main

def test_transfer_text_is_labelled_and_learnt_from(tmp_path, demo_glue, tiny_teacher, capsys):
    from utils.tasks.sequence import read_examples
    dev = read_examples(SST2, os.path.join(demo_glue, "SST-2"), "dev")
    texts = ["a new sentence that is good .", "another one , rather dull .", dev[0].text_a.upper(), "a new sentence "
             "that is good ."]
    transfer = write(str(tmp_path / "t.txt"), "\n".join(texts) + "\n")
    store = tmp_path / "store"
    results = distill(demo_glue, tiny_teacher, tmp_path / "kd", "--student_model_name_or_path", "2l-16d",
                      "--student_init", "random", "--transfer_file", transfer, "--cache_dir", store)
    out = capsys.readouterr().out
    assert "4 rows read; 1 equal to a dev row and 1 repeats dropped; 2 kept" in out
    assert results["transfer_examples"] == 2 and results["train_examples"] == 240 and results["train_rows"] == 242
    (folder,) = glob.glob(str(store / "teacher-*"))
    train = read_examples(SST2, os.path.join(demo_glue, "SST-2"), "train")
    assert len(LabelStore(folder).keys) == len(np.unique(row_keys(train))) + 2  # every distinct row, labelled once
    # a second student over the same rows labels nothing
    distill(demo_glue, tiny_teacher, tmp_path / "kd2", "--student_model_name_or_path", "1l-16d", "--student_init",
            "random", "--transfer_file", transfer, "--cache_dir", store)
    assert "teacher logits: reusing" in capsys.readouterr().out


def test_a_word_student_and_its_twin_share_the_transfer_vocabulary(tmp_path, demo_glue, tiny_teacher):
    transfer = write(str(tmp_path / "t.txt"), "zebras and giraffes were splendid .\n")
    common = ["--student_model_name_or_path", "cnn", "--transfer_file", transfer, "--hidden_size", "8"]
    kd = distill(demo_glue, tiny_teacher, tmp_path / "kd", *common)
    twin = distill(demo_glue, tiny_teacher, tmp_path / "twin", *common, "--pred_weight", "0", "--hard_label_weight",
                   "1")
    assert kd["transfer_examples"] == 1 and twin["transfer_examples"] == 0  # the twin learns from gold rows only
    vocab = [open(tmp_path / run / "best_model" / "vocab.txt", encoding="utf-8").read() for run in ("kd", "twin")]
    assert vocab[0] == vocab[1] and "giraffes" in vocab[0].split("\n")


def test_a_transfer_file_for_a_span_task_is_refused(tmp_path, capsys, tiny_teacher):
    from utils.demo import write_squad
    data = str(tmp_path / "squad")
    write_squad(data, n_train=8, n_dev=4)
    transfer = write(str(tmp_path / "t.txt"), "some text\n")
    with pytest.raises(SystemExit) as info:
        task_distill.main(["--task_name", "squad", "--data_dir", data, "--teacher_path", tiny_teacher, "--output_dir",
                           str(tmp_path / "out"), "--transfer_file", transfer])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--transfer_file works for sequence and token classification; a span task" in err
    assert "Traceback" not in err and not os.path.exists(tmp_path / "out")


def test_a_binary_transfer_file_stops_before_anything_is_written(tmp_path, capsys, demo_glue, tiny_teacher):
    transfer = write(str(tmp_path / "t.bin"), b"\x7fELF\x02\x01\x01\x00\x00\x00")
    with pytest.raises(SystemExit) as info:
        distill(demo_glue, tiny_teacher, tmp_path / "out", "--transfer_file", transfer)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err.startswith("error: ") and "t.bin:1: a NUL byte" in err and "\n" not in err
    assert not os.path.exists(tmp_path / "out")


def test_label_parts_from_the_command_line_fill_the_store_for_the_training_run(tmp_path, demo_glue, tiny_teacher,
                                                                               capsys, monkeypatch):
    """Two --label_part runs (as two processes would) label every row; the training run then labels nothing, and
    the store holds the same shard files as one process labelling everything."""
    import utils.labels
    monkeypatch.setattr(utils.labels, "SHARD_ROWS", 128)  # 540 rows: 5 shards, 3 for part 1 and 2 for part 2
    transfer = write(str(tmp_path / "t.txt"), "".join(f"sentence number {i} was good .\n" for i in range(300)))
    common = ["--student_model_name_or_path", "cnn", "--transfer_file", transfer, "--hidden_size", "8"]
    for k in (1, 2):
        done = distill(demo_glue, tiny_teacher, tmp_path / "unused", *common, "--cache_dir", tmp_path / "parts",
                       "--label_part", f"{k}/2")
        assert done["labelled_part"] == f"{k}/2"
    assert not os.path.exists(tmp_path / "unused")  # labelling only: no output folder
    capsys.readouterr()
    distill(demo_glue, tiny_teacher, tmp_path / "kd", *common, "--cache_dir", tmp_path / "parts")
    assert "teacher logits: reusing" in capsys.readouterr().out
    distill(demo_glue, tiny_teacher, tmp_path / "kd1", *common, "--cache_dir", tmp_path / "one")
    (parts,), (one,) = (glob.glob(str(tmp_path / d / "teacher-*")) for d in ("parts", "one"))
    assert shard_bytes(parts) == shard_bytes(one) and len(shard_bytes(one)) == 5


@pytest.mark.parametrize("part", ["0/2", "3/2", "1-2", "a/b"])
def test_a_bad_label_part_is_refused(tmp_path, capsys, demo_glue, tiny_teacher, part):
    with pytest.raises(SystemExit) as info:
        distill(demo_glue, tiny_teacher, tmp_path / "out", "--label_part", part)
    assert info.value.code == 2 and "--label_part: expected K/N with 1 <= K <= N" in capsys.readouterr().err


def test_init_from_without_teacher_init_is_refused(tmp_path, capsys, demo_glue, tiny_teacher):
    with pytest.raises(SystemExit) as info:
        distill(demo_glue, tiny_teacher, tmp_path / "out", "--init_from", tiny_teacher, "--student_init", "random")
    err = capsys.readouterr().err
    assert info.value.code == 2 and "with --student_init random it would be unused" in err
    assert not os.path.exists(tmp_path / "out")


def test_a_twin_copies_its_layers_from_init_from(tmp_path, demo_glue, tiny_teacher, other_teacher):
    """--init_from: the student's layers come from that model, not from the (first) teacher."""
    from utils.files import load_model_state
    distill(demo_glue, tiny_teacher, tmp_path / "twin", "--student_model_name_or_path", "1l-48d", "--student_init",
            "teacher", "--init_from", other_teacher, "--pred_weight", 0, "--hard_label_weight", 1, "--max_steps", 1,
            "--learning_rate", 1e-9)
    student = load_model_state(str(tmp_path / "twin" / "best_model"))
    source = load_model_state(other_teacher)
    name = next(k for k in source if k.endswith("word_embeddings.weight"))
    mine = next(k for k in student if k.endswith("word_embeddings.weight"))
    np.testing.assert_allclose(np.asarray(student[mine]), np.asarray(source[name]), atol=1e-6)


def test_report_pairs_students_with_their_twins_and_computes_gap_closed(tmp_path, capsys):
    """report.json: teacher / distilled / twin / gap closed for pred-baseline and every students/NAME beside
    students/NAME-twin; a student without a twin is listed in the table but not in the verdict; stage 1 shows its
    dev loss, not an accuracy."""
    import json

    import report

    def stage(name, score, arch=None, extra=None):
        results = {"eval_accuracy": score, "main_metric": "eval_accuracy", "task": "SST-2", **(extra or {})}
        write(str(tmp_path / name / "all_results.json"), json.dumps(results))
        if arch:
            write(str(tmp_path / name / "best_model" / "config.json"), json.dumps({"distill_arch": arch}))
    stage("teacher", 0.8)
    write(str(tmp_path / "inter" / "all_results.json"), json.dumps({"eval_inter_loss": 0.25, "main_metric":
                                                                    "eval_inter_loss", "task": "SST-2"}))
    stage("pred", 0.75, "bert")
    stage("baseline", 0.7, "bert")
    stage("students/cnn", 0.74, "cnn")
    stage("students/cnn-twin", 0.76, "cnn")
    stage("students/bow", 0.6, "bow")  # no twin
    report.main(["--out", str(tmp_path), "--no-latency"])
    verdict = json.loads((tmp_path / "report.json").read_text())
    assert verdict["metric"] == "eval_accuracy" and verdict["teacher"] == 0.8
    assert [(s["name"], s["arch"], s["distilled"], s["twin"]) for s in verdict["students"]] == [
        ("student", "bert", 0.75, 0.7), ("cnn", "cnn", 0.74, 0.76)]
    assert verdict["students"][0]["gap_closed"] == pytest.approx(0.5)  # (0.75 - 0.7) / (0.8 - 0.7)
    assert verdict["students"][1]["gap_closed"] == pytest.approx(-0.5)  # (0.74 - 0.76) / (0.8 - 0.76)
    text = (tmp_path / "report.md").read_text()
    assert "| student after stage 1 (intermediate layers; no classifier yet) | - (dev loss 0.2500) |" in text
    assert "| cnn | cnn | 0.7400 | 0.7600 | -2.0 | -0.50 |" in text and "| bow (distilled) | 0.6000 |" in text
    assert "| bow | bow |" not in text


def test_more_rows_later_label_only_the_new_ones(tmp_path):
    """A second run over the same rows plus new ones labels the new rows only, however the shards are cut."""
    examples, features = encoded(40)
    keys = row_keys(examples)
    store = LabelStore(str(tmp_path / "s"))
    first = list(range(0, 40, 2))
    from utils.batches import subset
    label_rows(store, fake_logits, subset(features, first), keys[first], shard_rows=8)
    calls = []
    assert label_rows(store, lambda f: calls.append(len(f)) or fake_logits(f), features, keys, shard_rows=8)[1] == 20
    assert sum(calls) == 20
    np.testing.assert_array_equal(store.gather(keys), fake_logits(features))


def test_a_conll_file_as_ner_transfer_is_refused(tmp_path):
    from utils.transfer import read_sentences
    path = write(str(tmp_path / "t.txt"), "The O\nmovie O\nEU B-ORG\n")
    with pytest.raises(UserError, match=r"t.txt:3: a CoNLL-style line \(a word and its tag\)"):
        read_sentences(path, ("O", "B-ORG", "I-ORG"))
    assert [s.words for s in read_sentences(path, ())] == [["The", "O"], ["movie", "O"], ["EU", "B-ORG"]]


def test_init_from_must_tokenise_like_the_teacher(tmp_path, capsys, demo_glue, tiny_teacher):
    from utils.demo import make_tiny_bert
    other = make_tiny_bert(str(tmp_path / "other"), words=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
    with pytest.raises(SystemExit) as info:
        distill(demo_glue, tiny_teacher, tmp_path / "out", "--student_model_name_or_path", "1l-32d",
                "--student_init", "teacher", "--init_from", other, "--pred_weight", 0, "--hard_label_weight", 1)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--init_from must tokenise like the first teacher" in err
    assert not os.path.exists(tmp_path / "out")


# ---- the low-label samplers and the seed summary behind the benches

def test_low_label_samples_keep_labelled_transfer_and_validation_rows_apart(tmp_path):
    from utils.demo import sample_conll, sample_sst2, write_conll, write_sst2
    write_sst2(str(tmp_path / "glue" / "SST-2"), n_train=300, n_dev=40)
    sample_sst2(str(tmp_path / "glue"), str(tmp_path / "low"), n_train=50, n_transfer=100, n_valid=30)
    rows = {s: open(tmp_path / "low" / f"{s}.tsv").read().splitlines()[1:] for s in ("train", "dev")}
    transfer = open(tmp_path / "low" / "transfer.txt").read().splitlines()
    source = open(tmp_path / "glue" / "SST-2" / "train.tsv").read().splitlines()[1:]
    assert (len(rows["train"]), len(transfer), len(rows["dev"])) == (50, 100, 30)
    assert set(rows["dev"]) <= set(source)  # the validation slice is training rows, with their labels
    texts = [r.split("\t")[0] for r in rows["train"] + rows["dev"]] + transfer
    assert len(texts) == 180 and set(texts) <= {r.split("\t")[0] for r in source}
    sample_sst2(str(tmp_path / "glue"), str(tmp_path / "long"), n_train=50, n_transfer=40, n_valid=10,
                valid_min_words=6)
    valid = [r.split("\t")[0] for r in open(tmp_path / "long" / "dev.tsv").read().splitlines()[1:]]
    assert len(valid) == 10 and min(len(t.split()) for t in valid) >= 6  # whole sentences only
    assert open(tmp_path / "long" / "train.tsv").read() == open(tmp_path / "low" / "train.tsv").read()
    write_conll(str(tmp_path / "ner"), n_train=40, n_dev=10)
    assert sample_conll(str(tmp_path / "ner"), str(tmp_path / "lowner"), n_train=15) == 40
    tagged = open(tmp_path / "lowner" / "train.txt").read().strip().split("\n\n")
    untagged = open(tmp_path / "lowner" / "transfer.txt").read().splitlines()
    assert len(tagged) == 15 and len(untagged) == 25
    assert not any(line.endswith((" O", "-PER", "-LOC")) for line in untagged)  # words only, no tags
    every = [" ".join(line.split()[0] for line in b.split("\n"))
             for b in open(tmp_path / "ner" / "train.txt").read().strip().split("\n\n")[1:]]  # after -DOCSTART-
    words = [" ".join(line.split()[0] for line in b.split("\n")) for b in tagged]
    assert sorted(words + untagged) == sorted(every) and len(every) == 40  # together: each training sentence once
    assert open(tmp_path / "lowner" / "dev.txt").read() == open(tmp_path / "ner" / "dev.txt").read()


def test_transfer_rows_that_are_fragments_of_validation_sentences_are_left_out():
    from utils.demo import drop_fragments
    from utils.tasks.sequence import Example
    rows = [Example(text_a=t, text_b=None, label=0) for t in [
        "a gripping , funny film",        # 5 words inside the first sentence: left out
        "gripping , funny film that",     # not on its word boundaries: "that" follows no "film" there
        "the film",                       # inside, but 2 words: too short to say it comes from that sentence
        "it is a gripping , funny film that never lets go",  # holds the first sentence: left out
        "a dull and tired sequel"]]       # elsewhere
    kept = drop_fragments(rows, ["is a gripping , funny film", "nothing like the film at all"])
    assert [e.text_a for e in kept] == ["gripping , funny film that", "the film", "a dull and tired sequel"]


def test_seed_summary_averages_the_verdicts(tmp_path):
    import json
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    from seed_summary import summary_lines
    for seed, (d, t) in (("1", (0.80, 0.70)), ("2", (0.76, 0.74))):
        os.makedirs(tmp_path / f"s{seed}")
        with open(tmp_path / f"s{seed}" / "report.json", "w") as f:
            json.dump({"metric": "eval_accuracy", "teacher": 0.9, "students": [
                {"name": "cnn", "arch": "cnn", "distilled": d, "twin": t, "gap_closed": None}]}, f)
    row = summary_lines(str(tmp_path), ["1", "2"])[-1]
    # means 0.78 / 0.72; gains +10 and +2 points (mean +6); gap closed (0.78 - 0.72) / (0.9 - 0.72) = 0.33
    assert row == "| cnn | 0.7800 | 0.7200 | +6.0 (+10.0, +2.0) | 0.33 | 86.7% |"
    from visualdl import LogWriter
    for seed, curves in (("1", ([0.80, 0.78], [0.70, 0.66])), ("2", ([0.70, 0.76], [0.74, 0.70]))):
        for run, curve in zip(("cnn", "cnn-twin"), curves):
            with LogWriter(logdir=str(tmp_path / f"s{seed}" / "students" / run / "runs")) as log:
                for step, value in zip((50, 100), curve):
                    log.add_scalar("eval/accuracy", value, step)
    row = summary_lines(str(tmp_path), ["1", "2"], final=True)[-1]
    # the last points: 0.78 / 0.66 and 0.76 / 0.70; means 0.77 / 0.68; gap closed 0.09 / 0.22 = 0.41
    assert row == "| cnn | 0.7700 | 0.6800 | +9.0 (+12.0, +6.0) | 0.41 | 85.6% |"


def test_dev_rows_beyond_max_eval_samples_still_leave_the_transfer_set(tmp_path, demo_glue, tiny_teacher, capsys):
    from utils.tasks.sequence import read_examples
    dev = read_examples(SST2, os.path.join(demo_glue, "SST-2"), "dev")
    transfer = write(str(tmp_path / "t.txt"), f"a new sentence that is good .\n{dev[-1].text_a}\n")
    distill(demo_glue, tiny_teacher, tmp_path / "kd", "--student_model_name_or_path", "1l-16d", "--student_init",
            "random", "--transfer_file", transfer, "--max_eval_samples", 2, steps=2)
    assert "2 rows read; 1 equal to a dev row and 0 repeats dropped; 1 kept" in capsys.readouterr().out
