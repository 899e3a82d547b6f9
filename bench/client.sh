#!/bin/bash
# bench/client.sh: what one `prefixlb bench` process drives: STREAMS concurrent
# streamed requests (rate inf, --max-concurrency STREAMS) against an 8-replica
# engine fleet, and the SSE chunks per second it receives, with its CPU time.
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
STREAMS=${STREAMS:-8000}
make -s "$B/prefixlb"
tmp=$(mktemp -d)
trap 'kill $epid 2>/dev/null; rm -rf "$tmp"' EXIT
"$B/prefixlb" dataset --out "$tmp/ds.json" --conversations 2000 >/dev/null
"$B/prefixlb" engine --port 0 --ports-file "$tmp/p" --replicas 8 --time-scale ${SCALE:-20} --max-num-seqs 2048 \
	--kv-capacity-tokens 40000000 --max-num-batched-tokens 2000000 2>/dev/null &
epid=$!
for _ in $(seq 100); do [ -s "$tmp/p" ] && break; sleep 0.1; done
# the bench client speaks to one address: replica 0 (all streams on one replica)
port=$(head -1 "$tmp/p")
/usr/bin/time -f "bench: cpu_user_s=%U cpu_sys_s=%S max_rss_kb=%M wall_s=%e" \
	"$B/prefixlb" bench --disable-tqdm --base-url "http://127.0.0.1:$port" --dataset-path "$tmp/ds.json" \
	--num-prompts "$STREAMS" --max-conversations "$STREAMS" --max-concurrency "$STREAMS" --request-rate inf \
	> "$tmp/out" 2> "$tmp/err" || true
grep -E "Successful|Failed|duration|Total generated|Output token|timing" "$tmp/out"
tail -1 "$tmp/err"
awk '/Total generated tokens/{t=$4} /Benchmark duration/{d=$4} END{printf "bench: SSE chunks received per second: %.0f\n", t/d}' "$tmp/out"
