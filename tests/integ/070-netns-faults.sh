#!/bin/bash
# 070: network faults between the router and a backend, in a network namespace
# this test makes itself (ip netns + a veth pair). One engine replica lives in
# the namespace (reached over the veth), one on loopback; the router and the
# bench run in the root namespace, streaming at concurrency 24.
#   1. partition: the veth goes down mid-run. Streams from the cut-off backend
#      end at the idle timeout (1 s) with a clean error, health checks fail and
#      eject it, every other request completes on the other backend (connect
#      timeouts are retried); the link comes back and it is re-admitted.
#   2. slow link: a token-bucket filter (tbf, 2 Mbit/s) on the veth: streams
#      through it are slower, all complete.
#   3. delay and loss with netem (50 ms, 2% loss), when the kernel has it;
#      otherwise said and skipped (the rest still runs).
# Skipped (exit 77) when namespaces or veth can't be made (not root, no ip).
set -u
P=${PREFIXLB:-build/prefixlb}
command -v ip >/dev/null || { echo "skipped: no ip (iproute2)"; exit 77; }
ns=plb$$
vh=plbh$$ vn=plbn$$
net="10.$((RANDOM % 200 + 20)).$((RANDOM % 250))"
d=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	ip link del "$vh" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
if ! ip netns add "$ns" 2>"$d/err" || ! ip link add "$vh" type veth peer name "$vn" 2>>"$d/err"; then
	echo "skipped: cannot make a network namespace and veth here ($(head -1 "$d/err"))"
	exit 77
fi
ip link set "$vn" netns "$ns"
ip addr add "$net.1/30" dev "$vh"
ip link set "$vh" up
ip -n "$ns" addr add "$net.2/30" dev "$vn"
ip -n "$ns" link set "$vn" up
ip -n "$ns" link set lo up
fail() { echo "FAIL: $*"; tail -25 "$d/bench.out" 2>/dev/null; exit 1; }
waitfile() { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done; fail "timeout waiting for $1"; }

ip netns exec "$ns" "$P" engine --replicas 1 --host "$net.2" --port 0 --ports-file "$d/en" --time-scale 10 \
	2>/dev/null &
pids+=($!)
"$P" engine --replicas 1 --port 0 --ports-file "$d/el" --time-scale 10 2>/dev/null &
pids+=($!)
waitfile "$d/en"
waitfile "$d/el"
far="$net.2:$(cat "$d/en")"
"$P" route --listen 127.0.0.1:0 --ports-file "$d/r" --access-log "${ACCESS_LOG:-off}" --policy least-load \
	--health-interval-ms 300 --health-timeout-ms 300 --unhealthy-threshold 2 --healthy-threshold 2 \
	--connect-timeout-ms 500 --idle-timeout-ms 1000 \
	--backend "http://$far" --backend "http://127.0.0.1:$(cat "$d/el")" 2>"$d/route.err" &
rpid=$!; pids+=($rpid)
waitfile "$d/r"
url="http://127.0.0.1:$(cat "$d/r")"
"$P" dataset --out "$d/ds.json" --conversations 200 > /dev/null
m() { curl -s -m 5 "$url/metrics" | awk -v k="$1{backend=\"$far\"}" '$1 == k {print $2}'; }
gauge() { curl -s -m 5 "$url/metrics" | awk -v k="$1" 'index($0, k) == 1 {s += $NF} END {print s + 0}'; }
for _ in $(seq 50); do [ "$(m prefixlb_backend_healthy)" = 1 ] && break; sleep 0.1; done
[ "$(m prefixlb_backend_healthy)" = 1 ] || fail "the namespaced backend never became healthy"
bench() { # $1 = requests; writes $d/bench.out
	timeout 120 "$P" bench --disable-tqdm --base-url "$url" --dataset-path "$d/ds.json" --num-prompts "$1" \
		--max-conversations 200 --max-concurrency 24 > "$d/bench.out" 2>&1
}
field() { awk -v k="$1" 'index($0, k) == 1 {print $NF; exit}' "$d/bench.out"; }
reason() { awk -F'  +' -v k="$1" '$2 == k {print $3}' "$d/bench.out"; }

# 1. partition
bench 1500 & bpid=$!
for _ in $(seq 100); do [ "$(m prefixlb_backend_in_flight)" -gt 4 ] 2>/dev/null && break; sleep 0.05; done
at_cut=$(m prefixlb_backend_in_flight)
ip link set "$vh" down
t_cut=$(date +%s%N)
ejected_ms=-1
for _ in $(seq 100); do
	[ "$(m prefixlb_backend_healthy)" = 0 ] && { ejected_ms=$(( ($(date +%s%N) - t_cut) / 1000000 )); break; }
	sleep 0.05
done
sleep 2
ip link set "$vh" up
t_up=$(date +%s%N)
back_ms=-1
for _ in $(seq 200); do
	[ "$(m prefixlb_backend_healthy)" = 1 ] && { back_ms=$(( ($(date +%s%N) - t_up) / 1000000 )); break; }
	sleep 0.05
done
wait $bpid; brc=$?
ok=$(awk '/^Successful requests:/ {print $3}' "$d/bench.out"); failed=$(awk '/^Failed requests:/ {print $3}' "$d/bench.out")
ok=${ok:-0} failed=${failed:-0}
lost=$(grep -c . <(grep -E "^  (stream ended without \[DONE\]|connection)" "$d/bench.out") || true)
echo "partition: $at_cut streams on the far backend when cut; ejected after ${ejected_ms} ms; bench $ok ok, $failed failed;" \
	"re-admitted ${back_ms} ms after the link came back"
grep -E "^  " "$d/bench.out" | sed 's/^/    /'
[ $brc = 0 ] || fail "bench exited $brc"
[ $((ok + failed)) = 1500 ] || fail "bench accounted for $((ok + failed)) of 1500"
[ "$failed" -le $((at_cut + 4)) ] || fail "$failed failed, more than the $at_cut streams cut off"
[ "$ejected_ms" -ge 0 ] || fail "not ejected within 5 s"
[ "$back_ms" -ge 0 ] || fail "not re-admitted within 10 s of the link coming back"
sleep 0.3
[ "$(gauge 'prefixlb_in_flight{')" = 0 ] || fail "requests left in flight"
part="partition: $failed of 1500 lost (cut mid-stream: $at_cut), ejected in ${ejected_ms} ms, back in ${back_ms} ms"

# 2. slow link (tbf)
slow="tbf: unavailable"
if tc qdisc add dev "$vh" root tbf rate 2mbit burst 32kbit latency 500ms 2>/dev/null; then
	sent0=$(m prefixlb_backend_requests_total)
	bench 300
	ok=$(field "Successful requests:"); failed=$(field "Failed requests:")
	sent=$(( $(m prefixlb_backend_requests_total) - sent0 ))
	echo "slow link (tbf 2 Mbit/s): $ok ok, $failed failed, $sent through the slow link"
	[ "$failed" = 0 ] || fail "failures over a slow link"
	[ "$sent" -gt 0 ] || fail "nothing went over the slow link"
	tc qdisc del dev "$vh" root
	slow="tbf 2 Mbit/s: $ok/300 ok"
fi

# 3. delay + loss (netem)
lossy="netem: not in this kernel, skipped"
if tc qdisc add dev "$vh" root netem delay 50ms loss 2% 2>/dev/null; then
	bench 300
	ok=$(field "Successful requests:"); failed=$(field "Failed requests:")
	echo "netem 50 ms, 2% loss: $ok ok, $failed failed"
	[ "$failed" = 0 ] || fail "failures over a lossy link"
	tc qdisc del dev "$vh" root
	lossy="netem 50 ms/2%: $ok/300 ok"
else
	echo "$lossy"
fi
kill -TERM $rpid
echo "measured: $part; $slow; $lossy"
