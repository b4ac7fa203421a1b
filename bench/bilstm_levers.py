"""Batch-1 latency of a BiLSTM's INT8 variants against the teacher's FP32 export (issue 28, section 3).

    python bench/bilstm_levers.py --teacher out/real/demo7/teacher/best_model \\
        --student out/real/demo7/students/bilstm/best_model --glue_dir ../shared/data/glue --max_seq_length 64

Both models are exported (export_model.py --quantize int8 for the student, --onnx for the teacher) and run on
onnxruntime over the same dev sentences, one at a time, each through its own tokenizer. Student variants: FP32;
the shipped INT8 file (LSTMs with one weight scale per matrix, matrix products and embeddings per row); INT8 with
per-row LSTM scales; INT8 of the LSTMs only; the INT8 route without the LSTMs (what --quantize int8 wrote
before); the shipped file with the thread pool's spinning off, and with basic graph optimisation only. For each
thread count every set-up is timed in turn (interleaved medians), and each speed-up is over the teacher's fastest
thread count.
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
import numpy as np  # noqa: E402

from utils.batches import collate  # noqa: E402
from utils.inference import INT8_FILE, ONNX_FILE, interleaved_medians  # noqa: E402
from utils.models import quiet_paddlenlp  # noqa: E402
from utils.tasks.sequence import get_task, load_split, task_dir  # noqa: E402
from student_latency import add_timing_args  # noqa: E402  (bench/ is this script's folder)

# variant -> (the LSTMs' quantization: None, "matrix" or "row"; the other ops quantized)
VARIANTS = {"int8, LSTM scale per row": ("row", ["MatMul", "Gemm", "Gather"]),
            "int8, LSTMs only": ("matrix", []),
            "int8 without the LSTMs (the earlier route)": (None, ["MatMul", "Gemm", "Gather"])}
OPTIONS = {"": {}, "no spinning": {"spin": False}, "basic graph optimisation": {"basic": True}}


def variant_file(folder, index, lstm, ops):
    """An INT8 file of the student's export folder's model.onnx, quantized as variant number `index` says."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    folded, target = os.path.join(folder, "folded.onnx"), os.path.join(folder, f"{index}.onnx")
    if not os.path.exists(folded):
        quant_pre_process(os.path.join(folder, ONNX_FILE), folded, skip_symbolic_shape=True)
    source = folded
    if lstm:
        source = target + ".lstm.onnx"
        quantize_dynamic(folded, source, weight_type=QuantType.QInt8, per_channel=lstm == "row",
                         op_types_to_quantize=["LSTM"])
    if not ops:
        return source
    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=ops)
    return target


def session(path, threads, spin=True, basic=False):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if basic:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    run = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run
    return lambda feeds: [run(None, feed) for feed in feeds]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="the teacher's best_model folder")
    p.add_argument("--student", required=True, help="a BiLSTM student's best_model folder")
    add_timing_args(p, max_seq_length=64)
    args = p.parse_args()

    import logging

    import onnxruntime

    import export_model
    from utils.adapters import load_encoder
    quiet_paddlenlp()
    onnxruntime.set_default_logger_severity(3)
    logging.getLogger().setLevel(logging.ERROR)
    spec = get_task(args.task_name)
    dev = load_split(spec, task_dir(spec, args.glue_dir, None), spec.dev_splits[0], args.examples)
    with tempfile.TemporaryDirectory() as tmp:
        teacher, student, work = (os.path.join(tmp, n) for n in ("teacher", "student", "variants"))
        export_model.main(["--model_dir", args.teacher, "--output_dir", teacher, "--onnx"])
        export_model.main(["--model_dir", args.student, "--output_dir", student, "--quantize", "int8"])
        os.makedirs(work)
        shutil.copy(os.path.join(student, ONNX_FILE), work)
        files = {"teacher, FP32": os.path.join(teacher, ONNX_FILE), "student, FP32": os.path.join(student, ONNX_FILE),
                 "student, int8 as shipped": os.path.join(student, INT8_FILE)}
        files.update({f"student, {name}": variant_file(work, i, *how) for i, (name, how) in enumerate(VARIANTS.items())})
        feeds = {}
        for role, folder in (("teacher", teacher), ("student", student)):
            encoder = load_encoder(folder)
            features = encoder.encode(dev, args.max_seq_length)
            feeds[role] = [{n: b[n].astype(np.int64) for n in encoder.input_names}
                           for b in (collate(features, np.arange(i, i + 1)) for i in range(len(dev)))]
        rows = {}
        for threads in (int(t) for t in args.threads.split(",")):
            setups = [(name, option) for name in files for option in OPTIONS
                      if not option or name == "student, int8 as shipped"]
            fns = [lambda run=session(files[name], threads, **OPTIONS[option]), f=feeds[name.split(",")[0]]: run(f)
                   for name, option in setups]
            for setup, sec in zip(setups, interleaved_medians(fns, 1, args.repeats)):
                rows[(setup, threads)] = sec / len(dev)
    thread_counts = sorted({n for _, n in rows})
    teacher_best = min(sec for ((name, _), _), sec in rows.items() if name.startswith("teacher"))
    print(f"{len(dev)} {spec.name} dev sentences, batch 1, onnxruntime; ms per sentence (speed-up over the "
          f"teacher's fastest FP32, {teacher_best * 1e3:.3f} ms)\n")
    print("| set-up | " + " | ".join(f"{n} thread{'s' * (n > 1)}" for n in thread_counts) + " |")
    print("| --- |" + " --- |" * len(thread_counts))
    for name, option in dict.fromkeys(setup for setup, _ in rows):
        cells = [f"{rows[((name, option), n)] * 1e3:.3f} ({teacher_best / rows[((name, option), n)]:.1f}x)"
                 for n in thread_counts]
        print(f"| {name}{', ' + option if option else ''} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
