"""Fine-tuning a teacher, whatever the task type: the body of run_glue.py and run_ner.py. Parse, load the task,
build the model with the task's head, run the one loop, write the results."""
import os

from utils.errors import UserError


def parse_args(script, description, argv, learning_rate, default_task=None, task_names=None, kind="",
               other_scripts=""):
    """The teacher scripts' flags (data, model and output, training), parsed and checked. task_names: the
    --task_name values this script trains, a `kind` of task (others are refused, naming other_scripts)."""
    import argparse

    from utils.cli import add_data_args, add_training_args, validate_args
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p, default_task=default_task)
    m = p.add_argument_group("model and output")
    m.add_argument("--model_name_or_path", required=True,
                   help="PaddleNLP model name (downloaded when online), PaddleNLP folder, or Hugging Face BERT "
                        "folder (config.json + model.safetensors or pytorch_model.bin; converted in a copy)")
    m.add_argument("--output_dir", required=True, help="where best_model, all_results.json and runs/ go")
    add_training_args(p, learning_rate=learning_rate)
    args = p.parse_args(argv)
    validate_args(args)
    if task_names and args.task_name.lower() not in task_names:
        raise UserError(f"{script} trains {kind} (--task_name {default_task}); for {args.task_name} use "
                        f"{other_scripts}")
    return args


def fine_tune(args, script, argv=None):
    from utils.cli import label_config, load_task, print_results
    from utils.files import check_output_dir
    spec, train_examples, dev_examples = load_task(args)
    check_output_dir(args.output_dir)

    from utils import loop
    from utils.adapters import WORDPIECE_ARCHS, adapter_class, arch_of, check_max_length, save_adapter
    from utils.batches import Plan, Sides, to_tensors
    from utils.files import write_json
    from utils.losses import hard_loss
    from utils.models import quiet_paddlenlp
    from utils.training import ScalarLog, build_optimizer, command_line, evaluate, set_device, set_seed

    quiet_paddlenlp()
    set_device(args.device)
    set_seed(args.seed)
    arch = arch_of(args.model_name_or_path)  # bert (BERT, TinyBERT, a converted MiniLM) or mobilebert
    if arch not in WORDPIECE_ARCHS:
        raise UserError(f"a {arch} model; {script} fine-tunes BERT-family models (task_distill.py trains word "
                        "students)", args.model_name_or_path)
    model = adapter_class(arch).load(args.model_name_or_path, **label_config(spec))
    check_max_length(args.max_seq_length, model.max_length, args.model_name_or_path)
    encode = model.encoder.encode
    train = Sides(encode(train_examples, args.max_seq_length, spec.is_regression, desc="tokenize train"))
    dev = {s: encode(ex, args.max_seq_length, spec.is_regression) for s, ex in dev_examples.items()}
    plan = Plan(train.lengths, args.batch_size, args.seed, args.bucket)
    total_steps = plan.total_steps(args.num_train_epochs, args.max_steps)
    optimizer, scheduler = build_optimizer(model, args.learning_rate, total_steps, args.warmup_proportion,
                                           args.weight_decay, args.max_grad_norm)

    def batch_at(step):
        index = plan.index(step)
        return to_tensors(train.batch(index)), index, len(index)

    view = getattr(spec, "view", None)  # token and span tasks: logits at the positions that count

    def loss(batch, index, progress):
        logits, labels = model(batch["S"])["logits"], batch["labels"]
        if view:
            logits, labels = view(logits, labels)
        return hard_loss(logits, labels, spec.is_regression), {}, {}

    job = loop.Job(
        name=f"fine-tune {spec.name}", output_dir=args.output_dir,
        checkpoint_dir=os.path.join(args.output_dir, "checkpoint"), trainable=model, optimizer=optimizer,
        scheduler=scheduler, batch_at=batch_at, phases=[loop.Phase(
            name="fine-tune", steps=total_steps, loss=loss, key=f"eval_{spec.main_metric}",
            evaluate=lambda: evaluate(spec, model, dev, args.eval_batch_size),
            save_best=lambda: save_adapter(model, os.path.join(args.output_dir, "best_model")))],
        logging_steps=args.logging_steps, save_steps=args.save_steps, seed=args.seed,
        fingerprint=loop.fingerprint(args, train_examples))
    state = loop.start(job, args.resume)  # refuses a mismatched checkpoint before anything is written
    os.makedirs(args.output_dir, exist_ok=True)
    write_json(os.path.join(args.output_dir, "args.json"), dict(vars(args), command=command_line(script, argv)))
    job.log = ScalarLog(os.path.join(args.output_dir, "runs"), fresh=state["step"] == 0)
    results = loop.run(job, state)
    job.log.close()
    results.update(train_examples=len(train_examples), train_rows=len(train), task=spec.name,
                   model=model.describe())
    write_json(os.path.join(args.output_dir, "all_results.json"), results)
    print_results(results)
    return results
