#!/usr/bin/env bash
# What each tracer costs the server it watches: iolab's epoll and select servers under the C load
# generator (bench/echo-load.c, so that the load is never the bottleneck), untraced, under the
# eBPF observer and under strace, at 1 and 64 connections. The tracers are attached exactly as a
# lab attaches them (`iolab observe --pid PID --tracer bpf|strace`, whose /proc probe runs in
# every case, untraced too). Runs are interleaved: every case once, then again, REPS times, so a
# noisy moment of the machine falls on all of them. Prints each case's round trips per second
# (median and every run) and the ratios to untraced. It measures, it never judges: no threshold.
#
# Usage: bench/observer.sh [REPS] [SECONDS]     (defaults 5 and 3; from a built checkout, as root)
# Needs gcc, strace, bpftrace and `npm run build`. Pins the server to CPU 0 and the load to CPU 1.
set -u
REPS=${1:-5}
SECS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
IOLAB="$HERE/../bin/iolab.js"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; kill $(jobs -p) 2>/dev/null' EXIT
gcc -O2 -o "$WORK/load" "$HERE/echo-load.c" || exit 1
port=7600

# start_server MODEL: sets SERVER (its pid) once it accepts connections.
start_server() {
  port=$((port + 1))
  taskset -c 0 node "$IOLAB" server --model "$1" --host 127.0.0.1 --port "$port" >/dev/null 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.1; done
  echo "bench: the $1 server did not listen on $port" >&2
  exit 1
}

# observe TRACER (none, bpf, strace): sets OBSERVER once it has attached and started its window.
observe() {
  local args=(observe --pid "$SERVER")
  [ "$1" != none ] && args+=(--tracer "$1")
  rm -f "$WORK/observed"
  node "$IOLAB" "${args[@]}" >"$WORK/observed" 2>"$WORK/observer.err" &
  OBSERVER=$!
  for _ in $(seq 1 600); do grep -q baseline "$WORK/observed" 2>/dev/null && break; sleep 0.05; done
  kill -USR2 "$OBSERVER"
  for _ in $(seq 1 200); do grep -q '"window"' "$WORK/observed" 2>/dev/null && break; sleep 0.05; done
}

stop() {
  kill -TERM "$OBSERVER" 2>/dev/null
  wait "$OBSERVER" 2>/dev/null
  kill "$SERVER" 2>/dev/null
  wait "$SERVER" 2>/dev/null
}

declare -A RESULT
cases=()
for model in epoll select; do for connections in 1 64; do for tracer in none bpf strace; do cases+=("$model $connections $tracer"); done; done; done
for repetition in $(seq 1 "$REPS"); do
  for c in "${cases[@]}"; do
    set -- $c
    start_server "$1"
    observe "$3"
    value=$(taskset -c 1 "$WORK/load" 127.0.0.1 "$port" "$2" "$SECS" 2>/dev/null | grep -oE '[0-9.]+' | head -1)
    stop
    RESULT["$c"]="${RESULT["$c"]:-} ${value:-0}"
  done
  echo "bench: repetition $repetition of $REPS done" >&2
done

median() { printf '%s\n' $1 | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-7s %5s %-7s %12s   %-8s  %s\n' model conns tracer 'median rt/s' 'of none' 'every run'
for c in "${cases[@]}"; do
  set -- $c
  m=$(median "${RESULT[$c]}")
  base=$(median "${RESULT["$1 $2 none"]}")
  ratio=$(awk -v a="$m" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  printf '%-7s %5s %-7s %12.0f   %-8s %s\n' "$1" "$2" "$3" "$m" "$ratio" "${RESULT[$c]}"
done
