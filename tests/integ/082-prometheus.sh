#!/bin/bash
# 082: Prometheus (Debian's prometheus package) against the router and the engine.
#   - `promtool check metrics` on the router's /metrics, once per routing policy
#     (each exports its own prefixlb_policy_* series), after traffic, and on the
#     engine's: no finding, but for the engine's vllm:* names (vLLM's own
#     names, colons included, kept as vLLM writes them so that dashboards and
#     the router's /metrics poller read both alike)
#   - deploy/kubernetes/prometheus.yaml's prometheus.yml passes `promtool check
#     config` and its alerts.yml `promtool check rules` and the rules' unit
#     tests (deploy/prometheus-tests.yml, `promtool test rules`)
#   - a Prometheus server with a scrape config of its own (127.0.0.1, a free
#     port, 1 s interval) shows both targets up through its API within 20 s
# Prints what it measured.
set -u
P=${PREFIXLB:-build/prefixlb}
command -v promtool >/dev/null && command -v prometheus >/dev/null || { echo "skipped: prometheus not installed (scripts/setup)"; exit 77; }
d=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; rm -rf "$d"' EXIT
trap 'exit 1' INT TERM
waitfile() { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout waiting for $1"; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }

"$P" engine --replicas 2 --port 0 --ports-file "$d/e" --time-scale 50 2>/dev/null &
pids+=($!)
waitfile "$d/e"
sleep 0.2 # both lines of the ports file
e0=$(sed -n 1p "$d/e") e1=$(sed -n 2p "$d/e")
[ -n "$e1" ] || fail "engine ports"
body='{"model":"llama-3.1-8b-instruct-fp8-l4","messages":[{"role":"user","content":"hello there"}],"max_tokens":4}'

# 1. the router's exposition, for every policy
policies=$("$P" route --help 2>&1 | sed -n 's/.*NAME\[:param=value\]...: \(.*\) (default.*/\1/p' | tr -d ',')
[ -n "$policies" ] || fail "no policy list in route --help"
n_pol=0
for pol in $policies; do
	rm -f "$d/r"
	"$P" route --listen 127.0.0.1:0 --ports-file "$d/r" --access-log off --policy "$pol" --prefix-blocks chars \
		--metrics-poll-ms 200 --backend "http://127.0.0.1:$e0" --backend "http://127.0.0.1:$e1" 2>/dev/null &
	rpid=$!
	waitfile "$d/r"
	r=$(cat "$d/r")
	for _ in 1 2 3; do curl -s -m 5 -o /dev/null "http://127.0.0.1:$r/v1/chat/completions" -d "$body"; done
	curl -s -m 5 -o /dev/null "http://127.0.0.1:$r/nope" # a local 404 too
	curl -s -m 5 "http://127.0.0.1:$r/metrics" > "$d/router.metrics"
	kill $rpid; wait $rpid 2>/dev/null
	grep -q '^prefixlb_requests_total{' "$d/router.metrics" || fail "$pol: no prefixlb_requests_total"
	out=$(promtool check metrics < "$d/router.metrics" 2>&1) || fail "promtool check metrics, router with $pol: $out"
	n_pol=$((n_pol + 1))
done

# 2. the engine's exposition: only vLLM's colon names may be reported
curl -s -m 5 -o /dev/null "http://127.0.0.1:$e0/v1/chat/completions" -d "$body"
curl -s -m 5 "http://127.0.0.1:$e0/metrics" > "$d/engine.metrics"
grep -q '^vllm:num_requests_running{' "$d/engine.metrics" || fail "no vllm:num_requests_running in the engine's /metrics"
promtool check metrics < "$d/engine.metrics" > "$d/engine.lint" 2>&1
other=$(grep -v "^vllm:[a-z0-9_]* metric names should not contain ':'$" "$d/engine.lint")
[ -z "$other" ] || fail "promtool check metrics, engine: $other"
n_colon=$(grep -c . "$d/engine.lint")

# 3. the deployment's Prometheus configuration and alerting rules
/usr/bin/python3 - deploy/kubernetes/prometheus.yaml "$d" <<'EOF' || fail "could not extract prometheus.yml / alerts.yml"
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "ConfigMap":
        for name, text in (doc.get("data") or {}).items():
            open(sys.argv[2] + "/" + name, "w").write(text)
EOF
[ -s "$d/prometheus.yml" ] && [ -s "$d/alerts.yml" ] || fail "prometheus.yaml lacks prometheus.yml or alerts.yml"
out=$(promtool check config "$d/prometheus.yml" 2>&1) || fail "promtool check config: $out"
out=$(promtool check rules "$d/alerts.yml" 2>&1) || fail "promtool check rules: $out"
n_rules=$(printf '%s\n' "$out" | sed -n 's/.*SUCCESS: \([0-9]*\) rules found.*/\1/p')
cp deploy/prometheus-tests.yml "$d/"
out=$(cd "$d" && promtool test rules prometheus-tests.yml 2>&1) || fail "promtool test rules: $out"

# 4. a Prometheus server scraping both
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$d/scrape.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prefixlb-router
    static_configs:
      - targets: ['127.0.0.1:ROUTER']
  - job_name: vllm
    static_configs:
      - targets: ['127.0.0.1:$e0', '127.0.0.1:$e1']
EOF
rm -f "$d/r"
"$P" route --listen 127.0.0.1:0 --ports-file "$d/r" --access-log off --backend "http://127.0.0.1:$e0" \
	--backend "http://127.0.0.1:$e1" 2>/dev/null &
pids+=($!)
waitfile "$d/r"
sed -i "s/ROUTER/$(cat "$d/r")/" "$d/scrape.yml"
out=$(promtool check config "$d/scrape.yml" 2>&1) || fail "promtool check config (test's): $out"
prometheus --config.file="$d/scrape.yml" --storage.tsdb.path="$d/tsdb" --web.listen-address="127.0.0.1:$port" \
	--log.level=warn > "$d/prom.log" 2>&1 &
ppid=$!; pids+=($ppid)
t0=$(date +%s%N) up=0
for _ in $(seq 200); do
	up=$(curl -s -m 2 "http://127.0.0.1:$port/api/v1/targets" | grep -o '"health":"up"' | wc -l)
	[ "$up" -ge 3 ] && break
	kill -0 $ppid 2>/dev/null || fail "prometheus exited: $(tail -3 "$d/prom.log")"
	sleep 0.1
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$up" -ge 3 ] || fail "targets up: $up of 3 after 20 s: $(curl -s "http://127.0.0.1:$port/api/v1/targets" | head -c 600)"
# and a query over what it scraped
q=$(curl -s -m 2 "http://127.0.0.1:$port/api/v1/query?query=up" | grep -o '"value":\[[^]]*,"1"\]' | wc -l)
kill $ppid; wait $ppid 2>/dev/null
[ "$q" -ge 3 ] || fail "query up: $q series at 1"
echo "measured: promtool check metrics clean on the router with $n_pol policies and on the engine (but $n_colon vllm:* names); config, $n_rules rules and their tests pass; prometheus saw router and 2 engines up in $ms ms"
