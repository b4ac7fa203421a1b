"""Fine-tuning a teacher, whatever the task type: the body of run_glue.py, run_ner.py and run_qa.py. Parse, load
the task, build the model with the task's head, run the one loop, write the results."""
import functools
import os
from dataclasses import dataclass

from utils.errors import FROM_CHECKPOINT, UserError, exits_cleanly
from utils.tasks import task_type

FROZEN_EMBEDDINGS = {"lr": {"embeddings": 0.0}}  # --freeze_embeddings as a phase's lr spec: no gradient, no update


@dataclass(frozen=True)
class Script:
    """A fine-tuning script (run_glue.py, run_ner.py, run_qa.py): its name, help and default learning rate; a task
    type's own script names the type (its tasks only: another is refused, naming that task's script)."""
    name: str
    description: str
    learning_rate: float
    task_type: object = None

    def parse_args(self, argv=None):
        """The flags (data, model and output, training), parsed and checked."""
        import argparse

        from utils.cli import add_data_args, add_training_args, validate_args
        default_task = self.task_type.NAMES[0] if self.task_type else None
        p = argparse.ArgumentParser(description=self.description,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        add_data_args(p, default_task=default_task)
        m = p.add_argument_group("model and output")
        m.add_argument("--model_name_or_path", required=True,
                       help="PaddleNLP model name (downloaded when online), PaddleNLP folder, or Hugging Face BERT "
                            "folder (config.json + model.safetensors or pytorch_model.bin; converted in a copy)")
        m.add_argument("--output_dir", required=True, help="where best_model, all_results.json and runs/ go")
        m.add_argument("--freeze_embeddings", action="store_true",
                       help="keep the pretrained embeddings (word, position, type) as they are: no gradient and no "
                            "update for the 30k-row word matrix, half a MiniLM's weights (less time a step; the "
                            "demo's MiniLM teacher lost 1.2 points with it: docs/BENCHMARKS.md)")
        add_training_args(p, learning_rate=self.learning_rate)
        args = p.parse_args(argv)
        validate_args(args)
        if self.task_type and task_type(args.task_name) is not self.task_type:
            raise UserError(f"{self.name} trains {self.task_type.KIND} (--task_name {default_task}); for {args.task_name} use "
                            f"{task_type(args.task_name).SCRIPT}")
        return args

    def main(self, argv=None):
        return fine_tune(self.parse_args(argv), self.name, argv)


def entry_points(name, description, learning_rate, task_type=None):
    """(parse_args, main) of a fine-tuning script; main turns bad input into one error line."""
    script = Script(name, description, learning_rate, task_type)
    return script.parse_args, exits_cleanly(resume=FROM_CHECKPOINT)(script.main)


def build_model(model_name_or_path, spec, max_seq_length, script):
    """The teacher to fine-tune: a BERT-family model with the task's head."""
    from utils.adapters import WORDPIECE_ARCHS, adapter_class, arch_of, check_max_length
    from utils.cli import label_config
    arch = arch_of(model_name_or_path)  # bert (BERT, TinyBERT, a converted MiniLM) or mobilebert
    if arch not in WORDPIECE_ARCHS:
        raise UserError(f"a {arch} model; {script} fine-tunes BERT-family models (task_distill.py trains word "
                        "students)", model_name_or_path)
    model = adapter_class(arch).load(model_name_or_path, **label_config(spec))
    check_max_length(max_seq_length, model.max_length, model_name_or_path)
    return model


def loss(model, spec, batch, index, progress):
    """The gold-label loss at the positions the task type counts."""
    from utils.losses import hard_loss
    logits, labels = spec.view(model(batch["S"])["logits"], batch["labels"])
    return hard_loss(logits, labels, spec.is_regression), {}, {}


def batch_at(plan, train, step):
    from utils.batches import to_tensors
    index = plan.index(step)
    return to_tensors(train.batch(index)), index, len(index)


def fine_tune(args, script, argv=None):
    """Parse -> load the task -> build the model -> the one loop -> results."""
    from utils import loop, run
    from utils.adapters import save_adapter
    from utils.batches import Plan, Sides
    from utils.cli import task_values
    from utils.distill import lr_multipliers
    from utils.tasks import load_task
    from utils.training import evaluate
    spec, train_examples, dev_examples = load_task(**task_values(args))
    settings = run.Settings.of(args)
    run.begin(settings)
    model = build_model(args.model_name_or_path, spec, args.max_seq_length, script)
    encode = model.encoder.encode
    train = Sides(encode(train_examples, args.max_seq_length, spec.is_regression, desc="tokenize train"))
    dev = {s: encode(ex, args.max_seq_length, spec.is_regression) for s, ex in dev_examples.items()}
    plan = Plan(train.lengths, args.batch_size, args.seed, args.bucket)
    phase = loop.Phase(
        name="fine-tune", steps=plan.total_steps(args.num_train_epochs, args.max_steps),
        loss=functools.partial(loss, model, spec), key=f"eval_{spec.main_metric}",
        evaluate=functools.partial(evaluate, spec, model, dev, args.eval_batch_size),
        save_best=functools.partial(save_adapter, model, os.path.join(args.output_dir, "best_model")),
        multipliers=lr_multipliers(FROZEN_EMBEDDINGS, model, model, prefix="") if args.freeze_embeddings else {})
    job = run.job(f"fine-tune {spec.name}", settings, model, [phase], functools.partial(batch_at, plan, train),
                  loop.fingerprint(vars(args), train_examples))
    results = run.train(job, run.start(job, settings), run.Record(script, argv, vars(args)))
    results.update(train_examples=len(train_examples), train_rows=len(train), task=spec.name,
                   model=model.describe())
    return run.finish(job, results)
