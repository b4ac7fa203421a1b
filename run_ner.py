"""Fine-tune a BERT-style teacher for token classification (NER) on CoNLL-style files.

    python run_ner.py --data_dir DATA --model_name_or_path bert-base-cased --output_dir out/ner/teacher

DATA holds train.txt and dev.txt: a token and its tag per line (--tag_column picks the tag in multi-column
CoNLL-2003 files), a blank line between sentences, -DOCSTART- lines skipped. Labels sit on each word's first
word piece; sentences longer than --max_seq_length are cut into windows so every word is tagged. The metric is
entity-level precision/recall/F1 (conlleval semantics, seqeval); the best dev F1 selects the model.

Writes OUTPUT_DIR/best_model, OUTPUT_DIR/checkpoint (the last state: --resume continues from it),
OUTPUT_DIR/all_results.json (eval_f1, eval_precision, eval_recall), OUTPUT_DIR/args.json and VisualDL curves in
OUTPUT_DIR/runs. task_distill.py --task_name conll distils the result.
"""
import sys

from utils.process import configure  # first: settings paddle reads when it loads
configure()
from utils.finetune import entry_points
from utils.tasks import tokens

parse_args, main = entry_points("run_ner.py", __doc__, 5e-5, tokens)

if __name__ == "__main__":
    main(sys.argv[1:])
