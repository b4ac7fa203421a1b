#!/usr/bin/env bash
# The README's QA run (issue: NER and extractive QA): a SQuAD-format set built from real news sentences
# (bench/make_cloze_squad.py; cloze questions, see its docstring), the pip MiniLM teacher fine-tuned with run_qa.py,
# a 4L-312d student distilled in TinyBERT's two stages (two phases of one run), then exported and predicted.
# The student starts from general_distill.py's 4L-312d model when GENERAL points at one, else random weights; with
# STUDENT_INIT=teacher it is a 3L-384d from the fine-tuned teacher's layers (no intermediate phase: KD on the
# start/end logits + the gold spans), beside its gold-only twin from the pretrained MiniLM's layers (same steps).
#   OUT=out/real/qa GENERAL=out/real/pretrained/general-4l312d/general_model bash bench/real_qa.sh
#   OUT=out/real/qa4 STUDENT_INIT=teacher bash bench/real_qa.sh   # 8 passes (STUDENT_EPOCHS=2: the earlier qa3 run)
source "$(dirname "$0")/real_env.sh"
OUT=${OUT:-out/real/qa}
GENERAL=${GENERAL:-}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-2}
STUDENT_INIT=${STUDENT_INIT:-}
# passes of the student: 8 from the teacher's layers (91.4% of the teacher's F1 over 3 seeds; 2 passes gave 55.8%,
# docs/BENCHMARKS.md), 2 otherwise (INTER_SHARE of them intermediate, the rest prediction)
STUDENT_EPOCHS=${STUDENT_EPOCHS:-$([ "$STUDENT_INIT" = teacher ] && echo 8 || echo 2)}
INTER_SHARE=${INTER_SHARE:-0.5}      # the tinybert phase preset's split of the distilled run's steps
STUDENT_LR=${STUDENT_LR:-1e-4}
HARD_LABEL_WEIGHT=${HARD_LABEL_WEIGHT:-0}  # the gold-answer term beside KD in the prediction phase
DATA="$OUT/data"
[ -f "$DATA/dev.json" ] || "$PY" bench/make_cloze_squad.py --ner_dir "${NER_DIR:-../shared/data/ner}" --out "$DATA"
COMMON=(--task_name squad --data_dir "$DATA" --max_seq_length 160 --doc_stride 64 --batch_size 16 --save_steps 100
        --logging_steps 25)
if [ "$STUDENT_INIT" = teacher ]; then STUDENT=(--student_model_name_or_path 3l-384d --student_init teacher)
elif [ -n "$GENERAL" ]; then STUDENT=(--student_model_name_or_path "$GENERAL" --student_init pretrained)
else STUDENT=(--student_model_name_or_path 4l-312d --student_init random); fi
timed teacher "$PY" run_qa.py "${COMMON[@]}" --model_name_or_path "$MINILM" --output_dir "$OUT/teacher" \
  --learning_rate 5e-5 --num_train_epochs "$TEACHER_EPOCHS" --resume
RUNS="teacher pred"
if [ "$STUDENT_INIT" = teacher ]; then
  timed pred "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$OUT/teacher/best_model" "${STUDENT[@]}" \
    --hard_label_weight 1 --select last --learning_rate "$STUDENT_LR" --num_train_epochs "$STUDENT_EPOCHS" \
    --output_dir "$OUT/pred"
  timed pred-twin "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$OUT/teacher/best_model" "${STUDENT[@]}" \
    --init_from "$MINILM" --pred_weight 0 --hard_label_weight 1 --select last --learning_rate "$STUDENT_LR" \
    --max_steps "$(train_steps "$OUT/pred")" --output_dir "$OUT/pred-twin"
  RUNS="teacher pred pred-twin"
else
  tinybert_phases "$OUT/phases.json" "$INTER_SHARE" "$HARD_LABEL_WEIGHT"
  timed pred "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$OUT/teacher/best_model" "${STUDENT[@]}" \
    --distill_config "$OUT/phases.json" --learning_rate "$STUDENT_LR" --num_train_epochs "$STUDENT_EPOCHS" \
    --output_dir "$OUT/pred" --resume
fi
for run in $RUNS; do
  [ -d "$OUT/export/$run" ] || "$PY" export_model.py --model_dir "$OUT/$run/best_model" --output_dir "$OUT/export/$run" \
    --max_seq_length 160 > /dev/null 2>&1
  "$PY" predict.py --model_dir "$OUT/export/$run" --task_name squad --data_dir "$DATA" --split dev --doc_stride 64 \
    --max_seq_length 160 --output_file "$OUT/export/$run/answers-dev.json" > "$OUT/predict-$run.log" 2>&1
done
"$PY" - "$OUT" "$RUNS" <<'PYEOF'
import json, os, sys
out, runs = sys.argv[1], sys.argv[2].split()
times = dict(line.split("\t") for line in open(os.path.join(out, "times.tsv")).read().split("\n") if line)
teacher = json.load(open(os.path.join(out, "teacher", "all_results.json")))
print("| model | dev EM | dev F1 | % of teacher F1 | exported (predict.py) F1 | wall time |")
print("| --- | --- | --- | --- | --- | --- |")
labels = {"teacher": "MiniLM-L6-H384 teacher (run_qa.py)", "pred": "student, distilled",
          "pred-twin": "its gold-only twin (same steps)"}
for name in runs:
    label = labels[name]
    r = json.load(open(os.path.join(out, name, "all_results.json")))
    exported = json.load(open(os.path.join(out, "export", name, "answers-dev.metrics.json")))["dev_f1"]
    print(f"| {label} | {r['eval_exact_match']:.4f} | {r['eval_f1']:.4f} | {r['eval_f1'] / teacher['eval_f1']:.1%} "
          f"| {exported:.4f} | {int(times.get(name, 0)) // 60} min |")
PYEOF
