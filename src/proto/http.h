/* http.h: a strict HTTP/1.1 message parser (RFC 9110/9112), bytes in, slices out.
 *
 * Zero-copy: every string in the result points into the caller's buffer. The
 * parser is deliberately narrow, because a proxy that is lenient where a backend
 * is strict (or the reverse) is how request smuggling happens:
 *   - CRLF only (a bare LF or CR is an error), no obs-fold, no NUL or other
 *     control bytes in the head, no whitespace before a header's colon;
 *   - Content-Length: digits only, at most one; Transfer-Encoding: exactly
 *     "chunked", at most one, never with Content-Length, never in HTTP/1.0;
 *   - HTTP/1.1 requests need exactly one Host.
 * Errors carry the HTTP status to answer with (400, 413, 431, 501, 505). */
#ifndef PREFIXLB_HTTP_H
#define PREFIXLB_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"

#define HTTP_MAX_HEADERS 100

struct http_header {
	const char *name, *value;
	size_t name_len, value_len;
};

struct http_msg {
	/* request line (requests) */
	const char *method, *target;
	size_t method_len, target_len;
	/* status line (responses) */
	int status;
	const char *reason;
	size_t reason_len;

	int minor; /* HTTP/1.minor */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t n_headers;
	size_t head_len;        /* bytes up to and including the blank line */
	int64_t content_length; /* -1 when absent */
	int chunked;
	int keep_alive;
	int expect_continue;
	int upgrade;
};

struct http_error {
	int status;        /* what to answer: 400, 413, 431, 501, 505 */
	const char *what;  /* static text naming the problem */
};

/* Incremental search for the end of a head (the first CRLF CRLF), for a
 * reader that gets the head a few bytes at a time. *scanned is where the
 * previous call on the same head stopped (0 for a new head); the call reads
 * only buf[*scanned - 3 .. len) (the look-back finds a CRLF CRLF split across
 * reads) and advances *scanned to len, or to len - 1 when the last byte is a
 * CR whose successor is not known yet. Fed in k pieces, a head of n bytes thus
 * costs O(n + k) in all, where re-parsing it from its start on every read
 * costs O(n * k). Returns the head length (> 0, the blank line included) when
 * found, 0 when more bytes are needed, -1 as soon as a bare LF or a CR not
 * followed by LF is seen: the head is malformed, and http_parse_request on
 * buf[0..len) says how (it reports that byte or an earlier error). Only line
 * endings are checked here; everything else is for the full parse, done once. */
long http_head_end(const char *buf, size_t len, size_t *scanned);

/* Parses a request head from buf[0..len). Returns the head length (> 0) when
 * complete, 0 when more bytes are needed, -1 on error (see *err). A head
 * longer than max_head is an error (431) even if incomplete. */
long http_parse_request(const char *buf, size_t len, size_t max_head, struct http_msg *m, struct http_error *err);
/* The same for a response head (status line instead of request line). */
long http_parse_response(const char *buf, size_t len, size_t max_head, struct http_msg *m, struct http_error *err);

/* 1 if the request's path (target without its query) is exactly path. */
int http_path_is(const struct http_msg *m, const char *path);
/* 1 if the request's method is exactly meth. */
int http_method_is(const struct http_msg *m, const char *meth);
/* Finds a header (case-insensitive); NULL when absent. */
const struct http_header *http_find(const struct http_msg *m, const char *name);
int http_token_eq(const char *a, size_t n, const char *lit); /* case-insensitive equality */

/* Incremental, strict decoder of a chunked body. Zero-initialise; max_body
 * bounds the decoded size (413 past it). */
struct http_chunked {
	int state;
	uint64_t left;  /* bytes left in the current chunk */
	size_t line;    /* length of the size line / trailer line so far */
	uint64_t total; /* decoded bytes so far */
	int digits;
};

/* Feeds in[0..len) into the decoder, appending data to out. Sets *used to the
 * bytes consumed. Returns 1 when the body (with trailers) is complete, 0 when
 * more is needed, -1 on error (see *err). out may be NULL to only frame. */
int http_chunked_feed(struct http_chunked *c, const char *in, size_t len, size_t *used, struct buf *out,
		      uint64_t max_body, struct http_error *err);
/* The same decoder without a copy (http_chunked_feed is a loop over it): reads
 * framing bytes of in[0..len) up to the next data bytes and returns those as a
 * slice of in (*data, *data_len; *data_len 0 when none), then stops; *used
 * counts the bytes read, the slice included. Call again on the rest. Returns
 * 1 when the body is complete, 0 when more is needed or a slice is returned,
 * -1 on error (see *err). */
int http_chunked_next(struct http_chunked *c, const char *in, size_t len, size_t *used, const char **data,
		      size_t *data_len, uint64_t max_body, struct http_error *err);

/* Standard reason phrase for a status code ("OK", "Not Found", ...). */
const char *http_reason(int status);

#endif
