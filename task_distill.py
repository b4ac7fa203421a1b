"""TinyBERT task distillation in two stages: intermediate layers first, then the prediction layer.

    python task_distill.py --intermediate_distill --task_name SST-2 --glue_dir GLUE \\
        --teacher_path teacher/best_model --student_model_name_or_path tinybert-4l-312d --output_dir out/inter
    python task_distill.py --task_name SST-2 --glue_dir GLUE --teacher_path teacher/best_model \\
        --student_model_name_or_path out/inter/best_inter_model --output_dir out/pred

Stage 1 writes OUTPUT_DIR/best_inter_model (lowest dev intermediate loss); stage 2 writes OUTPUT_DIR/best_model
(best dev score). Both write checkpoint-<stage>/ (last state, resumable), all_results.json, args.json, runs/.
"""
import argparse
import math
import os
import sys
import time

import utils  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from run_glue import add_data_args, add_training_args, label_config, load_task, print_results, validate_args
from utils.errors import UserError, exits_cleanly
from utils.students import PROJECTIONS, STUDENT_INITS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--use_aug", action="store_true", help="train on train_aug.tsv (from data_augmentation.py)")
    m = p.add_argument_group("teacher and student")
    m.add_argument("--teacher_path", required=True, help="the fine-tuned teacher (run_glue.py's best_model)")
    m.add_argument("--student_model_name_or_path", default="tinybert-4l-312d",
                   help="tinybert-4l-312d[-v2|-zh], tinybert-6l-768d[-v2|-zh], a shape like 4l-312d (random/teacher "
                        "init), or a folder such as stage 1's best_inter_model")
    m.add_argument("--student_init", choices=STUDENT_INITS, default="pretrained",
                   help="pretrained: the checkpoint's weights; random: fresh weights of that shape (offline); "
                        "teacher: embeddings and mapped layers copied from the teacher (widths must match)")
    m.add_argument("--projection", choices=PROJECTIONS,
                   help="student->teacher width projection: one matrix per layer (v2 checkpoints' fit_denses) or one "
                        "shared matrix (fit_dense, v1/-zh). Default: what the checkpoint was trained with "
                        "(shared for random init)")
    m.add_argument("--layer_map", help="teacher layer for each student layer, e.g. 3,6,9,12 (default: uniform, "
                                       "student layer m <- teacher layer floor(m*N_T/N_S))")
    m.add_argument("--output_dir", required=True)
    d = p.add_argument_group("losses")
    d.add_argument("--intermediate_distill", action="store_true",
                   help="stage 1: embedding + hidden-state + attention MSE (default: stage 2, prediction layer)")
    d.add_argument("--emb_weight", type=float, default=1.0)
    d.add_argument("--hidden_weight", type=float, default=1.0)
    d.add_argument("--attn_weight", type=float, default=1.0,
                   help="attention MSE on pre-softmax scores over real tokens; if head counts differ, scores are "
                        "averaged over heads on both sides")
    d.add_argument("--T", type=float, default=1.0, help="softmax temperature of the prediction loss (float)")
    d.add_argument("--t2_scaling", action=argparse.BooleanOptionalAction, default=True,
                   help="multiply the soft cross-entropy by T^2 (default on)")
    d.add_argument("--pred_weight", type=float, default=1.0,
                   help="weight of the distillation loss (default 1); 0 with --hard_label_weight 1 trains the "
                        "student on gold labels only, the baseline distillation should beat")
    d.add_argument("--hard_label_weight", type=float, default=0.0, help="weight of the gold-label loss (default 0)")
    t = add_training_args(p, learning_rate=5e-5)
    t.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint-<stage> if present")
    args = p.parse_args(argv)
    validate_args(args)
    if args.T <= 0:
        raise UserError(f"--T must be positive, got {args.T}")
    weights = [args.emb_weight, args.hidden_weight, args.attn_weight] if args.intermediate_distill else [
        args.pred_weight, args.hard_label_weight]
    if min(weights) < 0 or max(weights) == 0:
        raise UserError("loss weights must be >= 0 and at least one of this stage's weights > 0")
    return args


def load_teacher(args, spec):
    from paddlenlp.transformers import AutoModelForSequenceClassification
    from utils.models import load_model, load_tokenizer
    teacher = load_model(AutoModelForSequenceClassification, args.teacher_path, **label_config(spec))
    if teacher.config.num_labels != spec.num_labels:
        raise UserError(f"the teacher has {teacher.config.num_labels} outputs; {spec.name} needs {spec.num_labels}",
                        args.teacher_path)
    teacher.eval()  # dropout off: the targets must not be noisy
    return teacher, load_tokenizer(args.teacher_path)


def make_layer_map(args, teacher):
    from utils.intermediate import parse_layer_map, uniform_layer_map
    n_T = teacher.config.num_hidden_layers
    if args.layer_map:
        return lambda n_S: parse_layer_map(args.layer_map, n_S, n_T)
    return lambda n_S: uniform_layer_map(n_S, n_T)


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    stage = "intermediate" if args.intermediate_distill else "prediction"
    if args.use_aug and (args.data_dir or args.glue_dir):
        from utils.glue import get_task, split_path, task_dir
        folder = task_dir(get_task(args.task_name, vars(args)), args.glue_dir, args.data_dir)
        if not os.path.isfile(split_path(folder, "train_aug")):
            raise UserError("no such file; --use_aug needs data_augmentation.py's output",
                            split_path(folder, "train_aug"))
    spec, train_examples, dev_examples = load_task(args, train_split="train_aug" if args.use_aug else "train")
    from utils.training import check_output_dir
    check_output_dir(args.output_dir)

    import paddle
    import paddle.distributed as dist
    from tqdm import tqdm
    from utils.distill import (DistillOutputs, has_checkpoint, intermediate_terms, load_checkpoint,
                               prediction_terms, save_checkpoint, weighted_total)
    from utils.features import collate, tokenize, train_batches
    from utils.models import quiet_paddlenlp, save_pretrained
    from utils.students import build_student
    from utils.training import (ScalarLog, build_optimizer, command_line, evaluate, set_device, set_seed, to_tensors,
                                write_json)

    quiet_paddlenlp()
    set_device(args.device)
    set_seed(args.seed)
    world, rank = dist.get_world_size(), dist.get_rank()
    if world > 1:
        dist.init_parallel_env()
    teacher, teacher_tokenizer = load_teacher(args, spec)
    layer_map_fn = make_layer_map(args, teacher)
    student, tokenizer, projection = build_student(
        args.student_model_name_or_path, args.student_init, teacher, teacher_tokenizer, spec.num_labels,
        layer_map_fn, args.projection, intermediate=args.intermediate_distill)
    layer_map = layer_map_fn(student.config.num_hidden_layers)
    student.config.update(label_config(spec))
    pad_id = tokenizer.pad_token_id
    train = tokenize(train_examples, tokenizer, args.max_seq_length, spec.is_regression, desc="tokenize train")
    dev = {s: tokenize(ex, tokenizer, args.max_seq_length, spec.is_regression) for s, ex in dev_examples.items()}
    lengths = train.lengths
    steps_per_epoch = len(train_batches(lengths, args.batch_size, args.seed, 0, args.bucket, num_shards=world))
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    optimizer, scheduler = build_optimizer(student, args.learning_rate, total_steps, args.warmup_proportion,
                                           args.weight_decay, args.max_grad_norm)
    weights = {"emb_loss": args.emb_weight, "hidden_loss": args.hidden_weight, "attn_loss": args.attn_weight,
               "pred_loss": args.pred_weight, "hard_loss": args.hard_label_weight}
    want_attention = args.attn_weight != 0
    inter = args.intermediate_distill
    student_out = DistillOutputs(student, layer_map if inter else None, 0, projection, want_attention)
    teacher_out = DistillOutputs(teacher, layer_map if inter else None, 1, None, want_attention)
    forward_S = student_out
    if world > 1:
        forward_S = paddle.DataParallel(student_out, find_unused_parameters=True)

    def losses(batch):
        """Loss terms of one batch; the teacher runs under no_grad (its outputs are targets only)."""
        inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
        out_T = None
        if inter or args.pred_weight != 0:  # a gold-labels-only baseline needs no teacher outputs
            with paddle.no_grad():
                out_T = teacher_out(**inputs)
        out_S = forward_S(**inputs)
        if inter:
            return intermediate_terms(out_S, out_T, batch["attention_mask"])
        return prediction_terms(out_S["logits"], out_T and out_T["logits"], batch["labels"], args.T,
                                args.t2_scaling, spec.is_regression)

    @paddle.no_grad()
    def eval_intermediate():
        from utils.features import eval_batches
        student.eval()
        total, count = 0.0, 0
        for index in eval_batches(dev[spec.dev_splits[0]].lengths, args.eval_batch_size):
            terms = losses(to_tensors(collate(dev[spec.dev_splits[0]], index, pad_id)))
            total, count = total + float(weighted_total(terms, weights)) * len(index), count + len(index)
        student.train()
        return {"eval_inter_loss": total / count}

    ckpt_dir = os.path.join(args.output_dir, f"checkpoint-{stage}")
    best_dir = os.path.join(args.output_dir, "best_inter_model" if inter else "best_model")
    state = {"step": 0, "best": None, "best_step": 0, "best_metrics": {}, "seen": 0, "train_seconds": 0.0}
    if args.resume and has_checkpoint(ckpt_dir):
        state = load_checkpoint(ckpt_dir, student, optimizer, scheduler)
        print(f"resuming from {ckpt_dir} at step {state['step']}")
    if rank == 0:
        os.makedirs(args.output_dir, exist_ok=True)
        write_json(os.path.join(args.output_dir, "args.json"), dict(vars(args), projection=projection,
                                                                      layer_map=layer_map, stage=stage,
                                                                      command=command_line("task_distill.py", argv)))
    log = ScalarLog(os.path.join(args.output_dir, "runs"), enabled=rank == 0)
    sums = {}
    start = time.time()
    student.train()
    bar = tqdm(total=total_steps, initial=state["step"], desc=f"{stage} {spec.name}", unit="step",
               dynamic_ncols=True, disable=rank != 0)
    plan, plan_epoch = None, None
    for step in range(state["step"] + 1, total_steps + 1):
        # step: the batch and the dropout noise are functions of (seed, step), so a resumed run replays exactly
        epoch, position = divmod(step - 1, steps_per_epoch)
        if plan_epoch != epoch:
            plan, plan_epoch = train_batches(lengths, args.batch_size, args.seed, epoch, args.bucket, num_shards=world,
                                             shard=rank), epoch
        paddle.seed(args.seed * 100003 + step)
        batch = to_tensors(collate(train, plan[position], pad_id))
        t0 = time.time()
        terms = losses(batch)
        loss = weighted_total(terms, weights)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.clear_grad()
        state["train_seconds"] += time.time() - t0
        state["seen"] += len(plan[position]) * world
        for name, value in dict(terms, loss=loss).items():
            sums[name] = sums.get(name, 0.0) + float(value)
        sums["_n"] = sums.get("_n", 0) + 1
        bar.update(1)

        # log: every loss term under its own tag
        if step % args.logging_steps == 0 or step == total_steps:
            n = sums.pop("_n")
            for name, value in sums.items():
                log.add(f"train/{name}", value / n, step)
            log.add("train/lr", scheduler.get_lr(), step)
            log.add("train/examples_per_second", state["seen"] / state["train_seconds"], step)
            bar.set_postfix(loss=f"{sums['loss'] / n:.4f}", lr=f"{scheduler.get_lr():.2e}")
            sums = {}

        # eval, keep the best, checkpoint
        if step % args.save_steps == 0 or step == total_steps:
            metrics = eval_intermediate() if inter else evaluate(spec, student, dev, args.eval_batch_size,
                                                                           pad_id)
            key = "eval_inter_loss" if inter else f"eval_{spec.main_metric}"
            for name, value in metrics.items():
                log.add(f"eval/{name[len('eval_'):]}", value, step)
            bar.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
            better = state["best"] is None or (metrics[key] < state["best"] if inter
                                               else metrics[key] > state["best"])
            if better:
                state.update(best=metrics[key], best_step=step, best_metrics=metrics)
            state.update(step=step, scheduler=scheduler.state_dict())
            if rank == 0:
                if better:
                    save_pretrained(best_dir, student, tokenizer)
                save_checkpoint(ckpt_dir, student, tokenizer, optimizer, state)
    bar.close()
    log.close()

    results = dict(state["best_metrics"], best_step=state["best_step"], train_runtime=time.time() - start,
                   train_examples_per_second=state["seen"] / max(state["train_seconds"], 1e-9),
                   train_steps=total_steps, train_examples=len(train), task=spec.name, stage=stage,
                   main_metric="eval_inter_loss" if inter else f"eval_{spec.main_metric}")
    if rank == 0:
        write_json(os.path.join(args.output_dir, "all_results.json"), results)
        print_results(results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
