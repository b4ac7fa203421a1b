# Sourced by the bench/real_*.sh runs: the interpreter, data, teacher checkpoint and the skip-if-done runner.
# Needs `bash setup.sh` (the MiniLM teacher package) and a GLUE directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
GLUE_DIR=${GLUE_DIR:-../shared/data/glue}
source scripts/pip_paths.sh
MINILM=$(minilm_path)
# a stage whose all_results.json exists is complete (results are written last, by rename): skip it
# timed NAME command...: the same for a stage in $OUT/NAME, its log in $OUT/NAME.log, its wall time in $OUT/times.tsv
timed() {
  local name=$1; shift
  [ -f "$OUT/$name/all_results.json" ] && { echo "== skip $name"; return; }
  local t0; t0=$(date +%s)
  echo "== $name: $*"; "$@" > "$OUT/$name.log" 2>&1
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - t0 ))" >> "$OUT/times.tsv"
}
train_steps() { "$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['train_steps'])" "$1/all_results.json"; }
run() { local out=$1; shift; [ -f "$out/all_results.json" ] && { echo "== skip $out"; return; }; echo "== $*"; "$@"; }
# tinybert_phases FILE [INTER_SHARE [HARD_LABEL_WEIGHT]]: TinyBERT's two stages as two phases of one run
tinybert_phases() {
  echo '{"phases": {"preset": "tinybert", "inter_share": '"${2:-0.5}"'}, "hard_label_weight": '"${3:-0}"',
  "intermediate_matches": [{"preset": "tinybert"}]}' > "$1"
}
