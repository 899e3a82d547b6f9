/* http.c: strict HTTP/1.1 head parser and chunked decoder; see http.h.
 *
 * Cost: a reader should find the end of a head with http_head_end (each byte
 * looked at once however the head is split into reads) and parse it once with
 * http_parse_request/response, which is linear in the head. The chunked
 * decoder is a byte-level state machine that consumes every byte it is given
 * and never looks back, so it is linear however the body is split. */
#include "http.h"

#include <string.h>

/* tchar per RFC 9110 5.6.2 */
static const unsigned char tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1,
	['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
	['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
	['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

int http_token_eq(const char *a, size_t n, const char *lit)
{
	size_t i = 0;
	for (; i < n && lit[i]; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)lit[i]))
			return 0;
	return i == n && !lit[i];
}

int http_path_is(const struct http_msg *m, const char *path)
{
	size_t n = strlen(path), tl = m->target_len;
	const char *q = memchr(m->target, '?', tl);
	if (q)
		tl = (size_t)(q - m->target);
	return tl == n && memcmp(m->target, path, n) == 0;
}

int http_method_is(const struct http_msg *m, const char *meth)
{
	return m->method_len == strlen(meth) && memcmp(m->method, meth, m->method_len) == 0;
}

const struct http_header *http_find(const struct http_msg *m, const char *name)
{
	for (size_t i = 0; i < m->n_headers; i++)
		if (http_token_eq(m->headers[i].name, m->headers[i].name_len, name))
			return &m->headers[i];
	return NULL;
}

static long fail(struct http_error *err, int status, const char *what)
{
	err->status = status;
	err->what = what;
	return -1;
}

/* Next CRLF-terminated line at p: returns its length without CRLF, -2 when
 * incomplete, -1 for a bare LF or a CR not followed by LF. */
static long next_line(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	const char *cr = memchr(p, '\r', (size_t)((nl ? nl : end) - p));
	if (cr && cr + 1 < end && cr[1] != '\n')
		return -1;
	if (!nl)
		return -2;
	if (nl == p || nl[-1] != '\r')
		return -1;
	return (long)(nl - 1 - p);
}

long http_head_end(const char *buf, size_t len, size_t *scanned)
{
	size_t i = *scanned;
	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t stop = nl ? (size_t)(nl - buf) : len; /* buf[i..stop) holds no LF */
		const char *cr = memchr(buf + i, '\r', stop - i);
		if (cr && (size_t)(cr - buf) + 1 < stop) {
			*scanned = (size_t)(cr - buf);
			return -1; /* a CR followed by something else than LF */
		}
		if (!nl) {
			*scanned = cr ? (size_t)(cr - buf) : len; /* a final CR: decided by the next byte */
			return 0;
		}
		if (stop == 0 || buf[stop - 1] != '\r') {
			*scanned = stop;
			return -1; /* bare LF */
		}
		i = stop + 1;
		if (stop >= 3 && buf[stop - 2] == '\n' && buf[stop - 3] == '\r') {
			*scanned = i;
			return (long)i;
		}
	}
	*scanned = i;
	return 0;
}

/* Parses header lines from p; fills m; returns the head length, 0, or -1. */
static long parse_headers(const char *buf, const char *p, const char *end, size_t max_head, struct http_msg *m,
			  struct http_error *err)
{
	for (;;) {
		long n = next_line(p, end);
		if (n == -1)
			return fail(err, 400, "bare CR or LF in header");
		if (n == -2) {
			if ((size_t)(end - buf) >= max_head)
				return fail(err, 431, "request header too large");
			return 0;
		}
		if ((size_t)(p + n + 2 - buf) > max_head)
			return fail(err, 431, "request header too large");
		if (n == 0) {
			m->head_len = (size_t)(p + 2 - buf);
			return (long)m->head_len;
		}
		if (*p == ' ' || *p == '\t')
			return fail(err, 400, "obsolete line folding");
		const char *q = p, *le = p + n;
		while (q < le && tchar[(unsigned char)*q])
			q++;
		if (q == p || q >= le || *q != ':')
			return fail(err, 400, "malformed header name");
		if (m->n_headers == HTTP_MAX_HEADERS)
			return fail(err, 431, "too many headers");
		struct http_header *h = &m->headers[m->n_headers++];
		h->name = p;
		h->name_len = (size_t)(q - p);
		q++;
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		const char *ve = le;
		while (ve > q && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *c = q; c < ve; c++) {
			unsigned char u = (unsigned char)*c;
			if ((u < 0x20 && u != '\t') || u == 0x7F)
				return fail(err, 400, "control character in header value");
		}
		h->value = q;
		h->value_len = (size_t)(ve - q);
		p = le + 2;
	}
}

/* Splits a comma-separated list value; calls f for each trimmed element. */
static int list_has(const char *v, size_t n, const char *tok)
{
	size_t i = 0;
	while (i < n) {
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (http_token_eq(v + s, e - s, tok))
			return 1;
		i++;
	}
	return 0;
}

/* Framing and connection semantics shared by requests and responses. */
static long finish_head(struct http_msg *m, int is_request, struct http_error *err)
{
	int n_cl = 0, n_te = 0, n_host = 0;
	m->content_length = -1;
	m->chunked = 0;
	m->keep_alive = m->minor >= 1;
	for (size_t i = 0; i < m->n_headers; i++) {
		const struct http_header *h = &m->headers[i];
		if (http_token_eq(h->name, h->name_len, "content-length")) {
			if (++n_cl > 1)
				return fail(err, 400, "duplicate Content-Length");
			if (h->value_len == 0 || h->value_len > 15)
				return fail(err, 400, "invalid Content-Length");
			int64_t v = 0;
			for (size_t k = 0; k < h->value_len; k++) {
				char c = h->value[k];
				if (c < '0' || c > '9')
					return fail(err, 400, "invalid Content-Length");
				v = v * 10 + (c - '0');
			}
			m->content_length = v;
		} else if (http_token_eq(h->name, h->name_len, "transfer-encoding")) {
			if (++n_te > 1)
				return fail(err, 400, "duplicate Transfer-Encoding");
			if (!http_token_eq(h->value, h->value_len, "chunked"))
				return fail(err, is_request ? 501 : 502, "unsupported Transfer-Encoding");
			m->chunked = 1;
		} else if (http_token_eq(h->name, h->name_len, "host")) {
			n_host++;
		} else if (http_token_eq(h->name, h->name_len, "connection")) {
			if (list_has(h->value, h->value_len, "close"))
				m->keep_alive = 0;
			else if (list_has(h->value, h->value_len, "keep-alive") && m->minor == 0)
				m->keep_alive = 1;
			if (list_has(h->value, h->value_len, "upgrade"))
				m->upgrade = 1;
		} else if (http_token_eq(h->name, h->name_len, "expect")) {
			if (!is_request || !http_token_eq(h->value, h->value_len, "100-continue"))
				return fail(err, 417, "unsupported Expect");
			m->expect_continue = 1;
		}
	}
	if (n_te && n_cl)
		return fail(err, 400, "both Transfer-Encoding and Content-Length");
	if (n_te && m->minor == 0)
		return fail(err, 400, "Transfer-Encoding in HTTP/1.0");
	if (is_request && m->minor >= 1 && n_host != 1)
		return fail(err, 400, n_host ? "duplicate Host" : "missing Host");
	return (long)m->head_len;
}

static long parse_version(const char *p, size_t n, int *minor, int is_request, struct http_error *err)
{
	if (n == 8 && memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '0' || p[7] == '1')) {
		*minor = p[7] - '0';
		return 0;
	}
	int digit5 = n >= 6 && p[5] >= '0' && p[5] <= '9';
	if (n >= 6 && memcmp(p, "HTTP/", 5) == 0 && digit5 &&
	    (n == 6 || (n == 8 && p[6] == '.' && p[7] >= '0' && p[7] <= '9')))
		return fail(err, is_request ? 505 : 502, "unsupported HTTP version");
	return fail(err, is_request ? 400 : 502, "malformed HTTP version");
}

long http_parse_request(const char *buf, size_t len, size_t max_head, struct http_msg *m, struct http_error *err)
{
	memset(m, 0, sizeof *m);
	const char *end = buf + len;
	long n = next_line(buf, end);
	if (n == -1)
		return fail(err, 400, "bare CR or LF in request line");
	if (n == -2)
		return len >= max_head ? fail(err, 431, "request line too long") : 0;
	if ((size_t)n + 2 > max_head)
		return fail(err, 431, "request line too long");
	const char *p = buf, *le = buf + n;
	while (p < le && tchar[(unsigned char)*p])
		p++;
	if (p == buf || p >= le || *p != ' ')
		return fail(err, 400, "malformed request line");
	m->method = buf;
	m->method_len = (size_t)(p - buf);
	const char *t = ++p;
	while (p < le && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7F)
		p++;
	if (p == t || p >= le || *p != ' ')
		return fail(err, 400, "malformed request target");
	m->target = t;
	m->target_len = (size_t)(p - t);
	if (*t != '/' && !(m->target_len == 1 && *t == '*') &&
	    !(m->target_len > 7 && (memcmp(t, "http://", 7) == 0 || memcmp(t, "https:/", 7) == 0)))
		return fail(err, 400, "malformed request target");
	p++;
	if (parse_version(p, (size_t)(le - p), &m->minor, 1, err))
		return -1;
	long r = parse_headers(buf, le + 2, end, max_head, m, err);
	if (r <= 0)
		return r;
	return finish_head(m, 1, err);
}

long http_parse_response(const char *buf, size_t len, size_t max_head, struct http_msg *m, struct http_error *err)
{
	memset(m, 0, sizeof *m);
	const char *end = buf + len;
	long n = next_line(buf, end);
	if (n == -1)
		return fail(err, 502, "bare CR or LF in status line");
	if (n == -2)
		return len >= max_head ? fail(err, 502, "status line too long") : 0;
	const char *le = buf + n;
	if (n < 12 || buf[8] != ' ' || (n > 12 && buf[12] != ' '))
		return fail(err, 502, "malformed status line");
	if (parse_version(buf, 8, &m->minor, 0, err))
		return -1;
	int st = 0;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return fail(err, 502, "malformed status code");
		st = st * 10 + (buf[i] - '0');
	}
	if (st < 100)
		return fail(err, 502, "malformed status code");
	m->status = st;
	m->reason = n > 12 ? buf + 13 : le;
	m->reason_len = n > 12 ? (size_t)(n - 13) : 0;
	long r = parse_headers(buf, le + 2, end, max_head, m, err);
	if (r <= 0) {
		if (r < 0 && err->status != 502)
			err->status = 502;
		return r;
	}
	return finish_head(m, 0, err);
}

enum { C_SIZE, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER, C_TRAILER_LINE, C_TRAILER_LF,
       C_END_LF, C_DONE };

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int http_chunked_next(struct http_chunked *c, const char *in, size_t len, size_t *used, const char **data,
		      size_t *data_len, uint64_t max_body, struct http_error *err)
{
	size_t i = 0;
	int rc = 0;
	*data = NULL;
	*data_len = 0;
	while (i < len && c->state != C_DONE) {
		char ch = in[i];
		switch (c->state) {
		case C_SIZE: {
			int v = hexval(ch);
			if (v >= 0) {
				if (++c->digits > 15) {
					rc = (int)fail(err, 413, "chunk size too large");
					goto out;
				}
				c->left = c->left * 16 + (uint64_t)v;
				i++;
			} else if (c->digits && ch == ';') {
				c->state = C_EXT;
				c->line = 0;
				i++;
			} else if (c->digits && ch == '\r') {
				c->state = C_SIZE_LF;
				i++;
			} else {
				rc = (int)fail(err, 400, "malformed chunk size");
				goto out;
			}
			break;
		}
		case C_EXT:
			if (ch == '\r') {
				c->state = C_SIZE_LF;
			} else if (ch == '\n' || ch == '\0' || ++c->line > 1024) {
				rc = (int)fail(err, 400, "malformed chunk extension");
				goto out;
			}
			i++;
			break;
		case C_SIZE_LF:
			if (ch != '\n') {
				rc = (int)fail(err, 400, "bare CR in chunk size line");
				goto out;
			}
			i++;
			c->digits = 0;
			if (c->left == 0) {
				c->state = C_TRAILER;
				c->line = 0;
			} else {
				if (c->total + c->left > max_body) {
					rc = (int)fail(err, 413, "request body too large");
					goto out;
				}
				c->state = C_DATA;
			}
			break;
		case C_DATA: {
			size_t k = len - i;
			if (k > c->left)
				k = (size_t)c->left;
			*data = in + i;
			*data_len = k;
			c->left -= k;
			c->total += k;
			i += k;
			if (c->left == 0)
				c->state = C_DATA_CR;
			goto out; /* one slice per call: the caller takes it, then calls again */
		}
		case C_DATA_CR:
			if (ch != '\r') {
				rc = (int)fail(err, 400, "chunk data longer than its size");
				goto out;
			}
			c->state = C_DATA_LF;
			i++;
			break;
		case C_DATA_LF:
			if (ch != '\n') {
				rc = (int)fail(err, 400, "bare CR after chunk data");
				goto out;
			}
			c->state = C_SIZE;
			i++;
			break;
		case C_TRAILER:
			if (ch == '\r') {
				c->state = C_END_LF;
				i++;
				break;
			}
			c->state = C_TRAILER_LINE;
			/* fall through */
		case C_TRAILER_LINE:
			if (ch == '\r') {
				c->state = C_TRAILER_LF;
			} else if (ch == '\n' || ch == '\0' || ++c->line > 8192) {
				rc = (int)fail(err, 400, "malformed trailer");
				goto out;
			}
			i++;
			break;
		case C_TRAILER_LF:
			if (ch != '\n') {
				rc = (int)fail(err, 400, "bare CR in trailer");
				goto out;
			}
			c->state = C_TRAILER;
			i++;
			break;
		case C_END_LF:
			if (ch != '\n') {
				rc = (int)fail(err, 400, "bare CR at end of chunked body");
				goto out;
			}
			c->state = C_DONE;
			i++;
			break;
		}
	}
	rc = c->state == C_DONE;
out:
	*used = i;
	return rc;
}

int http_chunked_feed(struct http_chunked *c, const char *in, size_t len, size_t *used, struct buf *out,
		      uint64_t max_body, struct http_error *err)
{
	size_t off = 0;
	for (;;) {
		size_t u;
		const char *d;
		size_t dl;
		int rc = http_chunked_next(c, in + off, len - off, &u, &d, &dl, max_body, err);
		if (rc >= 0 && dl && out && buf_append(out, d, dl)) {
			rc = (int)fail(err, 413, "request body too large");
			u -= dl;
		}
		off += u;
		if (rc != 0 || !dl || off == len) {
			*used = off;
			return rc;
		}
	}
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return status < 300 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
	}
}
