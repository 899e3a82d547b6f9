#!/bin/bash
# 010: `prefixlb tokenize` CLI: ids, count, BOS, decode, bad input.
set -eu
P=${PREFIXLB:-build/prefixlb}
fail() { echo "FAIL: $*"; exit 1; }

[ "$(printf 'Hello world!' | $P tokenize)" = "9906 1917 0" ] || fail "ids"
[ "$(printf 'Hello world!' | $P tokenize --ids --bos)" = "128000 9906 1917 0" ] || fail "bos"
[ "$(printf 'Hello world!' | $P tokenize --count)" = "3" ] || fail "count"
[ "$(printf '' | $P tokenize --count)" = "0" ] || fail "empty count"
[ "$(echo '9906 1917 0' | $P tokenize --decode)" = "Hello world!" ] || fail "decode"
txt=$'naïve 日本 👨‍👩‍👧\r\n\tend  '
[ "$(printf '%s' "$txt" | $P tokenize | $P tokenize --decode)" = "$txt" ] || fail "round trip"
[ "$(printf 'a<|eot_id|>b' | $P tokenize)" = "64 128009 65" ] || fail "special"
[ "$(printf 'a<|eot_id|>b' | $P tokenize --no-special --count)" != "3" ] || fail "no-special"
# invalid UTF-8 never fails
printf 'ab\xff\xfe' | $P tokenize >/dev/null || fail "invalid utf-8"
# errors name the problem and exit non-zero
if echo 'x' | $P tokenize --decode 2>/tmp/tok.err.$$; then fail "bad ids accepted"; fi
grep -q "not a token id" /tmp/tok.err.$$ || fail "bad id message"
if echo hi | $P tokenize --tokenizer /nonexistent.json 2>/tmp/tok.err.$$; then fail "missing file accepted"; fi
grep -q "/nonexistent.json" /tmp/tok.err.$$ || fail "missing file message"
echo '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [' >/tmp/tok.bad.$$
if echo hi | $P tokenize --tokenizer /tmp/tok.bad.$$ 2>/tmp/tok.err.$$; then fail "truncated json accepted"; fi
grep -q "tokenizer.json:" /tmp/tok.err.$$ || fail "bad json message: $(cat /tmp/tok.err.$$)"
rm -f /tmp/tok.err.$$ /tmp/tok.bad.$$
echo ok
