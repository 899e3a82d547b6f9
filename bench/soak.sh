#!/bin/bash
# bench/soak.sh: prefixlb route in front of 8 simulated replicas, driven for a
# long time at high concurrency by `prefixlb bench` with a fraction of the
# clients leaving at random points (in the request head, in the body, before
# the first token, mid-stream). Every SAMPLE seconds it records the router's
# and the engine's RSS and open fds, the router's in-flight gauges and its
# error counters; at the end it checks they stayed flat and came back to rest,
# and plots them.
#
#   DURATION=600 (s, default 10 min)  CONC=1000 (open streams)  ABORT=0.2
#   SAMPLE=10 (s)  SCALE=5 (engine time scale)  OUT=build/soak
#
# Judged (exit 1 otherwise): no failed request (aborted ones are the test's own),
# router RSS at the end within 10% + 8 MB of its value after the first tenth of
# the run, no client socket left and the in-flight gauges at 0 after the load.
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
DURATION=${DURATION:-600} CONC=${CONC:-1000} ABORT=${ABORT:-0.2} SAMPLE=${SAMPLE:-10} SCALE=${SCALE:-5}
OUT=${OUT:-$B/soak}
make -s "$B/prefixlb"
P=$B/prefixlb
plot() { # the curves of $OUT/soak.dat as $OUT/soak.png
	command -v gnuplot > /dev/null || return 0
	gnuplot <<GP
set terminal pngcairo size 1000,760 noenhanced
set output "$OUT/soak.png"
set multiplot layout 3,1 title "prefixlb soak: ${DURATION} s, ${CONC} streams, ${ABORT} of the clients leave early"
set xlabel "time (s)"; set grid; set key outside right
set ylabel "RSS (MB)"; set yrange [0:*]
plot "$OUT/soak.dat" using 1:(\$2/1024) with lines title "router", "" using 1:(\$4/1024) with lines title "engine (8 replicas)"
set ylabel "open fds"
plot "$OUT/soak.dat" using 1:3 with lines title "router", "" using 1:5 with lines title "engine", \
	"" using 1:12 with lines title "router client sockets"
set ylabel "in flight"; set y2label "count (total)"; set y2tics; set ytics nomirror
plot "$OUT/soak.dat" using 1:6 with lines title "in flight (router)", \
	"" using 1:8 axes x1y2 with lines title "client disconnects", \
	"" using 1:9 axes x1y2 with lines title "upstream errors", "" using 1:10 axes x1y2 with lines title "timeouts", \
	"" using 1:11 axes x1y2 with lines title "5xx answers"
unset multiplot
GP
	echo "plot: $OUT/soak.png  data: $OUT/soak.dat"
}
if [ "${1:-}" = --plot ]; then # re-plot an earlier run: OUT=DIR DURATION=.. bench/soak.sh --plot
	plot
	exit 0
fi
mkdir -p "$OUT"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
waitfile() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout: $1"; exit 1; }

"$P" engine --port 0 --ports-file "$tmp/eports" --replicas 8 --time-scale "$SCALE" 2>"$OUT/engine.err" &
epid=$!; pids+=($epid)
waitfile "$tmp/eports"
args=()
for p in $(cat "$tmp/eports"); do args+=(--backend "http://127.0.0.1:$p"); done
"$P" route --listen 127.0.0.1:0 --ports-file "$tmp/rport" --access-log off --policy prefix-hash "${args[@]}" \
	2>"$OUT/router.err" &
rpid=$!; pids+=($rpid)
waitfile "$tmp/rport"
url=http://127.0.0.1:$(cat "$tmp/rport")
"$P" dataset --out "$tmp/ds.json" --conversations 2000 > /dev/null
sleep 1

rss() { awk '/^VmRSS/ {v = $2} END {print v + 0}' /proc/$1/status 2>/dev/null || echo 0; }
fds() { ls /proc/$1/fd 2>/dev/null | wc -l; }
metric() { awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {print s + 0}' "$tmp/m"; }
rport=$(cat "$tmp/rport")
clients() { ss -Htnp "( sport = :$rport )" | grep -c "pid=$rpid," || true; } # client sockets the router holds
sample() { # t rss_kb fds engine_rss_kb engine_fds in_flight backend_in_flight disconnects upstream_errors timeouts 5xx client_sockets
	curl -s -m 5 "$url/metrics" > "$tmp/m" || : > "$tmp/m"
	local c5=$(awk '/^prefixlb_requests_total/ && /code="5/ {s += $NF} END {print s + 0}' "$tmp/m")
	echo "$1 $(rss $rpid) $(fds $rpid) $(rss $epid) $(fds $epid) $(metric 'prefixlb_in_flight{') \
$(metric 'prefixlb_backend_in_flight{') $(metric prefixlb_client_disconnects_total) \
$(metric prefixlb_upstream_errors_total) $(metric prefixlb_timeouts_total) $c5 $(clients)"
}
idle_fds=$(fds $rpid)
echo "# t_s router_rss_kb router_fds engine_rss_kb engine_fds in_flight backend_in_flight client_disconnects upstream_errors timeouts responses_5xx client_sockets" > "$OUT/soak.dat"
echo "soak: ${DURATION} s, ${CONC} streams, ${ABORT} of the clients leave early, 8 replicas (time scale $SCALE), sample every ${SAMPLE} s"
echo "      router idle: $(rss $rpid) kB RSS, $idle_fds fds"

# the load: back-to-back bench runs until the time is up
(
	end=$(( $(date +%s) + DURATION )); i=0
	while [ "$(date +%s)" -lt "$end" ]; do
		"$P" bench --disable-tqdm --base-url "$url" --dataset-path "$tmp/ds.json" --num-prompts $((CONC * 30)) \
			--max-conversations 2000 --max-concurrency "$CONC" --abort-fraction "$ABORT" --seed $i \
			> "$tmp/bench.$i" 2>&1 || echo "bench run $i exited $?" >> "$tmp/bench.errors"
		i=$((i + 1))
	done
) &
lpid=$!; pids+=($lpid)
t0=$(date +%s)
while kill -0 $lpid 2>/dev/null; do
	sample $(( $(date +%s) - t0 )) >> "$OUT/soak.dat"
	sleep "$SAMPLE"
done
wait $lpid || true
sleep 2
sample $(( $(date +%s) - t0 )) >> "$OUT/soak.dat"
end_fds=$(fds $rpid)

cat "$tmp"/bench.* > "$OUT/bench.log"
sum() { grep -h "^$1" "$OUT/bench.log" | awk '{s += $NF} END {print s + 0}'; }
ok=$(sum "Successful requests:") failed=$(sum "Failed requests:") aborted=$(sum "Aborted by the client")
runs=$(grep -c "^Successful requests:" "$OUT/bench.log" || true)
echo "load: $runs bench runs, $ok requests completed, $aborted abandoned by their client on purpose, $failed failed"
[ -s "$tmp/bench.errors" ] && cat "$tmp/bench.errors"

verdict=0
for x in router:$rpid engine:$epid; do
	kill -0 "${x#*:}" 2>/dev/null || { echo "FAIL: the ${x%%:*} died (see $OUT/${x%%:*}.err)"; verdict=1; }
done
awk -v idle_fds="$idle_fds" -v end_fds="$end_fds" -v failed="$failed" '
!/^#/ { n++; t[n] = $1; rss[n] = $2; fd[n] = $3; ers[n] = $4; inf[n] = $6; binf[n] = $7; cs[n] = $12; last = $0 }
END {
	k = int(n / 10) + 1; if (k < 2) k = 2 # sample 1 is the idle router
	mx = 0; for (i = 1; i <= n; i++) if (rss[i] > mx) mx = rss[i]
	mf = 0; for (i = 1; i < n; i++) if (fd[i] > mf) mf = fd[i]
	mc = 0; for (i = 1; i < n; i++) if (cs[i] > mc) mc = cs[i]
	printf "router RSS: %.1f MB after the first tenth, %.1f MB at the end, %.1f MB peak\n", rss[k] / 1024, rss[n] / 1024, mx / 1024
	printf "engine RSS: %.1f MB after the first tenth, %.1f MB at the end\n", ers[k] / 1024, ers[n] / 1024
	printf "router fds: %d idle, %d peak under load, %d after the load (%d of them client sockets; the rest\n", idle_fds, mf, end_fds, cs[n]
	printf "            are idle keep-alive connections to the backends, reused by the next requests)\n"
	printf "router client sockets: %d peak, %d after the load\n", mc, cs[n]
	printf "after the load: in flight %d (router), %d (backends)\n", inf[n], binf[n]
	split(last, f, " ")
	printf "counters: %d client disconnects seen, %d upstream errors, %d timeouts, %d 5xx answers\n", f[8], f[9], f[10], f[11]
	bad = 0
	if (failed > 0) { print "FAIL: failed requests"; bad = 1 }
	if (rss[n] > rss[k] * 1.10 + 8192) { print "FAIL: router RSS grew"; bad = 1 }
	if (cs[n] != 0) { print "FAIL: client sockets left open"; bad = 1 }
	if (end_fds > mf) { print "FAIL: router fds above their peak under load"; bad = 1 }
	if (inf[n] != 0 || binf[n] != 0) { print "FAIL: in-flight gauges not back to 0"; bad = 1 }
	exit bad
}' "$OUT/soak.dat" || verdict=1

plot
[ $verdict = 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit $verdict
