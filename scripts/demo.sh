#!/usr/bin/env bash
# The built-in default, end to end in a few minutes on 2 CPU cores, no download: a synthetic SST-2-format task,
# random word vectors and tiny random BERTs written to demo/, then teacher -> augmentation -> stage 1 -> stage 2
# -> gold-label baseline -> export -> demo/report.md.      OUT=demo PY=.venv/bin/python bash scripts/demo.sh
exec bash "$(dirname "$0")/pipeline.sh" demo
