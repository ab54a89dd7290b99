#!/usr/bin/env bash
# How close iolab's load generator comes to the C reference generator: both drive the C reference
# server (bench/echo-server.c) in echo mode, 64-byte messages, at 1 and at 64 connections.
# C load = bench/echo-load.c (a plain epoll ping-pong loop, no checks); iolab = `iolab client
# --mode echo` (every reply checked and timed). Runs are interleaved: every case once, then again,
# REPS times, so a noisy moment of the machine falls on all of them; each run gets a fresh server.
# Prints each case's round trips per second (median and every run), the client's and the server's
# CPU (median, % of one core), the client's CPU time per round trip (median, µs: what the load
# generator costs, less sensitive to a busy machine than throughput) and the ratios iolab/C: of
# the medians, and the median of each repetition's own ratio (its two runs were seconds apart, so
# a burst of other work on the machine tends to fall on both: the steadier figure when it is busy).
# It measures, it never judges: no threshold.
#
# Usage: bench/generator.sh [REPS] [SECONDS]     (defaults 5 and 3; from a built checkout)
# Needs gcc, python3 and `npm run build`. Pins the server to CPU 0 and the load to CPU 1: unpinned,
# the scheduler may put both on one core and a run falls to half speed at random.
# IOLAB_CLIENT_ENGINE=epoll (or io_uring) is passed through to the iolab client: compare the engines.
# NICE=-10 (as root) runs server and loads at that niceness: fewer outliers when other jobs share
# the machine (they still do: quote the ratios, not the absolutes).
set -u
REPS=${1:-5}
SECS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
IOLAB="$HERE/../bin/iolab.js"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; kill $(jobs -p) 2>/dev/null' EXIT
gcc -O2 -o "$WORK/server" "$HERE/echo-server.c" || exit 1
gcc -O2 -o "$WORK/load" "$HERE/echo-load.c" || exit 1
TICKS=$(getconf CLK_TCK)
NICE=${NICE:-0}
port=7700

# cpu_ticks PID: utime + stime of the process so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run_case LOAD CONNECTIONS: one run against a fresh server; prints "ROUND_TRIPS_PER_S CLIENT_CPU SERVER_CPU".
run_case() {
  port=$((port + 1))
  nice -n "$NICE" taskset -c 0 "$WORK/server" "$port" >/dev/null 2>&1 &
  local server=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  local before after started ended rate client
  before=$(cpu_ticks $server)
  started=$(date +%s.%N)
  case $1 in
    c)
      # The C load's CPU over its whole life (connecting included: negligible), from /usr/bin/time.
      rate=$( { /usr/bin/time -f '%U %S %e' nice -n "$NICE" taskset -c 1 "$WORK/load" 127.0.0.1 "$port" "$2" "$SECS" >"$WORK/out" 2>"$WORK/time"; } ; cat "$WORK/out")
      client=$(tail -1 "$WORK/time" | awk '{ if ($3 > 0) printf "%.1f", 100 * ($1 + $2) / $3; else print 0 }')
      ;;
    iolab)
      nice -n "$NICE" taskset -c 1 node "$IOLAB" client --target "127.0.0.1:$port" --connections "$2" --duration "$SECS" --mode echo >"$WORK/out" 2>/dev/null
      local engine
      read -r rate client engine < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["roundTrips"]/d["durationSeconds"]) if d["durationSeconds"] > 0 else 0, d["cpuPercent"], d.get("engine", "?"))' "$WORK/out")
      echo "$engine" >"$WORK/engine"
      ;;
  esac
  after=$(cpu_ticks $server)
  ended=$(date +%s.%N)
  kill $server 2>/dev/null
  wait $server 2>/dev/null
  # Server CPU over the whole run (connects and warm-up included: a few percent low at most).
  local server_cpu
  server_cpu=$(python3 -c "print(round(100 * ($after - $before) / $TICKS / ($ended - $started)))")
  echo "${rate:-0} ${client:-0} $server_cpu"
}

declare -A RATE CLIENT SERVER COST
CASES=("c 1" "iolab 1" "c 64" "iolab 64")
for _ in $(seq 1 "$REPS"); do
  for case in "${CASES[@]}"; do
    read -r rate client server < <(run_case $case)
    RATE[$case]="${RATE[$case]:-} $rate"
    CLIENT[$case]="${CLIENT[$case]:-} $client"
    SERVER[$case]="${SERVER[$case]:-} $server"
    COST[$case]="${COST[$case]:-} $(python3 -c "print(round($client * 1e4 / $rate, 2) if $rate > 0 else 0)")"
  done
done

median() { printf '%s\n' $1 | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "iolab client engine: $(cat "$WORK/engine" 2>/dev/null || echo '?')   ($REPS runs of ${SECS}s each, interleaved, nice $NICE)"
printf '%-10s %12s %11s %11s %14s   %s\n' "load conns" "rt/s median" "client CPU" "server CPU" "client µs/rt" "every run (rt/s)"
for case in "${CASES[@]}"; do
  printf '%-10s %12s %10s%% %10s%% %14s   %s\n' "$case" "$(median "${RATE[$case]}")" "$(median "${CLIENT[$case]}")" "$(median "${SERVER[$case]}")" "$(median "${COST[$case]}")" "${RATE[$case]# }"
done
ratio() { python3 -c "print(f'{$1 / $2:.2f}' if $2 > 0 else 'n/a')"; }
# paired IOLAB_RUNS C_RUNS: the median of the ratios of the runs of the same repetition.
paired() { python3 -c "import statistics, sys; a, b = sys.argv[1].split(), sys.argv[2].split(); print(f'{statistics.median(float(x) / float(y) for x, y in zip(a, b) if float(y) > 0):.2f}')" "$1" "$2" 2>/dev/null || echo n/a; }
echo "iolab/C @1: $(ratio "$(median "${RATE[iolab 1]}")" "$(median "${RATE[c 1]}")")   @64: $(ratio "$(median "${RATE[iolab 64]}")" "$(median "${RATE[c 64]}")")   (ratio of the medians)"
echo "iolab/C @1: $(paired "${RATE[iolab 1]}" "${RATE[c 1]}")   @64: $(paired "${RATE[iolab 64]}" "${RATE[c 64]}")   (median of the paired ratios)"
