#!/bin/bash
# 050: a short engine + router + bench session under valgrind's memcheck:
# no invalid access, no leak ("definitely/indirectly lost: 0"), clean exits.
# Skipped in the sanitizer build (valgrind and ASan don't mix) or without valgrind.
set -u
P=${PREFIXLB:-build/prefixlb}
case "${PREFIXLB_BUILD:-}" in *asan*) echo "skipped: sanitizer build"; exit 77;; esac
command -v valgrind >/dev/null || { echo "skipped: no valgrind"; exit 77; }
d=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; rm -rf "$d"' EXIT
VG=(valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
	--error-exitcode=99 --track-fds=no)
"${VG[@]}" --log-file="$d/engine.vg" "$P" engine --port 0 --ports-file "$d/e" --replicas 2 --time-scale 50 2>/dev/null &
epid=$!; pids+=($epid)
for _ in $(seq 300); do [ -s "$d/e" ] && break; sleep 0.1; done
[ -s "$d/e" ] || { echo "engine did not start"; cat "$d/engine.vg"; exit 1; }
args=(); for p in $(cat "$d/e"); do args+=(--backend "http://127.0.0.1:$p"); done
"${VG[@]}" --log-file="$d/route.vg" "$P" route --listen 127.0.0.1:0 --ports-file "$d/r" --access-log off \
	--health-interval-ms 500 "${args[@]}" 2>/dev/null &
rpid=$!; pids+=($rpid)
for _ in $(seq 300); do [ -s "$d/r" ] && break; sleep 0.1; done
[ -s "$d/r" ] || { echo "router did not start"; cat "$d/route.vg"; exit 1; }
# the router's first health checks learn the fleet's models (slow under valgrind):
# wait until its /v1/models lists the model the bench asks for
model=llama-3.1-8b-instruct-fp8-l4
learnt() { curl -s -m 5 "http://127.0.0.1:$(cat "$d/r")/v1/models" | grep -q "\"$model\""; }
end=$((SECONDS + 60))
until learnt || [ $SECONDS -ge $end ]; do sleep 0.1; done
learnt || { echo "router did not learn the model within 60 s"; cat "$d/route.vg"; exit 1; }
"$P" dataset --out "$d/ds.json" --conversations 20 > /dev/null
"${VG[@]}" --log-file="$d/bench.vg" "$P" bench --disable-tqdm --base-url "http://127.0.0.1:$(cat "$d/r")" \
	--dataset-path "$d/ds.json" --num-prompts 20 --max-conversations 20 --max-concurrency 5 > "$d/bench.out" 2>&1
brc=$?
# a client that leaves mid-stream, and bad input, while under valgrind
curl -s -m 0.5 -N "http://127.0.0.1:$(cat "$d/r")/v1/completions" \
	-d '{"model":"'$model'","prompt":"hi","max_tokens":500,"stream":true}' > /dev/null
curl -s "http://127.0.0.1:$(cat "$d/r")/v1/completions" -d '{"model":' > /dev/null
kill -TERM $rpid; wait $rpid; rrc=$?
kill -TERM $epid; wait $epid; erc=$?
fail=0
for x in engine:$erc route:$rrc bench:$brc; do
	n=${x%%:*} c=${x#*:}
	if [ "$c" != 0 ]; then echo "$n exited $c"; cat "$d/$n.vg"; fail=1; fi
done
grep -q "Successful requests:                     20" "$d/bench.out" || { echo "bench did not finish its requests"; cat "$d/bench.out"; fail=1; }
[ $fail = 0 ] && echo "valgrind: engine, route, bench clean (no errors, no leaks)"
exit $fail
