"""Deployment: a trained classifier as a Paddle Inference static model (and ONNX), and predictors over both.

An export folder holds inference.json (or .pdmodel) + inference.pdiparams, optionally model.onnx, and the
source folder's config.json and tokenizer files, so predict.py needs nothing else. The graph takes input_ids
and token_type_ids with dynamic batch and length; padding is recognised by the pad id, as in training.
"""
import os
import shutil

import numpy as np

from utils.errors import UserError
from utils.models import TOKENIZER_FILES

PREFIX = "inference"


def export_static(model, out_dir):
    """paddle.jit.save of the model's logits for (input_ids, token_type_ids) into out_dir/inference.*"""
    import paddle

    class Logits(paddle.nn.Layer):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, token_type_ids):
            return self.inner(input_ids=input_ids, token_type_ids=token_type_ids, return_dict=True).logits

    model.eval()
    spec = [paddle.static.InputSpec([None, None], "int64", "input_ids"),
            paddle.static.InputSpec([None, None], "int64", "token_type_ids")]
    static = paddle.jit.to_static(Logits(model), input_spec=spec, full_graph=True)
    paddle.jit.save(static, os.path.join(out_dir, PREFIX))


def graph_file(folder):
    for name in (PREFIX + ".json", PREFIX + ".pdmodel"):  # PIR programs (Paddle 3) or the older format
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise UserError(f"no {PREFIX}.json or {PREFIX}.pdmodel; expected a folder written by export_model.py", folder)


def export_onnx(folder, opset=14):
    import paddle2onnx
    target = os.path.join(folder, "model.onnx")
    paddle2onnx.export(graph_file(folder), os.path.join(folder, PREFIX + ".pdiparams"), save_file=target,
                       opset_version=opset, enable_onnx_checker=True, optimize_tool="None")
    return target


def copy_side_files(src, dst):
    for name in ("config.json",) + TOKENIZER_FILES:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), dst)


class PaddlePredictor:
    """Paddle Inference over an export folder: CPU threads and oneDNN configurable, GPU when asked."""

    def __init__(self, folder, device="cpu", threads=None, onednn=True):
        from paddle import inference
        config = inference.Config(graph_file(folder), os.path.join(folder, PREFIX + ".pdiparams"))
        if device.startswith("gpu"):
            config.enable_use_gpu(256, int(device.split(":")[1]) if ":" in device else 0)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(threads or int(os.environ.get("OMP_NUM_THREADS", "1")))
            if onednn:
                config.enable_mkldnn()
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)
        self.inputs = [self.predictor.get_input_handle(n) for n in self.predictor.get_input_names()]
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, input_ids, token_type_ids):
        for handle, array in zip(self.inputs, (input_ids, token_type_ids)):
            handle.reshape(array.shape)
            handle.copy_from_cpu(np.ascontiguousarray(array, dtype=np.int64))
        self.predictor.run()
        return self.output.copy_to_cpu()


class OnnxPredictor:
    def __init__(self, folder, threads=None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("OMP_NUM_THREADS", "1"))
        options.log_severity_level = 3
        self.session = ort.InferenceSession(os.path.join(folder, "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, input_ids, token_type_ids):
        return self.session.run(None, {"input_ids": input_ids.astype(np.int64),
                                       "token_type_ids": token_type_ids.astype(np.int64)})[0]


def median_seconds(fn, warmup, repeats):
    """Median wall time of fn() over `repeats` runs after `warmup` untimed ones."""
    import time
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def count_parameters(config):
    """Parameters of a BERT-style classifier from its config (embeddings, layers, pooler, classifier)."""
    h, f, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    embeddings = (config["vocab_size"] + config["max_position_embeddings"] + config["type_vocab_size"]) * h + 2 * h
    layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h
    labels = config.get("num_labels") or len(config.get("id2label") or {}) or 2
    return embeddings + n * layer + (h * h + h) + (h * labels + labels)


def flops_per_example(config, seq_len):
    """Multiply-adds x2 of one forward pass at seq_len: the projections, the feed-forward block and the
    attention products (score and context); embeddings lookups and softmax are negligible."""
    h, f, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_layer = seq_len * (4 * h * h + 2 * h * f) + 2 * seq_len * seq_len * h
    return 2 * (n * per_layer + h * h)
