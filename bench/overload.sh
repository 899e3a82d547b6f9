#!/bin/bash
# bench/overload.sh: issue 15's targets for the router's admission control
# (--admission; src/core/admit.c), each against the same run without it:
#   1. seed 8000@800, faithful client, prefix-hash: p99 TTFT of the admitted
#      requests (target < 2 s) and goodput at TTFT <= 2 s, vLLM's definition
#      (good requests / benchmark duration; target >= 2x without admission);
#   2. seed 1600@200 as-published (the target load): nothing changes (mean and
#      p99 TTFT, throughput, 429s) beyond the spread between data-set seeds;
#   3. two tenants, one flooding at 10x the other (x-prefixlb-tenant): the quiet
#      tenant's p99 TTFT within 1.5x of running alone (and the same without fair
#      share, to show what it buys);
#   4. live (LIVE=1): target 1 over HTTP (engine, router, bench processes at
#      TIME_SCALE), and the router's own time to answer a 429 (access log:
#      total_ms - queue_ms; target < 10 ms).
# Virtual runs are medians over SEEDS (the data set, shuffle and arrivals).
#   ADM=on:ttft-target-ms=1200  SEEDS=1,2,3,12345  LIVE=1  TIME_SCALE=1  OUT=build/overload
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
make -s "$B/prefixlb"
ADM=${ADM:-on:ttft-target-ms=1200}
SEEDS=${SEEDS:-1,2,3,12345}
OUT=${OUT:-build/overload}
mkdir -p "$OUT"
lab() { # NAME ARGS...: a virtual lab run into $OUT/NAME
	local name=$1
	shift
	"$B/prefixlb" lab --virtual --scenario seed --policies prefix-hash --seed "$SEEDS" --goodput-ttft-ms 2000 --quiet \
		--out "$OUT/$name" "$@" > "$OUT/$name.txt" 2>&1 || { tail -20 "$OUT/$name.txt"; exit 1; }
}
lab seed8000 --variant faithful --concurrency 8000@800 --admission "off,$ADM"
lab seed1600 --variant as-published --concurrency 1600@200 --admission "off,$ADM"
lab flood --variant faithful --concurrency 8000@440 --num-prompts 16000 --tenants quiet:1+flood:10 \
	--admission "off,$ADM,$ADM:fair=0"
lab alone --variant faithful --concurrency 8000@40 --num-prompts 1454 --tenants quiet:1 --admission "$ADM"
if [ "${LIVE:-1}" = 1 ]; then
	for a in off "$ADM"; do
		n=live-${a%%:*}
		"$B/prefixlb" lab --live --time-scale "${TIME_SCALE:-1}" --scenario seed --variant faithful \
			--concurrency 8000@800 --policies prefix-hash --admission "$a" --goodput-ttft-ms 2000 --quiet \
			--out "$OUT/$n" > "$OUT/$n.txt" 2>&1 || { tail -20 "$OUT/$n.txt"; exit 1; }
		[ "$a" = off ] || cp "$OUT/$n/live/access.log" "$OUT/access.log"
	done
fi
echo "admission: $ADM; virtual runs: medians over seeds $SEEDS (min..max); prefix-hash"
node -e '
const [out, live] = [process.argv[1], process.argv[2] === "1"];
const runs = f => require(require("path").resolve(out, f)).runs;
const med = v => { const s = [...v].sort((a, b) => a - b), n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const agg = (rs, adm, k) => { const v = rs.filter(r => r.admission === adm).map(k); return { m: med(v), lo: Math.min(...v), hi: Math.max(...v) }; };
const f = (a, d = 0) => `${a.m.toFixed(d)} (${a.lo.toFixed(d)}..${a.hi.toFixed(d)})`;
const adm = runs("seed8000/results.json").map(r => r.admission).find(a => a !== "off");
const yes = b => b ? "met" : "MISSED";
// 1
let rs = runs("seed8000/results.json");
const p99 = agg(rs, adm, r => r.p99_ttft_ms), g0 = agg(rs, "off", r => r.request_goodput), g1 = agg(rs, adm, r => r.request_goodput);
const ratios = [...new Set(rs.map(r => r.seed))].map(s => rs.find(r => r.seed === s && r.admission === adm).request_goodput /
	rs.find(r => r.seed === s && r.admission === "off").request_goodput);
const rat = { m: med(ratios), lo: Math.min(...ratios), hi: Math.max(...ratios) };
console.log("1. seed 8000@800 faithful");
console.log(`   off:  p99 TTFT ${f(agg(rs, "off", r => r.p99_ttft_ms))} ms, goodput@2s ${f(g0, 2)} req/s, 429 0`);
console.log(`   on:   p99 TTFT ${f(p99)} ms, goodput@2s ${f(g1, 2)} req/s, served ${f(agg(rs, adm, r => r.completed))}, 429 ${f(agg(rs, adm, r => r.rejected))}`);
console.log(`   p99 < 2 s: ${yes(p99.hi < 2000)}; goodput ratio ${f(rat, 2)} >= 2: ${yes(rat.lo >= 2)}`);
// 2
rs = runs("seed1600/results.json");
console.log("2. seed 1600@200 as-published (the target load)");
for (const a of ["off", adm])
	console.log(`   ${a === "off" ? "off" : "on "}:  TTFT mean ${f(agg(rs, a, r => r.mean_ttft_ms))} p99 ${f(agg(rs, a, r => r.p99_ttft_ms))} ms, ` +
		`${f(agg(rs, a, r => r.total_token_throughput))} tok/s, 429 ${f(agg(rs, a, r => r.rejected))}`);
const per = [...new Set(rs.map(r => r.seed))].map(s => { const o = rs.find(r => r.seed === s && r.admission === "off"), n = rs.find(r => r.seed === s && r.admission === adm);
	return [n.mean_ttft_ms / o.mean_ttft_ms, n.total_token_throughput / o.total_token_throughput, n.rejected]; });
console.log(`   per seed on/off: mean TTFT x${per.map(p => p[0].toFixed(3)).join(" ")}, throughput x${per.map(p => p[1].toFixed(3)).join(" ")}, 429 ${per.map(p => p[2]).join(" ")}`);
// 3
rs = runs("flood/results.json");
const al = runs("alone/results.json");
console.log("3. two tenants at 440 req/s, flood:quiet 10:1 (16,000 requests); quiet alone at 40 req/s");
const q = (r) => r.tenant_quiet_p99_ttft_ms;
for (const a of ["off", adm, adm + ":fair=0"]) {
	const rr = [...new Set(rs.map(r => r.seed))].map(s => q(rs.find(r => r.seed === s && r.admission === a)) / q(al.find(r => r.seed === s)));
	console.log(`   ${a.padEnd(32)} quiet p99 ${f(agg(rs, a, q))} ms (alone ${f(agg(al, adm, q))}): x${f({ m: med(rr), lo: Math.min(...rr), hi: Math.max(...rr) }, 2)}` +
		(a === adm ? `  within 1.5x: ${yes(med(rr) <= 1.5)}` : ""));
	// the p99 is of served requests: how many of the quiet ones got 429 instead
	console.log(`   ${"".padEnd(32)} quiet 429s ${f(agg(rs, a, r => r.tenant_quiet_rejected))} of ${f(agg(rs, a, r => r.tenant_quiet_rejected + r.tenant_quiet_completed))} (alone ${f(agg(al, adm, r => r.tenant_quiet_rejected))})`);
}
if (live) {
	const l0 = runs("live-off/results-live.json")[0], l1 = runs("live-on/results-live.json")[0];
	console.log("4. live, seed 8000@800 faithful (times in engine time)");
	console.log(`   off:  p99 TTFT ${l0.p99_ttft_ms.toFixed(0)} ms, goodput@2s ${l0.request_goodput.toFixed(2)} req/s`);
	console.log(`   on:   p99 TTFT ${l1.p99_ttft_ms.toFixed(0)} ms, goodput@2s ${l1.request_goodput.toFixed(2)} req/s, served ${l1.completed}, 429 ${l1.rejected}` +
		`; ratio x${(l1.request_goodput / l0.request_goodput).toFixed(2)}`);
	const lines = require("fs").readFileSync(`${out}/access.log`, "utf8").trim().split("\n").map(JSON.parse).filter(x => x.status === 429);
	const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };
	const rt = lines.map(x => x.total_ms - x.queue_ms);
	const by = {};
	for (const x of lines) by[x.admission] = (by[x.admission] || 0) + 1;
	console.log(`   429s: ${lines.length} (${Object.entries(by).map(([k, v]) => `${k} ${v}`).join(", ")}); router time (total - queue) ` +
		`median ${pct(rt, 50).toFixed(3)} p99 ${pct(rt, 99).toFixed(3)} max ${Math.max(...rt).toFixed(3)} ms: < 10 ms ${yes(Math.max(...rt) < 10)}`);
}
' "$OUT" "${LIVE:-1}"
