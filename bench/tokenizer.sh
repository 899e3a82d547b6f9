#!/bin/bash
# bench/tokenizer.sh: tokenizer speed, prefixlb vs the JS reference, same corpus, same run.
# Corpus: the 357 golden texts of tests/data/tok_golden.jsonl (prose, code, JSON,
# many scripts, emoji), newlines folded, repeated in a fixed shuffled order to
# ~8 MB, one prompt per line. Needs node + the npm registry for the reference
# (llama3-tokenizer-js@1.2.0, installed into build/node_modules on first use).
set -eu
cd "$(dirname "$0")/.."
B=${PREFIXLB_BUILD:-build}
make -s "$B/bench/bench_tokenizer"
corpus=$B/bench/tok_corpus.txt
if [ ! -s "$corpus" ]; then
	node -e '
	const fs = require("fs");
	const lines = fs.readFileSync("tests/data/tok_golden.jsonl", "utf8").trim().split("\n")
		.map(l => JSON.parse(l).text.replace(/[\r\n]+/g, " ")).filter(t => t.length);
	let seed = 7, out = [], n = 0;
	while (n < 8e6) { seed = (seed * 1103515245 + 12345) & 0x7fffffff;
		const t = lines[seed % lines.length]; out.push(t); n += Buffer.byteLength(t) + 1; }
	fs.writeFileSync(process.argv[1], out.join("\n") + "\n");' "$corpus"
fi
"$B/bench/bench_tokenizer" data/tokenizer.json "$corpus" 5
if [ ! -d "$B/node_modules/llama3-tokenizer-js" ]; then
	(cd "$B" && npm install --silent --no-save --prefix . llama3-tokenizer-js@1.2.0 >/dev/null 2>&1) ||
		{ echo "reference: llama3-tokenizer-js not installable (no npm registry?)"; exit 0; }
fi
NODE_PATH="$PWD/$B/node_modules" node --input-type=module -e '
import { createRequire } from "module";
import fs from "fs";
const require = createRequire(process.env.NODE_PATH + "/");
const t0 = performance.now();
const tok = (await import(require.resolve("llama3-tokenizer-js"))).default;
const load = performance.now() - t0;
const text = fs.readFileSync(process.argv[1], "utf8");
const lines = text.split(/(?<=\n)/);
const bytes = Buffer.byteLength(text);
const secs = [];
let n = 0;
for (let r = 0; r < 3; r++) {
	const s = performance.now(); n = 0;
	for (const l of lines) n += tok.encode(l, { bos: false, eos: false }).length;
	secs.push((performance.now() - s) / 1e3);
}
secs.sort((a, b) => a - b);
const s = secs[1];
console.log(`reference load_ms=${load.toFixed(1)}  bytes=${bytes} tokens=${n}  MB/s=${(bytes / s / 1e6).toFixed(2)}  tokens/s=${(n / s).toFixed(0)}  (llama3-tokenizer-js 1.2.0, node ${process.version}, median of 3)`);
' "$corpus"
