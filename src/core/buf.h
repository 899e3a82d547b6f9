/* buf.h: a growable byte buffer with a hard maximum (like curl's dynbuf).
 *
 * Every buffer is created with a ceiling; an append that would pass it fails with
 * BUF_ETOOBIG and leaves the buffer unchanged, so no input can grow memory without
 * bound. The data is always NUL-terminated (the NUL is not counted in len), so a
 * buffer holding text can be handed to C string functions. */
#ifndef PREFIXLB_BUF_H
#define PREFIXLB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define BUF_ENOMEM  (-1)
#define BUF_ETOOBIG (-2)

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* largest len allowed */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b); /* len = 0, keeps the memory */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_putc(struct buf *b, char c);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends s as the body of a JSON string (no quotes), escaping as RFC 8259 requires. */
int buf_json_escape(struct buf *b, const char *s, size_t n);
/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Gives the data to the caller (who frees it) and resets b to empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
