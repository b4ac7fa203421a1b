"""Teacher labelling speed per engine: rows/s over real SST-2 training sentences, and each engine's logits against
dygraph's (max abs difference, argmax agreement). Engines run in turn in one process.

    python bench/label_speed.py --teacher demo/sst2/teacher/best_model --glue_dir ../shared/data/glue --rows 20000
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.tasks.sequence import get_task, read_examples
from utils.inference import ENGINES, export_static, make_engines, open_engines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="a fine-tuned teacher folder")
    p.add_argument("--glue_dir", default="../shared/data/glue")
    p.add_argument("--rows", type=int, default=20000, help="the last N SST-2 training sentences")
    p.add_argument("--max_seq_length", type=int, default=64)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 256])
    args = p.parse_args(argv)
    import numpy as np

    from utils.adapters import load_adapter
    from utils.training import batched_logits, predict
    examples = read_examples(get_task("SST-2"), os.path.join(args.glue_dir, "SST-2"), "train")[-args.rows:]
    teacher = load_adapter(args.teacher)
    teacher.eval()
    features = teacher.encoder.encode(examples, args.max_seq_length)
    folder = tempfile.mkdtemp(prefix="label-speed-")
    try:
        export_static(teacher, folder)
        make_engines(folder, ENGINES)
        engines = {"dygraph": None, **open_engines(folder)}
        reference = None
        print("| engine | batch | rows/s | max abs diff to dygraph | argmax agreement |\n| --- | --- | --- | --- | --- |")
        for batch in args.batch_sizes:
            for name, engine in engines.items():
                start = time.perf_counter()
                out = predict(teacher, features, batch) if engine is None else batched_logits(engine, features, batch)
                seconds = time.perf_counter() - start
                reference = out if reference is None else reference
                print(f"| {name} | {batch} | {len(features) / seconds:.0f} | {np.abs(out - reference).max():.2g} | "
                      f"{np.mean(out.argmax(1) == reference.argmax(1)):.4f} |", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
