"""Fine-tune a BERT-style teacher on a GLUE task or a custom TSV.

    python run_glue.py --task_name SST-2 --glue_dir GLUE --model_name_or_path bert-base-uncased --output_dir out/sst2

Writes OUTPUT_DIR/best_model (best dev score; loadable with from_pretrained), OUTPUT_DIR/checkpoint (the last
state: --resume continues from it), OUTPUT_DIR/all_results.json, OUTPUT_DIR/args.json and VisualDL curves in
OUTPUT_DIR/runs.
"""
import argparse
import os
import sys

import utils  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from utils.cli import add_data_args, add_training_args, label_config, load_task, print_results, validate_args
from utils.errors import FROM_CHECKPOINT, UserError, exits_cleanly


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    m = p.add_argument_group("model and output")
    m.add_argument("--model_name_or_path", required=True,
                   help="PaddleNLP model name (downloaded when online), PaddleNLP folder, or Hugging Face BERT "
                        "folder (config.json + model.safetensors or pytorch_model.bin; converted in a copy)")
    m.add_argument("--output_dir", required=True, help="where best_model, all_results.json and runs/ go")
    add_training_args(p, learning_rate=2e-5)
    args = p.parse_args(argv)
    validate_args(args)
    return args


@exits_cleanly(resume=FROM_CHECKPOINT)
def main(argv=None):
    args = parse_args(argv)
    spec, train_examples, dev_examples = load_task(args)
    from utils.files import check_output_dir
    check_output_dir(args.output_dir)

    from utils import loop
    from utils.adapters import WORDPIECE_ARCHS, adapter_class, arch_of, check_max_length, save_adapter
    from utils.batches import Plan, Sides, to_tensors
    from utils.losses import hard_loss
    from utils.models import quiet_paddlenlp
    from utils.files import write_json
    from utils.training import ScalarLog, build_optimizer, command_line, evaluate, set_device, set_seed

    quiet_paddlenlp()
    set_device(args.device)
    set_seed(args.seed)
    arch = arch_of(args.model_name_or_path)  # bert (BERT, TinyBERT, a converted MiniLM) or mobilebert
    if arch not in WORDPIECE_ARCHS:
        raise UserError(f"a {arch} model; run_glue.py fine-tunes BERT-family models (task_distill.py trains word "
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

    def loss(batch, index, progress):
        value = hard_loss(model(batch["S"])["logits"], batch["labels"], spec.is_regression)
        return value, {}, {}

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
    write_json(os.path.join(args.output_dir, "args.json"), dict(vars(args), command=command_line("run_glue.py", argv)))
    job.log = ScalarLog(os.path.join(args.output_dir, "runs"), fresh=state["step"] == 0)
    results = loop.run(job, state)
    job.log.close()
    results.update(train_examples=len(train), task=spec.name, model=model.describe())
    write_json(os.path.join(args.output_dir, "all_results.json"), results)
    print_results(results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
