#!/usr/bin/env bash
# The README's INT8 figures: the SST-2 teacher and a distilled student exported in FP32 and INT8
# (export_model.py --quantize int8), then report.py's FP32 vs INT8 table (size, latency at batch 1 and 32 on
# onnxruntime, SST-2 dev accuracy of both files), and bench/int8_speed.py's alternated FP32 vs INT8 timing of the
# student on real dev sentences against issue 28's goals. A report folder is assembled from links to the runs.
#   TEACHER_RUN=out/real/sst2/teacher STUDENT_RUN=out/real/pretrained/b-4l312d-general OUT=out/real/int8 bash bench/real_int8.sh
source "$(dirname "$0")/real_env.sh"
TEACHER_RUN=${TEACHER_RUN:?the teacher's run folder (with best_model/ and args.json)}
STUDENT_RUN=${STUDENT_RUN:?a distilled student's run folder}
OUT=${OUT:-out/real/int8}
SEQ=${SEQ:-64}
mkdir -p "$OUT"
ln -sfn "$(realpath "$TEACHER_RUN")" "$OUT/teacher"
ln -sfn "$(realpath "$STUDENT_RUN")" "$OUT/pred"
for pair in teacher:teacher student:pred; do
  role=${pair%%:*} run=${pair#*:}
  [ -f "$OUT/export/$role/model.int8.onnx" ] || "$PY" export_model.py --model_dir "$OUT/$run/best_model" \
    --output_dir "$OUT/export/$role" --quantize int8 --max_seq_length "$SEQ"
done
"$PY" report.py --out "$OUT" --latency_repeats 7 > "$OUT/report.log" 2>&1
sed -n '/## INT8/,/^$/p;/## INT8/,/^## /p' "$OUT/report.md" | head -8
"$PY" bench/int8_speed.py --export "$OUT/export/student" --glue_dir "$GLUE_DIR" --seq_len "$SEQ" \
  > "$OUT/int8_speed.md" 2> "$OUT/int8_speed.log"
cat "$OUT/int8_speed.md"
