"""Fine-tune a BERT-style teacher on a GLUE task or a custom TSV.

    python run_glue.py --task_name SST-2 --glue_dir GLUE --model_name_or_path bert-base-uncased --output_dir out/sst2

Writes OUTPUT_DIR/best_model (best dev score; loadable with from_pretrained), OUTPUT_DIR/all_results.json,
OUTPUT_DIR/args.json and VisualDL curves in OUTPUT_DIR/runs.
"""
import argparse
import math
import os
import sys
import time

import utils  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from utils.errors import UserError, exits_cleanly
from utils.glue import TASK_NAMES, get_task, load_split, task_dir


def add_task_args(parser, task_required=True):
    """--task_name, where its files are, and the custom task's columns; returns the data group."""
    g = parser.add_argument_group("data")
    g.add_argument("--task_name", required=task_required, help=f"one of {', '.join(TASK_NAMES)} (case-insensitive)")
    g.add_argument("--glue_dir", help="GLUE folder with TASK/train.tsv and dev.tsv; without it (and without "
                                      "--data_dir) GLUE is downloaded through paddlenlp")
    g.add_argument("--data_dir", help="the task's own folder (train.tsv, dev.tsv); required for custom")
    c = parser.add_argument_group("custom task (--task_name custom)")
    c.add_argument("--text_a_column", help="column of the first text: header name or 0-based index")
    c.add_argument("--text_b_column", help="column of the second text, for sentence pairs")
    c.add_argument("--label_column", help="column of the label")
    c.add_argument("--labels", help="comma-separated label set (default: the distinct labels of train.tsv)")
    c.add_argument("--regression", action="store_true", help="float labels, trained with MSE")
    c.add_argument("--no_header", action="store_true", help="the files have no header row")
    return g


def add_data_args(parser):
    g = add_task_args(parser)
    g.add_argument("--max_seq_length", type=int, default=128, help="longer inputs are truncated (default 128)")
    g.add_argument("--max_train_samples", type=int, help="use only the first N training rows (quick runs)")
    g.add_argument("--max_eval_samples", type=int, help="use only the first N rows of each dev split")
    g.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=True,
                   help="length-bucketed batches (default on; --no-bucket draws plain random batches)")
    return parser


def add_training_args(parser, learning_rate):
    t = parser.add_argument_group("training")
    t.add_argument("--batch_size", type=int, default=32)
    t.add_argument("--eval_batch_size", type=int, default=128)
    t.add_argument("--learning_rate", type=float, default=learning_rate, help=f"peak lr (default {learning_rate})")
    t.add_argument("--num_train_epochs", type=float, default=3.0)
    t.add_argument("--max_steps", type=int, default=-1, help="stop after N steps (overrides epochs when > 0)")
    t.add_argument("--warmup_proportion", type=float, default=0.1, help="fraction of steps with rising lr")
    t.add_argument("--weight_decay", type=float, default=0.01)
    t.add_argument("--max_grad_norm", type=float, default=1.0, help="gradient clipping by global norm; 0 = off")
    t.add_argument("--logging_steps", type=int, default=50)
    t.add_argument("--save_steps", type=int, default=500, help="evaluate on dev, keep the best (and checkpoint) "
                                                                 "every N steps")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--device", default="cpu", help="cpu, gpu, gpu:1, xpu ... (default cpu)")
    return t


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    m = p.add_argument_group("model and output")
    m.add_argument("--model_name_or_path", required=True,
                   help="PaddleNLP model name (downloaded when online), PaddleNLP folder, or Hugging Face BERT "
                        "folder (config.json + model.safetensors or pytorch_model.bin; converted in a copy)")
    m.add_argument("--output_dir", required=True, help="where best_model, all_results.json and runs/ go")
    add_training_args(p, learning_rate=2e-5)
    args = p.parse_args(argv)
    validate_args(args)
    return args


def validate_args(args):
    positive = ["max_seq_length", "batch_size", "eval_batch_size", "logging_steps", "save_steps"]
    for name in positive + ["max_train_samples", "max_eval_samples"]:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name} must be positive, got {value}")
    if args.learning_rate <= 0 or args.num_train_epochs <= 0:
        raise UserError("--learning_rate and --num_train_epochs must be positive")
    if not 0 <= args.warmup_proportion < 1:
        raise UserError(f"--warmup_proportion must be in [0, 1), got {args.warmup_proportion}")


def load_task(args, with_train=True, train_split="train"):
    """Task spec, train examples and {dev split: examples}; every row checked before anything is written."""
    spec = get_task(args.task_name, vars(args))
    folder = task_dir(spec, args.glue_dir, args.data_dir)
    if folder is not None and not os.path.isdir(folder):
        raise UserError(f"no such directory; expected the {spec.name} folder with train.tsv and dev.tsv", folder)
    train = load_split(spec, folder, train_split, args.max_train_samples) if with_train else None
    dev = {s: load_split(spec, folder, s, args.max_eval_samples) for s in spec.dev_splits}
    return spec, train, dev


def label_config(spec):
    if spec.is_regression:
        return {"num_labels": 1}
    return {"num_labels": spec.num_labels, "id2label": dict(enumerate(spec.labels)),
            "label2id": {name: i for i, name in enumerate(spec.labels)}}


def train_loss(spec, logits, labels):
    import paddle.nn.functional as F
    if spec.is_regression:
        return F.mse_loss(logits.reshape([-1]), labels.astype("float32"))
    return F.cross_entropy(logits, labels)


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    spec, train_examples, dev_examples = load_task(args)
    from utils.training import check_output_dir
    check_output_dir(args.output_dir)

    from tqdm import tqdm
    from paddlenlp.transformers import AutoModelForSequenceClassification
    from utils.features import collate, tokenize, train_batches
    from utils.models import load_model, load_tokenizer, quiet_paddlenlp, save_pretrained
    from utils.training import (ScalarLog, build_optimizer, classifier_logits, command_line, evaluate, set_device,
                                set_seed, to_tensors, write_json)

    quiet_paddlenlp()
    set_device(args.device)
    set_seed(args.seed)
    tokenizer = load_tokenizer(args.model_name_or_path)
    model = load_model(AutoModelForSequenceClassification, args.model_name_or_path, **label_config(spec))
    pad_id = tokenizer.pad_token_id
    train = tokenize(train_examples, tokenizer, args.max_seq_length, spec.is_regression, desc="tokenize train")
    dev = {s: tokenize(ex, tokenizer, args.max_seq_length, spec.is_regression) for s, ex in dev_examples.items()}
    lengths = train.lengths
    steps_per_epoch = len(train_batches(lengths, args.batch_size, args.seed, 0, args.bucket))
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    optimizer, scheduler = build_optimizer(model, args.learning_rate, total_steps, args.warmup_proportion,
                                           args.weight_decay, args.max_grad_norm)

    os.makedirs(args.output_dir, exist_ok=True)
    write_json(os.path.join(args.output_dir, "args.json"), dict(vars(args), command=command_line("run_glue.py", argv)))
    log = ScalarLog(os.path.join(args.output_dir, "runs"))
    best, best_step, best_metrics = -math.inf, 0, {}
    main_key = f"eval_{spec.main_metric}"
    seen, train_seconds, loss_sum, loss_count = 0, 0.0, 0.0, 0
    start = time.time()
    model.train()
    bar = tqdm(total=total_steps, desc=f"fine-tune {spec.name}", unit="step", dynamic_ncols=True)
    for step in range(1, total_steps + 1):
        # step: batches are a pure function of (seed, epoch), so any step's batch can be recomputed
        epoch, position = divmod(step - 1, steps_per_epoch)
        if position == 0:
            plan = train_batches(lengths, args.batch_size, args.seed, epoch, args.bucket)
        batch = to_tensors(collate(train, plan[position], pad_id))
        t0 = time.time()
        loss = train_loss(spec, classifier_logits(model, batch), batch["labels"])
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.clear_grad()
        loss_sum, loss_count = loss_sum + float(loss), loss_count + 1
        train_seconds += time.time() - t0
        seen += len(plan[position])
        bar.update(1)

        # log
        if step % args.logging_steps == 0 or step == total_steps:
            log.add("train/loss", loss_sum / loss_count, step)
            log.add("train/lr", scheduler.get_lr(), step)
            log.add("train/examples_per_second", seen / train_seconds, step)
            bar.set_postfix(loss=f"{loss_sum / loss_count:.4f}", lr=f"{scheduler.get_lr():.2e}")
            loss_sum, loss_count = 0.0, 0

        # eval and keep the best
        if step % args.save_steps == 0 or step == total_steps:
            metrics = evaluate(spec, model, dev, args.eval_batch_size, pad_id)
            for name, value in metrics.items():
                log.add(f"eval/{name[len('eval_'):]}", value, step)
            bar.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
            if metrics[main_key] > best:
                best, best_step, best_metrics = metrics[main_key], step, metrics
                save_pretrained(os.path.join(args.output_dir, "best_model"), model, tokenizer)
    bar.close()
    log.close()

    results = dict(best_metrics, best_step=best_step, train_runtime=time.time() - start,
                   train_examples_per_second=seen / max(train_seconds, 1e-9), train_steps=total_steps,
                   train_examples=len(train), task=spec.name, main_metric=main_key)
    write_json(os.path.join(args.output_dir, "all_results.json"), results)
    print_results(results)
    return results


def print_results(results):
    print("\n| result | value |\n| --- | --- |")
    for key, value in results.items():
        print(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")


if __name__ == "__main__":
    main(sys.argv[1:])
