#!/bin/bash
# 015: `prefixlb --version` / `prefixlb version`, and what `prefixlb engine`
# says about a profile it does not know and a KV cache it cannot hold.
set -eu
P=${PREFIXLB:-build/prefixlb}
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# version: "prefixlb VERSION", VERSION = git describe --always --dirty at build time
v=$($P --version) || fail "--version exit $?"
[ "$($P version)" = "$v" ] || fail "'version' and '--version' differ"
[[ $v =~ ^prefixlb\ ([^[:space:]]+)$ ]] || fail "version line: '$v'"
ver=${BASH_REMATCH[1]}
if git rev-parse --git-dir >/dev/null 2>&1; then
	# built from this checkout: a commit of it (maybe "-dirty"), or tag-N-gHASH
	h=${ver%-dirty}
	h=${h##*-g}
	git cat-file -e "$h^{commit}" 2>/dev/null || fail "version '$ver' names no commit of this repository"
else
	[ "$ver" = "0.1-unknown" ] || fail "version outside git: '$ver'"
fi

# an unknown profile name: the known ones listed, exit 2
rc=0
$P engine --profile nosuch --port 0 2>"$tmp/err" || rc=$?
[ $rc -eq 2 ] || fail "unknown profile: exit $rc"
grep -qxF "prefixlb engine: unknown profile 'nosuch' (known: l4-llama3.1-8b, a100-llama3.1-8b, h100-llama3.1-8b; or a file of key = value lines)" "$tmp/err" \
	|| fail "unknown profile message: $(cat "$tmp/err")"
# a readable file is still a profile
printf 'base = h100-llama3.1-8b\nkv_capacity_tokens = 123456\n' >"$tmp/p.conf"
$P engine --profile "$tmp/p.conf" --help >"$tmp/out" 2>&1 || fail "profile file: exit $?"
grep -q "kv_capacity_tokens *123456" "$tmp/out" || fail "profile file not applied: $(head -5 "$tmp/out")"

# a KV cache whose block count does not fit: a clear error, exit 2 (no crash, no wrap)
rc=0
$P engine --kv-capacity-tokens 1e10 --port 0 2>"$tmp/err" || rc=$?
[ $rc -eq 2 ] || fail "kv 1e10: exit $rc"
grep -q "kv_capacity_tokens: at most 268435456 with block_size 16" "$tmp/err" || fail "kv message: $(cat "$tmp/err")"
echo ok
