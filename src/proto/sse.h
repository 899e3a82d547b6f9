/* sse.h: Server-Sent Events as OpenAI-compatible servers stream them, both
 * ways: the engine writes them, the bench client and the router read them.
 *
 * Wire form (WHATWG "server-sent events", the subset LLM servers use): each
 * event is one line "data: <payload>\n" followed by a blank line; the stream
 * ends with "data: [DONE]\n\n". The reader dispatches every data line as it
 * completes (as vLLM's benchmark client reads line by line), strips one
 * optional space after "data:" and a trailing CR, ignores comments (":...")
 * and other fields (event:, id:, retry:), and recognises "[DONE]" wherever
 * the stream is cut into reads. Work is linear in the bytes fed (each byte is
 * looked at once, with memchr), memory is bounded: a data line longer than
 * max_line is an error in collecting mode, and the tracking mode (the router:
 * no callback) keeps 8 bytes whatever the line length. */
#ifndef PREFIXLB_SSE_H
#define PREFIXLB_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"

/* "data: " payload "\n\n" */
int sse_write(struct buf *out, const char *payload, size_t len);
/* "data: [DONE]\n\n" */
int sse_write_done(struct buf *out);

/* Called with each data line's payload (not NUL-terminated; valid during the
 * call). Return 0 to go on, non-zero to stop feeding (sse_feed returns it). */
typedef int (*sse_data_cb)(void *ctx, const char *payload, size_t len);

struct sse_reader {
	struct buf line;  /* collecting mode: the data line so far */
	char head[8];     /* the first bytes of the current line */
	size_t line_len;  /* bytes of the current line so far */
	size_t vstart;    /* where the payload starts in the line (after "data:" and a space) */
	int state;        /* see sse.c */
	int done;         /* [DONE] has been seen */
	uint64_t scanned; /* bytes examined so far (tests check linearity) */
};

/* max_line: the longest data line kept (collecting mode). */
void sse_reader_init(struct sse_reader *r, size_t max_line);
void sse_reader_free(struct sse_reader *r);
/* Feeds bytes. cb may be NULL (tracking mode: only [DONE] matters). Returns 0
 * to go on, 1 once [DONE] was seen (bytes after it are ignored), the callback's
 * non-zero value if it stopped, or -1 when a data line passes max_line. */
int sse_feed(struct sse_reader *r, const char *in, size_t len, sse_data_cb cb, void *ctx);

#endif
