"""Teacher labelling speed per engine: rows/s over real SST-2 training sentences, each engine's logits against
dygraph's (max abs difference, argmax agreement), and its speed-up over dygraph (the old --cache_teacher_logits)
in the same round. Every exported engine runs the teacher's label layer (what the label store runs: a sequence
teacher's last layer at [CLS] only), made and run as the store makes and runs them (onnxruntime's attention cores
fused: utils/onnx_fusion.py; onnxruntime as several predictors at once, one per thread, STREAM_BATCH rows a call:
utils/labels.py); `--full_last_layer` adds the plain export of the logits beside it. Rounds alternate the
engines' order (this VM drifts 10-25% within minutes).

    python bench/label_speed.py --teacher demo/sst2/teacher/best_model --glue_dir ../shared/data/glue --rows 20000
"""
import argparse
import functools
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.tasks.sequence import get_task, read_examples
from utils.inference import ENGINES, export_static, make_engines, process_threads, runnable_engines
from utils.labels import engine_label_fn


def exported(teacher, layer, folder, batch):
    """{engine name: features -> logits} as the label store makes and runs them."""
    export_static(teacher, folder, layer)
    make_engines(folder, ENGINES, tuned=True)
    return {name: engine_label_fn(folder, name, batch, process_threads()) for name in runnable_engines(folder)}


def timed(label_fn, features):
    start = time.perf_counter()
    out = label_fn(features)
    return out, time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="a fine-tuned teacher folder")
    p.add_argument("--glue_dir", default="../shared/data/glue")
    p.add_argument("--rows", type=int, default=20000, help="the last N SST-2 training sentences")
    p.add_argument("--max_seq_length", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=128,
                   help="rows per call of dygraph and of an engine that runs one stream (task_distill.py's "
                        "--eval_batch_size)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--full_last_layer", action="store_true",
                   help="also time each engine on the plain logits export (every position through every layer)")
    args = p.parse_args(argv)
    import numpy as np

    from utils.adapters import load_adapter
    from utils.training import predict
    examples = read_examples(get_task("SST-2"), os.path.join(args.glue_dir, "SST-2"), "train")[-args.rows:]
    teacher = load_adapter(args.teacher)
    teacher.eval()
    features = teacher.encoder.encode(examples, args.max_seq_length)
    folders = [tempfile.mkdtemp(prefix="label-speed-") for _ in range(2)]
    try:
        engines = {f"{name} (label layer)": e for name, e in exported(teacher, teacher.label_layer(), folders[0],
                                                                      args.batch_size).items()}
        if args.full_last_layer:
            engines.update({f"{name} (full export)": e for name, e in exported(teacher, None, folders[1],
                                                                               args.batch_size).items()})
        print(f"{len(features):,} rows, batch {args.batch_size}, {os.environ.get('OMP_NUM_THREADS', '1')} threads")
        print("| round | engine | rows/s | x dygraph | max abs diff to dygraph | argmax agreement |\n"
              "| --- | --- | --- | --- | --- | --- |")
        engines = {"dygraph": functools.partial(predict, teacher, batch_size=args.batch_size), **engines}
        for r in range(args.rounds):
            times, outs = {}, {}
            for name in (list(engines) if r % 2 == 0 else list(engines)[::-1]):
                outs[name], times[name] = timed(engines[name], features)
            reference = outs["dygraph"]
            for name in engines:
                speed, ratio = len(features) / times[name], times["dygraph"] / times[name]
                print(f"| {r + 1} | {name} | {speed:.0f} | {ratio:.2f} | "
                      f"{np.abs(outs[name] - reference).max():.2g} | "
                      f"{np.mean(outs[name].argmax(1) == reference.argmax(1)):.4f} |", flush=True)
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
