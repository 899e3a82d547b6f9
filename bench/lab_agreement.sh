#!/bin/bash
# bench/lab_agreement.sh: live and virtual `prefixlb lab` on the seed scenario,
# full size (8 replicas, 8,000 requests), side by side: mean TTFT, median TPOT
# and total token throughput, with the ratio live/virtual against issue 6's
# +-10%. The live run is real processes over loopback (engine, router, bench)
# at TIME_SCALE (default 1: real time, ~2 minutes per policy and row).
#   CONC=1600 (lab --concurrency list)  POLICIES=least-load,prefix-hash  TIME_SCALE=1
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
make -s "$B/prefixlb"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
args=(--variant as-published --concurrency "${CONC:-1600}" --policies "${POLICIES:-least-load,prefix-hash}")
"$B/prefixlb" lab --virtual "${args[@]}" --out "$d" > /dev/null 2>&1
"$B/prefixlb" lab --live --time-scale "${TIME_SCALE:-1}" "${args[@]}" --out "$d" > "$d/live.txt" 2>&1 ||
	{ tail -20 "$d/live.txt"; exit 1; }
echo "live (time scale ${TIME_SCALE:-1}) vs virtual, seed scenario as-published; * = outside +-10%"
node -e '
const v = require(process.argv[1]).runs, l = require(process.argv[2]).runs;
let ok = 0, all = 0;
for (const a of v) {
  const b = l.find(x => x.policy === a.policy && x.max_concurrency === a.max_concurrency);
  if (!b) continue;
  const cells = ["mean_ttft_ms", "median_tpot_ms", "total_token_throughput"].map(k => {
    const r = b[k] / a[k]; all++; const hit = Math.abs(r - 1) <= 0.10; ok += hit;
    return `${k} ${b[k].toFixed(1)} / ${a[k].toFixed(1)} (${r.toFixed(3)})${hit ? " " : "*"}`;
  });
  console.log(`${String(a.max_concurrency).padStart(5)} ${a.policy.padEnd(12)} ${cells.join("   ")}`);
}
console.log(`${ok} of ${all} within 10%`);
' "$d/results.json" "$d/results-live.json"
