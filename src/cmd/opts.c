/* opts.c: table-driven command-line flags. */
#include "../core/mem.h"
#include "opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void opts_help(const char *usage, const struct opt *tab)
{
	fputs(usage, stdout);
	fputs("\noptions:\n", stdout);
	for (const struct opt *o = tab; o->name; o++) {
		char def[64] = "";
		switch (o->type) {
		case OPT_STR:
			if (*(char **)o->dst)
				snprintf(def, sizeof def, " (default %s)", *(char **)o->dst);
			break;
		case OPT_INT: snprintf(def, sizeof def, " (default %ld)", *(long *)o->dst); break;
		case OPT_DBL: snprintf(def, sizeof def, " (default %g)", *(double *)o->dst); break;
		default: break;
		}
		printf("  --%-26s %s%s\n", o->name, o->help, def);
	}
}

void opt_list_free(struct opt_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Where the argument came from: "prefixlb CMD: " or "prefixlb CMD: FILE:LINE: ". */
struct src {
	const char *cmd, *file;
	const int *lines;
	int i;
};

static void where(const struct src *s)
{
	if (s->file && s->lines)
		fprintf(stderr, "prefixlb %s: %s:%d: ", s->cmd, s->file, s->lines[s->i]);
	else
		fprintf(stderr, "prefixlb %s: ", s->cmd);
}

static int set(const struct src *src, const struct opt *o, const char *val)
{
	char *end;
	errno = 0;
	switch (o->type) {
	case OPT_STR:
		*(const char **)o->dst = val;
		return 0;
	case OPT_INT: {
		long v = strtol(val, &end, 10);
		if (errno || end == val || *end || (o->min < o->max && (v < o->min || v > o->max))) {
			where(src);
			fprintf(stderr, "--%s: '%s' is not an integer", o->name, val);
			if (o->min < o->max)
				fprintf(stderr, " in [%g, %g]", o->min, o->max);
			fputc('\n', stderr);
			return -1;
		}
		*(long *)o->dst = v;
		return 0;
	}
	case OPT_DBL: {
		double v = strtod(val, &end);
		if (errno || end == val || *end || v != v || (o->min < o->max && (v < o->min || v > o->max))) {
			where(src);
			fprintf(stderr, "--%s: '%s' is not a number", o->name, val);
			if (o->min < o->max)
				fprintf(stderr, " in [%g, %g]", o->min, o->max);
			fputc('\n', stderr);
			return -1;
		}
		*(double *)o->dst = v;
		return 0;
	}
	case OPT_BOOL:
		if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes"))
			*(int *)o->dst = 1;
		else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no"))
			*(int *)o->dst = 0;
		else {
			where(src);
			fprintf(stderr, "--%s: '%s' is not true or false\n", o->name, val);
			return -1;
		}
		return 0;
	case OPT_LIST: {
		struct opt_list *l = o->dst;
		char **v = plb_realloc(l->v, (l->n + 1) * sizeof *v);
		if (!v)
			return -1;
		l->v = v;
		if (!(l->v[l->n] = plb_strdup(val)))
			return -1;
		l->n++;
		return 0;
	}
	}
	return -1;
}

int opts_parse(const char *cmd, const char *usage, const struct opt *tab, int argc, char **argv,
	       int (*extra)(void *ctx, const char *name, const char *value), void *ctx)
{
	return opts_parse_file(cmd, usage, tab, argc, argv, extra, ctx, NULL, NULL);
}

int opts_parse_file(const char *cmd, const char *usage, const struct opt *tab, int argc, char **argv,
		    int (*extra)(void *ctx, const char *name, const char *value), void *ctx, const char *file,
		    const int *lines)
{
	struct src src = {cmd, file, lines, 0};
	for (int i = 1; i < argc; i++) {
		src.i = i;
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			opts_help(usage, tab);
			return 1;
		}
		if (strncmp(a, "--", 2) != 0) {
			where(&src);
			fprintf(stderr, "unexpected argument '%s' (see --help)\n", a);
			return -1;
		}
		char name[128];
		const char *eq = strchr(a + 2, '=');
		size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (nl >= sizeof name) {
			where(&src);
			fprintf(stderr, "unknown option '%s'\n", a);
			return -1;
		}
		memcpy(name, a + 2, nl);
		name[nl] = '\0';
		for (char *c = name; *c; c++)
			if (*c == '_')
				*c = '-';
		const struct opt *o = tab;
		while (o->name && strcmp(o->name, name) != 0)
			o++;
		const char *val = eq ? eq + 1 : NULL;
		if (!o->name) {
			int r = -1;
			if (extra) {
				const char *v = val ? val : (i + 1 < argc ? argv[i + 1] : NULL);
				r = extra(ctx, name, v);
				if (r == 1 && !val)
					i++;
			}
			if (r < 0) {
				if (r == -1) {
					where(&src);
					fprintf(stderr, "unknown option '%s%s' (see --help)\n", file ? "" : "--", name);
				}
				return -1;
			}
			continue;
		}
		if (o->type == OPT_BOOL && !val) {
			*(int *)o->dst = 1;
			continue;
		}
		if (!val) {
			if (i + 1 >= argc) {
				where(&src);
				fprintf(stderr, "%s%s needs a value\n", file ? "" : "--", name);
				return -1;
			}
			val = argv[++i];
		}
		if (set(&src, o, val))
			return -1;
	}
	return 0;
}
