"""Fine-tune a BERT-style teacher on a GLUE task or a custom TSV.

    python run_glue.py --task_name SST-2 --glue_dir GLUE --model_name_or_path bert-base-uncased --output_dir out/sst2

Writes OUTPUT_DIR/best_model (best dev score; loadable with from_pretrained), OUTPUT_DIR/checkpoint (the last
state: --resume continues from it), OUTPUT_DIR/all_results.json, OUTPUT_DIR/args.json and VisualDL curves in
OUTPUT_DIR/runs.
"""
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.errors import FROM_CHECKPOINT, exits_cleanly


def parse_args(argv=None):
    from utils.finetune import parse_args as fine_tune_args
    return fine_tune_args("run_glue.py", __doc__, argv, 2e-5)


@exits_cleanly(resume=FROM_CHECKPOINT)
def main(argv=None):
    from utils.finetune import fine_tune
    return fine_tune(parse_args(argv), "run_glue.py", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
