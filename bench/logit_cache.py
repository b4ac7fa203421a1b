"""Time saved by --cache_teacher_logits: the prediction stage for 3 epochs with and without the cache.

    python bench/logit_cache.py --glue_dir ../shared/data/glue --teacher out/real-sst2/teacher/best_model

Runs task_distill.main() twice on the first --samples SST-2 training rows (4L-312d student, random init) and
times each whole run (the cached one includes computing the cache once; tokenising is the same in both).
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glue_dir", required=True)
    p.add_argument("--teacher", required=True, help="a fine-tuned SST-2 teacher folder")
    p.add_argument("--samples", type=int, default=3000)
    p.add_argument("--epochs", type=float, default=3)
    a = p.parse_args()
    import task_distill
    common = ["--task_name", "SST-2", "--glue_dir", a.glue_dir, "--teacher_path", a.teacher,
              "--student_model_name_or_path", "4l-312d", "--student_init", "random", "--max_train_samples",
              str(a.samples), "--max_eval_samples", "64", "--num_train_epochs", str(a.epochs), "--save_steps",
              "100000", "--logging_steps", "50", "--max_seq_length", "64"]
    runtime = {}
    for cached in (False, True):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            task_distill.main(common + ["--output_dir", out] + (["--cache_teacher_logits"] if cached else []))
            runtime[cached] = time.perf_counter() - start
    print(f"\nprediction stage, {a.samples} SST-2 rows x {a.epochs:g} epochs, OMP_NUM_THREADS="
          f"{os.environ['OMP_NUM_THREADS']}")
    print("| teacher logits | run time s |\n| --- | --- |")
    print(f"| computed every step | {runtime[False]:.1f} |\n| cached (computed once) | {runtime[True]:.1f} |")
    print(f"time saved: {1 - runtime[True] / runtime[False]:.0%} ({runtime[False] / runtime[True]:.2f}x faster)")


if __name__ == "__main__":
    main()
