#!/usr/bin/env bash
# The README's pretrained-student comparison on SST-2 (issue: pretrained students offline). Same task-distillation
# budget for each student, each distilled from the fine-tuned MiniLM teacher:
#   (a) 4L-312d from random weights      TinyBERT's two stages as two phases of one run
#   (b) 4L-312d after general distillation (general_distill.py on the GLUE training texts), then the same
#   (c) mobilebert-6l-384d-128b after progressive transfer: in general distillation, then the same task phases
#       (MOBILEBERT_ROUTE=general, the default), or on the task data itself (MOBILEBERT_ROUTE=task: one phase per
#       layer, then the prediction phase, from random weights: the cheaper route, within the same task budget)
#   (d) 3L-384d initialised from teacher layers 2/4/6, then the same
# and each student's exported latency against the teacher's. Every stage's wall time goes to OUT/times.tsv.
#   TEACHER=out/real/sst2/teacher/best_model OUT=out/real/pretrained bash bench/real_pretrained_students.sh
source "$(dirname "$0")/real_env.sh"
TEACHER=${TEACHER:?the fine-tuned SST-2 teacher folder}
OUT=${OUT:?output folder}
GEN_STEPS=${GEN_STEPS:-3000}    # general distillation, batch 32 (about one pass over the GLUE training texts)
TASK_STEPS=${TASK_STEPS:-2000}  # task distillation per student, batch 32 (half intermediate, half prediction)
MOBILEBERT_ROUTE=${MOBILEBERT_ROUTE:-general}
ROWS=${ROWS:-"a b c d"}  # run only these rows now (a later run with all rows finishes the rest and the table)
SEQ=${SEQ:-64}
mkdir -p "$OUT"
CORPUS=()
for task in SST-2 CoLA MRPC RTE; do CORPUS+=("$GLUE_DIR/$task/train.tsv"); done
GEN=(--teacher_path "$TEACHER" --input_file "${CORPUS[@]}" --max_seq_length "$SEQ" --batch_size 32
     --learning_rate 3e-4 --warmup_proportion 0.05 --max_steps "$GEN_STEPS" --save_steps 500 --logging_steps 100
     --resume)  # a killed stage continues from its checkpoint when the script is run again
want() { [[ " $ROWS " == *" $1 "* ]]; }
want b && timed general-4l312d "$PY" general_distill.py "${GEN[@]}" --student_model_name_or_path 4l-312d \
  --output_dir "$OUT/general-4l312d"
want c && [ "$MOBILEBERT_ROUTE" = general ] && timed general-mobilebert "$PY" general_distill.py "${GEN[@]}" --progressive \
  --student_model_name_or_path mobilebert-6l-384d-128b --output_dir "$OUT/general-mobilebert"

PHASES="$OUT/tinybert_phases.json"
echo '{"phases": "tinybert", "intermediate_matches": [{"preset": "tinybert"}]}' > "$PHASES"
TASK=(--task_name SST-2 --glue_dir "$GLUE_DIR" --teacher_path "$TEACHER" --max_seq_length "$SEQ" --batch_size 32
      --learning_rate 1e-4 --max_steps "$TASK_STEPS" --save_steps 250 --logging_steps 50 --distill_config "$PHASES"
      --resume)
want a && timed a-4l312d-random "$PY" task_distill.py "${TASK[@]}" --student_model_name_or_path 4l-312d --student_init random \
  --output_dir "$OUT/a-4l312d-random"
want b && timed b-4l312d-general "$PY" task_distill.py "${TASK[@]}" --student_init pretrained \
  --student_model_name_or_path "$OUT/general-4l312d/general_model" --output_dir "$OUT/b-4l312d-general"
if [ "$MOBILEBERT_ROUTE" = general ]; then
  want c && timed c-mobilebert "$PY" task_distill.py "${TASK[@]}" --student_init pretrained \
    --student_model_name_or_path "$OUT/general-mobilebert/general_model" --output_dir "$OUT/c-mobilebert"
else
  echo '{"phases": "progressive"}' > "$OUT/progressive.json"  # per-layer phases + the prediction phase
  want c && timed c-mobilebert "$PY" task_distill.py "${TASK[@]/$PHASES/$OUT/progressive.json}" --student_init random \
    --student_model_name_or_path mobilebert-6l-384d-128b --output_dir "$OUT/c-mobilebert"
fi
want d && timed d-3l384d-teacher "$PY" task_distill.py "${TASK[@]}" --student_model_name_or_path 3l-384d --student_init teacher \
  --output_dir "$OUT/d-3l384d-teacher"

[ "$ROWS" = "a b c d" ] || exit 0  # the exports, latency and table once every row is done
for run in a-4l312d-random b-4l312d-general c-mobilebert d-3l384d-teacher; do
  [ -d "$OUT/export/$run" ] || "$PY" export_model.py --model_dir "$OUT/$run/best_model" --output_dir "$OUT/export/$run" \
    --onnx --max_seq_length "$SEQ" > /dev/null 2>&1
done
[ -d "$OUT/export/teacher" ] || "$PY" export_model.py --model_dir "$TEACHER" --output_dir "$OUT/export/teacher" --onnx \
  --max_seq_length "$SEQ" > /dev/null 2>&1
"$PY" bench/student_latency.py --teacher "$TEACHER" --student "$OUT"/{a-4l312d-random,b-4l312d-general,c-mobilebert,d-3l384d-teacher}/best_model \
  --task_name SST-2 --glue_dir "$GLUE_DIR" --examples 128 --repeats 3 > "$OUT/latency.md" 2> "$OUT/latency.err" || true

"$PY" - "$OUT" "$TEACHER" <<'PYEOF'
import json, os, sys
out, teacher = sys.argv[1:]
t = json.load(open(os.path.join(os.path.dirname(teacher), "all_results.json")))["eval_accuracy"]
times = dict(line.split("\t") for line in open(os.path.join(out, "times.tsv")).read().split("\n") if line)
print(f"| student | params | SST-2 dev accuracy | % of teacher ({t:.4f}) | wall time (general + task) |")
print("| --- | --- | --- | --- | --- |")
for run, general in (("a-4l312d-random", None), ("b-4l312d-general", "general-4l312d"),
                     ("c-mobilebert", "general-mobilebert"), ("d-3l384d-teacher", None)):
    r = json.load(open(os.path.join(out, run, "all_results.json")))
    spent = int(times.get(run, 0)) + int(times.get(general, 0) if general else 0)
    print(f"| {run} | {r['student_parameters']:,} | {r['eval_accuracy']:.4f} | {r['eval_accuracy'] / t:.1%} "
          f"| {spent // 60} min |")
PYEOF
