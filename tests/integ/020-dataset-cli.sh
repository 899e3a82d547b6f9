#!/bin/bash
# 020: `prefixlb dataset`: writes a readable data set, prints its fork-mode
# statistics, and names the file and place of bad input.
set -eu
P=${PREFIXLB:-build/prefixlb}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

$P dataset --out "$d/a.json" --conversations 200 --seed 7 > "$d/out.txt" || fail "generate"
grep -q "pairs kept" "$d/out.txt" || fail "no fork statistics"
$P dataset --out "$d/b.json" --conversations 200 --seed 7 > /dev/null
cmp -s "$d/a.json" "$d/b.json" || fail "not deterministic"
$P dataset --stats "$d/a.json" | grep -q "conversations:                 200" || fail "stats of a file"
for p in shared-system hot rag; do
	$P dataset --out "$d/$p.json" --preset $p --conversations 50 > /dev/null || fail "preset $p"
done
if $P dataset --out "$d/x.json" --preset nope 2>"$d/err"; then fail "unknown preset accepted"; fi
grep -q "unknown preset" "$d/err" || fail "preset message"
printf '[{"conversations": [\n  {"from": "human", "value": 3}]}]' > "$d/bad.json"
if $P dataset --stats "$d/bad.json" 2>"$d/err"; then fail "bad file accepted"; fi
grep -q "bad.json:entry 0, message 0" "$d/err" || fail "bad file message: $(cat "$d/err")"
printf '[{"conversations": [\n  {"from": "human" "value": "x"}]}]' > "$d/bad2.json"
if $P dataset --stats "$d/bad2.json" 2>"$d/err"; then fail "broken JSON accepted"; fi
grep -q "bad2.json:2:" "$d/err" || fail "broken JSON message: $(cat "$d/err")"
echo ok
