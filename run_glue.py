"""Fine-tune a BERT-style teacher on a GLUE task or a custom TSV.

    python run_glue.py --task_name SST-2 --glue_dir GLUE --model_name_or_path bert-base-uncased --output_dir out/sst2

Writes OUTPUT_DIR/best_model (best dev score; loadable with from_pretrained), OUTPUT_DIR/checkpoint (the last
state: --resume continues from it), OUTPUT_DIR/all_results.json, OUTPUT_DIR/args.json and VisualDL curves in
OUTPUT_DIR/runs.
"""
import argparse
import sys

import utils  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from utils.cli import add_data_args, add_training_args, validate_args
from utils.errors import FROM_CHECKPOINT, exits_cleanly


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
    from utils.finetune import fine_tune
    return fine_tune(parse_args(argv), "run_glue.py", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
