#!/usr/bin/env bash
# The README's NER result (issue: NER and extractive QA): ../shared/data/ner (silver CoNLL-style tags on real news
# sentences) with the pip MiniLM teacher; a 4L-312d student distilled in TinyBERT's two stages (two phases of one
# run) and the same student on gold labels only, same steps. The student starts from general_distill.py's
# 4L-312d model when GENERAL points at one (both rows alike), else from random weights.
#   OUT=out/real/ner GENERAL=out/real/pretrained/general-4l312d/general_model bash bench/real_ner.sh
source "$(dirname "$0")/real_env.sh"
NER_DIR=${NER_DIR:-../shared/data/ner}
OUT=${OUT:-out/real/ner}
GENERAL=${GENERAL:-}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-3}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-6}  # INTER_SHARE of them intermediate, the rest prediction; the gold twin trains all
INTER_SHARE=${INTER_SHARE:-0.5}      # the tinybert phase preset's split of the distilled run's steps
STUDENT_LR=${STUDENT_LR:-1e-4}       # both student rows
HARD_LABEL_WEIGHT=${HARD_LABEL_WEIGHT:-0}  # the gold-label term beside KD in the distilled row's prediction phase
COMMON=(--task_name conll --data_dir "$NER_DIR" --max_seq_length 128 --batch_size 32 --save_steps 300 --logging_steps 50)
if [ -n "$GENERAL" ]; then STUDENT=(--student_model_name_or_path "$GENERAL" --student_init pretrained)
else STUDENT=(--student_model_name_or_path 4l-312d --student_init random); fi
mkdir -p "$OUT"
timed teacher "$PY" run_ner.py "${COMMON[@]}" --model_name_or_path "$MINILM" --output_dir "$OUT/teacher" \
  --learning_rate 5e-5 --num_train_epochs "$TEACHER_EPOCHS" --resume
tinybert_phases "$OUT/phases.json" "$INTER_SHARE" "$HARD_LABEL_WEIGHT"
timed pred "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$OUT/teacher/best_model" "${STUDENT[@]}" \
  --distill_config "$OUT/phases.json" --learning_rate "$STUDENT_LR" --num_train_epochs "$STUDENT_EPOCHS" \
  --output_dir "$OUT/pred" --resume
timed baseline "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$OUT/teacher/best_model" "${STUDENT[@]}" \
  --pred_weight 0 --hard_label_weight 1 --learning_rate "$STUDENT_LR" --num_train_epochs "$STUDENT_EPOCHS" \
  --output_dir "$OUT/baseline" --resume

"$PY" - "$OUT" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
teacher = json.load(open(os.path.join(out, "teacher", "all_results.json")))["eval_f1"]
times = dict(line.split("\t") for line in open(os.path.join(out, "times.tsv")).read().split("\n") if line)
print("| model | dev F1 | precision | recall | % of teacher F1 | wall time |\n| --- | --- | --- | --- | --- | --- |")
for name, label in (("teacher", "MiniLM-L6-H384 teacher (fine-tuned)"), ("pred", "4L-312d distilled (two phases)"),
                    ("baseline", "4L-312d gold labels only")):
    r = json.load(open(os.path.join(out, name, "all_results.json")))
    print(f"| {label} | {r['eval_f1']:.4f} | {r['eval_precision']:.4f} | {r['eval_recall']:.4f} | "
          f"{r['eval_f1'] / teacher:.1%} | {int(times.get(name, 0)) // 60} min |")
PYEOF
