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
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.finetune import entry_points
from utils.tasks import spans

parse_args, main = entry_points("run_qa.py", __doc__, 5e-5, spans)

if __name__ == "__main__":
    main(sys.argv[1:])
