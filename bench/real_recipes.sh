#!/usr/bin/env bash
# Recipe selection on a validation slice (docs/BENCHMARKS.md, "Recipes chosen on a validation slice"): the demo's
# low-label setting (2,000 labelled SST-2 sentences, 20,000 unlabeled), but dev.tsv is 1,000 *other training*
# sentences, so recipes are chosen without looking at SST-2's dev set. The teacher is the demo's (TEACHER, default
# demo/sst2/teacher: run `bash scripts/demo.sh` first) and its label store is copied, so nothing is relabelled.
# Each recipe NAME|FLAGS is distilled into OUT/students/STUDENT-NAME beside its gold-only twin (same flags and steps;
# a BERT student's twin from the pretrained MiniLM's layers) in OUT/students/STUDENT-NAME-twin. OUT/summary.md:
# each recipe's validation accuracy beside its twin's (the teacher's own figure is on SST-2 dev: no gap closed here).
#   bash bench/real_recipes.sh                         # OUT=out/real/recipes, STUDENT=3l-384d, its RECIPES below
#   STUDENT=bilstm bash bench/real_recipes.sh          # the BiLSTM's recipes (hidden size, passes)
#   RECIPES="base|--max_steps 375" bash bench/real_recipes.sh
# SAMPLE_ARGS adds flags to the sampling (e.g. "--valid_min_words 12": a validation slice of whole sentences);
# TRANSFER names another transfer file for the recipes of this call (default OUT/glue/SST-2/transfer.txt).
source "$(dirname "$0")/real_env.sh"
OUT=${OUT:-out/real/recipes}
TEACHER=${TEACHER:-demo/sst2/teacher}
STUDENT=${STUDENT:-3l-384d}
case $STUDENT in
  bilstm|cnn|bow)  # the demo's word-student flags; the twin shares the vocabulary and vectors
    BASE="--glove_embs $(glove_path) --batch_size 64 --learning_rate 1e-3 --hard_label_weight 1 --save_steps 200 --logging_steps 50 --select last"
    TWIN_INIT=()
    DEFAULT="h300|--hidden_size 300 --max_steps 1032
h150|--hidden_size 150 --max_steps 1032
h150-6passes|--hidden_size 150 --max_steps 2064" ;;
  *)  # a BERT student from the teacher's layers; its twin from the pretrained MiniLM's
    BASE="--student_init teacher --learning_rate 1e-4 --hard_label_weight 1 --save_steps 75 --logging_steps 25 --select last"
    TWIN_INIT=(--init_from "$MINILM")
    DEFAULT="base|--max_steps 375
steps750|--max_steps 750 --save_steps 150
lr5e-5|--max_steps 375 --learning_rate 5e-5
T2|--max_steps 375 --T 2
inter|--max_steps 500 --distill_config $OUT/inter.json" ;;
esac
RECIPES=${RECIPES:-$DEFAULT}
mkdir -p "$OUT/students"
# shellcheck disable=SC2086
[ -f "$OUT/glue/SST-2/transfer.txt" ] || "$PY" -m utils.demo --sample_sst2 "$GLUE_DIR" --out "$OUT" --n_train 2000 \
  --n_transfer "${N_TRANSFER:-20000}" --n_valid 1000 ${SAMPLE_ARGS:-}
TRANSFER=${TRANSFER:-$OUT/glue/SST-2/transfer.txt}
[ -e "$OUT/teacher" ] || ln -s "$(cd "$TEACHER" && pwd)" "$OUT/teacher"
[ -d "$OUT/teacher_logits" ] || cp -r "$(dirname "$TEACHER")/teacher_logits" "$OUT/teacher_logits"
tinybert_phases "$OUT/inter.json" 0.25 1   # a quarter of the steps matching hidden states and attention, then KD + gold
COMMON=(--task_name SST-2 --glue_dir "$OUT/glue" --max_seq_length 64 --batch_size 32 --student_model_name_or_path
        "$STUDENT" --teacher_path "$OUT/teacher/best_model" --transfer_file "$TRANSFER")
while IFS='|' read -r name flags; do
  [ -n "$name" ] || continue
  name=$STUDENT-$name
  # shellcheck disable=SC2086
  timed "students/$name" "$PY" task_distill.py "${COMMON[@]}" --output_dir "$OUT/students/$name" \
    --cache_dir "$OUT/teacher_logits" $BASE $flags
  steps=$(train_steps "$OUT/students/$name")
  # the twin: the same flags and steps on gold labels alone (no distill_config: it only shapes the teacher's terms)
  twin_flags=$(sed -E 's/--distill_config [^ ]+//; s/--T [^ ]+//' <<< "$flags")
  # shellcheck disable=SC2086
  timed "students/$name-twin" "$PY" task_distill.py "${COMMON[@]}" --output_dir "$OUT/students/$name-twin" \
    --pred_weight 0 "${TWIN_INIT[@]}" $BASE $twin_flags --max_steps "$steps"
done <<< "$RECIPES"
"$PY" - "$OUT" <<'PYEOF' | tee "$OUT/summary.md"
import json, os, sys
out = sys.argv[1]
times = dict(line.split("\t") for line in open(os.path.join(out, "times.tsv")).read().split("\n") if line)
print("| recipe | steps | distilled (validation) | twin | gain, points | wall s (distilled / twin) |")
print("| --- | --- | --- | --- | --- | --- |")
names = sorted(n for n in os.listdir(os.path.join(out, "students"))
               if os.path.isdir(os.path.join(out, "students", n)) and not n.endswith("-twin"))
for name in names:
    runs = [os.path.join(out, "students", n, "all_results.json") for n in (name, name + "-twin")]
    if not all(os.path.isfile(r) for r in runs):
        continue
    d, t = (json.load(open(r)) for r in runs)
    print(f"| {name} | {d['train_steps']} | {d['eval_accuracy']:.4f} | {t['eval_accuracy']:.4f} | "
          f"{100 * (d['eval_accuracy'] - t['eval_accuracy']):+.1f} | "
          f"{times.get('students/' + name, '?')} / {times.get('students/' + name + '-twin', '?')} |")
PYEOF
