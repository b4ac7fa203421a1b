#!/usr/bin/env bash
# Memory of a 1M-row transfer set: the synthetic demo task (utils.demo), a tiny teacher fine-tuned on it for 30
# steps, a million generated sentences (each numbered, so none repeats) as --transfer_file, a bag-of-words student
# for 20 steps; /usr/bin/time -v reports the peak resident memory of the whole run (reading, dev and repeat checks,
# both encodings, labelling into the store, training). OUT (default out/transfer_memory) holds everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-out/transfer_memory}
ROWS=${ROWS:-1000000}
mkdir -p "$OUT"
[ -f "$OUT/glue/SST-2/train.tsv" ] || "$PY" -m utils.demo --out "$OUT" > /dev/null
[ -f "$OUT/transfer.txt" ] || "$PY" - "$OUT/transfer.txt" "$ROWS" <<'PYEOF'
import random, sys
sys.path.insert(0, ".")
from utils.demo import sentence
rng = random.Random(5)
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"{sentence(rng)[0]} {i}\n")
PYEOF
[ -f "$OUT/teacher/all_results.json" ] || "$PY" run_glue.py --task_name SST-2 --glue_dir "$OUT/glue" \
  --model_name_or_path "$OUT/models/teacher-init" --output_dir "$OUT/teacher" --max_steps 30 --learning_rate 1e-3 \
  --max_seq_length 64 > "$OUT/teacher.log" 2>&1
/usr/bin/time -v -o "$OUT/kd.time" "$PY" task_distill.py --task_name SST-2 --glue_dir "$OUT/glue" \
  --teacher_path "$OUT/teacher/best_model" --student_model_name_or_path bow --transfer_file "$OUT/transfer.txt" \
  --max_steps 20 --save_steps 20 --max_seq_length 64 --output_dir "$OUT/kd" > "$OUT/kd.log" 2>&1
grep -E "Maximum resident|Elapsed" "$OUT/kd.time"
tr '\r' '\n' < "$OUT/kd.log" | grep -a "teacher logits\|transfer set"
