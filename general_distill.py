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
import hashlib
import json
import os
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.cli import add_teacher_engine_arg, add_training_args, print_results, validate_args
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


def resolve_config(args, student, teacher):
    from utils.presets import build_config, load_config_file
    raw = {"intermediate_matches": [{"preset": "tinybert"}]}
    if args.progressive:
        raw = {"phases": {"preset": "progressive", "prediction": False}}
    if args.distill_config:
        raw = load_config_file(args.distill_config)
    raw = dict(raw, kd_weight=0.0, hard_label_weight=0.0)  # no labels: the layers are all there is
    S = dict(student.shape(), projection=student.projection, fit_size=student.fit_size)
    try:
        config = build_config(raw, S, [teacher.shape()])
        if any(p["kd_weight"] or p["hard_label_weight"] or p["select"] == "metric" for p in config["phases"]):
            raise UserError("phases: general distillation has no labels; a phase takes intermediate matches only "
                            "(no kd_weight, hard_label_weight or select metric)")
        return config
    except UserError as err:
        raise UserError(str(err), args.distill_config) if args.distill_config else err from None


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
    from utils.files import check_output_dir
    check_output_dir(args.output_dir)
    import paddle
    from utils import loop
    from utils.adapters import build_student, check_lengths, load_adapter, save_adapter
    from utils.batches import collate, eval_batches, to_tensors
    from utils.corpus import Corpus, CorpusPlan
    from utils.distill import (DistillOutputs, lr_multipliers, match_terms, requests, split_steps, teacher_outputs,
                               teacher_positions, total_loss)
    from utils.files import write_json
    from utils.intermediate import uniform_layer_map
    from utils.models import quiet_paddlenlp
    from utils.training import ScalarLog, build_optimizer, command_line, set_device, set_seed

    quiet_paddlenlp()
    set_device(args.device)
    set_seed(args.seed)
    teacher = load_adapter(args.teacher_path)
    teacher.eval()
    if teacher.shape()["layers"] is None or not hasattr(teacher.encoder, "tokenizer"):
        raise UserError("general distillation reads a BERT-family teacher's layers; this model has none",
                        args.teacher_path)
    student = build_student(args.student_model_name_or_path, teacher, teacher.num_labels, init=args.student_init,
                            layer_map_fn=lambda n_S: uniform_layer_map(n_S, teacher.shape()["layers"]),
                            intermediate=True)
    check_lengths(args.max_seq_length, [(teacher, args.teacher_path), (student, args.student_model_name_or_path)])
    config = resolve_config(args, student, teacher)
    corpus = Corpus(args.input_file, teacher.encoder.tokenizer, args.max_seq_length, args.block_lines)
    if len(corpus.held_out) == 0:
        raise UserError(f"{corpus.texts} texts leave none to hold out (every 100th is); give more text",
                        args.input_file[0])
    plan = CorpusPlan(corpus, args.batch_size, args.seed)
    total_steps = plan.total_steps(args.num_train_epochs, args.max_steps)
    phases = config["phases"]
    phase_steps = split_steps(total_steps, [p["share"] for p in phases])
    student_out = DistillOutputs(student, requests(config, "S"), logits=False)
    teacher_out = teacher_outputs(teacher, requests(config, "T"), False, args.teacher_engine, args.device)
    optimizer, scheduler = build_optimizer(student_out, args.learning_rate, total_steps, args.warmup_proportion,
                                           args.weight_decay, args.max_grad_norm, phase_steps)

    def losses(batch, phase):
        with paddle.no_grad():
            out_T = teacher_out(batch, teacher_positions(config, phase["matches"]).get(0, []))
        out_S = student_out(batch, phase["matches"])
        return total_loss(match_terms(config, out_S["features"], [out_T["features"]], out_S["mask"],
                                      phase["matches"]))

    def held_out_loss(phase):
        total = 0.0
        with paddle.no_grad():
            for index in eval_batches(corpus.held_out.lengths, args.eval_batch_size):
                batch = to_tensors({k: v for k, v in collate(corpus.held_out, index).items() if k != "labels"})
                total += float(losses(batch, phase)[0]) * len(index)
        return {"eval_inter_loss": total / len(corpus.held_out)}

    def batch_at(step):
        block, index = plan.at(step)
        arrays = collate(corpus.block_features(block), index)
        return to_tensors({k: v for k, v in arrays.items() if k != "labels"}), index, len(index)

    target = os.path.join(args.output_dir, "general_model")

    def loop_phase(i, phase):
        final = i == len(phases) - 1
        folder = target if final else os.path.join(args.output_dir, f"best_{phase['name']}_model")
        keeps = final or phase["select"] != "last"
        return loop.Phase(
            name=phase["name"], steps=phase_steps[i],
            loss=lambda batch, index, progress: (*losses(batch, phase), {}),
            evaluate=lambda: held_out_loss(phase), key=None if phase["select"] == "last" else "eval_inter_loss",
            lower_is_better=True, save_best=(lambda: save_adapter(student, folder)) if keeps else (lambda: None),
            multipliers=lr_multipliers(phase, student_out, student),
            restore_best=(lambda: student.restore(folder)) if keeps and not final else None)

    job = loop.Job(
        name="general distillation", output_dir=args.output_dir,
        checkpoint_dir=os.path.join(args.output_dir, "checkpoint"), trainable=student_out, optimizer=optimizer,
        scheduler=scheduler, batch_at=batch_at, phases=[loop_phase(i, p) for i, p in enumerate(phases)],
        logging_steps=args.logging_steps, save_steps=args.save_steps, seed=args.seed,
        fingerprint=loop.fingerprint(args, [], corpus=digest_corpus(args.input_file),
                                     teachers=loop.digest_files([args.teacher_path]),
                                     config=hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()))
    state = loop.start(job, args.resume)  # refuses a mismatched checkpoint before anything is written
    os.makedirs(args.output_dir, exist_ok=True)
    write_json(os.path.join(args.output_dir, "args.json"), dict(
        vars(args), student=student.describe(), command=command_line("general_distill.py", argv)))
    write_json(os.path.join(args.output_dir, "distill_config.json"), config)
    job.log = ScalarLog(os.path.join(args.output_dir, "runs"), fresh=state["step"] == 0)
    print(f"corpus: {corpus.texts} texts in {len(corpus.blocks)} blocks, {plan.steps_per_epoch} batches an epoch, "
          f"{len(corpus.held_out)} held-out windows; student {student.describe()}")
    results = loop.run(job, state)
    job.log.close()
    results.update(corpus_texts=corpus.texts, held_out_windows=len(corpus.held_out), student=student.describe(),
                   student_parameters=student.num_parameters())
    write_json(os.path.join(args.output_dir, "all_results.json"), results)
    print_results(results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
