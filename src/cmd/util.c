/* util.c: file helpers for the command shells (the core never opens files). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../core/mem.h"
#include "../core/tokenizer.h"
#include "../core/workload.h"
#include "cmd.h"

int cmd_read_file(const char *path, size_t max, struct buf *out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "prefixlb: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (out->len + n > max || buf_append(out, chunk, n)) {
			fprintf(stderr, "prefixlb: %s: larger than %zu bytes\n", path, max);
			rc = -1;
			break;
		}
	}
	if (!rc && ferror(f)) {
		fprintf(stderr, "prefixlb: %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	if (f != stdin)
		fclose(f);
	return rc;
}

static int exists(const char *p)
{
	return access(p, R_OK) == 0;
}

struct tok *cmd_load_tokenizer(const char *path)
{
	char guess[PATH_MAX + 32];
	if (!path)
		path = getenv("PREFIXLB_TOKENIZER");
	if (!path) {
		char exe[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		if (n > 0) {
			exe[n] = '\0';
			char *slash = strrchr(exe, '/');
			if (slash)
				*slash = '\0';
			snprintf(guess, sizeof guess, "%s/../data/tokenizer.json", exe);
			if (exists(guess))
				path = guess;
		}
	}
	if (!path)
		path = "data/tokenizer.json";
	if (!exists(path)) {
		fprintf(stderr, "prefixlb: %s: no tokenizer.json (run scripts/setup, or pass --tokenizer PATH)\n",
			path);
		return NULL;
	}
	struct buf b;
	buf_init(&b, (size_t)1 << 30);
	if (cmd_read_file(path, b.max, &b)) {
		buf_free(&b);
		return NULL;
	}
	struct tok *t = NULL;
	char err[256];
	if (tok_load(&t, b.data, b.len, err, sizeof err))
		fprintf(stderr, "prefixlb: %s: %s\n", path, err);
	buf_free(&b);
	return t;
}

void cmd_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	/* as root the hard limit can go up too; otherwise take the soft one to it */
	struct rlimit want = {1 << 20, 1 << 20};
	if (rl.rlim_max < want.rlim_max && setrlimit(RLIMIT_NOFILE, &want) == 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Reads the config file into argv form ("--name", "value", ...). Returns the
 * argv (strings owned, NULL-terminated) or NULL with an error printed; when
 * lines is not NULL, (*lines)[i] is the file line of argv[i] (owned). */
char **cmd_config_argv_lines(const char *path, const char *cmd, int *argc_out, int **lines)
{
	struct buf b;
	buf_init(&b, 1 << 24);
	if (cmd_read_file(path, b.max, &b)) {
		buf_free(&b);
		return NULL;
	}
	size_t cap = 16, n = 1;
	char **v = plb_calloc(cap, sizeof *v);
	int *ln = plb_calloc(cap, sizeof *ln);
	v[0] = plb_strdup(cmd);
	int line = 0;
	char *next = b.data ? b.data : (char *)"";
	for (char *l = next; l; l = next) {
		line++;
		char *nl = strchr(l, '\n');
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		char *h = strchr(l, '#');
		if (h)
			*h = '\0';
		while (*l == ' ' || *l == '\t')
			l++;
		size_t ll = strlen(l);
		while (ll && (l[ll - 1] == ' ' || l[ll - 1] == '\t' || l[ll - 1] == '\r'))
			l[--ll] = '\0';
		if (!*l)
			continue;
		char *sep = l + strcspn(l, " \t=");
		char *val = sep;
		if (*sep) {
			*sep = '\0';
			val = sep + 1;
			while (*val == ' ' || *val == '\t' || *val == '=')
				val++;
		}
		if (n + 3 >= cap) {
			cap *= 2;
			v = plb_realloc(v, cap * sizeof *v);
			ln = plb_realloc(ln, cap * sizeof *ln);
		}
		size_t kl = strlen(l) + 3;
		ln[n] = line;
		v[n] = plb_malloc(kl);
		snprintf(v[n++], kl, "--%s", l);
		if (*val) {
			ln[n] = line;
			v[n++] = plb_strdup(val);
		}
	}
	v[n] = NULL;
	*argc_out = (int)n;
	buf_free(&b);
	if (lines)
		*lines = ln;
	else
		free(ln);
	return v;
}

char **cmd_config_argv(const char *path, const char *cmd, int *argc_out)
{
	return cmd_config_argv_lines(path, cmd, argc_out, NULL);
}

void cmd_free_argv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}


int cmd_write_file_atomic(const char *path, const char *data, size_t len)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return -1;
	FILE *o = fopen(tmp, "w");
	if (!o)
		return -1;
	int bad = fwrite(data, 1, len, o) != len;
	bad |= fclose(o) != 0;
	if (bad || rename(tmp, path)) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

int cmd_load_dataset(const char *path, const char *preset, uint64_t seed, struct wl_dataset *ds)
{
	memset(ds, 0, sizeof *ds);
	if (preset) {
		struct wl_gen g;
		if (wl_preset(preset, &g)) {
			fprintf(stderr, "prefixlb: unknown data set preset '%s' (%s)\n", preset, wl_preset_names);
			return -1;
		}
		g.seed = seed;
		return wl_generate(&g, ds);
	}
	struct buf file;
	buf_init(&file, (size_t)1 << 34);
	char err[256] = "";
	int rc = cmd_read_file(path, file.max, &file);
	if (!rc && (rc = wl_parse_sharegpt(file.data ? file.data : "", file.len, ds, err, sizeof err)))
		fprintf(stderr, "prefixlb: %s:%s\n", path, err);
	buf_free(&file);
	return rc ? -1 : 0;
}
