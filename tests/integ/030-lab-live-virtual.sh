#!/bin/bash
# 030: the lab's live mode (real engine, router and bench processes over HTTP)
# and its virtual mode (discrete-event simulation of the same code) agree on a
# reduced seed scenario: 1,000 requests, 4 replicas, concurrency 800 at rate
# 200, each run after an unmeasured pass of another policy, time scale 3 (low
# enough that engine, router and bench keep up on 2 cores).
# Prints the gaps it measured.
set -eu
P=${PREFIXLB:-build/prefixlb}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
args=(--variant as-published --concurrency 800 --policies least-load,prefix-hash --num-prompts 1000
	--max-conversations 400 --replicas 4)
# sessions (the model's own answers fed back): the simulator renders and tokenizes turns as the bench does
sargs=(--variant faithful --multi-turn-mode sessions --concurrency 50@5 --policies prefix-hash --num-prompts 200
	--max-conversations 40 --replicas 2)
$P lab --virtual "${args[@]}" --out "$d/v" > "$d/v.txt" 2>&1
$P lab --virtual "${sargs[@]}" --out "$d/vs" > "$d/vs.txt" 2>&1
# Other work on the machine (load beyond the cores before our live runs start)
# slows the live processes and not the simulation: then the comparison is
# printed but not judged, as under the sanitizers.
# A live run's timings also depend on what else the machine does while it runs (a
# CI machine's neighbours, a sanitizer build of another flavour): a comparison
# that fails is made once more with fresh live runs, and the test fails only if
# the second one fails too. A real disagreement (a model or client change on one
# side) fails both; the figures of both attempts are printed.
attempt() {
busy=$(awk -v n="$(nproc)" '{ print ($1 > n) ? 1 : 0 }' /proc/loadavg)
load0=$(cut -d' ' -f1 /proc/loadavg)
rm -rf "$d/l" "$d/ls"
$P lab --live --time-scale 3 --progress-interval-s 1 "${args[@]}" --out "$d/l" > "$d/l.txt" 2>&1 ||
	{ cat "$d/l.txt"; exit 1; }
# the bench's progress lines, relayed by the lab (in simulated time), not left in the process log
grep -q "^  measured pass: [0-9]* of 1000 requests done ([0-9]*%), 0 failed, [0-9]* s simulated in" "$d/l.txt" ||
	{ echo "FAIL: no progress line"; cat "$d/l.txt"; exit 1; }
if grep -q "^progress:" "$d/l/live/processes.log"; then echo "FAIL: progress lines in the log"; exit 1; fi
# live runs are plotted too
[ -s "$d/l/ttft-live-as-published.png" ] || { echo "FAIL: no live plot"; ls "$d/l"; exit 1; }
# live runs print their result block too, with the load spread from the bench's per-backend counts
[ "$(grep -c "Serving Benchmark Result" "$d/l.txt")" = 2 ] || { echo "FAIL: live result blocks"; exit 1; }
grep "^Load spread" "$d/l.txt" | awk '{ if (!($NF >= 1 && $NF < 4)) { print "FAIL: live load spread " $NF; exit 1 } }' || exit 1
$P lab --live --time-scale 4 "${sargs[@]}" --out "$d/ls" > "$d/ls.txt" 2>&1 || { cat "$d/ls.txt"; exit 1; }
# Under the sanitizers every process runs several times slower, so the live
# timings are not comparable: the run is still made (memory errors, exit codes),
# the comparison is printed but not judged.
strict=1
case "${PREFIXLB_BUILD:-}" in *asan*) strict=0; echo "(sanitizer build: comparison not judged)";; esac
if [ "$busy" = 1 ]; then strict=0; echo "(load average $load0 over $(nproc) cores before the live runs: comparison not judged)"; fi
STRICT=$strict node -e '
const v = require(process.argv[1]).runs.concat(require(process.argv[3]).runs),
  l = require(process.argv[2]).runs.concat(require(process.argv[4]).runs);
let bad = 0;
const said = [];
for (const a of v) {
  const b = l.find(x => x.policy === a.policy && x.workload === a.workload);
  if (!b) { console.log("missing live run for", a.policy); bad++; continue; }
  // Both on the fleet the run order of the seed leaves (the default warm-up of the seed scenario).
  // Throughput gets +-15%, not the +-10% of the full-size check at time scale 1 (bench/lab_agreement.sh: 0.5-0.7%
  // off): at this size a run ends with its few longest answers, and time scale 3 triples the real per-request
  // costs (timer rounding, loopback hops) in simulated time; measured 0.92-1.03 here. TPOT +-25% (0.98-1.04).
  // Mean TTFT: in the sessions run (50 closed-loop clients) +-25% (1.02-1.04 here). In the 800-concurrency runs
  // it is the length of queues behind a busy replica, which a few ms of scheduling moves: identical live runs on
  // this 2-core machine gave prefix-hash 228-304 ms and least-load 2111-3424 ms (virtual 220 and 3033), so no
  // comparison can be tighter than the live runs agree with one another: there it must stay within 0.5-2x, which
  // still catches a client that dispatches at the wrong rate or a router that ignores its policy.
  const ttft = a.workload === "sessions" ? [0.75, 1.25] : [0.5, 2];
  for (const [k, lo, hi] of [["total_token_throughput", 0.85, 1.15], ["median_tpot_ms", 0.75, 1.25],
                             ["mean_ttft_ms", ...ttft]]) {
    const r = b[k] / a[k];
    console.log(`${(a.policy + (a.workload === "sessions" ? "/s" : "")).padEnd(14)} ${k.padEnd(24)} virtual ${a[k].toFixed(1).padStart(10)} live ${b[k].toFixed(1).padStart(10)} ratio ${r.toFixed(3)}`);
    if (!(r >= lo && r <= hi)) { console.log(`  outside ${lo}-${hi}`); bad++; }
  }
  // which requests hit the cache does not depend on timing much: +-0.05 everywhere (0.000-0.015 off here)
  if (!(Math.abs(a.cache_hit_rate - b.cache_hit_rate) <= 0.05)) {
    console.log(`${a.policy}${a.workload === "sessions" ? "/s" : ""} hit rate virtual ${a.cache_hit_rate} live ${b.cache_hit_rate}: outside +-0.05`); bad++;
  }
  said.push(`${a.policy}${a.workload === "sessions" ? " sessions" : ""} ` +
    ["total_token_throughput", "median_tpot_ms", "mean_ttft_ms"].map(k => (b[k] / a[k]).toFixed(2)).join("/") +
    ` hit ${(b.cache_hit_rate - a.cache_hit_rate).toFixed(3)}`);
}
console.log(`measured: live/virtual throughput/TPOT/TTFT, hit-rate gap: ${said.join(", ")}`);
process.exit(bad && process.env.STRICT === "1" ? 1 : 0);
' "$d/v/results.json" "$d/l/results-live.json" "$d/vs/results.json" "$d/ls/results-live.json"
}
attempt && exit 0
echo "(comparison failed: once more with fresh live runs)"
attempt
