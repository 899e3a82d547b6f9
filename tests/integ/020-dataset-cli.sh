#!/bin/bash
# 020: `prefixlb dataset`: writes a readable data set, prints its fork-mode
# statistics, shapes turns and lengths as asked, filters and cuts a real file
# (--input), and names the file and place of bad input.
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
grep -qE "bad2.json:2:[0-9]+: " "$d/err" || fail "broken JSON message: $(cat "$d/err")"
set +e
$P dataset --input "$d/bad2.json" --out "$d/never.json" 2>"$d/err"
rc=$?
set -e
[ $rc = 1 ] || fail "bad --input file: exit $rc, not 1"
grep -qE "^prefixlb dataset: .*bad2.json:2:[0-9]+: " "$d/err" || fail "--input message: $(cat "$d/err")"
[ ! -e "$d/never.json" ] || fail "wrote an output from a bad input"

# shaping: the statistics of the written file show the asked shape
field() { # $1 = line label, $2 = field name: prints its value
	grep "^$1" | sed -n "s/.*[:,] $2 \([0-9.]*\).*/\1/p"
}
$P dataset --out "$d/shaped.json" --conversations 600 --seed 3 --turns lognormal:5:0.6:2:20 \
	--user-tokens constant:20 --assistant-tokens uniform:50:60 > "$d/gen.txt" || fail "shaped generation"
grep -q "turns lognormal:5:0.6:2:20, user tokens constant:20, assistant tokens uniform:50:60" "$d/gen.txt" ||
	fail "the wrote line does not say the shape: $(head -1 "$d/gen.txt")"
$P dataset --stats "$d/shaped.json" > "$d/st.txt" || fail "stats of the shaped file"
t=$(grep "^user turns per conversation:" "$d/st.txt")
[[ $t == *"median 5,"* && $t == *"min 2, max 20"* ]] || fail "turns: $t"
ut=$(field "user message tokens:" median < "$d/st.txt")
at=$(field "assistant message tokens:" median < "$d/st.txt")
awk -v u="$ut" -v a="$at" 'BEGIN { exit !(u >= 18 && u <= 24 && a >= 50 && a <= 64) }' ||
	fail "user median $ut (asked 20), assistant median $at (asked 50-60)"
grep -qE "^  2 +[0-9]+ +[0-9.]+%  #+$" "$d/st.txt" || fail "no histogram line for 2 turns"
cmp -s <(tail -n +2 "$d/gen.txt") "$d/st.txt" || fail "--stats of the file differs from the generator's"
# the older spellings still shape the turns
$P dataset --out "$d/old.json" --conversations 50 --min-messages 4 --max-messages 6 > "$d/old.txt" || fail "old flags"
grep -q "turns uniform:2:3" "$d/old.txt" || fail "--min-messages/--max-messages: $(head -1 "$d/old.txt")"
$P dataset --out "$d/chat.json" --preset chat --conversations 300 > "$d/chat.txt" || fail "preset chat"
grep -q "^user turns per conversation:.*min 2, max" "$d/chat.txt" || fail "chat turns"
if $P dataset --out "$d/x.json" --turns lognormal:5 2>"$d/err"; then fail "bad DIST accepted"; fi
grep -q "expected lognormal:MEDIAN:SIGMA" "$d/err" || fail "bad DIST message: $(cat "$d/err")"
if $P dataset --input "$d/a.json" --turns constant:3 2>"$d/err"; then fail "--turns on a file accepted"; fi

# --input: a handwritten file, both spellings; kept and dropped as the filters say
cat > "$d/real.json" <<'JSON'
[
 {"id": "short", "conversations": [{"from": "human", "value": "hello there"}, {"from": "gpt", "value": "hi"}]},
 {"id": "ok", "conversations": [{"from": "human", "value": "first question"}, {"from": "gpt", "value": "a"},
   {"from": "human", "value": "second question"}, {"from": "gpt", "value": "b"}]},
 {"id": "long", "messages": [{"role": "user", "content": "q1 q1 q1"}, {"role": "assistant", "content": "a1"},
   {"role": "user", "content": "q2 q2 q2"}, {"role": "assistant", "content": "a2"},
   {"role": "user", "content": "q3 q3 q3"}, {"role": "assistant", "content": "a3"}]},
 {"id": "tiny", "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"},
   {"from": "human", "value": "z"}, {"from": "gpt", "value": "w"}]},
 {"id": "huge", "conversations": [{"from": "human", "value": "0123456789012345678901234567890123456789"},
   {"from": "gpt", "value": "a"}, {"from": "human", "value": "0123456789012345678901234567890123456789"},
   {"from": "gpt", "value": "b"}]},
 {"id": "huge2", "conversations": [{"from": "human", "value": "0123456789012345678901234567890123456789"},
   {"from": "gpt", "value": "a"}, {"from": "human", "value": "0123456789012345678901234567890123456789"}]},
 {"id": "short2", "messages": [{"role": "user", "content": "just one question here"}]},
 {"id": "four", "conversations": [{"from": "human", "value": "q1 q1"}, {"from": "gpt", "value": "a"},
   {"from": "human", "value": "q2 q2"}, {"from": "gpt", "value": "a"}, {"from": "human", "value": "q3 q3"},
   {"from": "gpt", "value": "a"}, {"from": "human", "value": "q4 q4"}, {"from": "gpt", "value": "a"}]}
]
JSON
$P dataset --input "$d/real.json" --out "$d/kept.json" --min-user-turns 2 --max-user-turns 3 \
	--min-user-chars 10 --max-user-chars 60 --max-turns 2 > "$d/f.txt" || fail "--input filter"
grep -q "^filter: *2 of 8 conversations kept" "$d/f.txt" || fail "filter line: $(cat "$d/f.txt")"
for want in "fewer than 2 user turns: 2" "more than 3 user turns: 1" "fewer than 10 user characters: 1" \
	"more than 60 user characters: 2" "cut to 2 user turns: 1"; do
	grep -q "$want" "$d/f.txt" || fail "filter report lacks '$want': $(cat "$d/f.txt")"
done
$P dataset --stats "$d/kept.json" > "$d/k.txt" || fail "stats of the kept file"
grep -q "^conversations:                 2$" "$d/k.txt" || fail "kept: $(head -1 "$d/k.txt")"
grep -q "^user turns per conversation:   mean 2.0, median 2, p10 2, p90 2, min 2, max 2$" "$d/k.txt" ||
	fail "kept turns: $(grep turns "$d/k.txt")"
grep -q '"id": "ok"' "$d/kept.json" && grep -q '"id": "long"' "$d/kept.json" || fail "wrong conversations kept"
! grep -q "q3" "$d/kept.json" || fail "long was not cut"
echo ok
