#!/usr/bin/env bash
# The built-in default: a synthetic SST-2-format task and a tiny random BERT, made locally (no download).
# Fine-tunes the teacher and prints its dev results; a few minutes on 2 CPU cores.
#   OUT=demo PY=.venv/bin/python bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-demo}

"$PY" -m utils.demo --out "$OUT"
"$PY" run_glue.py --task_name SST-2 --glue_dir "$OUT/glue" --model_name_or_path "$OUT/models/teacher-init" \
  --output_dir "$OUT/teacher" --max_seq_length 64 --batch_size 32 --learning_rate 1e-3 --num_train_epochs 6 \
  --save_steps 50 --logging_steps 20
