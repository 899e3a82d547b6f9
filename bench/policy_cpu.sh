#!/bin/bash
# bench/policy_cpu.sh: what each routing policy costs the router, per request,
# on chat completions with a ~3,000-token prompt (issue "Beyond CHWBL": token
# blocks at most 2x prefix-hash's CPU, character blocks at most 1.2x).
#
# One engine fleet (`prefixlb engine`, 4 replicas, a huge time scale: GPU time
# ~0) behind one router per configuration, all started in the same run. Each
# configuration gets the same requests from `prefixlb bench` (500 single-turn
# conversations of 3,000 user tokens, each sent 4 times: 2,000 requests, 8 in
# flight, max_tokens 1); its CPU is read from /proc/PID/stat (user + system)
# before and after. REPS rounds, configurations interleaved in each round
# (machines drift); the median per configuration, and its ratio to
# prefix-hash's median. Prints the index memory each router reports.
#
#   bench/policy_cpu.sh                 # REPS=3 N=2000
#   POLICIES="prefix-hash lowest-ttft:tokens" bench/policy_cpu.sh
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
REPS=${REPS:-3}
N=${N:-2000}
POLICIES=${POLICIES:-"prefix-hash lowest-ttft:tokens lowest-ttft:chars dynamo:tokens llm-d:chars smg:tokens aibrix:tokens"}
make -s "$B/prefixlb"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
waitfile() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "timeout: $1" >&2; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

"$B/prefixlb" dataset --out "$tmp/chat.json" --preset chat --conversations 500 --turns constant:1 \
	--user-tokens constant:3000 --assistant-tokens constant:8 >/dev/null
"$B/prefixlb" engine --port 0 --ports-file "$tmp/eports" --replicas 4 --time-scale 1000000 \
	--max-num-seqs 4096 --kv-capacity-tokens 20000000 --max-num-batched-tokens 1000000 2>/dev/null &
pids+=($!)
waitfile "$tmp/eports"
backends=()
for p in $(cat "$tmp/eports"); do backends+=(--backend "http://127.0.0.1:$p"); done

declare -A rpid rport
i=0
for cfg in $POLICIES; do
	pol=${cfg%%:*}
	blocks=auto
	[ "$cfg" != "$pol" ] && blocks=${cfg#*:}
	"$B/prefixlb" route --listen 127.0.0.1:0 --ports-file "$tmp/rport$i" --access-log off --policy "$pol" \
		--prefix-blocks "$blocks" "${backends[@]}" 2>"$tmp/route$i.err" &
	pids+=($!)
	rpid[$cfg]=$!
	waitfile "$tmp/rport$i"
	rport[$cfg]=$(cat "$tmp/rport$i")
	i=$((i + 1))
done

declare -A samples
for rep in $(seq "$REPS"); do
	for cfg in $POLICIES; do
		before=$(cpu_ticks "${rpid[$cfg]}")
		"$B/prefixlb" bench --base-url "http://127.0.0.1:${rport[$cfg]}" --backend openai-chat \
			--dataset-path "$tmp/chat.json" --num-prompts "$N" --max-concurrency 8 --request-rate inf \
			--max-output-tokens 1 --no-initial-test >"$tmp/bench.out" 2>&1 ||
			{ cat "$tmp/bench.out" >&2; exit 1; }
		grep -q "Successful requests: *$N\b" "$tmp/bench.out" || { cat "$tmp/bench.out" >&2; exit 1; }
		after=$(cpu_ticks "${rpid[$cfg]}")
		us=$(awk -v a="$after" -v b="$before" -v hz="$hz" -v n="$N" 'BEGIN{printf "%.1f", (a-b)/hz/n*1e6}')
		samples[$cfg]="${samples[$cfg]:-} $us"
	done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
echo "== router CPU per request, chat completion, ~3,000-token prompt ($N requests x $REPS rounds; median)"
base=$(echo "${samples[prefix-hash]:-}" | median)
printf "%-22s %10s %8s   %s\n" "policy:blocks" "us/req" "vs p-h" "index (from /metrics)"
for cfg in $POLICIES; do
	m=$(echo "${samples[$cfg]}" | median)
	ratio=$(awk -v m="$m" -v b="${base:-0}" 'BEGIN{ if (b > 0) printf "%.2fx", m/b; else print "-" }')
	idx=$(curl -s "http://127.0.0.1:${rport[$cfg]}/metrics" |
		awk '/^prefixlb_policy_index_bytes[{ ]/{b=$NF} /^prefixlb_policy_index_entries[{ ]/{e=$NF}
		     END{ if (e != "") printf "%d entries, %.1f MB", e, b/1e6 }')
	printf "%-22s %10s %8s   %s\n" "$cfg" "$m" "$ratio" "$idx"
done
