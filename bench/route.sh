#!/bin/bash
# bench/route.sh: what the router costs, measured in one run on this machine.
#  1. added latency vs going direct, streamed completions, at 1 and 1,000
#     concurrent streams (time to first SSE event and to the end): median, p99
#  2. requests/s of small non-streamed requests with a 2 KB JSON body: direct,
#     through prefixlb route, through HAProxy 2.6 (balance hash on the prompt,
#     hash-type consistent, hash-balance-factor 125) - same backend, same client
#  3. 10,000 concurrent open streams through the router: its peak RSS
# The backend is `prefixlb engine` at a huge time scale (simulated GPU time ~0),
# so what is measured is software: client, proxy and engine share the 2 cores.
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
make -s "$B/prefixlb" "$B/bench/lat_client" "$B/bench/engine_load"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
waitfile() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout: $1"; exit 1; }

"$B/prefixlb" engine --port 0 --ports-file "$tmp/eports" --replicas 4 --time-scale 1000000 \
	--max-num-seqs 4096 --kv-capacity-tokens 20000000 --max-num-batched-tokens 1000000 2>/dev/null &
pids+=($!); epid=$!
waitfile "$tmp/eports"
args=()
for p in $(cat "$tmp/eports"); do args+=(--backend "http://127.0.0.1:$p"); done
"$B/prefixlb" route --listen 127.0.0.1:0 --ports-file "$tmp/rport" --access-log off "${args[@]}" 2>/dev/null &
pids+=($!); rpid=$!
waitfile "$tmp/rport"
sleep 0.5

echo "== added latency, streamed completion (8 tokens), loopback"
echo "   c=1: one stream after another; c=1000: 1,000 open keep-alive streams, each pausing ~1 s (exponential)"
echo "   between requests (~1,000 req/s); c=1000sat: 1,000 streams back to back (saturates the 2 cores)"
for c in 1 1000 1000sat; do
	n=${c%sat}; think=0
	[ "$c" = 1000 ] && think=1000
	d=$("$B/bench/lat_client" "$tmp/eports" $n ${SECS:-5} 8 $think)
	r=$("$B/bench/lat_client" "$tmp/rport" $n ${SECS:-5} 8 $think)
	echo "direct  c=$c $d"
	echo "router  c=$c $r"
	python3 - "$d" "$r" "$c" <<'PY' 2>/dev/null || true
import sys
d = dict(kv.split("=") for kv in sys.argv[1].split()); r = dict(kv.split("=") for kv in sys.argv[2].split())
f = lambda k: float(r[k]) - float(d[k])
print(f"added   c={sys.argv[3]} ttfb median {f('ttfb_median_us'):.0f} us, p99 {f('ttfb_p99_us'):.0f} us; "
      f"end-to-end median {f('total_median_us'):.0f} us, p99 {f('total_p99_us'):.0f} us")
PY
done

echo "== requests/s, non-streamed, 2 KB JSON body (wrk -t1 -c64, ${WSECS:-10} s each)"
cat > "$tmp/post.lua" <<'LUA'
local bodies = {}
for i = 1, 64 do
  local words = {}
  for k = 1, 40 do words[#words + 1] = "word" .. ((i * 31 + k * 7) % 997) end
  local prompt = "User: request " .. i .. " " .. table.concat(words, " ")
  while #prompt < 1900 do prompt = prompt .. " filler text of the prompt" end
  bodies[i] = '{"model":"llama-3.1-8b-instruct-fp8-l4","prompt":"' .. prompt .. '","max_tokens":1}'
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/completions", {["Content-Type"] = "application/json"}, bodies[(n % 64) + 1])
end
LUA
hport=$(( 20000 + RANDOM % 20000 ))
{
	echo "global"; echo "  maxconn 4000"; echo "  tune.bufsize 65536"
	echo "defaults"; echo "  mode http"; echo "  timeout connect 3s"; echo "  timeout client 600s"; echo "  timeout server 600s"
	echo "  option http-buffer-request"; echo "  option http-no-delay"
	echo "frontend fe"; echo "  bind 127.0.0.1:$hport"
	echo "  http-request set-var(txn.lbkey) req.body,json_query('\$.prompt'),bytes(0,100)"
	echo "  default_backend be"
	echo "backend be"; echo "  balance hash var(txn.lbkey)"; echo "  hash-type consistent"; echo "  hash-balance-factor 125"
	i=0; for p in $(cat "$tmp/eports"); do echo "  server s$i 127.0.0.1:$p weight 16"; i=$((i+1)); done
} > "$tmp/haproxy.cfg"
have_haproxy=0
if command -v haproxy >/dev/null && haproxy -c -q -f "$tmp/haproxy.cfg" 2>/dev/null; then
	haproxy -f "$tmp/haproxy.cfg" -db 2>/dev/null &
	pids+=($!)
	have_haproxy=1
	sleep 0.5
fi
direct=$(head -1 "$tmp/eports")
cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
# one wrk run: prints "req/s requests"
wrk_once() { wrk -t1 -c64 -d${WSECS:-10}s -s "$tmp/post.lua" "http://127.0.0.1:$1/v1/completions" 2>/dev/null |
	awk '/Requests\/sec/{rps=$2} /requests in/{n=$1} /Non-2xx/{bad=$4} END{printf "%s %s %d\n", rps, n, bad+0}'; }
# three runs, median req/s; CPU of the proxy process per request over all runs
measure() { # $1 label, $2 port, $3 pid of the proxy (or 0)
	local c0 c1 rates=() total=0 bad=0
	[ "$3" != 0 ] && c0=$(cpu_ticks "$3")
	for _ in 1 2 3; do
		read -r rps n b < <(wrk_once "$2")
		rates+=("$rps"); total=$((total + n)); bad=$((bad + b))
	done
	local med; med=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)
	local cpu=""
	if [ "$3" != 0 ]; then
		c1=$(cpu_ticks "$3")
		cpu=$(awk -v t=$((c1 - c0)) -v n=$total -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "  proxy CPU %.1f us/request", t / hz / n * 1e6}')
	fi
	echo "$1 req/s median of 3: $med (runs: ${rates[*]}), non-2xx $bad$cpu"
}
measure "direct  " "$direct" 0
measure "prefixlb" "$(cat "$tmp/rport")" "$rpid"
if [ $have_haproxy = 1 ]; then
	hpid=$(pgrep -n -f "haproxy -f $tmp/haproxy.cfg")
	measure "haproxy " "$hport" "$hpid"
else
	echo "haproxy  (not available)"
fi

echo "== 10,000 concurrent open streams through the router"
"$B/bench/engine_load" "$tmp/rport" "$rpid" ${STREAMS:-10000} ${TOKENS:-100} | sed 's/^engine:/router:/' || true
echo "router: rss_peak_kb=$(awk '/VmHWM/{print $2}' /proc/$rpid/status) open_fds=$(ls /proc/$rpid/fd | wc -l)"
