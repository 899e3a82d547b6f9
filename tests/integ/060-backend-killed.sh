#!/bin/bash
# 060: a backend killed (SIGKILL) under load, then restarted on its port.
# Three single-replica engines behind the router (health checks every 500 ms),
# the bench streaming at concurrency 48. One engine is killed mid-run.
#   - lost requests are only those mid-stream on the dead backend: the bench's
#     failures are all "stream ended without [DONE]" and no more than the
#     router had in flight on it when it died; everything else (requests it
#     held without answering, new ones) is retried elsewhere: no 502/503
#   - no new request reaches it within one health-check interval of the kill
#   - restarted, it is re-admitted and gets requests again
#   - nothing hangs: the bench ends, the router's in-flight gauges are 0
# Prints what it measured.
set -u
P=${PREFIXLB:-build/prefixlb}
d=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; rm -rf "$d"' EXIT
trap 'exit 1' INT TERM
waitfile() { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout waiting for $1"; exit 1; }
fail() { echo "FAIL: $*"; cat "$d/bench.out" 2>/dev/null | tail -25; exit 1; }
SCALE=10
for i in 0 1 2; do
	"$P" engine --replicas 1 --port 0 --ports-file "$d/e$i" --time-scale $SCALE 2>/dev/null &
	pids+=($!); eval "epid$i=$!"
done
for i in 0 1 2; do waitfile "$d/e$i"; done
victim_port=$(cat "$d/e1")
"$P" route --listen 127.0.0.1:0 --ports-file "$d/r" --access-log off --health-interval-ms 500 \
	--backend "http://127.0.0.1:$(cat "$d/e0")" --backend "http://127.0.0.1:$victim_port" \
	--backend "http://127.0.0.1:$(cat "$d/e2")" 2>"$d/route.err" &
rpid=$!; pids+=($rpid)
waitfile "$d/r"
url="http://127.0.0.1:$(cat "$d/r")"
"$P" dataset --out "$d/ds.json" --conversations 300 > /dev/null
victim="127.0.0.1:$victim_port"
m() { curl -s -m 5 "$url/metrics" | awk -v k="$1{backend=\"$victim\"}" '$1 == k {print $2}'; }
gauge() { curl -s -m 5 "$url/metrics" | awk -v k="$1" 'index($0, k) == 1 {s += $NF} END {print s + 0}'; }

timeout 120 "$P" bench --disable-tqdm --base-url "$url" --dataset-path "$d/ds.json" --num-prompts 3000 \
	--max-conversations 300 --max-concurrency 48 > "$d/bench.out" 2>&1 &
bpid=$!; pids+=($bpid)
# wait until the victim is busy
for _ in $(seq 100); do [ "$(m prefixlb_backend_in_flight)" -gt 4 ] 2>/dev/null && break; sleep 0.05; done
at_kill=$(m prefixlb_backend_in_flight)
kill -9 "$epid1"
t_kill=$(date +%s%N)
# fixed delays, part of the scenario (what is measured is what happens in them):
# the router must have ejected it within one health-check interval...
sleep 0.5
sent_after_interval=$(m prefixlb_backend_requests_total)
healthy=$(m prefixlb_backend_healthy)
# ... and then send it nothing for 1.5 s more while the load goes on
sleep 1.5
sent_later=$(m prefixlb_backend_requests_total)
"$P" engine --replicas 1 --port "$victim_port" --time-scale $SCALE 2>/dev/null &
pids+=($!)
t_back=$(date +%s%N)
readmitted_ms=-1
for _ in $(seq 100); do
	if [ "$(m prefixlb_backend_healthy)" = 1 ]; then readmitted_ms=$(( ($(date +%s%N) - t_back) / 1000000 )); break; fi
	sleep 0.05
done
sent_before=$(m prefixlb_backend_requests_total)
wait $bpid
brc=$?
sent_after=$(m prefixlb_backend_requests_total)
# the bench has its last answers; the router finishes its bookkeeping of them
# right after: wait (<= 10 s) for its in-flight gauges to come back to 0
end=$((SECONDS + 10))
while :; do
	in_flight=$(gauge 'prefixlb_in_flight{')
	be_in_flight=$(gauge 'prefixlb_backend_in_flight{')
	[ "$in_flight" = 0 ] && [ "$be_in_flight" = 0 ] && break
	[ $SECONDS -ge $end ] && break
	sleep 0.05
done
retries=$(gauge 'prefixlb_retries_total')
disconnects=$(gauge 'prefixlb_client_disconnects_total')

ok=$(awk '/^Successful requests:/ {print $3}' "$d/bench.out")
failed=$(awk '/^Failed requests:/ {print $3}' "$d/bench.out")
lost=$(awk -F'  +' '/^  stream ended without \[DONE\]/ {print $3}' "$d/bench.out")
ok=${ok:-0} failed=${failed:-0} lost=${lost:-0}
echo "killed with $at_kill requests in flight on it; bench: $ok ok, $failed failed ($lost mid-stream), router retries $retries"
echo "after one interval: healthy=$healthy, requests sent to it after that: $((sent_later - sent_after_interval))"
echo "restarted: re-admitted after ${readmitted_ms} ms, then got $((sent_after - sent_before)) requests"
[ $brc = 0 ] || fail "bench exited $brc (hung or crashed)"
[ $((ok + failed)) = 3000 ] || fail "bench accounted for $((ok + failed)) of 3000 requests"
[ "$failed" = "$lost" ] || fail "failures other than mid-stream ones"
[ "$lost" -le $((at_kill + 4)) ] || fail "$lost lost, more than the $at_kill in flight on the dead backend"
[ "$healthy" = 0 ] || fail "still marked healthy one interval after the kill"
[ "$sent_later" = "$sent_after_interval" ] || fail "requests still sent to the dead backend"
[ "$readmitted_ms" -ge 0 ] || fail "not re-admitted within 5 s"
[ $((sent_after - sent_before)) -gt 0 ] || fail "re-admitted but got no request"
[ "$in_flight" = 0 ] && [ "$be_in_flight" = 0 ] || fail "in flight after the run: $in_flight / $be_in_flight"
# the bench closes each connection right after [DONE]: those are normal ends, not disconnects
[ "$disconnects" = 0 ] || fail "$disconnects client disconnects counted (the bench left none early)"
kill -TERM $rpid
echo "measured: 1 backend SIGKILLed with $at_kill in flight: $lost lost (mid-stream), $((ok)) of 3000 completed, re-admitted in ${readmitted_ms} ms"
