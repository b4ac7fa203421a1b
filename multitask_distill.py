"""One student for several tasks: prediction-layer distillation from one teacher per task into a shared encoder
with a classifier per task; each step's batch comes from task t with probability n_t^tau / sum_s n_s^tau.

    python multitask_distill.py --task_name SST-2 CoLA --glue_dir GLUE \\
        --teacher_path out/sst2/teacher/best_model out/cola/teacher/best_model \\
        --student_model_name_or_path 4l-312d --student_init random --output_dir out/multi

tau = 1 samples in proportion to size (small tasks are seen rarely), tau = 0 uniformly over tasks. Writes
OUTPUT_DIR/best_model/<TASK>/ (the shared encoder with that task's classifier: a from_pretrained folder per
task, so export_model.py and predict.py work per task), chosen by the mean of the tasks' main dev metrics;
all_results.json (eval_<task>_<metric>, eval_mean_main, steps per task), args.json, runs/.
"""
import argparse
import math
import os
import sys
import time

import utils  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from run_glue import add_training_args, label_config, print_results, validate_args
from utils.errors import UserError, exits_cleanly
from utils.students import STUDENT_INITS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("tasks")
    g.add_argument("--task_name", nargs="+", required=True, help="two or more GLUE tasks")
    g.add_argument("--glue_dir", help="GLUE folder (without it, GLUE is downloaded through paddlenlp)")
    g.add_argument("--teacher_path", nargs="+", required=True, help="one fine-tuned teacher per task, same order")
    g.add_argument("--tau", type=float, default=1.0, help="sampling exponent: p(task) ~ size^tau (default 1)")
    g.add_argument("--max_seq_length", type=int, default=128)
    g.add_argument("--max_train_samples", type=int, help="first N training rows of each task")
    g.add_argument("--max_eval_samples", type=int, help="first N rows of each dev split")
    g.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=True)
    m = p.add_argument_group("student and losses")
    m.add_argument("--student_model_name_or_path", default="tinybert-4l-312d")
    m.add_argument("--student_init", choices=STUDENT_INITS, default="pretrained")
    m.add_argument("--output_dir", required=True)
    m.add_argument("--T", type=float, default=1.0, help="temperature (float)")
    m.add_argument("--kd_loss", choices=("soft_ce", "kl", "mse"), default="soft_ce",
                   help="loss to the teacher's logits (regression tasks always use mse)")
    m.add_argument("--hard_label_weight", type=float, default=0.0)
    add_training_args(p, learning_rate=5e-5)
    args = p.parse_args(argv)
    args.data_dir = None
    validate_args(args)
    if len(args.task_name) < 2 or len(args.teacher_path) != len(args.task_name):
        raise UserError("--task_name needs two or more tasks and --teacher_path one teacher per task")
    if args.tau < 0 or args.T <= 0:
        raise UserError("--tau must be >= 0 and --T > 0")
    return args


def task_probabilities(sizes, tau):
    weights = [n ** tau for n in sizes]
    return [w / sum(weights) for w in weights]


class MultiTaskStudent:
    """A TinyBERT encoder shared by every task and one classifier per task (ReLU on the pooled output, as
    PaddleNLP's TinyBertForSequenceClassification does)."""

    def __init__(self, student, specs):
        import paddle
        self.encoder = student.tinybert
        hidden = student.config.hidden_size
        self.heads = paddle.nn.LayerDict({s.name: paddle.nn.Linear(hidden, s.num_labels) for s in specs})
        self.config = student.config

    def parameters(self):
        return self.encoder.parameters() + self.heads.parameters()

    def train(self):
        self.encoder.train()

    def eval(self):
        self.encoder.eval()

    def logits(self, task, batch):
        import paddle.nn.functional as F
        pooled = self.encoder(batch["input_ids"], token_type_ids=batch["token_type_ids"],
                              attention_mask=batch["attention_mask"])[1]
        return self.heads[task](F.relu(pooled))

    def for_task(self, spec):
        """A TinyBertForSequenceClassification of this task: the shared encoder and the task's classifier."""
        from paddlenlp.transformers import TinyBertConfig, TinyBertForSequenceClassification
        config = TinyBertConfig(**dict(self.config.to_dict(), **label_config(spec)))
        model = TinyBertForSequenceClassification(config)
        model.tinybert.set_state_dict(self.encoder.state_dict())
        model.classifier.set_state_dict(self.heads[spec.name].state_dict())
        return model


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    from run_glue import load_task
    from utils.training import check_output_dir
    tasks = []
    for name in args.task_name:
        spec, train_ex, dev_ex = load_task(argparse.Namespace(**dict(vars(args), task_name=name)))
        tasks.append((spec, train_ex, dev_ex))
    if len({spec.name for spec, _, _ in tasks}) != len(tasks):
        raise UserError("each task may appear once in --task_name")
    check_output_dir(args.output_dir)

    import numpy as np
    import paddle
    from paddlenlp.transformers import AutoModelForSequenceClassification
    from tqdm import tqdm

    from utils.features import collate, tokenize, train_batches
    from utils.losses import PREDICTION_LOSSES, hard_loss
    from utils.models import load_model, load_tokenizer, quiet_paddlenlp, save_pretrained
    from utils.students import build_student
    from utils.training import (ScalarLog, build_optimizer, classifier_logits, command_line, set_device, set_seed,
                                to_tensors, write_json)
    from utils.metrics import compute_metrics
    quiet_paddlenlp()
    set_device(args.device)
    set_seed(args.seed)
    teachers, tokenizer = [], load_tokenizer(args.teacher_path[0])
    for (spec, _, _), path in zip(tasks, args.teacher_path):
        teacher = load_model(AutoModelForSequenceClassification, path, **label_config(spec))
        if teacher.config.num_labels != spec.num_labels:
            raise UserError(f"the teacher has {teacher.config.num_labels} outputs; {spec.name} needs "
                            f"{spec.num_labels}", path)
        if load_tokenizer(path).get_vocab() != tokenizer.get_vocab():
            raise UserError("this teacher's vocabulary differs from the first teacher's; all must share one", path)
        teacher.eval()
        teachers.append(teacher)
    from utils.intermediate import uniform_layer_map
    student, tokenizer, _ = build_student(args.student_model_name_or_path, args.student_init, teachers[0], tokenizer,
                                          tasks[0][0].num_labels,
                                          lambda n: uniform_layer_map(n, teachers[0].config.num_hidden_layers),
                                          intermediate=False)
    model = MultiTaskStudent(student, [spec for spec, _, _ in tasks])
    pad_id = tokenizer.pad_token_id
    data = []
    for spec, train_ex, dev_ex in tasks:
        train = tokenize(train_ex, tokenizer, args.max_seq_length, spec.is_regression, desc=f"tokenize {spec.name}")
        dev = {s: tokenize(ex, tokenizer, args.max_seq_length, spec.is_regression) for s, ex in dev_ex.items()}
        data.append((train, dev))
    probs = task_probabilities([len(train) for train, _ in data], args.tau)
    per_epoch = [len(train_batches(train.lengths, args.batch_size, args.seed, 0, args.bucket)) for train, _ in data]
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * sum(per_epoch))
    optimizer, scheduler = build_optimizer(model.parameters(), args.learning_rate, total_steps, args.warmup_proportion,
                                           args.weight_decay, args.max_grad_norm)
    os.makedirs(args.output_dir, exist_ok=True)
    write_json(os.path.join(args.output_dir, "args.json"),
               dict(vars(args), task_probabilities=probs, command=command_line("multitask_distill.py", argv)))
    log = ScalarLog(os.path.join(args.output_dir, "runs"))

    def evaluate_all():
        model.eval()
        metrics = {}
        with paddle.no_grad():
            for (spec, _, _), (_, dev) in zip(tasks, data):
                for split, features in dev.items():
                    from utils.features import eval_batches
                    out = np.zeros((len(features), spec.num_labels), dtype=np.float32)
                    for index in eval_batches(features.lengths, args.eval_batch_size):
                        out[index] = model.logits(spec.name, to_tensors(collate(features, index, pad_id))).numpy()
                    prefix = f"eval_{spec.name}_" + ("mm_" if split == "dev_mismatched" else "")
                    metrics.update({prefix + k: v for k, v in compute_metrics(spec, out, features.labels).items()})
        metrics["eval_mean_main"] = float(np.mean([metrics[f"eval_{s.name}_{s.main_metric}"] for s, _, _ in tasks]))
        model.train()
        return metrics

    rng = np.random.default_rng(args.seed)
    cursor = [[0, 0, None] for _ in tasks]  # per task: epoch, position, that epoch's batches
    best, best_metrics, best_step, steps_per_task, sums = None, {}, 0, [0] * len(tasks), {}
    seen, train_seconds, start = 0, 0.0, time.time()
    model.train()
    bar = tqdm(total=total_steps, desc="multi-task", unit="step", dynamic_ncols=True)
    for step in range(1, total_steps + 1):
        t = int(rng.choice(len(tasks), p=probs))
        spec, (train, _), c = tasks[t][0], data[t], cursor[t]
        if c[2] is None or c[1] == len(c[2]):
            if c[2] is not None:
                c[0], c[1] = c[0] + 1, 0
            c[2] = train_batches(train.lengths, args.batch_size, args.seed + t, c[0], args.bucket)
        batch = to_tensors(collate(train, c[2][c[1]], pad_id))
        c[1] += 1
        t0 = time.time()
        with paddle.no_grad():
            logits_T = classifier_logits(teachers[t], batch)
        logits_S = model.logits(spec.name, batch)
        kd = PREDICTION_LOSSES["mse" if spec.is_regression else args.kd_loss](logits_S, logits_T, args.T)
        terms = {f"{spec.name}/pred_loss": kd}
        if args.hard_label_weight:
            terms[f"{spec.name}/hard_loss"] = hard_loss(logits_S, batch["labels"], spec.is_regression)
        loss = kd + args.hard_label_weight * terms.get(f"{spec.name}/hard_loss", 0.0)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.clear_grad()
        train_seconds += time.time() - t0
        seen += len(batch["labels"])
        steps_per_task[t] += 1
        for name, value in dict(terms, loss=loss).items():
            total, n = sums.get(name, (0.0, 0))
            sums[name] = (total + float(value), n + 1)
        bar.update(1)
        if step % args.logging_steps == 0 or step == total_steps:
            for name, (total, n) in sums.items():
                log.add(f"train/{name}", total / n, step)
            log.add("train/lr", scheduler.get_lr(), step)
            log.add("train/examples_per_second", seen / train_seconds, step)
            bar.set_postfix(loss=f"{sums['loss'][0] / sums['loss'][1]:.4f}")
            sums = {}
        if step % args.save_steps == 0 or step == total_steps:
            metrics = evaluate_all()
            for name, value in metrics.items():
                tag = name[len("eval_"):]
                owner = next((spec.name for spec, _, _ in tasks if tag.startswith(spec.name + "_")), None)
                log.add("eval/" + (f"{owner}/{tag[len(owner) + 1:]}" if owner else tag), value, step)
            bar.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
            if best is None or metrics["eval_mean_main"] > best:
                best, best_metrics, best_step = metrics["eval_mean_main"], metrics, step
                for spec, _, _ in tasks:
                    save_pretrained(os.path.join(args.output_dir, "best_model", spec.name), model.for_task(spec),
                                    tokenizer)
    bar.close()
    log.close()
    results = dict(best_metrics, best_step=best_step, train_runtime=time.time() - start,
                   train_examples_per_second=seen / max(train_seconds, 1e-9), train_steps=total_steps,
                   main_metric="eval_mean_main",
                   steps_per_task={spec.name: n for (spec, _, _), n in zip(tasks, steps_per_task)})
    write_json(os.path.join(args.output_dir, "all_results.json"), results)
    print_results(results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
