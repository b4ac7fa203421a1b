"""TinyBERT task distillation in two stages: intermediate layers first, then the prediction layer.

    python task_distill.py --intermediate_distill --task_name SST-2 --glue_dir GLUE \\
        --teacher_path teacher/best_model --student_model_name_or_path tinybert-4l-312d --output_dir out/inter
    python task_distill.py --task_name SST-2 --glue_dir GLUE --teacher_path teacher/best_model \\
        --student_model_name_or_path out/inter/best_inter_model --output_dir out/pred

Stage 1 writes OUTPUT_DIR/best_inter_model (lowest dev intermediate loss); stage 2 writes OUTPUT_DIR/best_model
(best dev score). Both write checkpoint-<stage>/ (last state, resumable), all_results.json, args.json,
distill_config.json (the resolved losses, matches and schedules), runs/. Beyond TinyBERT's two stages,
--distill_config FILE.json combines any losses, matches, schedules and presets (see utils/presets.py), and
--teacher_path takes several teachers.
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
    m.add_argument("--teacher_path", required=True, nargs="+",
                   help="the fine-tuned teacher (run_glue.py's best_model); several: their logits are averaged "
                        "(--teacher_weights) and intermediate matches use the first unless a config says otherwise")
    m.add_argument("--teacher_weights", type=float, nargs="+", help="one weight per teacher (default equal)")
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
    d.add_argument("--distill_config", help="a JSON config of losses, intermediate matches, presets (tinybert, pkd, "
                                            "distilbert, minilm), temperature and weight schedules; replaces the "
                                            "loss flags above (with --intermediate_distill only its matches count)")
    d.add_argument("--cache_teacher_logits", action="store_true",
                   help="compute the teachers' logits once per training example and reuse them every epoch (a "
                        "cache keyed by teachers and data: a stale one is never used)")
    d.add_argument("--cache_dir", help="where the logit cache lives (default OUTPUT_DIR/teacher_logits)")
    t = add_training_args(p, learning_rate=5e-5)
    t.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint-<stage> if present")
    args = p.parse_args(argv)
    validate_args(args)
    if args.T <= 0:
        raise UserError(f"--T must be positive, got {args.T}")
    weights = [args.emb_weight, args.hidden_weight, args.attn_weight] if args.intermediate_distill else [
        args.pred_weight, args.hard_label_weight]
    if not args.distill_config and (min(weights) < 0 or max(weights) == 0):
        raise UserError("loss weights must be >= 0 and at least one of this stage's weights > 0")
    if args.teacher_weights is not None and (len(args.teacher_weights) != len(args.teacher_path)
                                             or min(args.teacher_weights) < 0 or sum(args.teacher_weights) <= 0):
        raise UserError(f"--teacher_weights: expected {len(args.teacher_path)} weights >= 0 (one per teacher), "
                        "not all 0")
    return args


def load_teachers(args, spec):
    """Every teacher in eval mode (dropout off: targets must not be noisy), with the first one's tokenizer."""
    from paddlenlp.transformers import AutoModelForSequenceClassification
    from utils.models import load_model, load_tokenizer
    teachers, tokenizer = [], None
    for path in args.teacher_path:
        teacher = load_model(AutoModelForSequenceClassification, path, **label_config(spec))
        if teacher.config.num_labels != spec.num_labels:
            raise UserError(f"the teacher has {teacher.config.num_labels} outputs; {spec.name} needs "
                            f"{spec.num_labels}", path)
        vocab = load_tokenizer(path).get_vocab()
        if tokenizer is None:
            tokenizer = load_tokenizer(path)
        elif vocab != tokenizer.get_vocab():
            raise UserError("this teacher's vocabulary differs from the first teacher's; all must share one "
                            "tokenizer", path)
        teacher.eval()
        teachers.append(teacher)
    return teachers, tokenizer


def distill_config(args, spec, student, projection, teachers):
    """The resolved config: from --distill_config, or TinyBERT's stage from the flags."""
    from utils.presets import build_config, load_config_file

    def info(model):
        c = model.config
        return {"layers": c.num_hidden_layers, "hidden": c.hidden_size, "heads": c.num_attention_heads}

    S = dict(info(student), projection=projection, fit_size=getattr(student.config, "fit_size", None))
    if args.distill_config:
        raw = load_config_file(args.distill_config)
        if args.intermediate_distill:
            raw = dict(raw, kd_weight=0.0, hard_label_weight=0.0)
    elif args.intermediate_distill:
        layer_map = [list(p) for p in make_layer_map(args, teachers[0])(S["layers"])[1:]]
        raw = {"kd_weight": 0.0, "hard_label_weight": 0.0, "intermediate_matches": [
            {"preset": "tinybert", "layer_map": layer_map, "emb_weight": args.emb_weight,
             "hidden_weight": args.hidden_weight, "attn_weight": args.attn_weight}]}
    else:
        raw = {"temperature": args.T, "t2_scaling": args.t2_scaling, "kd_weight": args.pred_weight,
               "kd_loss": "mse" if spec.is_regression else "soft_ce", "hard_label_weight": args.hard_label_weight}
    try:
        return build_config(raw, S, [info(t) for t in teachers], spec.is_regression)
    except UserError as err:
        if args.distill_config:
            raise UserError(str(err), args.distill_config) from None
        raise


def make_layer_map(args, teacher):
    from utils.intermediate import parse_layer_map, uniform_layer_map
    n_T = teacher.config.num_hidden_layers
    if args.layer_map:
        return lambda n_S: parse_layer_map(args.layer_map, n_S, n_T)
    return lambda n_S: uniform_layer_map(n_S, n_T)


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
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
    from utils.distill import (DistillOutputs, cached_teacher_logits, has_checkpoint, load_checkpoint, match_terms,
                               prediction_terms, requests, save_checkpoint, total_loss)
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
    teachers, teacher_tokenizer = load_teachers(args, spec)
    layer_map_fn = make_layer_map(args, teachers[0])
    wants_matches = args.intermediate_distill or bool(args.distill_config)
    student, tokenizer, projection = build_student(
        args.student_model_name_or_path, args.student_init, teachers[0], teacher_tokenizer, spec.num_labels,
        layer_map_fn, args.projection, intermediate=wants_matches)
    config = distill_config(args, spec, student, projection, teachers)
    inter = not (config["kd_weight"] or config["hard_label_weight"])  # stage 1: no prediction-layer loss
    stage = "intermediate" if inter else "prediction"
    layer_map = layer_map_fn(student.config.num_hidden_layers)
    student.config.update(label_config(spec))
    pad_id = tokenizer.pad_token_id
    train = tokenize(train_examples, tokenizer, args.max_seq_length, spec.is_regression, desc="tokenize train")
    dev = {s: tokenize(ex, tokenizer, args.max_seq_length, spec.is_regression) for s, ex in dev_examples.items()}
    lengths = train.lengths
    steps_per_epoch = len(train_batches(lengths, args.batch_size, args.seed, 0, args.bucket, num_shards=world))
    total_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    student_out = DistillOutputs(student, requests(config, "S"), logits=not inter, projection_kind=projection)
    need_logits_T = bool(config["kd_weight"])  # a gold-labels-only baseline needs no teacher outputs
    teacher_outs = [DistillOutputs(t, requests(config, "T", i), logits=need_logits_T)
                    for i, t in enumerate(teachers)]
    teacher_weights = args.teacher_weights or [1.0] * len(teachers)
    optimizer, scheduler = build_optimizer(student_out, args.learning_rate, total_steps, args.warmup_proportion,
                                           args.weight_decay, args.max_grad_norm)
    forward_S = student_out
    if world > 1:
        forward_S = paddle.DataParallel(student_out, find_unused_parameters=True)
    cache = None
    if args.cache_teacher_logits and need_logits_T:
        cache = cached_teacher_logits(teacher_outs, teacher_weights, args.teacher_path, train, args.eval_batch_size,
                                      pad_id, args.cache_dir or os.path.join(args.output_dir, "teacher_logits"))

    def losses(batch, index=None, progress=1.0):
        """(weighted total, {tag: value}, {temperature, kd_weight, hard_weight}) of one batch. Teachers run under
        no_grad: their outputs are targets only; cached logits replace their forward pass when nothing else
        (no intermediate match) needs it."""
        inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
        from_cache = cache is not None and index is not None
        outs_T = [None] * len(teachers)
        with paddle.no_grad():
            for i, t_out in enumerate(teacher_outs):
                if t_out.requests or (need_logits_T and not from_cache):
                    outs_T[i] = t_out(**inputs)
        out_S = forward_S(**inputs)
        terms = match_terms(config, out_S.get("features", []), [o and o.get("features") for o in outs_T],
                            batch["attention_mask"]) if config["intermediate_matches"] else []
        info = {}
        if not inter:
            logits_T = None
            if from_cache:
                logits_T = paddle.to_tensor(cache[index])
            elif need_logits_T:
                logits_T = sum(w * o["logits"] for w, o in zip(teacher_weights, outs_T)) / sum(teacher_weights)
            more, info = prediction_terms(config, out_S["logits"], logits_T, batch["labels"], spec.is_regression,
                                          progress)
            terms += more
        total, logged = total_loss(terms)
        return total, logged, info

    @paddle.no_grad()
    def eval_intermediate():
        from utils.features import eval_batches
        student.eval()
        total, count = 0.0, 0
        for index in eval_batches(dev[spec.dev_splits[0]].lengths, args.eval_batch_size):
            loss, _, _ = losses(to_tensors(collate(dev[spec.dev_splits[0]], index, pad_id)))
            total, count = total + float(loss) * len(index), count + len(index)
        student.train()
        return {"eval_inter_loss": total / count}

    ckpt_dir = os.path.join(args.output_dir, f"checkpoint-{stage}")
    best_dir = os.path.join(args.output_dir, "best_inter_model" if inter else "best_model")
    state = {"step": 0, "best": None, "best_step": 0, "best_metrics": {}, "seen": 0, "train_seconds": 0.0}
    if args.resume and has_checkpoint(ckpt_dir):
        state = load_checkpoint(ckpt_dir, student_out, optimizer, scheduler)
        print(f"resuming from {ckpt_dir} at step {state['step']}")
    if rank == 0:
        os.makedirs(args.output_dir, exist_ok=True)
        write_json(os.path.join(args.output_dir, "args.json"), dict(vars(args), projection=projection,
                                                                      layer_map=layer_map, stage=stage,
                                                                      command=command_line("task_distill.py", argv)))
        write_json(os.path.join(args.output_dir, "distill_config.json"), config)
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
        loss, terms, info = losses(batch, plan[position], step / total_steps)
        if loss is not None:  # every weight can be 0 at a schedule's end point
            loss.backward()
            optimizer.step()
        scheduler.step()
        optimizer.clear_grad()
        state["train_seconds"] += time.time() - t0
        state["seen"] += len(plan[position]) * world
        for name, value in dict(terms, loss=0.0 if loss is None else loss, **info).items():
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
                save_checkpoint(ckpt_dir, student_out, tokenizer, optimizer, state)
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
