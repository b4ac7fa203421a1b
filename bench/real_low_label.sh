#!/usr/bin/env bash
# Low-label SST-2 (docs/BENCHMARKS.md, "Distillation against gold-only twins"): 2,000 labelled sentences (the demo's
# seeded sample) and N_TRANSFER more without labels; a teacher fine-tuned on the 2,000 (TEACHER_ARGS; a finished
# OUT/teacher is reused, e.g. a copy of the demo's); for each
# seed, every student distilled on labelled + transfer rows beside its gold-only twin (same student, vocabulary and
# steps; a teacher-initialised student's twin starts from the pretrained MiniLM's layers). Teacher fixed, students
# and twins reseeded; OUT/s<seed>/report.json per seed, then the mean, the per-seed values and the paired
# differences in OUT/summary.md.
#   bash bench/real_low_label.sh                                   # OUT=out/real/lowlabel, SEEDS="1 2 3"
#   STUDENTS="cnn bilstm" N_TRANSFER=20000 SEEDS=1 bash bench/real_low_label.sh
#   PARALLEL_RUNS=2 ...                                            # two (seed, student) pairs at once, a thread each
#   STUDENTS=3l-384d STUDENT_ARGS="--max_steps 1000" ...            # flags after the recipe's (the twin's steps follow)
#   CNN_VECTORS=glove ...                                          # a word student's vectors (below)
#   MORE_TRANSFER=FILE ...                                         # more transfer text (e.g. augmented rows of the
#                                                                  # training sentences: bench/augmented_rows.py)
source "$(dirname "$0")/real_env.sh"
OUT=${OUT:-out/real/lowlabel}
SEEDS=${SEEDS:-1 2 3}
STUDENTS=${STUDENTS:-cnn bilstm 3l-384d}
N_TRANSFER=${N_TRANSFER:-20000}
# Word vectors per word student, chosen on the validation slice (docs/BENCHMARKS.md, "Word vectors from the
# pretrained teacher"): glove (50-d GloVe), minilm (384-d, word_vectors.py over OUT's labelled + transfer text from
# the pretrained MiniLM, built once into OUT/vectors/minilm.txt) or a file. A twin starts from its student's vectors.
BILSTM_VECTORS=${BILSTM_VECTORS:-glove}
CNN_VECTORS=${CNN_VECTORS:-minilm}
GLOVE=$(glove_path)
vectors_of() {  # vectors_of STUDENT: its vectors' choice (bow reads none: glove, ignored)
  case $1 in bilstm) echo "$BILSTM_VECTORS" ;; cnn) echo "$CNN_VECTORS" ;; *) echo glove ;; esac
}
vectors_file() {  # vectors_file CHOICE: the file a choice names
  case $1 in
    glove) echo "$GLOVE" ;;
    minilm) echo "$OUT/vectors/minilm.txt" ;;
    *) echo "$1" ;;
  esac
}
mkdir -p "$OUT"
[ -f "$OUT/glue/SST-2/transfer.txt" ] || "$PY" -m utils.demo --sample_sst2 "$GLUE_DIR" --out "$OUT" --n_train 2000 \
  --n_transfer "$N_TRANSFER"
TEXTS="$OUT/glue/SST-2/train.tsv $OUT/glue/SST-2/transfer.txt${MORE_TRANSFER:+ $MORE_TRANSFER}"
for student in $STUDENTS; do
  [ "$(vectors_of "$student")" = minilm ] || continue
  if [ -f "$OUT/vectors/minilm.txt" ]; then  # built by an earlier call: from the same text (a file beside it says)
    built=$(cat "$OUT/vectors/minilm.txt.text" 2>/dev/null || echo "$OUT/glue/SST-2/train.tsv $OUT/glue/SST-2/transfer.txt")
    [ "$built" = "$TEXTS" ] || { echo "error: $OUT/vectors/minilm.txt was built from $built, not $TEXTS: remove" \
      "it, or use another OUT" >&2; exit 2; }
  else
    # shellcheck disable=SC2046
    "$PY" word_vectors.py --model_name_or_path "$MINILM" $(printf -- '--text_file %s ' $TEXTS) \
      --output_file "$OUT/vectors/minilm.txt"
    echo "$TEXTS" > "$OUT/vectors/minilm.txt.text"
  fi
done
COMMON=(--task_name SST-2 --glue_dir "$OUT/glue" --max_seq_length 64 --batch_size 32)
# shellcheck disable=SC2086
timed teacher "$PY" run_glue.py "${COMMON[@]}" --model_name_or_path "$MINILM" --output_dir "$OUT/teacher" \
  ${TEACHER_ARGS:---learning_rate 1e-4 --num_train_epochs 3 --save_steps 63 --logging_steps 21}
TRANSFER=(--transfer_file "$OUT/glue/SST-2/transfer.txt" ${MORE_TRANSFER:+--transfer_file "$MORE_TRANSFER"}
          --teacher_path "$OUT/teacher/best_model")

recipe() {  # recipe STUDENT: its flags (the demo's recipes, written per student kind), then STUDENT_ARGS
  echo "$(recipe_of "$1") ${STUDENT_ARGS:-}"
}
recipe_of() {
  case $1 in
    bilstm) echo "--glove_embs $(vectors_file "$(vectors_of "$1")") --batch_size 64 --learning_rate 1e-3 --num_train_epochs 5 --hidden_size 150 --save_steps 344 --logging_steps 86 --select last" ;;
    cnn|bow) echo "--glove_embs $(vectors_file "$(vectors_of "$1")") --batch_size 64 --learning_rate 1e-3 --num_train_epochs 5 --save_steps 344 --logging_steps 86 --select last" ;;
    *) echo "--student_init teacher --learning_rate 1e-4 --num_train_epochs 1 --save_steps 100 --logging_steps 50 --select last" ;;
  esac
}
pair() {  # pair SEED STUDENT: the student distilled, then its twin for the same steps
  local seed=$1 student=$2 name=students/$2 steps twin_init=()
  # shellcheck disable=SC2046
  OUT=$OUT/s$seed timed "$name" "$PY" task_distill.py "${COMMON[@]}" "${TRANSFER[@]}" --seed "$seed" \
    --student_model_name_or_path "$student" --output_dir "$OUT/s$seed/$name" --hard_label_weight 1 \
    --cache_dir "$OUT/teacher_logits" $(recipe "$student")
  steps=$(train_steps "$OUT/s$seed/$name")
  case $student in bilstm|cnn|bow) ;; *) twin_init=(--init_from "$MINILM") ;; esac
  # shellcheck disable=SC2046
  OUT=$OUT/s$seed timed "$name-twin" "$PY" task_distill.py "${COMMON[@]}" "${TRANSFER[@]}" --seed "$seed" \
    --student_model_name_or_path "$student" --output_dir "$OUT/s$seed/$name-twin" --pred_weight 0 \
    --hard_label_weight 1 "${twin_init[@]}" $(recipe "$student") --max_steps "$steps"
}
# PARALLEL_RUNS=N: the teacher labels every row first (all threads), then the (seed, student) pairs run N at a time,
# a thread each, the next taking the first free core (the figures are the same as one at a time: CPU kernels here
# do not depend on the thread count; docs/BENCHMARKS.md)
PARALLEL_RUNS=${PARALLEL_RUNS:-1}
source scripts/queue.sh  # side_by_side, wait_all
for seed in $SEEDS; do
  mkdir -p "$OUT/s$seed/students"
  [ -e "$OUT/s$seed/teacher" ] || ln -s "$(cd "$OUT" && pwd)/teacher" "$OUT/s$seed/teacher"
done
if [ "$PARALLEL_RUNS" -gt 1 ]; then
  first=${STUDENTS%% *}
  # shellcheck disable=SC2046
  run "$OUT/labels" "$PY" task_distill.py "${COMMON[@]}" "${TRANSFER[@]}" --student_model_name_or_path "$first" \
    --output_dir "$OUT/labels" --cache_dir "$OUT/teacher_logits" $(recipe "$first") --label_part 1/1
fi
for student in $STUDENTS; do  # every seed of a student before the next student: its summary is ready first
  for seed in $SEEDS; do
    if [ "$PARALLEL_RUNS" -gt 1 ]; then
      side_by_side pair "$seed" "$student"
    else
      pair "$seed" "$student"
    fi
  done
done
wait_all
for seed in $SEEDS; do
  "$PY" report.py --out "$OUT/s$seed" --no-latency > "$OUT/s$seed/report.log"
done

"$PY" bench/seed_summary.py "$OUT" $SEEDS
