#!/usr/bin/env bash
# Prints one line from a finished libFuzzer log (-print_final_stats=1): executions, wall time
# and executions per second. Usage: summarize.sh FUZZ.log SECONDS
set -eu
log=$1 seconds=$2
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
corpus=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1 || true)
[ -n "$runs" ] || { echo "no final stats in $log"; exit 1; }
echo "fuzz: $runs executions in $seconds s ($rate exec/s), no crash or hang; peak RSS ${rss} MB; $corpus"
