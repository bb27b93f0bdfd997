#!/usr/bin/env bash
# Runs one command per Keras backend, all at once, and fails if any fails.
#
#   tools/run_per_backend.sh "jax tensorflow torch" LOG_DIR COMMAND [ARGS...]
#
# Each run gets KERAS_BACKEND=<backend> and writes its output to LOG_DIR/<backend>.log; a line
# reports each end (status, seconds, last line), and the log of a failed run is printed whole.
# `make test` runs the three pytest sessions (each followed by its fixture checker) this way: the suite's tiny models spend most of
# their time in single-threaded XLA compilation and Python, so on the 2-core CI machine three
# sessions side by side take about the longest one's time instead of the sum. torch runs with
# one intra-op thread here (its OpenMP team collapses when the cores are shared; see
# keras_givt/utils/torch_threads.py). JOBS=1 runs them one after the other instead.
set -uo pipefail
backends=$1
log_dir=$2
shift 2
mkdir -p "$log_dir"
jobs=${JOBS:-0}
declare -A pids starts
status=0

report() {  # backend, exit status
    local b=$1 rc=$2 pytest_summary
    local secs=$(( $(date +%s) - ${starts[$b]} ))
    local last
    last=$(grep -v '^\s*$' "$log_dir/$b.log" | tail -n 1)
    # pytest's summary too, when the run's last line is another command's (`make test`).
    pytest_summary=$(grep -E '^=* ?[0-9]+ (passed|failed).* in [0-9.]+s' "$log_dir/$b.log" | tail -n 1)
    if [ -n "$pytest_summary" ] && [ "$pytest_summary" != "$last" ]; then
        last="$pytest_summary | $last"
    fi
    echo "=== $b: exit $rc after ${secs} s: $last"
    if [ "$rc" != 0 ]; then
        echo "--- $log_dir/$b.log ---"
        cat "$log_dir/$b.log"
        echo "--- end of $b ---"
        status=1
    fi
}

for b in $backends; do
    starts[$b]=$(date +%s)
    extra=()
    if [ "$jobs" != 1 ] && [ "$b" = torch ]; then
        extra=(env OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}")
    fi
    echo "=== $b: started ($*)"
    if [ "$jobs" = 1 ]; then
        KERAS_BACKEND=$b "${extra[@]}" "$@" >"$log_dir/$b.log" 2>&1
        report "$b" $?
    else
        KERAS_BACKEND=$b "${extra[@]}" "$@" >"$log_dir/$b.log" 2>&1 &
        pids[$b]=$!
    fi
done
if [ "$jobs" != 1 ] && (( BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501 )); then
    for b in $backends; do  # bash < 5.1 has no `wait -n -p`: reported in order.
        wait "${pids[$b]}"
        report "$b" $?
    done
elif [ "$jobs" != 1 ]; then
    declare -A backend_of
    for b in $backends; do backend_of[${pids[$b]}]=$b; done
    for _ in $backends; do  # Reported as they end.
        wait -n -p done_pid
        rc=$?
        report "${backend_of[$done_pid]}" $rc
    done
fi
exit $status
