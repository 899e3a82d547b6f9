/* orca.c: in-band load reports (ORCA endpoint-load-metrics); see orca.h. */
#include "orca.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void trim(const char **v, size_t *n)
{
	while (*n && is_ows(**v))
		(*v)++, (*n)--;
	while (*n && is_ows((*v)[*n - 1]))
		(*n)--;
}

static int ieq(const char *a, size_t n, const char *lit)
{
	size_t k = strlen(lit);
	if (n != k)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = a[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lit[i])
			return 0;
	}
	return 1;
}

enum orca_format orca_format_parse(const char *v, size_t n)
{
	if (!v)
		return ORCA_NONE;
	trim(&v, &n);
	return ieq(v, n, "text") ? ORCA_TEXT : ieq(v, n, "json") ? ORCA_JSON : ORCA_NONE;
}

const char *orca_format_name(enum orca_format f)
{
	return f == ORCA_TEXT ? "TEXT" : f == ORCA_JSON ? "JSON" : NULL;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, const char *a, size_t an)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, (int)(an > 64 ? 64 : an), a);
	return rc;
}

/* One metric by its key ("named_metrics.X", "cpu_utilization", ...) into l.
 * Unknown keys are counted and skipped. */
static int take(struct orca_load *l, const char *k, size_t kn, double x, char *err, size_t errlen)
{
	static const char nm[] = "named_metrics.";
	l->n_items++;
	if (!isfinite(x))
		return fail(err, errlen, PLB_ERANGE, "%.*s: not a finite number", k, kn);
	if (kn > sizeof nm - 1 && !memcmp(k, nm, sizeof nm - 1)) {
		const char *m = k + sizeof nm - 1;
		size_t mn = kn - (sizeof nm - 1);
		int waiting = ieq(m, mn, "num_requests_waiting"), running = ieq(m, mn, "num_requests_running");
		if (waiting || running) {
			if (x < 0)
				return fail(err, errlen, PLB_ERANGE, "%.*s: a count below 0", k, kn);
			if (waiting) {
				l->waiting = l->have & ORCA_HAVE_WAITING ? l->waiting + x : x;
				l->have |= ORCA_HAVE_WAITING;
			} else {
				l->running = l->have & ORCA_HAVE_RUNNING ? l->running + x : x;
				l->have |= ORCA_HAVE_RUNNING;
			}
			if (!isfinite(l->waiting) || !isfinite(l->running))
				return fail(err, errlen, PLB_ERANGE, "%.*s: the sum is not finite", k, kn);
		} else if (ieq(m, mn, "kv_cache_usage_perc") || ieq(m, mn, "kv_cache_utilization")) {
			if (x < 0 || x > 1)
				return fail(err, errlen, PLB_ERANGE, "%.*s: a usage outside 0..1", k, kn);
			/* the mean over duplicates (one per data-parallel engine) */
			if (l->have & ORCA_HAVE_KV) {
				l->kv_usage += x;
				l->n_kv_dup++;
			} else {
				l->kv_usage = x;
				l->n_kv_dup = 1;
			}
			l->have |= ORCA_HAVE_KV;
		}
	} else if (ieq(k, kn, "cpu_utilization") || ieq(k, kn, "mem_utilization")) {
		if (x < 0)
			return fail(err, errlen, PLB_ERANGE, "%.*s: below 0", k, kn);
		if (k[0] == 'c' || k[0] == 'C') {
			l->cpu_utilization = x;
			l->have |= ORCA_HAVE_CPU;
		} else {
			l->mem_utilization = x;
			l->have |= ORCA_HAVE_MEM;
		}
	}
	return 0;
}

/* A decimal number: -?DIGITS(.DIGITS)?([eE][+-]?DIGITS)?, nothing else. */
static int number(const char *s, size_t n, double *out)
{
	size_t i = 0, d;
	if (i < n && s[i] == '-')
		i++;
	for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (i == d)
		return -1;
	if (i < n && s[i] == '.') {
		for (d = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return -1;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return -1;
	}
	if (i != n || n > 64)
		return -1;
	char tmp[72];
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	*out = strtod(tmp, NULL);
	return 0;
}

static int key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
	       c == '-' || c == ':' || c == '/';
}

static int parse_text(const char *v, size_t n, struct orca_load *l, char *err, size_t errlen)
{
	if (!n)
		return 0; /* "TEXT " with no metric: an empty report */
	size_t items = 0;
	for (size_t i = 0; i <= n;) {
		const char *comma = memchr(v + i, ',', n - i);
		size_t end = comma ? (size_t)(comma - v) : n;
		const char *it = v + i;
		size_t in = end - i;
		trim(&it, &in);
		if (!in)
			return fail(err, errlen, PLB_EPARSE, "an empty item%.*s", "", 0);
		if (++items > ORCA_MAX_ITEMS)
			return fail(err, errlen, PLB_ETOOBIG, "more than 64 items%.*s", "", 0);
		const char *eq = memchr(it, '=', in);
		if (!eq || eq == it)
			return fail(err, errlen, PLB_EPARSE, "'%.*s': expected key=number", it, in);
		size_t kn = (size_t)(eq - it);
		for (size_t k = 0; k < kn; k++)
			if (!key_char(it[k]))
				return fail(err, errlen, PLB_EPARSE, "'%.*s': bad character in the key", it, kn);
		double x;
		if (number(eq + 1, in - kn - 1, &x))
			return fail(err, errlen, PLB_EPARSE, "'%.*s': the value is not a decimal number", it, in);
		int rc = take(l, it, kn, x, err, errlen);
		if (rc)
			return rc;
		if (!comma)
			break;
		i = end + 1;
	}
	return 0;
}

static int parse_json(const char *v, size_t n, struct orca_load *l, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(v, n, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return fail(err, errlen, PLB_EPARSE, "JSON: %.*s", je.text, strlen(je.text));
	int rc = 0;
	size_t items = 0;
	char key[320];
	if (!json_is_object(root)) {
		rc = fail(err, errlen, PLB_EPARSE, "JSON: not an object%.*s", "", 0);
		goto out;
	}
	const char *k;
	json_t *x;
	json_object_foreach(root, k, x)
	{
		if (json_is_number(x)) {
			if (++items > ORCA_MAX_ITEMS)
				rc = fail(err, errlen, PLB_ETOOBIG, "more than 64 items%.*s", "", 0);
			else
				rc = take(l, k, strlen(k), json_number_value(x), err, errlen);
		} else if (json_is_object(x)) {
			const char *mk;
			json_t *mx;
			json_object_foreach(x, mk, mx)
			{
				if (rc)
					break;
				if (!json_is_number(mx)) {
					rc = fail(err, errlen, PLB_EPARSE, "JSON: %.*s: a member is not a number", k, strlen(k));
				} else if (++items > ORCA_MAX_ITEMS) {
					rc = fail(err, errlen, PLB_ETOOBIG, "more than 64 items%.*s", "", 0);
				} else {
					int kn = snprintf(key, sizeof key, "%s.%s", k, mk);
					rc = take(l, key, kn > 0 && (size_t)kn < sizeof key ? (size_t)kn : sizeof key - 1,
						  json_number_value(mx), err, errlen);
				}
			}
		} else {
			rc = fail(err, errlen, PLB_EPARSE, "JSON: %.*s: neither a number nor an object", k, strlen(k));
		}
		if (rc)
			break;
	}
out:
	json_decref(root);
	return rc;
}

int orca_parse(const char *v, size_t n, struct orca_load *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (err && errlen)
		err[0] = '\0';
	if (n > ORCA_MAX_VALUE)
		return fail(err, errlen, PLB_ETOOBIG, "longer than 8192 bytes%.*s", "", 0);
	trim(&v, &n);
	int json;
	if (n >= 4 && (ieq(v, 4, "text") || ieq(v, 4, "json")) && (n == 4 || is_ows(v[4]))) {
		json = ieq(v, 4, "json");
		v += 4;
		n -= 4;
		trim(&v, &n);
	} else if (n >= 3 && ieq(v, 3, "bin") && (n == 3 || is_ows(v[3]))) {
		return fail(err, errlen, PLB_EPARSE, "binary (protobuf) reports are not read%.*s", "", 0);
	} else {
		json = n && v[0] == '{';
	}
	int rc = json ? parse_json(v, n, out, err, errlen) : parse_text(v, n, out, err, errlen);
	if (!rc && (out->have & ORCA_HAVE_KV))
		out->kv_usage /= out->n_kv_dup;
	if (rc)
		memset(out, 0, sizeof *out);
	return rc;
}

/* x as Python's repr(float) writes it: the shortest form that reads back,
 * with ".0" on whole numbers ("3.0", "0.4", "1e-05"). */
static void py_float(struct buf *b, double x)
{
	char s[40];
	for (int p = 1; p <= 17; p++) {
		snprintf(s, sizeof s, "%.*g", p, x);
		if (strtod(s, NULL) == x)
			break;
	}
	if (!strpbrk(s, ".eEn"))
		strcat(s, ".0");
	buf_puts(b, s);
}

void orca_write(struct buf *b, enum orca_format f, const struct orca_load *l)
{
	static const struct {
		unsigned bit;
		const char *name;
	} fields[] = {{ORCA_HAVE_KV, "kv_cache_usage_perc"},
		      {ORCA_HAVE_WAITING, "num_requests_waiting"},
		      {ORCA_HAVE_RUNNING, "num_requests_running"}};
	const char *name = orca_format_name(f);
	if (!name)
		return;
	buf_puts(b, name);
	buf_puts(b, f == ORCA_JSON ? " {\"named_metrics\": {" : " ");
	int first = 1;
	for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
		if (!(l->have & fields[i].bit))
			continue;
		double x = fields[i].bit == ORCA_HAVE_KV ? l->kv_usage : fields[i].bit == ORCA_HAVE_WAITING ? l->waiting : l->running;
		if (f == ORCA_JSON)
			buf_printf(b, "%s\"%s\": ", first ? "" : ", ", fields[i].name);
		else
			buf_printf(b, "%snamed_metrics.%s=", first ? "" : ", ", fields[i].name);
		py_float(b, x);
		first = 0;
	}
	if (f == ORCA_JSON)
		buf_puts(b, "}}");
}
