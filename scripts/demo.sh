#!/usr/bin/env bash
# The built-in default, offline, one command after `bash setup.sh`:
#   bash scripts/demo.sh            real: the pip MiniLM (6 layers, 384 wide) fine-tuned on 2,000 SST-2 sentences,
#                                   augmentation with the pip GloVe vectors, a 3-layer student initialised from
#                                   the teacher's layers and distilled in two stages, its gold-label twin, export
#                                   and OUT/report.md (OUT=demo/sst2; about 10 minutes on 2 CPU cores)
#   bash scripts/demo.sh --quick    the plumbing check: tiny random BERTs on a synthetic task (OUT=demo/quick)
# The SST-2 sample is drawn at run time from GLUE_DIR (default ../shared/data/glue; GLUE_DIR=download: PaddleNLP's
# download route) into OUT/glue: GLUE's files carry their own licences and are not shipped with this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --quick ]; then
  OUT=${OUT:-demo/quick} exec bash scripts/pipeline.sh demo
fi
if [ -n "${1:-}" ]; then echo "error: unknown option '$1'; expected --quick or nothing" >&2; exit 2; fi
PY=${PY:-.venv/bin/python}
export OUT=${OUT:-demo/sst2}
GLUE_DIR=${GLUE_DIR:-../shared/data/glue}
if [ "$GLUE_DIR" != download ] && [ ! -f "$GLUE_DIR/SST-2/train.tsv" ]; then
  echo "error: $GLUE_DIR/SST-2/train.tsv: no such file; the demo samples real SST-2 sentences from a GLUE folder:" \
       "set GLUE_DIR (GLUE_DIR=download when online), or run 'bash scripts/demo.sh --quick'" >&2
  exit 2
fi
source scripts/pip_paths.sh
MINILM=$(minilm_path)
GLOVE=$(glove_path)
[ -f "$OUT/glue/SST-2/dev.tsv" ] || "$PY" -m utils.demo --sample_sst2 "$GLUE_DIR" --out "$OUT" --n_train "${N_TRAIN:-2000}"

# 2,000 sentences in batches of 32: 63 steps an epoch. The teacher-initialised student needs only a short stage 1
# (its layers start as the teacher's 2nd, 4th and 6th); stage 2 learns from the teacher on 4 augmented copies of
# the set, and the gold-label twin gets the same steps and learning rate. Budgets fit ~10 minutes on 2 cores.
export PY GLUE_DIR="$OUT/glue" TEACHER="$MINILM" STUDENT=${STUDENT:-3l-384d} STUDENT_INIT=${STUDENT_INIT:-teacher}
export USE_AUG=${USE_AUG:-1} AUG_MODEL=none GLOVE AUG_ARGS=${AUG_ARGS:---N 4} BASELINE=${BASELINE:-1}
export TEACHER_ARGS=${TEACHER_ARGS:---learning_rate 5e-5 --num_train_epochs 2 --save_steps 63 --logging_steps 21}
export INTER_ARGS=${INTER_ARGS:---learning_rate 1e-4 --max_steps 80 --save_steps 80 --logging_steps 20}
export PRED_ARGS=${PRED_ARGS:---learning_rate 1e-4 --max_steps 200 --save_steps 100 --logging_steps 25}
export BASELINE_ARGS=${BASELINE_ARGS:---learning_rate 1e-4 --max_steps 200 --save_steps 100 --logging_steps 25}
TASK=SST-2 SEQ_LEN=64 INTER_EPOCHS=1 exec bash scripts/run_task.sh
