# Sourced by run_task.sh and bench/real_low_label.sh: a queue of one-thread background runs.
#   side_by_side COMMAND...   the command on one thread, in the background, once fewer than PARALLEL_RUNS (default:
#                             the CPU count) are running; two one-thread runs of the same length can end a minute
#                             apart on a shared VM, and the next run takes the freed core instead of waiting
#   queue_wait N              the Nth queued run has ended; if it failed, the other queued runs are stopped and
#                             its status stops the script
#   wait_all                  every queued run finishes; then the first failure's status stops the script
# Each run writes its exit status to a file as it ends. Statuses are never asked of bash by pid: over an hour-long
# queue the pids of runs that ended early are reused ("wait: pid N is not a child of this shell"), and `wait -n`
# does not see runs that ended while the script was waiting on something else.
PARALLEL_RUNS=${PARALLEL_RUNS:-$(nproc)}
queue_dir=""  # made by the first side_by_side, removed by wait_all
queue_started=0
queue_pids=()  # queue_pids[N]: the Nth queued run's process

queue_run() {  # queue_run STATUS_FILE COMMAND...: the command (with the caller's errexit), then its status
  local file=$1 errexit=${-//[^e]/}; shift
  set +e
  (if [ -n "$errexit" ]; then set -e; fi; OMP_NUM_THREADS=1 "$@")
  echo $? > "$file.tmp" && mv "$file.tmp" "$file"
}

queue_ended() {  # how many queued runs have ended
  local n=0 f
  for f in "$queue_dir"/*.status; do if [ -e "$f" ]; then n=$((n + 1)); fi; done
  echo "$n"
}

side_by_side() {
  if [ -z "$queue_dir" ]; then queue_dir=$(mktemp -d "${TMPDIR:-/tmp}/queue.XXXXXX"); fi
  while [ $((queue_started - $(queue_ended))) -ge "$PARALLEL_RUNS" ]; do sleep 0.5; done
  queue_started=$((queue_started + 1))
  queue_run "$(printf '%s/%06d.status' "$queue_dir" "$queue_started")" "$@" &
  queue_pids[queue_started]=$!
}

stop_tree() {  # stop_tree PID: the process and everything it started (a queued run's subshells and its python;
  # pgrep is procps', as on every Linux this runs on)
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do stop_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

queue_wait() {
  local file status
  file=$(printf '%s/%06d.status' "$queue_dir" "$1")
  while [ ! -e "$file" ] && kill -0 "${queue_pids[$1]}" 2>/dev/null; do sleep 0.5; done
  if [ -e "$file" ]; then status=$(<"$file"); else status=1; fi  # gone without its status: killed from outside
  if [ "$status" != 0 ]; then
    echo "error: queued run $1 failed (exit $status); stopping the other queued runs" >&2
    local pid
    for pid in $(jobs -p); do stop_tree "$pid"; done
    wait || true
    rm -rf "$queue_dir"
    exit "$status"
  fi
}

wait_all() {
  wait  # every run; their statuses are in the files
  local status=0 f
  if [ -z "$queue_dir" ]; then return; fi
  for f in "$queue_dir"/*.status; do
    if [ -e "$f" ] && [ "$status" = 0 ]; then status=$(<"$f"); fi
  done
  rm -rf "$queue_dir"
  queue_dir="" queue_started=0 queue_pids=()
  if [ "$status" != 0 ]; then exit "$status"; fi
}
