/* tokenize.c: `prefixlb tokenize`, the tokenizer as a filter on stdin. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/tokenizer.h"
#include "cmd.h"

static const char usage[] =
	"usage: prefixlb tokenize [--tokenizer PATH] [--bos] [--no-special] [--count|--ids|--decode]\n"
	"  Reads text on stdin and prints its token ids on one line (--ids, the default)\n"
	"  or their number (--count); with --decode reads ids and prints the text.\n"
	"  --tokenizer PATH  a Hugging Face tokenizer.json (default: data/tokenizer.json)\n"
	"  --bos             prepend <|begin_of_text|> (id 128000 for Llama 3)\n"
	"  --no-special      treat added-token text such as <|eot_id|> as plain text\n";

enum { MODE_IDS, MODE_COUNT, MODE_DECODE };

static int decode_stdin(const struct tok *t, const struct buf *in)
{
	struct tok_ids ids = {0};
	struct buf out;
	buf_init(&out, (size_t)1 << 32);
	const char *p = in->data, *end = in->data + in->len;
	int rc = 0;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ','))
			p++;
		if (p >= end)
			break;
		char *e;
		unsigned long v = strtoul(p, &e, 10);
		if (e == p || v >= tok_vocab_size(t)) {
			fprintf(stderr, "prefixlb tokenize: stdin: byte %zu: not a token id\n", (size_t)(p - in->data));
			rc = 1;
			goto out;
		}
		tok_ids_push(&ids, (uint32_t)v);
		p = e;
	}
	if (tok_decode(t, ids.v, ids.n, &out)) {
		rc = 1;
		goto out;
	}
	fwrite(out.data, 1, out.len, stdout);
out:
	tok_ids_free(&ids);
	buf_free(&out);
	return rc;
}

int cmd_tokenize(int argc, char **argv)
{
	static const struct option opts[] = {
		{"tokenizer", required_argument, 0, 't'}, {"bos", no_argument, 0, 'b'},
		{"count", no_argument, 0, 'c'},           {"ids", no_argument, 0, 'i'},
		{"decode", no_argument, 0, 'd'},          {"no-special", no_argument, 0, 'n'},
		{"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
	};
	const char *path = NULL;
	unsigned flags = 0;
	int mode = MODE_IDS, c;
	while ((c = getopt_long(argc, argv, "t:bcidnh", opts, NULL)) != -1) {
		switch (c) {
		case 't': path = optarg; break;
		case 'b': flags |= TOK_BOS; break;
		case 'n': flags |= TOK_NO_SPECIAL; break;
		case 'c': mode = MODE_COUNT; break;
		case 'i': mode = MODE_IDS; break;
		case 'd': mode = MODE_DECODE; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	struct tok *t = cmd_load_tokenizer(path);
	if (!t)
		return 1;
	struct buf in;
	buf_init(&in, (size_t)1 << 32);
	int rc = cmd_read_file("-", in.max, &in) ? 1 : 0;
	if (!rc && mode == MODE_DECODE) {
		rc = decode_stdin(t, &in);
	} else if (!rc) {
		struct tok_ids ids = {0};
		if (tok_encode(t, in.data ? in.data : "", in.len, flags, &ids)) {
			fprintf(stderr, "prefixlb tokenize: out of memory\n");
			rc = 1;
		} else if (mode == MODE_COUNT) {
			printf("%zu\n", ids.n);
		} else {
			for (size_t i = 0; i < ids.n; i++)
				printf(i ? " %u" : "%u", ids.v[i]);
			putchar('\n');
		}
		tok_ids_free(&ids);
	}
	buf_free(&in);
	tok_free(t);
	return rc;
}
