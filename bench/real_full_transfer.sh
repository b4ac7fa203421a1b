#!/usr/bin/env bash
# Full SST-2 with augmented transfer text (docs/BENCHMARKS.md, "Full SST-2 with augmented transfer text"): every
# training sentence labelled, the texts of data_augmentation.py's rows (those not already training sentences) as
# unlabeled transfer text, a teacher fine-tuned on all of SST-2; each word student distilled on the teacher's
# outputs over both plus the gold labels, beside its gold-only twin (same vocabulary and steps). It is
# bench/real_low_label.sh on other rows: that script's recipes, queue, per-seed reports and summary.
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
if [ ! -f "$OUT/glue/SST-2/transfer.txt" ]; then
  "$PY" - "$GLUE_DIR/SST-2/train.tsv" "$AUG" "$OUT/glue/SST-2/transfer.txt" <<'PYEOF'
import csv, os, sys
def texts(path):  # the sentence column of a GLUE SST-2 file (header: sentence, label)
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        col = next(rows).index("sentence")
        return [r[col] for r in rows]
train = set(texts(sys.argv[1]))
new = list(dict.fromkeys(t for t in texts(sys.argv[2]) if t not in train))
with open(sys.argv[3] + ".tmp", "w", encoding="utf-8") as f:
    f.writelines(t + "\n" for t in new)
os.replace(sys.argv[3] + ".tmp", sys.argv[3])
print(f"{len(new):,} augmented texts that are not training sentences -> {sys.argv[3]}")
PYEOF
fi
OUT=$OUT STUDENTS=${STUDENTS:-bilstm cnn} bash bench/real_low_label.sh
