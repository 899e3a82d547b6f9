#!/bin/bash
# bench/engine.sh: how many concurrent streams one `prefixlb engine` process
# sustains, and its CPU cost per streamed token.
# 8 replicas, max_num_seqs 1024 and a large KV cache so every stream decodes at
# once; time scale 20 so the simulated GPUs are not the bottleneck. The load
# client (bench/engine_load.c, libuv) runs on the other core.
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
STREAMS=${STREAMS:-8000}
TOKENS=${TOKENS:-200}
make -s "$B/prefixlb" "$B/bench/engine_load"
pf=$(mktemp)
rm -f "$pf"
"$B/prefixlb" engine --port 0 --ports-file "$pf" --replicas 8 --time-scale "${SCALE:-20}" \
	--max-num-seqs 1024 --kv-capacity-tokens 4000000 --max-num-batched-tokens 65536 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$pf"' EXIT
for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.1; done
rss0=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
"$B/bench/engine_load" "$pf" "$pid" "$STREAMS" "$TOKENS"
rss=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
echo "engine: rss_start_kb=$rss0 rss_peak_kb=$rss"
