#!/bin/bash
# bench/route.sh [ROUTE_OPTIONS...]: what the router costs, measured in one run
# on this machine, each figure next to HAProxy 2.6's (balance hash on the
# prompt, hash-type consistent, hash-balance-factor 125) behind the same
# backend, driven by the same client:
#  1. added latency over going direct, streamed completions (8 tokens), at 1
#     stream, at 1,000 open streams (~1,000 req/s) and at 1,000 back to back:
#     time to first SSE event and to the end, median and p99. Direct, prefixlb
#     and HAProxy take turns, ROUNDS rounds of SECS s each; the rounds'
#     samples are pooled per target, a figure is (proxy - direct) of the
#     pooled median or p99; ratio = prefixlb / HAProxy. Proxy CPU per request
#     over the same runs.
#  2. requests/s of small non-streamed requests with a 2 KB JSON body (wrk
#     -t1 -c64), three runs each, median; proxy CPU per request
#  3. 10,000 concurrent open streams through the router: its peak RSS; then the
#     upstream connections it keeps (counted by the kernel, ss): back under the
#     pool bound (--upstream-keepalive x backends), then none but health
#     checks' after the idle timeout (--upstream-keepalive-timeout-ms), and how many are open AFTER_S s
#     after the burst
# ROUTE_OPTIONS go to `prefixlb route` (e.g. --policy lowest-ttft).
# The backend is `prefixlb engine` at a huge time scale (simulated GPU time ~0),
# so what is measured is software: client, proxy and engine share the 2 cores.
#   SECS=5 ROUNDS=3 CONCS="1 1000 1000sat" WSECS=10 STREAMS=10000 TOKENS=100 AFTER_S=30 (WSECS=0,
#   STREAMS=0 or AFTER_S=0: that part is skipped)
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
make -s "$B/prefixlb" "$B/bench/lat_client" "$B/bench/engine_load"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
waitfile() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout: $1"; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
hz=$(getconf CLK_TCK)

"$B/prefixlb" engine --port 0 --ports-file "$tmp/eports" --replicas 4 --time-scale 1000000 \
	--max-num-seqs 4096 --kv-capacity-tokens 20000000 --max-num-batched-tokens 1000000 2>/dev/null &
pids+=($!); epid=$!
waitfile "$tmp/eports"
nbe=$(wc -l < "$tmp/eports")
args=()
for p in $(cat "$tmp/eports"); do args+=(--backend "http://127.0.0.1:$p"); done
# the pool's bound and idle timeout, when this router has them (older ones keep every connection)
KEEPALIVE=${KEEPALIVE:-} KEEPALIVE_MS=${KEEPALIVE_MS:-}
if "$B/prefixlb" route --help 2>&1 | grep -q upstream-keepalive; then
	help=$("$B/prefixlb" route --help 2>&1)
	KEEPALIVE=${KEEPALIVE:-$(echo "$help" | awk '/--upstream-keepalive /{for(i=1;i<=NF;i++) if ($i ~ /default/) {gsub(/[^0-9]/,"",$(i+1)); print $(i+1); exit}}')}
	KEEPALIVE_MS=${KEEPALIVE_MS:-$(echo "$help" | awk '/--upstream-keepalive-timeout-ms/{for(i=1;i<=NF;i++) if ($i ~ /default/) {gsub(/[^0-9]/,"",$(i+1)); print $(i+1); exit}}')}
	args+=(--upstream-keepalive "$KEEPALIVE" --upstream-keepalive-timeout-ms "$KEEPALIVE_MS")
fi
"$B/prefixlb" route --listen 127.0.0.1:0 --ports-file "$tmp/rport" --access-log off "${args[@]}" "$@" 2>/dev/null &
pids+=($!); rpid=$!
waitfile "$tmp/rport"
rport=$(cat "$tmp/rport")
for _ in $(seq 100); do curl -s -m 2 "http://127.0.0.1:$rport/v1/models" | grep -q llama && break; sleep 0.1; done

hport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
	echo "global"; echo "  maxconn 9000"; echo "  tune.bufsize 65536"
	echo "defaults"; echo "  mode http"; echo "  timeout connect 3s"; echo "  timeout client 600s"; echo "  timeout server 600s"
	echo "  option http-buffer-request"; echo "  option http-no-delay"
	echo "frontend fe"; echo "  bind 127.0.0.1:$hport"
	echo "  http-request set-var(txn.lbkey) req.body,json_query('\$.prompt'),bytes(0,100)"
	echo "  default_backend be"
	echo "backend be"; echo "  balance hash var(txn.lbkey)"; echo "  hash-type consistent"; echo "  hash-balance-factor 125"
	i=0; for p in $(cat "$tmp/eports"); do echo "  server s$i 127.0.0.1:$p weight 16"; i=$((i+1)); done
} > "$tmp/haproxy.cfg"
have_haproxy=0 hpid=0
if command -v haproxy >/dev/null && haproxy -c -q -f "$tmp/haproxy.cfg" 2>/dev/null; then
	haproxy -f "$tmp/haproxy.cfg" -db 2>"$tmp/haproxy.err" &
	hpid=$!; pids+=($hpid)
	for _ in $(seq 50); do curl -s -m 1 -o /dev/null "http://127.0.0.1:$hport/" && break; sleep 0.1; done
	if kill -0 $hpid 2>/dev/null; then
		have_haproxy=1
		echo "$hport" > "$tmp/hport"
	else
		echo "haproxy did not start: $(head -3 "$tmp/haproxy.err")"
	fi
fi
sleep 0.5
echo "router: prefixlb route $* (pool: ${KEEPALIVE:-unbounded} idle per backend, ${KEEPALIVE_MS:-no} ms idle timeout), $nbe backends"

echo "== added latency, streamed completion (8 tokens), loopback: ${ROUNDS:-3} rounds of ${SECS:-5} s, direct/prefixlb/haproxy in turn"
echo "   c=1: one stream after another; c=1000: 1,000 open keep-alive streams, each pausing ~1 s (exponential)"
echo "   between requests (~1,000 req/s); c=1000sat: 1,000 streams back to back (saturates the 2 cores)"
for c in ${CONCS-1 1000 1000sat}; do
	n=${c%sat}; think=0
	[ "$c" = 1000 ] && think=1000
	: > "$tmp/lat"
	for round in $(seq "${ROUNDS:-3}"); do
		for who in direct prefixlb haproxy; do
			case $who in
			direct) pf=$tmp/eports pid=0 ;;
			prefixlb) pf=$tmp/rport pid=$rpid ;;
			haproxy) [ $have_haproxy = 1 ] || continue; pf=$tmp/hport pid=$hpid ;;
			esac
			c0=0; [ $pid != 0 ] && c0=$(cpu_ticks $pid)
			out=$("$B/bench/lat_client" "$pf" "$n" "${SECS:-5}" 8 $think "$tmp/samples.$who")
			c1=0; [ $pid != 0 ] && c1=$(cpu_ticks $pid)
			echo "$who $out cpu_ticks=$((c1 - c0))" >> "$tmp/lat"
		done
	done
	python3 - "$tmp" "$c" "$hz" <<'PY'
import sys, os
tmp, c, hz = sys.argv[1], sys.argv[2], float(sys.argv[3])
def pct(v, p):
    r = p / 100 * (len(v) - 1); i = int(r); f = r - i
    return v[i] * (1 - f) + v[i + 1] * f if i + 1 < len(v) else v[i]
stats, runs = {}, {}
for line in open(f"{tmp}/lat"):
    f = line.split(); kv = {k: float(v) for k, v in (x.split("=") for x in f[1:])}
    runs.setdefault(f[0], []).append(kv)
for who in runs:  # every round's samples pooled: median and p99 of time to first event and to the end
    t, e = [], []
    for line in open(f"{tmp}/samples.{who}"):
        a, b = line.split(); t.append(float(a)); e.append(float(b))
    t.sort(); e.sort()
    stats[who] = [pct(t, 50), pct(t, 99), pct(e, 50), pct(e, 99), len(t)]
    os.remove(f"{tmp}/samples.{who}")
def cpu(who):  # us per request over all its runs (warm-up requests in the CPU, not in n: an upper bound)
    t = sum(v["cpu_ticks"] for v in runs[who]) / hz; n = sum(v["n"] for v in runs[who])
    return t / n * 1e6 if n else float("nan")
rate = lambda who: sum(v["req_per_s"] for v in runs[who]) / len(runs[who])
d = stats["direct"]
print(f"direct   c={c}: ttfb median {d[0]:.0f} us, p99 {d[1]:.0f} us; end median {d[2]:.0f} us, p99 {d[3]:.0f} us; "
      f"{rate('direct'):.0f} req/s ({d[4]} requests)")
added = {}
for who in ("prefixlb", "haproxy"):
    if who not in stats:
        print(f"{who:8s} c={c}: not available"); continue
    added[who] = [stats[who][i] - d[i] for i in range(4)]
    a = added[who]
    print(f"{who:8s} c={c}: added ttfb median {a[0]:+.0f} us, p99 {a[1]:+.0f} us; end median {a[2]:+.0f} us, "
          f"p99 {a[3]:+.0f} us; {rate(who):.0f} req/s; proxy CPU {cpu(who):.1f} us/request")
if len(added) == 2:
    r = lambda i: f"{added['prefixlb'][i] / added['haproxy'][i]:.2f}" if added["haproxy"][i] > 0 else "n/a"
    print(f"ratio    c={c}: prefixlb/haproxy added ttfb median {r(0)}, p99 {r(1)}; end median {r(2)}, "
          f"p99 {r(3)}; CPU per request {cpu('prefixlb') / cpu('haproxy'):.2f}")
PY
done

if [ "${WSECS:-10}" != 0 ]; then
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
direct=$(head -1 "$tmp/eports")
# one wrk run: prints "req/s requests"
wrk_once() { wrk -t1 -c64 -d${WSECS:-10}s -s "$tmp/post.lua" "http://127.0.0.1:$1/v1/completions" 2>/dev/null |
	awk '/Requests\/sec/{rps=$2} /requests in/{n=$1} /Non-2xx/{bad=$4} END{printf "%s %s %d\n", rps, n, bad+0}'; }
# three runs, median req/s; CPU of the proxy process per request over all runs
declare -A RPS CPU
measure() { # $1 label, $2 port, $3 pid of the proxy (or 0)
	local c0 c1 rates=() total=0 bad=0
	[ "$3" != 0 ] && c0=$(cpu_ticks "$3")
	for _ in 1 2 3; do
		read -r rps n b < <(wrk_once "$2")
		rates+=("$rps"); total=$((total + n)); bad=$((bad + b))
	done
	local med; med=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)
	local cpu="" us=0
	if [ "$3" != 0 ]; then
		c1=$(cpu_ticks "$3")
		us=$(awk -v t=$((c1 - c0)) -v n=$total -v hz="$hz" 'BEGIN{printf "%.1f", t / hz / n * 1e6}')
		cpu="  proxy CPU $us us/request"
	fi
	RPS[$1]=$med CPU[$1]=$us
	echo "$1 req/s median of 3: $med (runs: ${rates[*]}), non-2xx $bad$cpu"
}
measure "direct  " "$direct" 0
measure "prefixlb" "$rport" "$rpid"
if [ $have_haproxy = 1 ]; then
	measure "haproxy " "$hport" "$hpid"
	awk -v a="${RPS[prefixlb]}" -v b="${RPS[haproxy ]}" -v x="${CPU[prefixlb]}" -v y="${CPU[haproxy ]}" \
		'BEGIN{printf "ratio    prefixlb/haproxy: req/s %.2f, CPU per request %.2f\n", a / b, x / y}'
else
	echo "haproxy  (not available)"
fi
fi
kill "$hpid" 2>/dev/null || true
[ "${STREAMS:-10000}" = 0 ] && exit 0

echo "== ${STREAMS:-10000} concurrent open streams through the router"
"$B/bench/engine_load" "$tmp/rport" "$rpid" ${STREAMS:-10000} ${TOKENS:-100} | sed 's/^engine:/router:/' || true
echo "router: rss_peak_kb=$(awk '/VmHWM/{print $2}' /proc/$rpid/status) open_fds=$(ls /proc/$rpid/fd | wc -l)"
# the router's established connections to the backends, as the kernel sees them
filter=$(for p in $(cat "$tmp/eports"); do printf 'dport = :%s or ' "$p"; done)
upconns() { ss -Htnp state established "( ${filter% or } )" 2>/dev/null | grep -c "pid=$rpid," || true; }
bound=$(( ${KEEPALIVE:-0} * nbe ))
t0=$(date +%s%N) n0=$(upconns) t_bound=-1 t_low=-1 last=$n0
limit_ms=$(( ${KEEPALIVE_MS:-10000} + 3000 ))
while :; do
	el=$(( ($(date +%s%N) - t0) / 1000000 ))
	n=$(upconns); last=$n
	[ $t_bound -lt 0 ] && [ -n "$KEEPALIVE" ] && [ "$n" -le $bound ] && t_bound=$el
	[ $t_low -lt 0 ] && [ "$n" -le "$nbe" ] && t_low=$el
	[ $t_low -ge 0 ] && [ $t_bound -ge 0 ] && break
	[ $el -ge $limit_ms ] && break
	sleep 0.1
done
say() { [ "$1" -ge 0 ] && echo "after $1 ms" || echo "not within $limit_ms ms (still $last)"; }
echo "router: upstream connections after the burst: $n0 at its end; pool bound $bound (${KEEPALIVE:-none} x $nbe): $(say $t_bound);"
echo "        at most one per backend (health checks) left: $(say $t_low) (idle timeout ${KEEPALIVE_MS:-none} ms)"
if [ "${AFTER_S:-30}" != 0 ]; then # what is still open a fixed time after the burst (the issue's 30 s)
	while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt $(( ${AFTER_S:-30} * 1000 )) ]; do sleep 0.5; done
	echo "router: upstream connections ${AFTER_S:-30} s after the burst: $(upconns)"
fi
