"""INT8 against FP32 on onnxruntime, on real dev sentences: issue 28's goals (at least 1.8x at batch 32 x length 64,
at least 1.5x at batch 1, at most 30% of the size, at most 1 point of dev accuracy lost).

    flock /tmp/cpu.lock .venv/bin/python bench/int8_speed.py --export out/export/student \
        --task_name SST-2 --glue_dir ../shared/data/glue [--files model.int8.onnx,other.onnx] [--threads 2]

Each export folder's model.onnx (FP32) is timed against each INT8 file named, in the same process, alternated in
blocks of about a second (utils.inference.interleaved_medians), for --rounds rounds; a round's ratio is FP32's
median over the file's, and the printed ratio is the median of the rounds with their spread (lowest-highest).
Batch 32: the first 32 dev sentences padded (or cut) to --seq_len tokens. Batch 1: --sentences dev sentences one
at a time at their own length (cut at --seq_len), the figure per sentence. Then each file's size and its dev
accuracy (the task's main metric) on the whole dev split.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
import numpy as np  # noqa: E402

from utils.inference import ONNX_FILE, INT8_FILE, OnnxPredictor, interleaved_medians  # noqa: E402

GOALS = {"batch 32": 1.8, "batch 1": 1.5}  # INT8 speed-up over FP32
SIZE_GOAL, DROP_GOAL = 0.30, 0.01  # INT8 size as a share of FP32's; dev accuracy lost, at most


def padded(features, index, length):
    """The rows `index` of every column, cut at `length` and padded to exactly `length` with the column's pad."""
    batch = {}
    for name, col in features.columns.items():
        out = np.full((len(index), length), features.pads.get(name, 0), dtype=np.int64)
        for row, i in enumerate(index):
            seq = col[i][:length]
            out[row, :len(seq)] = seq
        batch[name] = out
    return batch


def workloads(features, seq_len, sentences):
    """{setting: inputs timed as one call}: one batch of 32 at seq_len; `sentences` single sentences, each at its
    own length."""
    first = next(iter(features.columns.values()))
    singles = [padded(features, [i], min(seq_len, len(first[i]))) for i in range(sentences)]
    return {"batch 32": [padded(features, range(32), seq_len)], "batch 1": singles}


def timed_ratios(models, inputs, rounds, min_seconds):
    """Per round, each model's median seconds per call over `inputs` (one call runs all of them), alternated."""
    calls = [(lambda m=m: [m(x) for x in inputs]) for m in models]
    return np.array([interleaved_medians(calls, warmup=2, repeats=5, min_seconds=min_seconds) for _ in range(rounds)])


def profile(folder, files, inputs, threads, runs=15):
    """Per file, onnxruntime's profiler summed by operator type: ms per call of `inputs` (the batch of 32)."""
    import collections
    import json

    import onnxruntime as ort
    for name in files:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.log_severity_level, options.enable_profiling = threads, 3, True
        session = ort.InferenceSession(os.path.join(folder, name), options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
        trace = session.end_profiling()
        with open(trace) as f:
            events = json.load(f)
        os.remove(trace)
        per_op = collections.Counter()
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                per_op[e["args"]["op_name"]] += e["dur"] / 1000 / runs
        print(f"- profile of {name}: {sum(per_op.values()):.1f} ms; "
              + ", ".join(f"{op} {ms:.1f}" for op, ms in per_op.most_common(10)))


def dev_metric(predictor, spec, features):
    from utils.training import batched_logits
    metrics = spec.compute_metrics(batched_logits(predictor, features, 64), features)
    return metrics[spec.main_metric]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", action="append", required=True, help="an export folder with model.onnx (repeatable)")
    p.add_argument("--files", default=INT8_FILE, help="comma-separated INT8 files in each folder, timed against FP32")
    p.add_argument("--task_name", default="SST-2")
    p.add_argument("--glue_dir", required=True, help="the GLUE folder whose dev split gives the sentences")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seq_len", type=int, default=64)
    p.add_argument("--sentences", type=int, default=64, help="dev sentences timed one at a time for batch 1")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min_seconds", type=float, default=6.0, help="least time spent on each model per round")
    p.add_argument("--settings", default="batch 32,batch 1")
    p.add_argument("--no_accuracy", action="store_true", help="skip the dev accuracy of each file")
    p.add_argument("--profile", action="store_true",
                   help="also print each file's time per operator type at batch 32 (onnxruntime's profiler)")
    args = p.parse_args()
    from utils.adapters import load_encoder
    from utils.tasks import load_task
    spec, _, dev = load_task(args.task_name, glue_dir=args.glue_dir, with_train=False)
    files = args.files.split(",")
    settings = [s for s in args.settings.split(",") if s]
    for folder in args.export:
        features = load_encoder(folder).encode(dev[spec.dev_splits[0]], args.seq_len)
        models = [OnnxPredictor(folder, args.threads, f) for f in [ONNX_FILE] + files]
        print(f"\n## {folder} ({args.threads} threads, {len(features)} dev sentences)")
        print("| file | size MB (share) | " + "".join(f"ms at {s} (speed-up, spread) | " for s in settings)
              + ("" if args.no_accuracy else "dev accuracy (change) |"))
        print("| --- " * (2 + len(settings) + (not args.no_accuracy)) + "|")
        timings = {}
        for setting in settings:
            inputs = workloads(features, args.seq_len, args.sentences)[setting]
            timings[setting] = timed_ratios(models, inputs, args.rounds, args.min_seconds) * 1000 / len(inputs)
        sizes = [os.path.getsize(os.path.join(folder, f)) / 1e6 for f in [ONNX_FILE] + files]
        scores = [None] * len(models) if args.no_accuracy else [dev_metric(m, spec, features) for m in models]
        for j, name in enumerate([ONNX_FILE] + files):
            cells = [f"{sizes[j]:.1f}" + (f" ({sizes[j] / sizes[0]:.0%})" if j else "")]
            for setting, ms in timings.items():
                ratio = ms[:, 0] / ms[:, j]
                cells.append(f"{np.median(ms[:, j]):.2f}" + (
                    f" ({np.median(ratio):.2f}x, {ratio.min():.2f}-{ratio.max():.2f})" if j else ""))
            if scores[j] is not None:
                cells.append(f"{scores[j]:.4f}" + (f" ({(scores[j] - scores[0]) * 100:+.2f})" if j else ""))
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
        if args.profile:
            profile(folder, [ONNX_FILE] + files, workloads(features, args.seq_len, 1)["batch 32"][0], args.threads)
        for j, name in enumerate(files, 1):
            verdicts = [f"{s} {np.median(timings[s][:, 0] / timings[s][:, j]):.2f}x vs {GOALS[s]}x "
                        f"{'met' if np.median(timings[s][:, 0] / timings[s][:, j]) >= GOALS[s] else 'not met'}"
                        for s in timings]
            verdicts.append(f"size {sizes[j] / sizes[0]:.0%} vs {SIZE_GOAL:.0%} "
                            f"{'met' if sizes[j] / sizes[0] <= SIZE_GOAL else 'not met'}")
            if scores[j] is not None:
                drop = scores[0] - scores[j]
                verdicts.append(f"drop {drop * 100:.2f} points vs {DROP_GOAL * 100:.0f} "
                                f"{'met' if drop <= DROP_GOAL else 'not met'}")
            print(f"- {name}: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
