#!/usr/bin/env bash
# The README's small-student results: BiLSTM, CNN and bag-of-words students distilled from the fine-tuned MiniLM
# teacher on Tang-augmented data (Tang et al.'s MSE on logits, teacher logits cached once), each against the same
# student trained on gold labels only (the original training set; augmented rows carry copied, unverified labels).
# Needs `bash setup.sh`, a fine-tuned teacher (TEACHER, e.g. bench/real_sst2.sh's) and the augmented set:
#   data_augmentation.py --task_name SST-2 --glue_dir AUG_GLUE --method tang --pretrained_bert_model none --glove_embs $KUMO
#   TASK=SST-2 AUG_GLUE=out/real/glue TEACHER=out/real/sst2/teacher/best_model OUT=out/real/sst2 bash bench/real_word_students.sh
# Each run writes OUT/<arch>-kd and OUT/<arch>-gold (all_results.json) and its peak RSS (/usr/bin/time) beside it.
source "$(dirname "$0")/real_env.sh"
TASK=${TASK:-SST-2}
AUG_GLUE=${AUG_GLUE:?the GLUE folder holding TASK/train_aug.tsv beside train.tsv and dev.tsv}
TEACHER=${TEACHER:?the fine-tuned teacher folder}
OUT=${OUT:?output folder}
ARCHS=${ARCHS:-bilstm cnn bow}
KD_EPOCHS=${KD_EPOCHS:-1}      # over the augmented set (~15x the original rows)
GOLD_EPOCHS=${GOLD_EPOCHS:-10}  # over the original set: about as many steps as the distilled run takes
# KD_ARGS / GOLD_ARGS: extra flags per run, e.g. "--max_steps 2000" for the same step budget on a small CPU
# PARALLEL=1: each architecture's two runs side by side, one thread each (LSTM steps at batch 64 use 2 cores poorly)
SEQ_LEN=${SEQ_LEN:-64}
KUMO=$(glove_path)
COMMON=(--task_name "$TASK" --glue_dir "$AUG_GLUE" --teacher_path "$TEACHER" --max_seq_length "$SEQ_LEN"
        --batch_size 64 --eval_batch_size 256 --learning_rate 1e-3 --warmup_proportion 0.01 --weight_decay 0
        --glove_embs "$KUMO" --logging_steps 200 ${EXTRA_ARGS:-})
with_peak_memory() {  # with_peak_memory OUT command...: /usr/bin/time -v into OUT.time
  local out=$1; shift; mkdir -p "$(dirname "$out")"; /usr/bin/time -v -o "$out.time" "$@"; }

for arch in $ARCHS; do
  if [ "${PARALLEL:-0}" = 1 ]; then export OMP_NUM_THREADS=1; fi
  run "$OUT/$arch-kd" with_peak_memory "$OUT/$arch-kd" "$PY" task_distill.py "${COMMON[@]}" --use_aug --output_dir "$OUT/$arch-kd" \
    --student_model_name_or_path "$arch" --distill_config configs/tang_mse.json --cache_teacher_logits \
    --cache_dir "$OUT/teacher_logits" --num_train_epochs "$KD_EPOCHS" --save_steps "${KD_SAVE_STEPS:-2000}" ${KD_ARGS:-} &
  [ "${PARALLEL:-0}" = 1 ] || wait
  run "$OUT/$arch-gold" with_peak_memory "$OUT/$arch-gold" "$PY" task_distill.py "${COMMON[@]}" --output_dir "$OUT/$arch-gold" \
    --student_model_name_or_path "$arch" --pred_weight 0 --hard_label_weight 1 \
    --num_train_epochs "$GOLD_EPOCHS" --save_steps "${GOLD_SAVE_STEPS:-1000}" ${GOLD_ARGS:-}
  wait
done

"$PY" - "$OUT" "$TEACHER" $ARCHS <<'PYEOF'
import json, os, re, sys
out, teacher, archs = sys.argv[1], sys.argv[2], sys.argv[3:]
t = json.load(open(os.path.join(os.path.dirname(teacher), "all_results.json")))
key = t["main_metric"]
def rss(run):
    try:
        text = open(os.path.join(out, run) + ".time").read()
        kbytes = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
        return f"{kbytes / 1e6:.2f} GB"
    except (OSError, AttributeError):
        return "-"
print(f"| student | params | {key} distilled | {key} gold only | gain | % of teacher ({t[key]:.4f}) | peak RSS (kd) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for arch in archs:
    kd, gold = (json.load(open(os.path.join(out, f"{arch}-{k}", "all_results.json"))) for k in ("kd", "gold"))
    print(f"| {arch} | {kd['student_parameters']:,} | {kd[key]:.4f} | {gold[key]:.4f} | {100 * (kd[key] - gold[key]):+.1f} "
          f"| {kd[key] / t[key]:.1%} | {rss(arch + '-kd')} |")
PYEOF
