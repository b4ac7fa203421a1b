"""Exported latency of students of any architecture against their teacher, on real sentences.

    python bench/student_latency.py --teacher out/sst2/teacher/best_model \\
        --student out/sst2/bilstm-kd/best_model out/sst2/cnn-kd/best_model --task_name SST-2 --glue_dir GLUE

Each model is exported (Paddle Inference + ONNX) and run on the same dev sentences, each through its own
tokenizer (WordPiece tokens for BERTs, words for word students, so no model is timed on a length it would not
see). For batch 1 and 32, every engine (Paddle Inference, onnxruntime) and thread count (1, 2): the median of at
least --repeats timed passes over --examples sentences, per example. Then per student: its parameters, and its
speed-up over the teacher with each model on its fastest engine and thread count, as one would deploy it.

Students are also exported with --quantize int8 (onnxruntime dynamic INT8: the matrix products, the embedding
tables and a BiLSTM's LSTMs), so their fastest engine may be INT8; the teacher is timed in FP32 only, and every
speed-up is over the teacher's fastest FP32 engine (issue 28's yardstick). --no-int8 times FP32 students only.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
import numpy as np  # noqa: E402

from utils.batches import collate  # noqa: E402
from utils.tasks.sequence import get_task, load_split, task_dir  # noqa: E402
from utils.inference import interleaved_medians, open_engines, settle  # noqa: E402
from utils.models import quiet_paddlenlp  # noqa: E402


def student_names(folders):
    """A name per student folder: the run folder's name (bilstm for out/x/bilstm/best_model), numbered when two
    runs share one (two bilstm runs would otherwise export into one folder and time one model twice)."""
    names = []
    for folder in folders:
        base = name = os.path.basename(os.path.dirname(os.path.abspath(folder)))
        k = 2
        while name in names or name == "teacher":
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def exported(folder, name, tmp, int8=False):
    """(adapter, export folder) for a trained model folder; with int8 the export holds model.int8.onnx too."""
    import export_model
    from utils.adapters import load_adapter
    out = os.path.join(tmp, name + "-export")
    export_model.main(["--model_dir", folder, "--output_dir", out, "--onnx"] + (["--quantize", "int8"] if int8 else []))
    return load_adapter(folder), out


def engines(folder, threads):
    """Every engine whose file the export holds (Paddle Inference and, from --onnx, onnxruntime)."""
    return {(name, threads): run for name, run in open_engines(folder, threads=threads).items()}


def batches(encoder, examples, batch_size, max_seq_length):
    features = encoder.encode(examples, max_seq_length)
    return [collate(features, np.arange(i, min(i + batch_size, len(examples))))
            for i in range(0, len(examples), batch_size)]


def add_timing_args(p, max_seq_length):
    """The flags every teacher-against-student latency bench shares (this one and bilstm_levers.py)."""
    p.add_argument("--task_name", default="SST-2")
    p.add_argument("--glue_dir", required=True)
    p.add_argument("--examples", type=int, default=256, help="dev sentences per timed pass (default 256)")
    p.add_argument("--max_seq_length", type=int, default=max_seq_length)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", default="1,2", help="thread counts to try (default 1,2)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="the teacher's best_model folder")
    p.add_argument("--student", nargs="+", required=True, help="student best_model folders, any architecture")
    add_timing_args(p, max_seq_length=128)
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the students' INT8 exports (default: yes; the teacher is timed in FP32 only)")
    args = p.parse_args()

    quiet_paddlenlp()
    spec = get_task(args.task_name)
    dev = load_split(spec, task_dir(spec, args.glue_dir, None), spec.dev_splits[0], args.examples)
    rows = {}  # (model, engine, threads, batch) -> seconds per example
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = {"teacher": exported(args.teacher, "teacher", tmp)}
        models.update({name: exported(s, name, tmp, args.int8)
                       for name, s in zip(student_names(args.student), args.student)})
        for name, (adapter, folder) in models.items():
            sizes[name] = (adapter.describe(), adapter.num_parameters())
            for threads in (int(t) for t in args.threads.split(",")):
                for (engine, n), run in engines(folder, threads).items():
                    settle()  # the previous engine's threads stop spinning first
                    for bs in (1, 32):
                        data = batches(adapter.encoder, dev, bs, args.max_seq_length)
                        (sec,) = interleaved_medians([lambda: [run(b) for b in data]], 1, args.repeats)
                        rows[(name, engine, n, bs)] = sec / len(dev)
        best = {}  # (model, batch) -> (seconds per example, engine, threads) of its fastest set-up
        for (name, engine, n, bs), sec in rows.items():
            if (name, bs) not in best or sec < best[(name, bs)][0]:
                best[(name, bs)] = (sec, engine, n)
        # the batch-1 speed-up again with the teacher's and each student's fastest set-up timed in turn, so that a
        # slow spell of the shared machine lands on both (the sweep above times one set-up after another)
        paired = {}
        for name in list(models)[1:]:
            setups = [(m, *best[(m, 1)][1:]) for m in ("teacher", name)]
            settle()
            paired[name] = (setups, paired_seconds(setups, models, dev, args.max_seq_length, args.repeats))
    print(f"{len(dev)} {spec.name} dev sentences per pass; milliseconds per example\n")
    print("| model | engine | threads | batch 1 ms | batch 32 ms/example |\n| --- | --- | --- | --- | --- |")
    for (name, engine, n, bs), sec in sorted(rows.items()):
        if bs == 1:
            print(f"| {name} | {engine} | {n} | {sec * 1e3:.3f} | {rows[(name, engine, n, 32)] * 1e3:.3f} |")
    print("\nEach model on its fastest engine and thread count:\n")
    print("| model | parameters | batch 1 ms (engine) | speed-up | batch 32 ms/example (engine) | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in models:
        cells = []
        for bs in (1, 32):
            sec, engine, n = best[(name, bs)]
            cells += [f"{sec * 1e3:.3f} ({engine} x{n})", f"{best[('teacher', bs)][0] / sec:.1f}x"]
        print(f"| {name}: {sizes[name][0]} | {sizes[name][1]:,} | " + " | ".join(cells) + " |")
    print("\nBatch 1, the teacher's and each student's fastest set-up timed in turn (interleaved medians):\n")
    print("| student | teacher ms (engine) | student ms (engine) | speed-up |\n| --- | --- | --- | --- |")
    for name, (setups, (t_sec, s_sec)) in paired.items():
        (_, t_engine, t_n), (_, s_engine, s_n) = setups
        print(f"| {name} | {t_sec * 1e3:.3f} ({t_engine} x{t_n}) | {s_sec * 1e3:.3f} ({s_engine} x{s_n}) "
              f"| {t_sec / s_sec:.1f}x |")


def paired_seconds(setups, models, dev, max_seq_length, repeats):
    """Seconds per example at batch 1 of each (model, engine, threads) set-up, timed by interleaved_medians.
    models: {name: (adapter, export folder)}."""
    fns = []
    for name, engine, threads in setups:
        adapter, folder = models[name]
        run = open_engines(folder, [engine], threads)[engine]
        data = batches(adapter.encoder, dev, 1, max_seq_length)
        fns.append(lambda run=run, data=data: [run(b) for b in data])
    return [sec / len(dev) for sec in interleaved_medians(fns, 1, repeats)]


if __name__ == "__main__":
    main()
