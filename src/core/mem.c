/* mem.c: allocation wrappers and the out-of-memory policy; see mem.h. */
#include "mem.h"

#include <stdlib.h>
#include <string.h>

static void (*oom_handler)(size_t);
static void (*assert_handler)(const char *, const char *, int);

void plb_set_oom_handler(void (*handler)(size_t size))
{
	oom_handler = handler;
}

void plb_set_assert_handler(void (*handler)(const char *expr, const char *file, int line))
{
	assert_handler = handler;
}

static _Noreturn void oom(size_t n)
{
	if (oom_handler)
		oom_handler(n);
	abort();
}

_Noreturn void plb_assert_fail(const char *expr, const char *file, int line)
{
	if (assert_handler)
		assert_handler(expr, file, line);
	abort();
}

void *plb_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *plb_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *plb_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *plb_strdup(const char *s)
{
	return plb_strndup(s, strlen(s));
}

char *plb_strndup(const char *s, size_t n)
{
	size_t l = strnlen(s, n);
	char *d = plb_malloc(l + 1);
	memcpy(d, s, l);
	d[l] = '\0';
	return d;
}
