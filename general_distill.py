"""Task-agnostic (general) distillation: a teacher's hidden states and attention distilled into a student on
unlabeled text, so a task starts from a pretrained student without a model hub. The teacher needs no masked-LM
head: only its layers are read.

    python general_distill.py --teacher_path TEACHER --input_file corpus.txt [more.txt train.tsv ...] \\
        --student_model_name_or_path 4l-312d --output_dir out/general
    python general_distill.py ... --student_model_name_or_path mobilebert-6l-384d-128b --progressive

Default: TinyBERT's general distillation (embeddings, every layer's hidden states and attention scores, MSE;
uniform layer map). --progressive: MobileBERT's progressive transfer, one phase per layer (feature maps and
attention distributions, lower layers at a small learning rate). --distill_config FILE: any intermediate matches
and phases (prediction-layer terms do not apply: there are no labels).

Input: plain text files (one sentence or paragraph a line) and GLUE/custom TSVs (their text columns), streamed in
blocks of lines; texts longer than --max_seq_length become several windows; every 100th text is held out. Writes
OUTPUT_DIR/general_model (a student folder for task_distill.py --student_init pretrained or run_glue.py),
checkpoint/ (--resume continues exactly), all_results.json (held-out intermediate loss), args.json,
distill_config.json and runs/ (VisualDL).
"""
import argparse
import functools
import hashlib
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.cli import add_teacher_engine_arg, add_training_args, validate_args
from utils.errors import FROM_CHECKPOINT, UserError, exits_cleanly


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--input_file", required=True, nargs="+",
                   help="text files (one text a line) and/or .tsv files with a header (their text columns)")
    d.add_argument("--max_seq_length", type=int, default=128, help="window length in word pieces (default 128)")
    d.add_argument("--block_lines", type=int, default=2048,
                   help="lines read and tokenised at a time; batches are length-bucketed inside a block")
    m = p.add_argument_group("models")
    m.add_argument("--teacher_path", required=True, help="a BERT-family model folder (fine-tuned or not)")
    add_teacher_engine_arg(m)
    m.add_argument("--student_model_name_or_path", default="4l-312d",
                   help="a shape like 4l-312d (TinyBERT-style) or mobilebert-6l-384d-128b, or a student folder to "
                        "continue from")
    m.add_argument("--student_init", choices=("random", "teacher", "pretrained"), default="random",
                   help="random (default), teacher (copy mapped teacher layers; widths must match), or pretrained "
                        "(a student folder)")
    m.add_argument("--progressive", action="store_true", help="MobileBERT's progressive transfer, layer by layer")
    m.add_argument("--distill_config", help="a JSON config of intermediate matches and phases (utils/presets.py)")
    m.add_argument("--output_dir", required=True)
    add_training_args(p, learning_rate=1e-4)
    p.set_defaults(num_train_epochs=1.0, save_steps=1000, logging_steps=100)
    args = p.parse_args(argv)
    validate_args(args)
    if args.block_lines < 1:
        raise UserError(f"--block_lines must be positive, got {args.block_lines}")
    if args.max_seq_length < 3:
        raise UserError(f"--max_seq_length must be at least 3 ([CLS], a word piece, [SEP]), got {args.max_seq_length}")
    return args


def raw_config(args):
    """The config before resolution: TinyBERT's general distillation, MobileBERT's progressive transfer, or
    --distill_config's file; never prediction-layer terms (there are no labels)."""
    from utils.presets import load_config_file
    raw = {"intermediate_matches": [{"preset": "tinybert"}]}
    if args.progressive:
        raw = {"phases": {"preset": "progressive", "prediction": False}}
    if args.distill_config:
        raw = load_config_file(args.distill_config)
    return dict(raw, kd_weight=0.0, hard_label_weight=0.0)  # no labels: the layers are all there is


def check_unlabelled(config, source):
    """General distillation has no labels: a phase with prediction-layer terms or selected by a metric is refused."""
    if any(p["kd_weight"] or p["hard_label_weight"] or p["select"] == "metric" for p in config["phases"]):
        raise UserError("phases: general distillation has no labels; a phase takes intermediate matches only "
                        "(no kd_weight, hard_label_weight or select metric)", source)


def build_models(args):
    """(teacher, student): a BERT-family teacher (its layers are read) and the student mapped onto it."""
    from utils.adapters import build_student, check_lengths, load_adapter
    from utils.intermediate import uniform_layer_map
    teacher = load_adapter(args.teacher_path)
    teacher.eval()
    if teacher.shape()["layers"] is None or not hasattr(teacher.encoder, "tokenizer"):
        raise UserError("general distillation reads a BERT-family teacher's layers; this model has none",
                        args.teacher_path)
    student = build_student(args.student_model_name_or_path, teacher, teacher.num_labels, init=args.student_init,
                            layer_map_fn=functools.partial(uniform_layer_map, num_layers_T=teacher.shape()["layers"]),
                            intermediate=True)
    check_lengths(args.max_seq_length, [(teacher, args.teacher_path), (student, args.student_model_name_or_path)])
    return teacher, student


def read_corpus(args, teacher):
    from utils.corpus import Corpus, CorpusPlan
    corpus = Corpus(args.input_file, teacher.encoder.tokenizer, args.max_seq_length, args.block_lines)
    if len(corpus.held_out) == 0:
        raise UserError(f"{corpus.texts} texts leave none to hold out (every 100th is); give more text",
                        args.input_file[0])
    return corpus, CorpusPlan(corpus, args.batch_size, args.seed)


def batch_at(corpus, plan, step):
    """Step's windows as both sides read them (one tokenizer): {"S", "T"} without labels."""
    from utils.batches import collate, to_tensors
    block, index = plan.at(step)
    inputs = {k: v for k, v in collate(corpus.block_features(block), index).items() if k != "labels"}
    return to_tensors({"S": inputs, "T": inputs}), index, len(index)


def digest_corpus(paths):
    """What a resumed run must read again: every input file's bytes."""
    from utils.loop import hash_file
    h = hashlib.sha256()
    for path in paths:
        h.update(path.encode("utf-8") + b"\0")
        hash_file(path, h)
    return h.hexdigest()[:16]


@exits_cleanly(resume=FROM_CHECKPOINT)
def main(argv=None):
    args = parse_args(argv)
    from utils import loop, run
    from utils.batches import Sides
    from utils.distill import DistillOutputs, requests, split_steps, teacher_outputs
    from utils.distiller import Distiller
    from utils.presets import resolve_config
    settings = run.Settings.of(args)
    run.begin(settings)
    teacher, student = build_models(args)
    config = resolve_config(raw_config(args), student, [teacher], source=args.distill_config)
    check_unlabelled(config, args.distill_config)
    corpus, plan = read_corpus(args, teacher)
    phase_steps = split_steps(plan.total_steps(args.num_train_epochs, args.max_steps),
                              [p["share"] for p in config["phases"]])
    distiller = Distiller(config, student, DistillOutputs(student, requests(config, "S"), logits=False),
                          [teacher_outputs(teacher, requests(config, "T"), False, args.teacher_engine, args.device)])
    phases = distiller.loop_phases(phase_steps, args.output_dir, Sides(corpus.held_out), args.eval_batch_size,
                                   final_folder="general_model")
    job = run.job("general distillation", settings, distiller.student_out, phases,
                  functools.partial(batch_at, corpus, plan), loop.fingerprint(
                      vars(args), [], corpus=digest_corpus(args.input_file),
                      teachers=loop.digest_files([args.teacher_path]), config=run.digest(config)))
    state = run.start(job, settings)  # refuses a mismatched checkpoint before anything is written
    print(f"corpus: {corpus.texts} texts in {len(corpus.blocks)} blocks, {plan.steps_per_epoch} batches an epoch, "
          f"{len(corpus.held_out)} held-out windows; student {student.describe()}")
    results = run.train(job, state, run.Record("general_distill.py", argv, vars(args), dict(
        student=student.describe()), {"distill_config.json": config}))
    results.update(corpus_texts=corpus.texts, held_out_windows=len(corpus.held_out), student=student.describe(),
                   student_parameters=student.num_parameters())
    return run.finish(job, results)


if __name__ == "__main__":
    main(sys.argv[1:])
