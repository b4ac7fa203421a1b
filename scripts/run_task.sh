#!/usr/bin/env bash
# One GLUE task end to end: teacher fine-tuning -> [augmentation] -> intermediate distillation -> prediction
# distillation -> [gold-label baseline] -> export of teacher and student -> OUT/report.md. The per-task scripts
# (sst2.sh, ...) and pipeline.sh call this with TinyBERT's published settings: TASK, SEQ_LEN, INTER_EPOCHS.
# A stage whose complete output exists (all_results.json, train_aug.tsv, export.json: each written last or
# renamed into place when complete) is skipped, so a rerun picks up where a killed run stopped.
#
# Environment:
#   GLUE_DIR      GLUE folder with TASK/train.tsv, dev.tsv (required)
#   TEACHER       model the teacher is fine-tuned from (default bert-base-uncased; any run_glue.py source)
#   STUDENT       student name, shape or folder (default tinybert-4l-312d), or bilstm / cnn / bow (no stage 1;
#                 GLOVE initialises their embeddings, WORD_ARGS sets their hyper-parameters)
#   STUDENT_INIT  pretrained | random | teacher (default pretrained)
#   DEVICE        cpu | gpu | ... (default cpu)
#   OUT           output folder (default out/TASK)
#   USE_AUG=1     distil on augmented data: data_augmentation.py writes OUT/data/TASK/train_aug.tsv (beside
#                 links to GLUE_DIR's files, which stay untouched) unless it exists; AUG_MODEL (masked LM,
#                 default bert-base-uncased; none: vectors only), GLOVE (word vectors), AUG_ARGS (extra flags)
#   TRANSFER      unlabeled text (one example per line) the teacher labels for every distilled student; their
#                 gold-only twins read it too, for a word student's vocabulary only
#   INTER=0       no stage 1: the student is distilled from its initialisation (a teacher-initialised student)
#   BASELINE=1    also train the student on gold labels only (OUT/baseline), for the report's comparison
#   TWIN_INIT     the teacher's pretrained checkpoint: a teacher-initialised twin copies its layers from it, and
#                 every twin reads its tokenizer from it (--teacher_path; a twin reads no teacher output), so the
#                 twins know nothing of the fine-tuning (default: the fine-tuned teacher for both)
#   WORD_STUDENTS more students (e.g. "cnn bilstm"), each distilled into OUT/students/NAME and trained on gold
#                 labels into OUT/students/NAME-twin for the same steps (WORD_STUDENT_ARGS: their flags)
#   TWIN_PARALLEL=1  students and twins train a thread each, PARALLEL_RUNS at once (default: the CPU count), the
#                 next starting as soon as one ends, and the teacher's export joins the queue (the teacher
#                 labels the rows first, on every thread); the twin's steps then come from --max_steps in
#                 PRED_ARGS / WORD_STUDENT_ARGS. With TWIN_INIT the twins need nothing of the teacher: they are
#                 queued first, and the teacher (fine-tuning, stage 1, labelling) is one queued run beside them
#   REPORT=0      skip export and report
#   EXPORT_ARGS   export_model.py flags (default --onnx: also model.onnx, the faster runtime at batch 1)
#   PY            python to use (default .venv/bin/python when present)
#   TEACHER_ARGS, INTER_ARGS, PRED_ARGS   extra flags per stage, e.g. PRED_ARGS="--T 2 --hard_label_weight 0.5"
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TASK:?set by the per-task script}" "${SEQ_LEN:?}" "${INTER_EPOCHS:?}"
: "${GLUE_DIR:?set GLUE_DIR to the GLUE folder}"
TEACHER=${TEACHER:-bert-base-uncased}
STUDENT=${STUDENT:-tinybert-4l-312d}
STUDENT_INIT=${STUDENT_INIT:-pretrained}
DEVICE=${DEVICE:-cpu}
OUT=${OUT:-out/$TASK}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
COMMON=(--task_name "$TASK" --glue_dir "$GLUE_DIR" --max_seq_length "$SEQ_LEN" --batch_size 32 --device "$DEVICE")
DISTILL=("${COMMON[@]}")
TRANSFER_ARGS=(${TRANSFER:+--transfer_file "$TRANSFER"})
PARALLEL=${TWIN_PARALLEL:-0}
if [ "$PARALLEL" = 1 ] && [ -n "${WORD_STUDENTS:-}" ] && [[ " ${WORD_STUDENT_ARGS:-} " != *" --max_steps "* ]]; then
  echo "error: TWIN_PARALLEL=1 needs --max_steps in WORD_STUDENT_ARGS (the twin's steps)" >&2; exit 2
fi
if [ "$PARALLEL" = 1 ] && [ "${BASELINE:-0}" = 1 ] && [[ " ${PRED_ARGS:-} " != *" --max_steps "* ]]; then
  echo "error: TWIN_PARALLEL=1 needs --max_steps in PRED_ARGS (the twin's steps)" >&2; exit 2
fi

merge_flags() {  # merge_flags "FLAGS" ...: every flag once, a later argument's value winning (defaults first,
  # then the user's *_ARGS), so a command (and the args.json and report that copy it) never repeats a flag
  local -A value=(); local -a order=() tokens; local layer flag v i
  for layer in "$@"; do
    read -ra tokens <<< "$layer"
    i=0
    while [ "$i" -lt "${#tokens[@]}" ]; do
      flag=${tokens[$i]} v=""
      if [ $((i + 1)) -lt "${#tokens[@]}" ] && [[ ${tokens[$((i + 1))]} != --* ]]; then v=${tokens[$((i + 1))]}; i=$((i + 1)); fi
      i=$((i + 1))
      [ -n "${value[$flag]+set}" ] || order+=("$flag")
      value[$flag]=$v
    done
  done
  for flag in "${order[@]}"; do printf '%s ' "$flag" ${value[$flag]:+"${value[$flag]}"}; done
}

stage() {  # stage OUTPUT_DIR COMMAND...: run unless OUTPUT_DIR holds a finished run
  local out=$1; shift
  if [ -f "$out/all_results.json" ]; then echo "== skip $out (complete)"; return; fi
  echo "== $*"
  "$@"
}

source scripts/queue.sh  # side_by_side, wait_all: the TWIN_PARALLEL queue

export_role() {  # export_role ROLE MODEL_DIR: OUT/export/ROLE, unless newer than the model
  local role=$1 src=$2
  if [ "$OUT/export/$role/export.json" -nt "$src/config.json" ]; then
    echo "== skip $OUT/export/$role (newer than $src)"; return
  fi
  # shellcheck disable=SC2086
  "$PY" export_model.py --model_dir "$src" --output_dir "$OUT/export/$role" --max_seq_length "$SEQ_LEN" \
    ${EXPORT_ARGS---onnx}
}

# The commands first (they depend on the settings only), then the schedule below.
# shellcheck disable=SC2086
TEACHER_RUN=("$PY" run_glue.py "${COMMON[@]}" --model_name_or_path "$TEACHER" --output_dir "$OUT/teacher"
             $(merge_flags "--learning_rate 2e-5 --num_train_epochs 3" "${TEACHER_ARGS:-}"))
if [ "${USE_AUG:-0}" = 1 ]; then
  DATA="$OUT/data"
  DISTILL=(--task_name "$TASK" --glue_dir "$DATA" --max_seq_length "$SEQ_LEN" --batch_size 32 --device "$DEVICE"
           --use_aug)
fi
augment() {  # OUT/data/TASK/train_aug.tsv beside links to GLUE_DIR's files (which stay untouched), unless it exists
  mkdir -p "$DATA/$TASK"
  local f
  for f in "$GLUE_DIR/$TASK"/*.tsv; do
    [ -e "$DATA/$TASK/$(basename "$f")" ] || ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$DATA/$TASK/"
  done
  if [ -f "$DATA/$TASK/train_aug.tsv" ]; then
    echo "== skip augmentation ($DATA/$TASK/train_aug.tsv exists)"; return
  fi
  # shellcheck disable=SC2086
  "$PY" data_augmentation.py --task_name "$TASK" --glue_dir "$DATA" --device "$DEVICE" \
    --pretrained_bert_model "${AUG_MODEL:-bert-base-uncased}" ${GLOVE:+--glove_embs "$GLOVE"} ${AUG_ARGS:-}
}

# a twin reads no teacher output: its --teacher_path gives it a tokenizer (and the task's labels) only
TWIN_TEACHER=${TWIN_INIT:-$OUT/teacher/best_model}
INTER_RUN=()
LABEL_FIRST=0  # a BERT-shaped student beside its twin: the rows labelled first, then both queued
case $STUDENT in
  bilstm|cnn|bow)
    # word students have no layers to match: prediction-layer distillation only (Tang et al.'s MSE on logits),
    # embeddings from GLOVE when given; WORD_ARGS for their hyper-parameters (--hidden_size ...)
    PRED_FLAGS=$(merge_flags "--learning_rate 1e-3 --num_train_epochs 3" "${WORD_ARGS:-}" "${PRED_ARGS:-}")
    # shellcheck disable=SC2086
    PRED=("$PY" task_distill.py "${DISTILL[@]}" --teacher_path "$OUT/teacher/best_model"
          --student_model_name_or_path "$STUDENT" --output_dir "$OUT/pred" --distill_config configs/tang_mse.json
          --cache_teacher_logits --cache_dir "$OUT/teacher_logits" "${TRANSFER_ARGS[@]}" ${GLOVE:+--glove_embs "$GLOVE"}
          $PRED_FLAGS)
    BASELINE_INIT=() ;;
  *)
    START=(--student_model_name_or_path "$STUDENT" --student_init "$STUDENT_INIT")
    if [ "${INTER:-1}" = 1 ]; then
      # shellcheck disable=SC2086
      INTER_RUN=("$PY" task_distill.py "${DISTILL[@]}" --intermediate_distill --teacher_path "$OUT/teacher/best_model"
                 "${START[@]}" --output_dir "$OUT/inter"
                 $(merge_flags "--learning_rate 5e-5 --num_train_epochs $INTER_EPOCHS" "${INTER_ARGS:-}"))
      START=(--student_model_name_or_path "$OUT/inter/best_inter_model")
    fi
    PRED_FLAGS=$(merge_flags "--learning_rate 3e-5 --num_train_epochs 3" "${PRED_ARGS:-}")
    # shellcheck disable=SC2086
    PRED=("$PY" task_distill.py "${DISTILL[@]}" --teacher_path "$OUT/teacher/best_model" "${START[@]}"
          --output_dir "$OUT/pred" --cache_dir "$OUT/teacher_logits" "${TRANSFER_ARGS[@]}" $PRED_FLAGS)
    BASELINE_INIT=(--student_init "$STUDENT_INIT")
    [ "$STUDENT_INIT" != teacher ] || BASELINE_INIT+=(${TWIN_INIT:+--init_from "$TWIN_INIT"})
    if [ "$PARALLEL" = 1 ] && [ "${BASELINE:-0}" = 1 ]; then LABEL_FIRST=1; fi ;;
esac
EARLY_TWINS=0  # the twins queued first, the teacher's side (fine-tuning, stage 1, labelling) one queued run beside them
# (not with USE_AUG: a word twin reads the augmented folder, which the teacher's side writes)
if [ "$LABEL_FIRST" = 1 ] && [ -n "${TWIN_INIT:-}" ] && [ "${USE_AUG:-0}" != 1 ] && [ "$PARALLEL_RUNS" -ge 2 ]; then
  EARLY_TWINS=1
fi

train_steps() { "$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['train_steps'])" "$1/all_results.json"; }
twin_run() {  # twin_run: the gold-only twin of the student in OUT/pred, from the student's own flags and the
  # distilled run's step count (its epochs also covered augmented or transfer rows); BASELINE_ARGS may still override
  local steps=()
  [ "$PARALLEL" = 1 ] || steps=(--max_steps "$(train_steps "$OUT/pred")")  # else PRED_ARGS' --max_steps
  # shellcheck disable=SC2086
  stage "$OUT/baseline" "$PY" task_distill.py "${COMMON[@]}" --teacher_path "$TWIN_TEACHER" \
    --student_model_name_or_path "$STUDENT" "${BASELINE_INIT[@]}" --pred_weight 0 --hard_label_weight 1 \
    --output_dir "$OUT/baseline" "${TRANSFER_ARGS[@]}" ${GLOVE:+--glove_embs "$GLOVE"} \
    $(merge_flags "$PRED_FLAGS" "${steps[*]}" "${BASELINE_ARGS:-}")
}
word_run() {  # word_run STUDENT DIR TEACHER FLAGS...: one word student (distilled or twin) with WORD_STUDENT_ARGS
  local word=$1 dir=$2 teacher=$3; shift 3
  # shellcheck disable=SC2086
  stage "$dir" "$PY" task_distill.py "${DISTILL[@]}" --teacher_path "$teacher" \
    --student_model_name_or_path "$word" --output_dir "$dir" "$@" "${TRANSFER_ARGS[@]}" ${GLOVE:+--glove_embs "$GLOVE"} \
    $(merge_flags "--learning_rate 1e-3 --num_train_epochs 3" "${WORD_STUDENT_ARGS:-}")
}
# a distilled word student learns the teacher's outputs on every row and the gold labels of the labelled ones
# (weight 1: on low-label SST-2 this beat the teacher's outputs alone by 1-3 points; docs/BENCHMARKS.md)
DISTILLED=(--cache_teacher_logits --cache_dir "$OUT/teacher_logits" --hard_label_weight 1)
WORD_TWIN=(--pred_weight 0 --hard_label_weight 1)
word_twin() { word_run "$1" "$OUT/students/$1-twin" "$TWIN_TEACHER" "${WORD_TWIN[@]}" "${@:2}"; }

teacher_side() {  # what every distilled student needs: the teacher, [augmented rows], [stage 1], [the labels]
  stage "$OUT/teacher" "${TEACHER_RUN[@]}"
  if [ "${USE_AUG:-0}" = 1 ]; then augment; fi
  if [ "${#INTER_RUN[@]}" -gt 0 ]; then stage "$OUT/inter" "${INTER_RUN[@]}"; fi
  if [ "$LABEL_FIRST" = 1 ]; then stage "$OUT/pred" "${PRED[@]}" --label_part 1/1; fi
}
distil_and_export() {  # distil_and_export: the prediction stage, then (with the report) its export
  stage "$OUT/pred" "${PRED[@]}"
  [ "${REPORT:-1}" != 1 ] || export_role student "$OUT/pred/best_model"
}

# The schedule.
if [ "$EARLY_TWINS" = 1 ]; then
  side_by_side teacher_side  # one thread, beside the twins (small steps use a second core poorly)
  teacher_job=$queue_started
  side_by_side twin_run
  for word in ${WORD_STUDENTS:-}; do side_by_side word_twin "$word"; done
  queue_wait "$teacher_job"
else
  teacher_side
fi
if [ "$LABEL_FIRST" = 1 ]; then side_by_side distil_and_export; else stage "$OUT/pred" "${PRED[@]}"; fi
if [ "$EARLY_TWINS" = 0 ] && [ "${BASELINE:-0}" = 1 ]; then
  if [ "$PARALLEL" = 1 ]; then side_by_side twin_run; else twin_run; fi
fi
for word in ${WORD_STUDENTS:-}; do  # each beside its twin: same vocabulary, steps and learning rate, gold labels only
  dir="$OUT/students/$word"
  if [ "$PARALLEL" = 1 ]; then
    # queued beside the runs above, one thread each (small steps use a second core poorly); the step count is
    # WORD_STUDENT_ARGS' --max_steps, so the twin needs nothing from the distilled run
    side_by_side word_run "$word" "$dir" "$OUT/teacher/best_model" "${DISTILLED[@]}"
    [ "$EARLY_TWINS" = 1 ] || side_by_side word_twin "$word"
  else
    word_run "$word" "$dir" "$OUT/teacher/best_model" "${DISTILLED[@]}"
    word_twin "$word" --max_steps "$(train_steps "$dir")"  # the distilled run's steps
  fi
done

if [ "${REPORT:-1}" = 1 ]; then
  if [ "$PARALLEL" = 1 ]; then side_by_side export_role teacher "$OUT/teacher/best_model"  # the first free core
  else export_role teacher "$OUT/teacher/best_model"; fi
  wait_all
  export_role student "$OUT/pred/best_model"  # skipped when its queued job exported it
  "$PY" report.py --out "$OUT"
else
  wait_all
  "$PY" - "$OUT" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
print(f"\n| {out} | main dev metric | best step |\n| --- | --- | --- |")
for stage in ("teacher", "inter", "pred"):
    if not os.path.isfile(os.path.join(out, stage, "all_results.json")):
        continue  # a word student has no stage 1
    with open(os.path.join(out, stage, "all_results.json")) as f:
        r = json.load(f)
    key = r["main_metric"]
    print(f"| {stage} | {key} = {r[key]:.4f} | {r['best_step']} |")
PYEOF
fi
