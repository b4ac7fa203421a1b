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
import functools
import hashlib
import json
import os
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.cli import (add_data_args, add_teacher_engine_arg, add_training_args, add_word_student_args, label_config,
                       load_task, print_results, refuse_flags_beside_config, validate_args)
from utils.errors import FROM_CHECKPOINT, UserError, exits_cleanly
from utils.labels import ENGINES as LABEL_ENGINES
from utils.models import PROJECTION_LAYOUTS, STUDENT_INITS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--use_aug", action="store_true", help="train on train_aug.tsv (from data_augmentation.py)")
    p.add_argument("--transfer_file", action="append", metavar="FILE",
                   help="unlabeled text the teacher labels for distillation (repeatable): one example per line "
                        "(two tab-separated texts for a pair task), or a TSV in the task's format (its labels are "
                        "ignored). The student learns the teacher's outputs on the labelled rows and these, and the "
                        "gold labels of the labelled rows only. Rows equal to a dev row are dropped (no leakage), "
                        "repeats too. With --pred_weight 0 (a gold-only twin) the text only widens a word student's "
                        "vocabulary, as it does for the distilled student")
    m = p.add_argument_group("teacher and student")
    m.add_argument("--teacher_path", required=True, nargs="+",
                   help="the fine-tuned teacher (run_glue.py's best_model); several: their logits are averaged "
                        "(--teacher_weights) and intermediate matches use the first unless a config says otherwise")
    m.add_argument("--teacher_weights", type=float, nargs="+", help="one weight per teacher (default equal)")
    add_teacher_engine_arg(m)
    m.add_argument("--student_model_name_or_path", default="tinybert-4l-312d",
                   help="bilstm, cnn or bow (word-level students with their own vocabulary; see the word students "
                        "group), tinybert-4l-312d[-v2|-zh], tinybert-6l-768d[-v2|-zh], a shape like 4l-312d "
                        "(random/teacher init), a MobileBERT-style shape like mobilebert-6l-384d-128b (layers, "
                        "width between blocks, bottleneck; fresh weights), or a folder such as stage 1's "
                        "best_inter_model or general_distill.py's general_model")
    m.add_argument("--student_init", choices=STUDENT_INITS, default="pretrained",
                   help="pretrained: the checkpoint's weights; random: fresh weights of that shape (offline); "
                        "teacher: embeddings and mapped layers copied from the teacher (widths must match)")
    m.add_argument("--init_from", metavar="PATH",
                   help="with --student_init teacher: the model whose embeddings and mapped layers are copied "
                        "(default the first teacher). A gold-only twin takes them from the teacher's pretrained "
                        "checkpoint, so that it knows nothing of the fine-tuned teacher")
    m.add_argument("--projection", choices=PROJECTION_LAYOUTS,
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
                   help="label every training row once into the label store (--cache_dir) and reuse the logits "
                        "every epoch and in every later run of the same teachers (rows are keyed by their text: a "
                        "stale logit is never used); always on with --transfer_file")
    d.add_argument("--cache_dir", help="the teacher-label store: shards of the teachers' logits keyed by row, "
                                       "shared by every run of the same teachers and tokenizer (default "
                                       "OUTPUT_DIR/teacher_logits); a transfer set is always labelled into it")
    d.add_argument("--label_part", metavar="K/N",
                   help="only label the K-th of N parts of the rows' shards into the label store, then exit (no "
                        "training): N processes or machines label one transfer set together, their shard files "
                        "copied into one --cache_dir afterwards if they wrote to several")
    d.add_argument("--label_engine", choices=LABEL_ENGINES, default="auto",
                   help="what labels rows for the store: paddle_inference (the teacher's exported program), "
                        "onnxruntime, dygraph, or auto (paddle_inference, falling back to dygraph for a model "
                        "that does not export)")
    add_word_student_args(p)
    add_training_args(p, learning_rate=5e-5)
    args = p.parse_args(argv)
    validate_args(args)
    if not args.T > 0:  # also refuses nan
        raise UserError(f"--T must be positive, got {args.T}")
    refuse_flags_beside_config(p, args)
    args.label_part = parse_part(args.label_part)
    if args.init_from and args.student_init != "teacher":
        raise UserError("--init_from names the model a --student_init teacher student copies its layers from; "
                        f"with --student_init {args.student_init} it would be unused")
    weights = [args.emb_weight, args.hidden_weight, args.attn_weight] if args.intermediate_distill else [
        args.pred_weight, args.hard_label_weight]
    if not args.distill_config and (min(weights) < 0 or max(weights) == 0):
        raise UserError("loss weights must be >= 0 and at least one of this stage's weights > 0")
    if args.teacher_weights is not None and (len(args.teacher_weights) != len(args.teacher_path)
                                             or min(args.teacher_weights) < 0 or sum(args.teacher_weights) <= 0):
        raise UserError(f"--teacher_weights: expected {len(args.teacher_path)} weights >= 0 (one per teacher), "
                        "not all 0")
    return args


def parse_part(text):
    """"K/N" -> (K - 1, N) with 1 <= K <= N; None stays None."""
    if text is None:
        return None
    k, _, n = text.partition("/")
    if not (k.isascii() and n.isascii() and k.isdecimal() and n.isdecimal() and 1 <= int(k) <= int(n)):
        raise UserError(f"--label_part: expected K/N with 1 <= K <= N (e.g. 1/2), got '{text}'")
    return int(k) - 1, int(n)


def distill_config(args, spec, student, teachers):
    """The resolved config: from --distill_config, or TinyBERT's stage from the flags."""
    from utils.presets import build_config, load_config_file
    S = dict(student.shape(), projection=student.projection, fit_size=student.fit_size)
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
        return build_config(raw, S, [t.shape() for t in teachers], spec.is_regression)
    except UserError as err:
        if args.distill_config:
            raise UserError(str(err), args.distill_config) from None
        raise


def make_layer_map(args, teacher):
    from utils.intermediate import parse_layer_map, uniform_layer_map
    n_T = teacher.shape()["layers"]
    if args.layer_map:
        return lambda n_S: parse_layer_map(args.layer_map, n_S, n_T)
    return lambda n_S: uniform_layer_map(n_S, n_T)


def build_models(args, spec, train_examples):
    """(teachers, student, resolved config); every refusal (shapes, vocabularies, config) before anything is
    written. train_examples: every text the student reads (a word student's vocabulary is built from them)."""
    from utils.adapters import build_student, load_teachers
    from utils.models import WORD_OPTIONS as OPTIONS
    from utils.training import set_seed
    teachers = load_teachers(args.teacher_path, label_config(spec))
    source = teachers[0]
    if args.init_from:
        from utils.adapters import load_adapter
        source = load_adapter(args.init_from, num_labels=spec.num_labels)
        if source.encoder.signature() != teachers[0].encoder.signature() or (
                source.shape() != teachers[0].shape() and args.intermediate_distill):
            raise UserError("--init_from must tokenise like the first teacher (and, for intermediate distillation, "
                            "have its shape): it is the teacher's pretrained checkpoint", args.init_from)
    set_seed(args.seed)  # the student's fresh weights depend on the seed only, not on how many teachers loaded
    student = build_student(
        args.student_model_name_or_path, source, spec.num_labels, init=args.student_init,
        examples=train_examples, options={k: getattr(args, k) for k in OPTIONS}, vectors=args.glove_embs,
        layer_map_fn=make_layer_map(args, source), projection=args.projection,
        intermediate=args.intermediate_distill)
    from utils.adapters import check_lengths
    check_lengths(args.max_seq_length, list(zip(teachers, args.teacher_path)) + [
        (student, args.student_model_name_or_path)])
    if getattr(student, "vector_coverage", None) is not None:
        print(f"word vectors: {student.vector_coverage:.1%} of the student's vocabulary found in {args.glove_embs}")
    student.set_label_info(label_config(spec))
    return teachers, student, distill_config(args, spec, student, teachers)


def teacher_features(train, teacher, rows, max_seq_length, regression):
    """The teachers' side of the training rows: the batches' own when they carry it, else encoded now."""
    if train.T is not None:
        return train.T
    return teacher.encoder.encode(rows, max_seq_length, regression, desc="encode for the teacher")


def shared_labels(args, teachers, weights, rows, train, encode_T, rank, world):
    """The teachers' logits of every training row from the label store (utils/labels.py), labelled by rank 0;
    the other processes wait for it and read the store."""
    from utils.labels import row_keys, teacher_logits
    keys = row_keys(rows, train.S.groups)

    def label():
        return teacher_logits(args.cache_dir or os.path.join(args.output_dir, "teacher_logits"), args.teacher_path,
                              teachers, weights, args.max_seq_length, keys, encode_T, args.label_engine,
                              args.eval_batch_size, args.label_part or (0, 1))
    if world == 1:
        return label()
    import paddle.distributed as dist
    if rank == 0:
        label()
    dist.barrier()
    return label()


@exits_cleanly(resume=FROM_CHECKPOINT)
def main(argv=None):
    args = parse_args(argv)
    from utils.tasks.spans import is_span_task
    from utils.tasks.tokens import is_token_task
    if is_token_task(args.task_name) and args.use_aug:
        raise UserError("--use_aug works for sequence classification; a token task (conll) takes more sentences "
                        "as --transfer_file")
    if is_span_task(args.task_name) and (args.use_aug or args.cache_teacher_logits):
        raise UserError(f"--{'use_aug' if args.use_aug else 'cache_teacher_logits'} works for sequence and token "
                        "classification; a span task (squad) distils on its training set with the teachers running")
    if args.use_aug and (args.data_dir or args.glue_dir):
        from utils.glue import get_task, split_path, task_dir
        folder = task_dir(get_task(args.task_name, vars(args)), args.glue_dir, args.data_dir)
        if not os.path.isfile(split_path(folder, "train_aug")):
            raise UserError("no such file; --use_aug needs data_augmentation.py's output",
                            split_path(folder, "train_aug"))
    spec, train_examples, dev_examples = load_task(args, train_split="train_aug" if args.use_aug else "train")
    transfer = []
    if args.transfer_file:
        from utils.transfer import load_transfer
        transfer = load_transfer(args.transfer_file, spec, train_examples, dev_examples)
    from utils.files import check_output_dir
    check_output_dir(args.output_dir)

    import paddle
    import paddle.distributed as dist
    from utils import loop
    from utils.adapters import save_adapter
    from utils.batches import Plan, encode_sides, to_tensors
    from utils.labels import batch_logits
    from utils.distill import (DistillOutputs, best_folder, lr_multipliers, match_terms,
                               prediction_terms, requests, split_steps, teacher_outputs, teacher_positions,
                               total_loss)
    from utils.models import quiet_paddlenlp
    from utils.files import write_json
    from utils.training import ScalarLog, build_optimizer, command_line, evaluate, set_device, set_seed

    quiet_paddlenlp()
    set_device(args.device)
    set_seed(args.seed)
    world, rank = dist.get_world_size(), dist.get_rank()
    if world > 1:
        dist.init_parallel_env()
    teachers, student, config = build_models(args, spec, train_examples + transfer)
    phases = config["phases"]
    predicts = [bool(p["kd_weight"] or p["hard_label_weight"]) for p in phases]
    stage = phases[0]["name"] if len(phases) == 1 else "distill"
    need_logits_T = any(p["kd_weight"] for p in phases)  # a gold-labels-only baseline needs no teacher outputs
    # transfer rows teach through the teacher (its logits, or its layers in an intermediate phase); a gold-only twin
    # reads them for a word student's vocabulary only
    taught = need_logits_T or bool(config["intermediate_matches"])
    rows = train_examples + transfer if taught else train_examples
    teacher_weights = args.teacher_weights or [1.0] * len(teachers)
    stored = need_logits_T and bool(args.cache_teacher_logits or transfer)  # logits from the label store
    teachers_run = any(requests(config, "T", i) for i in range(len(teachers))) or (need_logits_T and not stored)
    train = encode_sides(student, teachers[0], rows, args.max_seq_length, spec.is_regression, "encode train",
                         teachers_run)
    dev = {s: encode_sides(student, teachers[0], ex, args.max_seq_length, spec.is_regression, "encode dev",
                           teacher_runs=bool(config["intermediate_matches"]))  # for the intermediate dev loss
           for s, ex in dev_examples.items()}
    # the teachers' side of the rows, encoded only when some row still needs labelling
    encode_T = functools.partial(teacher_features, train, teachers[0], rows, args.max_seq_length, spec.is_regression)
    if args.label_part:  # labelling only: nothing is trained or written but the store's shards
        if not stored:
            raise UserError("--label_part labels a transfer set or --cache_teacher_logits rows for prediction-layer "
                            "distillation; this run needs no teacher labels")
        shared_labels(args, teachers, teacher_weights, rows, train, encode_T, 0, 1)
        return {"labelled_part": "/".join(map(str, (args.label_part[0] + 1, args.label_part[1]))), "rows": len(rows)}
    plan = Plan(train.lengths, args.batch_size, args.seed, args.bucket, num_shards=world, shard=rank)
    total_steps = plan.total_steps(args.num_train_epochs, args.max_steps)
    phase_steps = split_steps(total_steps, [p["share"] for p in phases])
    student_out = DistillOutputs(student, requests(config, "S"), logits=any(predicts))
    teacher_outs = [teacher_outputs(t, requests(config, "T", i), need_logits_T, args.teacher_engine, args.device)
                    for i, t in enumerate(teachers)] if teachers_run else [None] * len(teachers)
    optimizer, scheduler = build_optimizer(student_out, args.learning_rate, total_steps, args.warmup_proportion,
                                           args.weight_decay, args.max_grad_norm, phase_steps)
    forward_S = paddle.DataParallel(student_out, find_unused_parameters=True) if world > 1 else student_out
    cache = None  # the teachers' logits of every training example, when cached (filled in below)

    def losses(batch, index=None, progress=1.0, phase=phases[-1]):
        """(weighted total, {tag: value}, {temperature, kd_weight, hard_weight}) of one batch in one phase.
        Teachers run under no_grad: their outputs are targets only; cached logits replace their forward pass when
        nothing else (no intermediate match of this phase) needs it."""
        active, kd = phase["matches"], phase["kd_weight"]
        from_cache = cache is not None and index is not None
        positions = teacher_positions(config, active)
        outs_T = [None] * len(teachers)
        with paddle.no_grad():
            for i, t_out in enumerate(teacher_outs):
                if positions.get(i) or (kd and not from_cache):
                    outs_T[i] = t_out(batch["T"], positions.get(i, []), logits=bool(kd) and not from_cache)
        out_S = forward_S(batch["S"], active, bool(kd or phase["hard_label_weight"]))
        terms = match_terms(config, out_S["features"], [o and o["features"] for o in outs_T], out_S["mask"],
                            active) if active else []
        info = {}
        if kd or phase["hard_label_weight"]:
            logits_T = None
            if kd:
                logits_T = paddle.to_tensor(batch_logits(cache, index)) if from_cache else sum(
                    w * o["logits"] for w, o in zip(teacher_weights, outs_T)) / sum(teacher_weights)
            more, info = prediction_terms(dict(config, kd_weight=kd, hard_label_weight=phase["hard_label_weight"]),
                                          out_S["logits"], logits_T, batch["labels"], spec.is_regression, progress,
                                          getattr(spec, "view", None))
            terms += more
        total, logged = total_loss(terms)
        return total, logged, info

    def eval_intermediate(phase):
        from utils.batches import eval_batches
        first = dev[spec.dev_splits[0]]
        only_matches = dict(phase, kd_weight=0.0, hard_label_weight=0.0)
        total = 0.0
        with paddle.no_grad():
            for index in eval_batches(first.lengths, args.eval_batch_size):
                loss, _, _ = losses(to_tensors(first.batch(index)), phase=only_matches)
                total += float(loss) * len(index)
        return {"eval_inter_loss": total / len(first)}

    def eval_metric():
        return evaluate(spec, student, {k: v.S for k, v in dev.items()}, args.eval_batch_size)

    def loop_phase(i, phase):
        folder = best_folder(phases, i)
        folder = folder and os.path.join(args.output_dir, folder)
        select = phase["select"]
        later = i < len(phases) - 1 and select != "last"  # the next phase starts from this one's best
        return loop.Phase(
            name=phase["name"], steps=phase_steps[i],
            loss=lambda batch, index, progress: losses(batch, index, progress, phase),
            evaluate={"metric": eval_metric, "inter_loss": lambda: eval_intermediate(phase),
                      "last": eval_metric if predicts[i] else lambda: eval_intermediate(phase)}[select],
            key={"inter_loss": "eval_inter_loss", "metric": f"eval_{spec.main_metric}", "last": None}[select],
            lower_is_better=select == "inter_loss", save_best=(lambda: save_adapter(student, folder)) if folder
            else (lambda: None), multipliers=lr_multipliers(phase, student_out, student),
            restore_best=(lambda: student.restore(folder)) if later else None)

    def batch_at(step):
        index = plan.index(step)
        return to_tensors(train.batch(index)), index, len(index) * world

    single = {"intermediate": "checkpoint-intermediate", "prediction": "checkpoint-prediction"}
    job = loop.Job(
        name=f"{stage} {spec.name}", output_dir=args.output_dir,
        checkpoint_dir=os.path.join(args.output_dir, single.get(stage, "checkpoint")), trainable=student_out,
        optimizer=optimizer, scheduler=scheduler, batch_at=batch_at,
        phases=[loop_phase(i, p) for i, p in enumerate(phases)], logging_steps=args.logging_steps,
        save_steps=args.save_steps, seed=args.seed, rank=rank, world=world,
        fingerprint=loop.fingerprint(args, train_examples + transfer, world,  # transfer text: a word student's vocabulary
                                     teachers=loop.digest_files(args.teacher_path),
                                     config=hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()))
    state = loop.start(job, args.resume)  # refuses a mismatched checkpoint before anything is written
    if stored:
        cache = shared_labels(args, teachers, teacher_weights, rows, train, encode_T, rank, world)
    if rank == 0:
        os.makedirs(args.output_dir, exist_ok=True)
        layers = student.shape()["layers"]
        layer_map = make_layer_map(args, teachers[0])(layers) if layers else None
        write_json(os.path.join(args.output_dir, "args.json"), dict(
            vars(args), student=student.describe(), projection=student.projection, layer_map=layer_map, stage=stage,
            command=command_line("task_distill.py", argv)))
        write_json(os.path.join(args.output_dir, "distill_config.json"), config)
    job.log = ScalarLog(os.path.join(args.output_dir, "runs"), enabled=rank == 0, fresh=state["step"] == 0)
    results = loop.run(job, state)
    job.log.close()
    results.update(train_examples=len(train_examples), transfer_examples=len(rows) - len(train_examples),
                   train_rows=len(train), task=spec.name, stage=stage, student=student.describe(),
                   student_parameters=student.num_parameters())
    if rank == 0:
        write_json(os.path.join(args.output_dir, "all_results.json"), results)
        print_results(results)
    if world > 1:
        # every rank leaves together: a rank exiting while its peer still holds their connections open can abort
        # the peer at exit (SIGABRT, seen once in CI with two CPU processes)
        dist.barrier()
        dist.destroy_process_group()
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
