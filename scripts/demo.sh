#!/usr/bin/env bash
# The built-in default: a synthetic SST-2-format task and tiny random BERTs, made locally (no download).
# Fine-tunes a 4-layer teacher, distils it into a 2-layer student (intermediate, then prediction layer) and
# prints the dev results; a few minutes on 2 CPU cores.   OUT=demo PY=.venv/bin/python bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-demo}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
export PY
[ -f "$OUT/glue/SST-2/dev.tsv" ] || "$PY" -m utils.demo --out "$OUT"
# Models trained from scratch need a far larger learning rate than BERT fine-tuning's 2e-5.
GLUE_DIR="$OUT/glue" TEACHER="$OUT/models/teacher-init" STUDENT=2l-32d STUDENT_INIT=random \
  TEACHER_ARGS="--learning_rate 1e-3 --num_train_epochs 4 --save_steps 100 --logging_steps 20" \
  INTER_ARGS="--learning_rate 2e-3 --num_train_epochs 4 --save_steps 100 --logging_steps 20" \
  PRED_ARGS="--learning_rate 2e-3 --num_train_epochs 4 --save_steps 100 --logging_steps 20" \
  TASK=SST-2 SEQ_LEN=64 INTER_EPOCHS=4 bash scripts/run_task.sh
