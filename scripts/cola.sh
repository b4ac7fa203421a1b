#!/usr/bin/env bash
# CoLA with TinyBERT's published settings: max_seq_length 64, 50 intermediate epochs, 3 prediction epochs,
# batch 32, lr 5e-5 then 3e-5. Environment variables: see run_task.sh (GLUE_DIR is required).
TASK=CoLA SEQ_LEN=64 INTER_EPOCHS=50 exec bash "$(dirname "$0")/run_task.sh"
