# Sourced by run_task.sh and bench/real_low_label.sh: a queue of one-thread background runs.
#   side_by_side COMMAND...   the command on one thread, in the background, once fewer than PARALLEL_RUNS (default:
#                             the CPU count) are running; two one-thread runs of the same length can end a minute
#                             apart on a shared VM, and the next run takes the freed core instead of waiting
#   wait_all                  every queued run finishes; then the first failure's status stops the script
PARALLEL_RUNS=${PARALLEL_RUNS:-$(nproc)}
queued_pids=()

side_by_side() {
  while [ "$(jobs -pr | wc -l)" -ge "$PARALLEL_RUNS" ]; do sleep 0.5; done
  OMP_NUM_THREADS=1 "$@" & queued_pids+=($!)
}

wait_all() {
  local rc=0 pid
  for pid in "${queued_pids[@]}"; do wait "$pid" || rc=$?; done
  queued_pids=()
  [ "$rc" = 0 ] || exit "$rc"
}
