"""Throughput with length-bucketed batches vs plain random batches, on real data, through the real scripts.

    python bench/bucketing.py --stage finetune --glue_dir ../shared/data/glue --model MINILM_DIR
    python bench/bucketing.py --stage intermediate --glue_dir ../shared/data/glue --teacher TEACHER/best_model

Each configuration runs the script's main() for --steps training steps (after tokenising the whole train set)
and reads train_examples_per_second from its all_results.json (time in training steps only, no evaluation).
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.process import configure  # first: settings paddle reads when it loads
configure()
import numpy as np  # noqa: E402

from utils.batches import train_batches  # noqa: E402
from utils.tasks.sequence import get_task, read_examples  # noqa: E402
from utils.models import load_tokenizer  # noqa: E402


def padding_share(glue_dir, task, tokenizer_path, batch_size, max_seq_length):
    """Share of real tokens in a batch, bucketed vs random, over one epoch's plan."""
    from utils.adapters.bert import BertEncoder
    spec = get_task(task)
    features = BertEncoder(load_tokenizer(tokenizer_path)).encode(
        read_examples(spec, os.path.join(glue_dir, spec.name), "train"), max_seq_length)
    lengths = np.array([len(ids) for ids in features.columns["input_ids"]])
    share = {}
    for bucket in (True, False):
        batches = train_batches(lengths, batch_size, 0, 0, bucket)
        share[bucket] = sum(lengths[b].sum() for b in batches) / sum(lengths[b].max() * len(b) for b in batches)
    return share, float(np.mean(lengths))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=("finetune", "intermediate"), default="finetune")
    p.add_argument("--task_name", default="SST-2")
    p.add_argument("--glue_dir", required=True)
    p.add_argument("--model", help="finetune: the model to fine-tune (e.g. the MiniLM folder)")
    p.add_argument("--teacher", help="intermediate: a fine-tuned teacher folder")
    p.add_argument("--student", default="tinybert-4l-312d", help="intermediate: student shape (random init)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_seq_length", type=int, default=64)
    a = p.parse_args()
    common = ["--task_name", a.task_name, "--glue_dir", a.glue_dir, "--max_steps", str(a.steps),
              "--save_steps", str(a.steps), "--logging_steps", str(a.steps), "--batch_size", str(a.batch_size),
              "--max_seq_length", str(a.max_seq_length), "--max_eval_samples", "64"]
    if a.stage == "finetune":
        import run_glue as script
        common += ["--model_name_or_path", a.model]
        tokenizer_path = a.model
    else:
        import task_distill as script
        common += ["--teacher_path", a.teacher, "--intermediate_distill", "--student_model_name_or_path", a.student,
                   "--student_init", "random"]
        tokenizer_path = a.teacher
    speed = {}
    for bucket in (True, False):
        with tempfile.TemporaryDirectory() as out:
            results = script.main(common + ["--output_dir", out, "--bucket" if bucket else "--no-bucket"])
            speed[bucket] = results["train_examples_per_second"]
    share, mean_len = padding_share(a.glue_dir, a.task_name, tokenizer_path, a.batch_size, a.max_seq_length)
    print(f"\n{a.stage} on {a.task_name} ({a.steps} steps, batch {a.batch_size}, mean length {mean_len:.1f} tokens, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")
    print("| batches | real-token share | examples/s |\n| --- | --- | --- |")
    for bucket in (True, False):
        print(f"| {'length-bucketed' if bucket else 'random'} | {share[bucket]:.0%} | {speed[bucket]:.1f} |")
    print(f"speed-up from bucketing: {speed[True] / speed[False]:.2f}x")


if __name__ == "__main__":
    main()
