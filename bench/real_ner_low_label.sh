#!/usr/bin/env bash
# Low-label NER (docs/BENCHMARKS.md, "Distillation against gold-only twins"): N_TRAIN tagged sentences of
# ../shared/data/ner (seeded sample) and the other ~8,200 training sentences without tags as transfer text; the pip
# MiniLM fine-tuned on the tagged ones is the teacher. For each seed, a 3-layer student from the teacher's layers
# learns the teacher's per-token outputs on tagged + transfer sentences and the gold tags of the tagged ones, beside
# its gold-only twin (same steps; the pretrained MiniLM's layers). OUT/s<seed>/report.json, then OUT/summary.md.
#   bash bench/real_ner_low_label.sh              # OUT=out/real/ner_lowlabel, N_TRAIN=1000, SEEDS="1 2 3"
source "$(dirname "$0")/real_env.sh"
NER_DIR=${NER_DIR:-../shared/data/ner}
OUT=${OUT:-out/real/ner_lowlabel}
SEEDS=${SEEDS:-1 2 3}
STUDENT=${STUDENT:-3l-384d}
N_TRAIN=${N_TRAIN:-1000}
STUDENT_ARGS=${STUDENT_ARGS:---learning_rate 1e-4 --num_train_epochs 2 --select last}  # passes over tagged + transfer sentences
mkdir -p "$OUT"
[ -f "$OUT/ner/transfer.txt" ] || "$PY" -m utils.demo --sample_conll "$NER_DIR" --out "$OUT" --n_train "$N_TRAIN"
COMMON=(--task_name conll --data_dir "$OUT/ner" --max_seq_length 128 --batch_size 32 --logging_steps 50)
# shellcheck disable=SC2086
timed teacher "$PY" run_ner.py "${COMMON[@]}" --model_name_or_path "$MINILM" --output_dir "$OUT/teacher" \
  --save_steps 32 ${TEACHER_ARGS:---learning_rate 1e-4 --num_train_epochs 5}
for seed in $SEEDS; do
  mkdir -p "$OUT/s$seed/students"
  [ -e "$OUT/s$seed/teacher" ] || ln -s "$(cd "$OUT" && pwd)/teacher" "$OUT/s$seed/teacher"
  name=students/$STUDENT
  # shellcheck disable=SC2086
  OUT=$OUT/s$seed timed "$name" "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$OUT/teacher/best_model" \
    --transfer_file "$OUT/ner/transfer.txt" --cache_dir "$OUT/teacher_logits" --seed "$seed" \
    --student_model_name_or_path "$STUDENT" --student_init teacher --hard_label_weight 1 --save_steps 96 \
    --output_dir "$OUT/s$seed/$name" $STUDENT_ARGS
  steps=$(train_steps "$OUT/s$seed/$name")
  # shellcheck disable=SC2086
  OUT=$OUT/s$seed timed "$name-twin" "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$OUT/teacher/best_model" \
    --transfer_file "$OUT/ner/transfer.txt" --seed "$seed" --student_model_name_or_path "$STUDENT" \
    --student_init teacher --init_from "$MINILM" --pred_weight 0 --hard_label_weight 1 --save_steps 96 \
    --output_dir "$OUT/s$seed/$name-twin" $STUDENT_ARGS --max_steps "$steps"
  "$PY" report.py --out "$OUT/s$seed" --no-latency > "$OUT/s$seed/report.log"
done
"$PY" bench/seed_summary.py "$OUT" $SEEDS
