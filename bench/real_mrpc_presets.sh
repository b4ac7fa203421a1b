#!/usr/bin/env bash
# The README's configurability comparison on MRPC: two MiniLM-L6 teachers (seeds 42 and 7), then one student
# (3 layers, 384 wide, initialised from teacher layers 2/4/6) distilled with the same budget three ways:
# TinyBERT preset + KD, PKD preset + KD, and TinyBERT preset + KD from both teachers (logits averaged).
#   GLUE_DIR=../shared/data/glue OUT=out/real-mrpc bash bench/real_mrpc_presets.sh
source "$(dirname "$0")/real_env.sh"
OUT=${OUT:-out/real-mrpc}
EPOCHS=${EPOCHS:-5}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-3}
COMMON=(--task_name MRPC --glue_dir "$GLUE_DIR" --max_seq_length 128 --batch_size 32 --logging_steps 20)

for seed in 42 7; do
  run "$OUT/teacher-$seed" "$PY" run_glue.py "${COMMON[@]}" --model_name_or_path "$MINILM" \
    --output_dir "$OUT/teacher-$seed" --learning_rate 5e-5 --num_train_epochs "$TEACHER_EPOCHS" --save_steps 115 --seed "$seed"
done
STUDENT=(--student_model_name_or_path 3l-384d --student_init teacher --learning_rate 5e-5
         --num_train_epochs "$EPOCHS" --save_steps 115 --cache_teacher_logits)
run "$OUT/tinybert" "$PY" task_distill.py "${COMMON[@]}" "${STUDENT[@]}" --teacher_path "$OUT/teacher-42/best_model" \
  --distill_config configs/tinybert_kd.json --output_dir "$OUT/tinybert"
run "$OUT/pkd" "$PY" task_distill.py "${COMMON[@]}" "${STUDENT[@]}" --teacher_path "$OUT/teacher-42/best_model" \
  --distill_config configs/pkd.json --output_dir "$OUT/pkd"
run "$OUT/two-teachers" "$PY" task_distill.py "${COMMON[@]}" "${STUDENT[@]}" --distill_config configs/tinybert_kd.json \
  --teacher_path "$OUT/teacher-42/best_model" "$OUT/teacher-7/best_model" --output_dir "$OUT/two-teachers"

"$PY" - "$OUT" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
print("| model | MRPC dev F1 | accuracy | train examples/s |\n| --- | --- | --- | --- |")
for name, label in (("teacher-42", "MiniLM-L6 teacher, seed 42"), ("teacher-7", "MiniLM-L6 teacher, seed 7"),
                    ("tinybert", "3L-384 student: TinyBERT preset + KD"), ("pkd", "3L-384 student: PKD preset + KD"),
                    ("two-teachers", "3L-384 student: TinyBERT preset + KD from both teachers")):
    with open(os.path.join(out, name, "all_results.json")) as f:
        r = json.load(f)
    print(f"| {label} | {r['eval_f1']:.4f} | {r['eval_accuracy']:.4f} | {r['train_examples_per_second']:.0f} |")
PYEOF
