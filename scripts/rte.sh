#!/usr/bin/env bash
# RTE with TinyBERT's published settings: max_seq_length 128, 20 intermediate epochs, 3 prediction epochs,
# batch 32, lr 5e-5 then 3e-5. Environment variables: see run_task.sh (GLUE_DIR is required).
TASK=RTE SEQ_LEN=128 INTER_EPOCHS=20 exec bash "$(dirname "$0")/run_task.sh"
