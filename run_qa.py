"""Fine-tune a BERT-style teacher for extractive question answering (SQuAD v1.1 format).

    python run_qa.py --data_dir DATA --model_name_or_path bert-base-uncased --output_dir out/qa/teacher

DATA holds train.json and dev.json in SQuAD v1.1 format. Each context is cut into windows of --max_seq_length
pieces (question included) that overlap by --doc_stride; the model predicts a start and an end logit per piece;
answers are decoded from the --n_best_size best starts and ends (at most --max_answer_length pieces) and mapped
back to the original context text. Metrics: exact match and F1 by the SQuAD v1.1 definition (as fractions).

Writes OUTPUT_DIR/best_model, OUTPUT_DIR/checkpoint (the last state: --resume continues from it),
OUTPUT_DIR/all_results.json (eval_exact_match, eval_f1), OUTPUT_DIR/args.json and VisualDL curves in
OUTPUT_DIR/runs. task_distill.py --task_name squad distils the result.
"""
import argparse
import sys

import utils  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from utils.cli import add_data_args, add_training_args, validate_args
from utils.errors import FROM_CHECKPOINT, UserError, exits_cleanly


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p, default_task="squad")
    m = p.add_argument_group("model and output")
    m.add_argument("--model_name_or_path", required=True,
                   help="PaddleNLP model name (downloaded when online), PaddleNLP folder, or Hugging Face BERT "
                        "folder (config.json + model.safetensors or pytorch_model.bin; converted in a copy)")
    m.add_argument("--output_dir", required=True, help="where best_model, all_results.json and runs/ go")
    add_training_args(p, learning_rate=5e-5)
    args = p.parse_args(argv)
    validate_args(args)
    from utils.tasks.spans import TASK_NAMES
    if args.task_name.lower() not in TASK_NAMES:
        raise UserError(f"run_qa.py trains span extraction (--task_name squad); for {args.task_name} use "
                        "run_glue.py or run_ner.py")
    return args


@exits_cleanly(resume=FROM_CHECKPOINT)
def main(argv=None):
    from utils.finetune import fine_tune
    return fine_tune(parse_args(argv), "run_qa.py", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
