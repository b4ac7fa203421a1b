"""Fine-tune a BERT-style teacher on a GLUE task or a custom TSV.

    python run_glue.py --task_name SST-2 --glue_dir GLUE --model_name_or_path bert-base-uncased --output_dir out/sst2

Writes OUTPUT_DIR/best_model (best dev score; loadable with from_pretrained), OUTPUT_DIR/checkpoint (the last
state: --resume continues from it), OUTPUT_DIR/all_results.json, OUTPUT_DIR/args.json and VisualDL curves in
OUTPUT_DIR/runs.
"""
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.finetune import entry_points

parse_args, main = entry_points("run_glue.py", __doc__, 2e-5)

if __name__ == "__main__":
    main(sys.argv[1:])
