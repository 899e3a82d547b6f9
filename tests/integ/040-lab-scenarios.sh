#!/bin/bash
# 040: lab scenarios: a scenario file whose lists expand to their cross
# product; built-in scenarios; errors name the file.
set -eu
P=${PREFIXLB:-build/prefixlb}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cat > "$d/sweep.conf" <<'CONF'
# 2 policies x 2 concurrency levels x 2 replica counts x 2 seeds = 16 runs
policies = least-load, prefix-hash
concurrency = 50@20, 100@40
replicas = 2, 4
seed = 1, 2
num-prompts = 200
max-conversations = 100
CONF
$P lab --virtual --scenario "$d/sweep.conf" --out "$d/out" > "$d/log" 2>&1 || { cat "$d/log"; fail "sweep run"; }
n=$(node -e 'console.log(require(process.argv[1]).runs.length)' "$d/out/results.json")
[ "$n" = 16 ] || fail "expected 16 runs, got $n"
node -e '
const r = require(process.argv[1]).runs;
const keys = ["variant","policy","replicas","max_concurrency","request_rate","seed","completed","duration",
  "total_input_tokens","total_output_tokens","request_throughput","output_throughput","total_token_throughput",
  "mean_ttft_ms","median_ttft_ms","p99_ttft_ms","mean_tpot_ms","median_tpot_ms","p99_tpot_ms","mean_itl_ms",
  "median_itl_ms","p99_itl_ms","cache_hit_rate"];
for (const x of r) for (const k of keys) if (!(k in x)) { console.log("missing", k); process.exit(1); }
const combos = new Set(r.map(x => [x.policy, x.max_concurrency, x.replicas, x.seed].join("/")));
if (combos.size !== 16) { console.log("duplicate combinations"); process.exit(1); }
' "$d/out/results.json" || fail "results.json content"
ls "$d/out"/ttft-as-published.png > /dev/null || fail "no plot"
# a vLLM-style result block per run, with the hit rate and load spread; --quiet keeps only the tables
[ "$(grep -c "Serving Benchmark Result" "$d/log")" = 16 ] || fail "expected 16 result blocks"
[ "$(grep -c "^Load spread (max/mean per replica):" "$d/log")" = 16 ] || fail "expected 16 load spreads"
$P lab --virtual --scenario "$d/sweep.conf" --quiet --out "$d/out" > "$d/log" 2> "$d/err" || fail "quiet run"
if grep -q "Serving Benchmark Result" "$d/log"; then fail "--quiet printed result blocks"; fi
grep -q "^conc@rate" "$d/log" || fail "--quiet printed no table"
# the tables fit in 120 columns and a legend explains their columns and rows
awk 'length > 120 { print "over 120 columns: " $0; bad = 1 } END { exit bad }' "$d/log" || fail "table width"
grep -q "^columns: conc@rate = max concurrency @ request rate" "$d/log" || fail "no column legend"
grep -q "^rows: one per run; policy: least-load = " "$d/log" || fail "no row legend"
# a run of the seed's setup: its published row and the ratio row under ours; in the plots the seed's points,
# one series per policy, and a title with the scenario, the client variant and the rate
$P lab --virtual --concurrency 1600 --policies least-load,prefix-hash --variant as-published --quiet --out "$d/s1" \
	> "$d/log" 2>&1 || { cat "$d/log"; fail "seed row run"; }
grep -q "^ *seed  *153.0  *47476 " "$d/log" || fail "no seed row: $(cat "$d/log")"
grep -q "^ *ours/seed  *[0-9.]* " "$d/log" || fail "no ours/seed row"
grep -q "mean TTFT least-load / prefix-hash" "$d/log" || fail "headline does not say its ratios"
gp="$d/s1/plot-as-published.gp"
for pol in least-load prefix-hash; do
	grep -q "title '$pol (seed, published)'" "$gp" || fail "no seed series for $pol in $gp"
done
grep -q "seed scenario, virtual time.*seed's client: 7.7 ms dispatch floor + 65 ms lag.*request rate 200 req/s" "$gp" ||
	fail "plot title: $(grep -m1 'set title' "$gp")"
$P lab --virtual --scenario conversations --num-prompts 300 --out "$d/c" > /dev/null 2>&1 || fail "conversations scenario"
echo "policies = nope" > "$d/bad.conf"
if $P lab --virtual --scenario "$d/bad.conf" 2> "$d/err"; then fail "bad policy accepted"; fi
grep -q "unknown policy 'nope'" "$d/err" || fail "bad policy message: $(cat "$d/err")"
echo "no-such-option = 3" > "$d/bad2.conf"
if $P lab --virtual --scenario "$d/bad2.conf" 2> "$d/err"; then fail "bad option accepted"; fi
grep -q "bad2.conf" "$d/err" || fail "bad file message: $(cat "$d/err")"
if $P lab --virtual --scenario "$d/missing.conf" 2> "$d/err"; then fail "missing file accepted"; fi
grep -q "missing.conf" "$d/err" || fail "missing file message"
# --warm-up: a policy or a mode
if $P lab --virtual --warm-up sideways --num-prompts 100 2> "$d/err"; then fail "bad --warm-up accepted"; fi
grep -q "warm-up: none, same, alternate or a policy: unknown policy 'sideways' (known: round-robin, random, least-load, prefix-hash" "$d/err" || fail "warm-up message: $(cat "$d/err")"
# the seed scenario's defaults are recorded per run
$P lab --virtual --concurrency 100@50 --policies least-load,prefix-hash --num-prompts 300 --out "$d/w" > /dev/null 2>&1 ||
	fail "seed scenario run"
node -e '
const r = require(process.argv[1]).runs;
const want = {"as-published/least-load": [7.7, 65, "prefix-hash"], "as-published/prefix-hash": [7.7, 65, "least-load"],
  "faithful/least-load": [0, 0, "prefix-hash"], "faithful/prefix-hash": [0, 0, "least-load"]};
for (const x of r) {
  const w = want[x.variant + "/" + x.policy];
  if (!w || x.dispatch_floor_ms !== w[0] || x.client_lag_ms !== w[1] || x.warm_up !== w[2]) {
    console.log("unexpected", x.variant, x.policy, x.dispatch_floor_ms, x.client_lag_ms, x.warm_up); process.exit(1);
  }
}
if (r.length !== 4) { console.log(r.length, "runs"); process.exit(1); }
' "$d/w/results.json" || fail "recorded client and fleet settings"
# profiles, data sets (a preset and a ShareGPT file) and request counts are lists too
$P dataset --out "$d/ds.json" --conversations 60 --seed 5 > /dev/null 2>&1 || fail "dataset"
cat > "$d/axes.conf" <<CONF
profile = l4-llama3.1-8b, a100-llama3.1-8b
dataset = seed, $d/ds.json
num-prompts = 150, 300
policies = prefix-hash
concurrency = 50@20
max-conversations = 100
CONF
$P lab --virtual --scenario "$d/axes.conf" --out "$d/axes" > "$d/log" 2>&1 || { cat "$d/log"; fail "axes sweep"; }
node -e '
const r = require(process.argv[1]).runs;
const combos = new Set(r.map(x => [x.profile, x.dataset, x.num_prompts].join("/")));
if (r.length !== 8 || combos.size !== 8) { console.log(r.length, "runs,", combos.size, "combinations"); process.exit(1); }
for (const x of r) if (x.completed !== x.num_prompts) { console.log("completed", x.completed, "of", x.num_prompts); process.exit(1); }
' "$d/axes/results.json" || fail "profile x dataset x num-prompts"
grep -q "x: num prompts" "$d/log" || fail "plot axis: $(grep plots "$d/log")"
# warm-up, client lag and rate are lists as well; the faithful client has no lag to sweep
$P lab --virtual --quiet --policies prefix-hash --concurrency 50 --request-rate 20,40 --warm-up none,alternate \
	--client-lag-ms 0,65 --variant both --num-prompts 150 --max-conversations 100 --out "$d/sc" > "$d/log" 2>&1 ||
	{ cat "$d/log"; fail "scalar lists"; }
node -e '
const r = require(process.argv[1]).runs;
const key = x => [x.variant, x.request_rate, x.warm_up, x.client_lag_ms].join("/");
const ap = r.filter(x => x.variant === "as-published"), fa = r.filter(x => x.variant === "faithful");
if (ap.length !== 8 || fa.length !== 4 || new Set(r.map(key)).size !== 12) { console.log(r.map(key)); process.exit(1); }
if (fa.some(x => x.client_lag_ms !== 0)) { console.log("faithful with a lag"); process.exit(1); }
' "$d/sc/results.json" || fail "rate x warm-up x lag"
grep -q "^run column: the settings that vary:.* warm-up" "$d/log" || fail "swept warm-up not said"
grep -q "^50@20 .* alternate" "$d/log" || fail "swept warm-up not in the run column"
# the workload mode is a list: sessions feed the model's answers back, one session per conversation
$P lab --virtual --quiet --multi-turn-mode fork,sessions --think-time-s 2 --policies least-load,prefix-hash \
	--concurrency 40@4 --num-prompts 300 --max-conversations 60 --out "$d/ses" > "$d/log" 2>&1 ||
	{ cat "$d/log"; fail "sessions run"; }
node -e '
const r = require(process.argv[1]).runs, s = r.filter(x => x.workload === "sessions");
if (r.length !== 8 || s.length !== 4) { console.log(r.length, "runs,", s.length, "sessions runs"); process.exit(1); }
for (const x of s) if (x.think_time_s !== 2 || x.warm_up !== "none" || !(x.completed > 100 && x.completed <= 300)) {
  console.log("sessions run", x.policy, x.think_time_s, x.warm_up, x.completed); process.exit(1); }
const ph = s.find(x => x.policy === "prefix-hash" && x.variant === "faithful"), ll = s.find(x => x.policy === "least-load" && x.variant === "faithful");
if (!(ph.cache_hit_rate > ll.cache_hit_rate)) { console.log("hit rates", ph.cache_hit_rate, ll.cache_hit_rate); process.exit(1); }
' "$d/ses/results.json" || fail "sessions results"
if $P lab --virtual --multi-turn-mode single 2> "$d/err"; then fail "bad mode accepted"; fi
grep -q "multi-turn-mode: fork or sessions, not 'single'" "$d/err" || fail "mode message: $(cat "$d/err")"
if $P lab --virtual --client-lag-ms 5,abc 2> "$d/err"; then fail "bad lag accepted"; fi
grep -q "client-lag-ms: 'abc' is not a number" "$d/err" || fail "lag message: $(cat "$d/err")"
if $P lab --virtual --dataset "$d/nope.json" --out "$d/b" 2> "$d/err"; then fail "missing data set accepted"; fi
grep -q "nope.json: neither a preset" "$d/err" || fail "data set message: $(cat "$d/err")"
echo '[{"id": 1, "conversations": [' > "$d/broken.json"
if $P lab --virtual --dataset "$d/broken.json" --num-prompts 10 --out "$d/b" 2> "$d/err"; then fail "broken data set accepted"; fi
grep -q "broken.json" "$d/err" || fail "broken data set message: $(cat "$d/err")"
# a closed loop of chat sessions: rate inf is accepted and said so, answers capped, a timeout per request
$P lab --virtual --quiet --variant faithful --multi-turn-mode sessions --policies prefix-hash --concurrency 8@inf --max-output-tokens 12 \
	--request-timeout-s 0,0.05 --num-prompts 120 --max-conversations 30 --replicas 2 --out "$d/inf" > "$d/log" 2>&1 ||
	{ cat "$d/log"; fail "closed loop"; }
grep -q "^8@inf " "$d/log" || fail "rate inf not in the table: $(grep -m3 '@' "$d/log")"
node -e '
const r = require(process.argv[1]).runs;
if (r.length !== 2) { console.log(r.length, "runs"); process.exit(1); }
for (const x of r) {
  if (x.request_rate !== "inf" || x.max_output_tokens !== 12) { console.log("rate", x.request_rate, "cap", x.max_output_tokens); process.exit(1); }
  const perReq = x.total_output_tokens / x.completed;
  if (x.completed && !(perReq <= 12)) { console.log("answers longer than the cap:", perReq); process.exit(1); }
}
const t = r.find(x => x.request_timeout_s > 0), n = r.find(x => x.request_timeout_s === 0);
if (!(t.timed_out > 0) || n.timed_out !== 0) { console.log("timeouts", t.timed_out, n.timed_out); process.exit(1); }
' "$d/inf/results.json" || fail "closed loop results"
echo ok
