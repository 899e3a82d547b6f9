#!/bin/bash
# 083: deploy/ checked offline, the strictest way Debian 12 offers:
#   - yamllint --strict (deploy/yamllint.yml) on every file, and on the YAML
#     files embedded in ConfigMaps (prometheus.yml, alerts.yml)
#   - deploy/check-kubernetes: every object against the Kubernetes 1.22 API
#     models of python3-kubernetes (unknown fields, types, required fields),
#     the references between the objects, the router's requirements
#   - the router's ConfigMap route.conf runs: `prefixlb route --config` on it
#     starts (its listen address overridden) and answers /health
# (promtool on the Prometheus files: 082.) Prints what it checked.
set -u
P=${PREFIXLB:-build/prefixlb}
PY=/usr/bin/python3
command -v yamllint >/dev/null || { echo "skipped: yamllint not installed (scripts/setup)"; exit 77; }
$PY -c 'import kubernetes' 2>/dev/null || { echo "skipped: python3-kubernetes not installed (scripts/setup)"; exit 77; }
d=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; rm -rf "$d"' EXIT
trap 'exit 1' INT TERM
fail() { echo "FAIL: $*"; exit 1; }

out=$(yamllint --strict -c deploy/yamllint.yml deploy/ 2>&1) || fail "yamllint: $out"
n_yaml=$(find deploy -name '*.y*ml' | wc -l)
$PY - "$d" deploy/kubernetes/*.yaml <<'PYEOF' || fail "could not extract the ConfigMaps' files"
import sys, yaml
for f in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(f)):
        if doc and doc.get("kind") == "ConfigMap":
            for name, text in (doc.get("data") or {}).items():
                open(sys.argv[1] + "/" + name, "w").write(text)
PYEOF
[ -s "$d/route.conf" ] || fail "no route.conf in the ConfigMaps"
for f in "$d"/*.yml; do
	out=$(yamllint --strict -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' "$f" 2>&1) ||
		fail "yamllint $(basename "$f") (embedded): $out"
done
out=$(deploy/check-kubernetes deploy/kubernetes/*.yaml 2>&1) || fail "$out"
summary=$(printf '%s\n' "$out" | tail -1)

"$P" route --config "$d/route.conf" --listen 127.0.0.1:0 --ports-file "$d/port" --access-log off 2>"$d/route.err" &
rpid=$!; pids+=($rpid)
for _ in $(seq 100); do [ -s "$d/port" ] && break; kill -0 $rpid 2>/dev/null || break; sleep 0.1; done
[ -s "$d/port" ] || fail "the router did not start on route.conf: $(cat "$d/route.err")"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$d/port")/health")
[ "$code" = 503 ] || fail "/health answered $code with no backend (503 expected)"
grep -q "policy prefix-hash" "$d/route.err" || fail "route.conf's policy not in effect: $(cat "$d/route.err")"
kill -TERM $rpid; wait $rpid
echo "measured: yamllint --strict clean on $n_yaml files + $(ls "$d"/*.yml | wc -l) embedded; $summary; route.conf runs"
