#!/usr/bin/env bash
# Full SST-2 with augmented transfer text (docs/BENCHMARKS.md, "Full SST-2 with augmented transfer text"): every
# training sentence labelled, data_augmentation.py's rows as unlabeled transfer text, a teacher fine-tuned on all
# of SST-2; each word student distilled on the teacher's outputs over both plus the gold labels, beside its
# gold-only twin (same vocabulary and steps). It is bench/real_low_label.sh on other rows: that script's recipes,
# queue, per-seed reports and summary.
#   AUG=out/real/full_aug/train_aug.tsv TEACHER_RUN=out/real/sst2_99/teacher PARALLEL_RUNS=2 bash bench/real_full_transfer.sh
#   STUDENT_ARGS="--num_train_epochs 2" ...   # passes over labelled + transfer rows (the recipe's default is 5)
source "$(dirname "$0")/real_env.sh"
OUT=${OUT:-out/real/full_aug}
AUG=${AUG:?the augmented training set (data_augmentation.py --output), e.g. OUT/train_aug.tsv}
TEACHER_RUN=${TEACHER_RUN:?a teacher run folder (run_glue.py --output_dir) fine-tuned on all of SST-2}
mkdir -p "$OUT/glue/SST-2"
for split in train dev; do
  [ -e "$OUT/glue/SST-2/$split.tsv" ] || ln -s "$(cd "$GLUE_DIR/SST-2" && pwd)/$split.tsv" "$OUT/glue/SST-2/$split.tsv"
done
[ -e "$OUT/teacher" ] || ln -s "$(cd "$TEACHER_RUN" && pwd)" "$OUT/teacher"
# the teacher's label store, when it has one, already holds the training sentences' logits (rows are keyed by text)
if [ ! -e "$OUT/teacher_logits" ] && [ -d "$TEACHER_RUN/../teacher_logits" ]; then
  ln -s "$(cd "$TEACHER_RUN/../teacher_logits" && pwd)" "$OUT/teacher_logits"
fi
# the augmented TSV itself is the transfer file: task_distill.py reads it in the task's format, ignores its labels and
# drops its rows equal to a training sentence (the originals it holds), to a dev row, or to an earlier row
if [ ! -e "$OUT/glue/SST-2/transfer.txt" ]; then
  ln -s "$(cd "$(dirname "$AUG")" && pwd)/$(basename "$AUG")" "$OUT/glue/SST-2/transfer.txt"
fi
OUT=$OUT STUDENTS=${STUDENTS:-bilstm cnn} bash bench/real_low_label.sh
