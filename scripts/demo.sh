#!/usr/bin/env bash
# The built-in default, offline, one command after `bash setup.sh`:
#   bash scripts/demo.sh            real, low-label SST-2: 2,000 labelled sentences and 20,000 more without labels
#                                   (the transfer set). The pip MiniLM (6 layers, 384 wide) is fine-tuned on the
#                                   labelled ones and labels the rest; a 3-layer student initialised from the
#                                   teacher's layers and a BiLSTM word student learn from it, each beside its gold-only
#                                   twin (same student and steps, gold labels only; the 3-layer twin starts from the
#                                   *pretrained* MiniLM's layers); export and OUT/report.md (OUT=demo/sst2; about
#                                   6-7 minutes on 2 AVX-512 cores, 10-13 on 2 AVX2 ones)
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
if [ -d "$OUT/teacher" ] && [ ! -f "$OUT/glue/SST-2/transfer.txt" ]; then
  echo "error: $OUT holds an earlier version's demo (no transfer set): remove it, or set OUT to another folder" >&2
  exit 2
fi
[ -f "$OUT/glue/SST-2/transfer.txt" ] || "$PY" -m utils.demo --sample_sst2 "$GLUE_DIR" --out "$OUT" \
  --n_train "${N_TRAIN:-2000}" --n_transfer "${N_TRANSFER:-20000}"

# The teacher: 3 passes over the 2,000 labelled sentences; then it labels all 22,000 into the label store. The
# 3-layer student starts from its layers 2, 4 and 6, so it needs no stage 1: 375 steps of 32 rows drawn from the
# 22,000 (labelled and transfer), learning the teacher's outputs on all of them and the gold labels of the labelled
# ones. Its twin takes the same flags and steps on the gold labels alone, from the pretrained MiniLM's layers. The
# BiLSTM (GloVe 50-d, 150 hidden units a direction) and its twin: 1,720 steps of 64 (5 passes over the 22,000; the
# twin the same steps over the 2,000). Recipes chosen on a validation slice of training sentences, never on dev
# (docs/BENCHMARKS.md): 150 units are as accurate as 300 and 3x faster; more passes is what the BiLSTM gains from.
# Every run takes one thread, two at a time, the next taking the first free core (TWIN_PARALLEL): the twins read
# nothing of the fine-tuned teacher (TWIN_INIT, the pretrained MiniLM, gives them its tokenizer and the 3-layer twin
# its layers), so they start at once beside the teacher's side (fine-tuning, then labelling); the distilled students
# and the exports follow. Every student keeps its final step's model (--select last): dev is measured once, never
# used to choose. Budgets fit 10 minutes on 2 cores (6-7 minutes measured on AVX-512 ones).
export PY GLUE_DIR="$OUT/glue" TEACHER="$MINILM" STUDENT=${STUDENT:-3l-384d} STUDENT_INIT=${STUDENT_INIT:-teacher}
export TRANSFER=${TRANSFER-$OUT/glue/SST-2/transfer.txt} INTER=${INTER:-0} TWIN_INIT=${TWIN_INIT-$MINILM}
export USE_AUG=${USE_AUG:-0} GLOVE BASELINE=${BASELINE:-1} WORD_STUDENTS=${WORD_STUDENTS-bilstm}
export TEACHER_ARGS=${TEACHER_ARGS:---learning_rate 1e-4 --num_train_epochs 3 --save_steps 63 --logging_steps 21}
export PRED_ARGS=${PRED_ARGS:---learning_rate 1e-4 --hard_label_weight 1 --max_steps 375 --save_steps 125 --logging_steps 25 --select last}
export BASELINE_ARGS=${BASELINE_ARGS:---save_steps 125 --logging_steps 25}
export TWIN_PARALLEL=${TWIN_PARALLEL:-1}  # students and twins queued on one thread each
export WORD_STUDENT_ARGS=${WORD_STUDENT_ARGS:---batch_size 64 --learning_rate 1e-3 --hidden_size 150 --max_steps 1720 --save_steps 344 --logging_steps 86 --select last}
TASK=SST-2 SEQ_LEN=64 INTER_EPOCHS=1 exec bash scripts/run_task.sh
