/* sse.c: SSE writer and incremental reader; see sse.h.
 *
 * Reader states per line: HEAD (fewer than 5 bytes seen: can't tell the
 * field yet; they are kept in head[]), DATA (a "data:" line: payload bytes go
 * to line in collecting mode, or only the first 8 into head[] in tracking
 * mode), SKIP (any other line: ignored to its end). */
#include "sse.h"

#include <string.h>

enum { ST_HEAD, ST_DATA, ST_SKIP };

static const char DONE[] = "[DONE]";

int sse_write(struct buf *out, const char *payload, size_t len)
{
	int rc = buf_append(out, "data: ", 6);
	if (!rc)
		rc = buf_append(out, payload, len);
	if (!rc)
		rc = buf_append(out, "\n\n", 2);
	return rc;
}

int sse_write_done(struct buf *out)
{
	return buf_append(out, "data: [DONE]\n\n", 14);
}

void sse_reader_init(struct sse_reader *r, size_t max_line)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->line, max_line);
}

void sse_reader_free(struct sse_reader *r)
{
	buf_free(&r->line);
}

/* Bytes of the current line, in the state it is in. */
static int take(struct sse_reader *r, const char *p, size_t n, int collect)
{
	while (n && r->state == ST_HEAD) {
		r->head[r->line_len++] = *p++;
		n--;
		if (r->line_len == 5) {
			if (!memcmp(r->head, "data:", 5)) {
				r->state = ST_DATA;
				r->vstart = 5;
			} else {
				r->state = ST_SKIP;
			}
		}
	}
	if (!n || r->state == ST_SKIP) {
		r->line_len += n;
		return 0;
	}
	/* ST_DATA: an optional space right after "data:" is not payload */
	if (r->line_len == 5 && *p == ' ') {
		p++;
		n--;
		r->line_len++;
		r->vstart = 6;
	}
	size_t have = r->line_len - r->vstart; /* payload bytes so far */
	if (collect) {
		if (buf_append(&r->line, p, n))
			return -1;
	} else if (have < sizeof r->head) {
		size_t k = n < sizeof r->head - have ? n : sizeof r->head - have;
		memcpy(r->head + have, p, k);
	}
	r->line_len += n;
	return 0;
}

/* The end of a line: returns what sse_feed should return (0: go on). */
static int end_line(struct sse_reader *r, sse_data_cb cb, void *ctx)
{
	int rc = 0;
	if (r->state == ST_DATA) {
		size_t n = r->line_len - r->vstart; /* payload length */
		const char *v = cb ? (r->line.data ? r->line.data : "") : r->head;
		size_t known = cb ? n : (n < sizeof r->head ? n : sizeof r->head);
		if (n && known == n && v[n - 1] == '\r')
			n--; /* CRLF line end */
		if (n == sizeof DONE - 1 && !memcmp(v, DONE, n)) {
			r->done = 1;
			rc = 1;
		} else if (cb) {
			rc = cb(ctx, v, n);
		}
	}
	buf_reset(&r->line);
	r->line_len = 0;
	r->vstart = 0;
	r->state = ST_HEAD;
	return rc;
}

int sse_feed(struct sse_reader *r, const char *in, size_t len, sse_data_cb cb, void *ctx)
{
	if (r->done)
		return 1;
	const char *p = in, *end = in + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		r->scanned += n + (nl != NULL);
		if (take(r, p, n, cb != NULL))
			return -1;
		if (!nl)
			break;
		p = nl + 1;
		int rc = end_line(r, cb, ctx);
		if (rc)
			return rc;
	}
	return 0;
}
