#!/usr/bin/env bash
# The whole job for one task: teacher -> augmentation -> stage 1 -> stage 2 -> export -> report (OUT/report.md).
#   bash scripts/pipeline.sh demo             # synthetic task, tiny models (scripts/demo.sh --quick; OUT=demo/quick)
#   GLUE_DIR=../shared/data/glue TEACHER=$MINILM GLOVE=$KUMO AUG_MODEL=none bash scripts/pipeline.sh SST-2
# TinyBERT's per-task settings (max_seq_length, stage-1 epochs); augmentation on (USE_AUG=0 turns it off).
# Every other variable is run_task.sh's (GLUE_DIR, TEACHER, STUDENT, DEVICE, OUT, BASELINE, *_ARGS, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
TASK=${1:?usage: scripts/pipeline.sh TASK (SST-2, QQP, MRPC, CoLA, RTE, MNLI, QNLI, STS-B, or demo)}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
export PY USE_AUG=${USE_AUG:-1}

if [ "$TASK" = demo ]; then
  # The plumbing check: data, word vectors and a tiny teacher written locally; models trained from scratch need
  # far larger learning rates than BERT fine-tuning.
  export OUT=${OUT:-demo/quick}
  # shellcheck disable=SC2086
  [ -f "$OUT/glue/SST-2/dev.tsv" ] || "$PY" -m utils.demo --out "$OUT" ${DEMO_ARGS:-}
  export GLUE_DIR="$OUT/glue" TEACHER="$OUT/models/teacher-init" STUDENT=${STUDENT:-2l-32d}
  export STUDENT_INIT=${STUDENT_INIT:-random} BASELINE=${BASELINE:-1} AUG_MODEL=none GLOVE="$OUT/models/vectors.txt"
  export AUG_ARGS=${AUG_ARGS:---N 2}
  export TEACHER_ARGS=${TEACHER_ARGS:---learning_rate 1e-3 --num_train_epochs 4 --save_steps 100 --logging_steps 20}
  export INTER_ARGS=${INTER_ARGS:---learning_rate 2e-3 --num_train_epochs 2 --save_steps 200 --logging_steps 20}
  export PRED_ARGS=${PRED_ARGS:---learning_rate 2e-3 --num_train_epochs 2 --save_steps 200 --logging_steps 20}
  export BASELINE_ARGS=${BASELINE_ARGS:---num_train_epochs 4 --save_steps 100}
  TASK=SST-2 SEQ_LEN=64 INTER_EPOCHS=2 exec bash scripts/run_task.sh
fi

case $(echo "$TASK" | tr '[:upper:]' '[:lower:]' | tr -d '_-') in
  sst2) TASK=SST-2 SEQ_LEN=64 INTER_EPOCHS=20 ;;
  cola) TASK=CoLA SEQ_LEN=64 INTER_EPOCHS=50 ;;
  mrpc) TASK=MRPC SEQ_LEN=128 INTER_EPOCHS=20 ;;
  rte) TASK=RTE SEQ_LEN=128 INTER_EPOCHS=20 ;;
  stsb) TASK=STS-B SEQ_LEN=128 INTER_EPOCHS=20 ;;
  qqp) TASK=QQP SEQ_LEN=128 INTER_EPOCHS=10 ;;
  mnli) TASK=MNLI SEQ_LEN=128 INTER_EPOCHS=10 ;;
  qnli) TASK=QNLI SEQ_LEN=128 INTER_EPOCHS=10 ;;
  *) echo "error: unknown task '$TASK'; expected SST-2, QQP, MRPC, CoLA, RTE, MNLI, QNLI, STS-B or demo" >&2; exit 2 ;;
esac
export TASK SEQ_LEN INTER_EPOCHS
exec bash scripts/run_task.sh
