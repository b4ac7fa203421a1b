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
import os
import sys
from dataclasses import dataclass

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.cli import (add_data_args, add_teacher_engine_arg, add_training_args, add_word_student_args, label_config,
                       refuse_flags_beside_config, task_options, task_values, validate_args)
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
                        "student on gold labels only, the baseline distillation should beat (its --teacher_path then "
                        "only lends a tokenizer: the teacher's pretrained checkpoint serves)")
    d.add_argument("--hard_label_weight", type=float, default=0.0, help="weight of the gold-label loss (default 0)")
    d.add_argument("--select", choices=("metric", "last"), default="metric",
                   help="which model the final phase keeps in best_model/: metric (default), the evaluation with the "
                        "best dev metric; last, the final step's (dev is then measured, never used to choose: how the "
                        "benches compare a student with its twin, since choosing on dev favours the noisier run)")
    d.add_argument("--freeze_embeddings", action="store_true",
                   help="keep the student's embeddings (word, position, type; a word student's word vectors) as "
                        "initialised in every phase: no gradient and no update (a 3-layer student: 26%% less time "
                        "a step, its 30k-row word matrix being most of its weights)")
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
                        "that does not export); onnxruntime_int8 labels faster but changes some labels: its "
                        "agreement with FP32 on the dev set is printed first, and its labels go to a store of "
                        "their own")
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


def gold_only(args):
    """A gold-only twin: no loss reads a teacher output, so its --teacher_path only lends a tokenizer."""
    return not (args.pred_weight or args.intermediate_distill or args.distill_config)


def raw_config(args, regression, student, teacher):
    """The config before resolution: --distill_config's file, or TinyBERT's stage from the loss flags."""
    from utils.presets import load_config_file
    if args.distill_config:
        raw = load_config_file(args.distill_config)
        return dict(raw, kd_weight=0.0, hard_label_weight=0.0) if args.intermediate_distill else raw
    if args.intermediate_distill:
        layer_map = [list(p) for p in make_layer_map(args, teacher)(student.shape()["layers"])[1:]]
        return {"kd_weight": 0.0, "hard_label_weight": 0.0, "intermediate_matches": [
            {"preset": "tinybert", "layer_map": layer_map, "emb_weight": args.emb_weight,
             "hidden_weight": args.hidden_weight, "attn_weight": args.attn_weight}]}
    return {"temperature": args.T, "t2_scaling": args.t2_scaling, "kd_weight": args.pred_weight,
            "kd_loss": "mse" if regression else "soft_ce", "hard_label_weight": args.hard_label_weight}


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
    teachers = load_teachers(args.teacher_path, label_config(spec), outputs_read=not gold_only(args))
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
    from utils.presets import resolve_config
    config = resolve_config(raw_config(args, spec.is_regression, student, teachers[0]), student, teachers,
                            spec.is_regression, args.distill_config)
    if args.select == "last":
        config["phases"][-1]["select"] = "last"
    if args.freeze_embeddings:
        if not any(student.part_of(name) == "embeddings" for name, _ in student.named_parameters()):
            raise UserError(f"--freeze_embeddings: the {student.arch} student has no embeddings to keep (a bow "
                            "student's hashed table is the whole model)")
        from utils.adapters.word_base import WordAdapter
        if not args.glove_embs if isinstance(student, WordAdapter) else args.student_init == "random":
            raise UserError("--freeze_embeddings would keep random embeddings: give the student its embeddings "
                            "(--glove_embs for a word student; --student_init pretrained or teacher)")
        for phase in config["phases"]:
            phase["lr"] = dict(phase["lr"], embeddings=0.0)
    return teachers, student, config


def teacher_features(train, teacher, rows, max_seq_length, regression):
    """The teachers' side of the training rows: the batches' own when they carry it, else encoded now."""
    if train.T is not None:
        return train.T
    return teacher.encoder.encode(rows, max_seq_length, regression, desc="encode for the teacher")


def shared_labels(args, teachers, data, dev_rows, rank=0, world=1):
    """The teachers' logits of every training row from the label store (utils/labels.py), labelled by rank 0;
    the other processes wait for it and read the store. dev_rows: what an inexact --label_engine is checked on."""
    from utils.labels import row_keys, teacher_logits
    encode_T = functools.partial(teacher_features, data.train, teachers[0], data.rows, args.max_seq_length,
                                 data.regression)  # encoded only when some row still needs labelling
    encode_dev = functools.partial(teachers[0].encoder.encode, dev_rows, args.max_seq_length, data.regression,
                                   desc="encode dev for the label engine")
    label = functools.partial(
        teacher_logits, args.cache_dir or os.path.join(args.output_dir, "teacher_logits"), args.teacher_path,
        teachers, args.teacher_weights or [1.0] * len(teachers), args.max_seq_length,
        row_keys(data.rows, data.train.S.groups), encode_T, args.label_engine, args.eval_batch_size,
        args.label_part or (0, 1), encode_dev)
    if world == 1:
        return label()
    import paddle.distributed as dist
    if rank == 0:
        label()
    dist.barrier()
    return label()


def check_task_flags(args):
    """The flags this task type refuses (--use_aug, --cache_teacher_logits), and --use_aug's file, checked before
    anything is read."""
    from utils.tasks import task_type
    for flag, why in task_type(args.task_name).REFUSES.items():
        if flag in ("use_aug", "cache_teacher_logits") and getattr(args, flag):
            raise UserError(why)
    if args.use_aug and (args.data_dir or args.glue_dir):
        from utils.tasks.sequence import get_task, split_path, task_dir
        folder = task_dir(get_task(args.task_name, dict(task_options(args), data_dir=args.data_dir)), args.glue_dir,
                          args.data_dir)
        if not os.path.isfile(split_path(folder, "train_aug")):
            raise UserError("no such file; --use_aug needs data_augmentation.py's output",
                            split_path(folder, "train_aug"))


@dataclass
class Data:
    """The training rows (labelled, then transfer rows when the teachers teach through them), both sides encoded,
    the dev splits, and how the teachers serve the rows."""
    labelled: list
    rows: list
    train: object  # Sides
    dev: dict  # split -> Sides
    regression: bool
    stored: bool  # the teachers' logits come from the label store
    teachers_run: bool  # some teacher runs forward during training


def encode_data(args, spec, student, teachers, config, labelled, transfer, dev_examples):
    from utils.batches import encode_sides
    from utils.distill import requests
    phases = config["phases"]
    need_logits_T = any(p["kd_weight"] for p in phases)  # a gold-labels-only baseline needs no teacher outputs
    # transfer rows teach through the teacher (its logits, or its layers in an intermediate phase); a gold-only twin
    # reads them for a word student's vocabulary only
    rows = labelled + transfer if need_logits_T or config["intermediate_matches"] else labelled
    stored = need_logits_T and bool(args.cache_teacher_logits or transfer)
    teachers_run = any(requests(config, "T", i) for i in range(len(teachers))) or (need_logits_T and not stored)
    train = encode_sides(student, teachers[0], rows, args.max_seq_length, spec.is_regression, "encode train",
                         teachers_run)
    dev = {s: encode_sides(student, teachers[0], ex, args.max_seq_length, spec.is_regression, "encode dev",
                           teacher_runs=bool(config["intermediate_matches"]))  # for the intermediate dev loss
           for s, ex in dev_examples.items()}
    return Data(labelled, rows, train, dev, spec.is_regression, stored, teachers_run)


def build_distiller(args, spec, student, teachers, config, data, world):
    """The Distiller of this run: the student's outputs (DataParallel over several processes) and the teachers'
    (None when they never run)."""
    import paddle

    from utils.distill import DistillOutputs, requests, teacher_outputs
    from utils.distiller import Distiller
    predicts = any(p["kd_weight"] or p["hard_label_weight"] for p in config["phases"])
    need_logits_T = any(p["kd_weight"] for p in config["phases"])
    student_out = DistillOutputs(student, requests(config, "S"), logits=predicts)
    teacher_outs = [teacher_outputs(t, requests(config, "T", i), need_logits_T, args.teacher_engine, args.device)
                    for i, t in enumerate(teachers)] if data.teachers_run else [None] * len(teachers)
    forward_S = paddle.DataParallel(student_out, find_unused_parameters=True) if world > 1 else student_out
    return Distiller(config, student, student_out, teacher_outs, args.teacher_weights, spec, forward_S)


def evaluate_metric(spec, student, dev, batch_size):
    from utils.training import evaluate
    return evaluate(spec, student, {k: v.S for k, v in dev.items()}, batch_size)


def batch_at(plan, train, world, step):
    from utils.batches import to_tensors
    index = plan.index(step)
    return to_tensors(train.batch(index)), index, len(index) * world


def stage_of(phases):
    """The run's stage: its one phase's name, or "distill" for several; names its checkpoint folder."""
    stage = phases[0]["name"] if len(phases) == 1 else "distill"
    return stage, {"intermediate": "checkpoint-intermediate", "prediction": "checkpoint-prediction"}.get(
        stage, "checkpoint")


def every_dev_row(args, dev_examples):
    """The dev rows a transfer row must not equal: all of them, not only the --max_eval_samples evaluated."""
    if args.max_eval_samples is None:
        return dev_examples
    from utils.tasks import load_task
    return load_task(**dict(task_values(args), max_eval_samples=None), with_train=False)[2]


@exits_cleanly(resume=FROM_CHECKPOINT)
def main(argv=None):
    args = parse_args(argv)
    check_task_flags(args)
    from utils.tasks import load_task
    from utils.transfer import load_transfer
    spec, labelled, dev_examples = load_task(**task_values(args, "train_aug" if args.use_aug else "train"))
    transfer = load_transfer(args.transfer_file, spec, labelled, every_dev_row(args, dev_examples)) \
        if args.transfer_file else []
    from utils import loop, run
    from utils.batches import Plan
    from utils.distill import split_steps
    settings = run.Settings.of(args)
    world, rank = run.begin(settings, parallel=True)
    teachers, student, config = build_models(args, spec, labelled + transfer)
    data = encode_data(args, spec, student, teachers, config, labelled, transfer, dev_examples)
    if args.label_part:  # labelling only: nothing is trained or written but the store's shards
        return label_part(args, teachers, data, dev_examples[spec.dev_splits[0]])
    plan = Plan(data.train.lengths, args.batch_size, args.seed, args.bucket, num_shards=world, shard=rank)
    phase_steps = split_steps(plan.total_steps(args.num_train_epochs, args.max_steps),
                              [p["share"] for p in config["phases"]])
    distiller = build_distiller(args, spec, student, teachers, config, data, world)
    phases = distiller.loop_phases(phase_steps, args.output_dir, data.dev[spec.dev_splits[0]], args.eval_batch_size,
                                   functools.partial(evaluate_metric, spec, student, data.dev, args.eval_batch_size))
    stage, checkpoint = stage_of(config["phases"])
    job = run.job(f"{stage} {spec.name}", settings, distiller.student_out, phases,
                  functools.partial(batch_at, plan, data.train, world), loop.fingerprint(
                      vars(args), labelled + transfer, world,  # transfer text: a word student's vocabulary
                      teachers=loop.digest_files(args.teacher_path), config=run.digest(config),
                      **label_precision(args.label_engine)),
                  checkpoint, world, rank)
    state = run.start(job, settings)  # refuses a mismatched checkpoint before anything is written
    if data.stored:
        distiller.cache = shared_labels(args, teachers, data, dev_examples[spec.dev_splits[0]], rank, world)
    layer_map = student_layer_map(args, teachers[0], student)
    results = run.train(job, state, run.Record("task_distill.py", argv, vars(args), dict(
        student=student.describe(), projection=student.projection, layer_map=layer_map, stage=stage),
        {"distill_config.json": config}))
    results.update(train_examples=len(labelled), transfer_examples=len(data.rows) - len(labelled),
                   train_rows=len(data.train), task=spec.name, stage=stage, student=student.describe(),
                   student_parameters=student.num_parameters())
    return run.finish(job, results)


def label_precision(engine):
    """What a checkpoint adds to its fingerprint about the label engine: nothing for FP32 labels (every exact
    engine computes the same ones), the engine for inexact labels, so that a resumed run keeps them."""
    from utils.labels import exact
    return {} if exact(engine) else {"label_engine": engine}


def label_part(args, teachers, data, dev_rows):
    """--label_part: this process's part of the rows labelled into the store, nothing else written."""
    if not data.stored:
        raise UserError("--label_part labels a transfer set or --cache_teacher_logits rows for prediction-layer "
                        "distillation; this run needs no teacher labels")
    shared_labels(args, teachers, data, dev_rows)
    return {"labelled_part": "/".join(map(str, (args.label_part[0] + 1, args.label_part[1]))), "rows": len(data.rows)}


def student_layer_map(args, teacher, student):
    """The layer map args.json records: the teacher layer of each student layer (None for a word student)."""
    layers = student.shape()["layers"]
    return make_layer_map(args, teacher)(layers) if layers else None


if __name__ == "__main__":
    main(sys.argv[1:])
