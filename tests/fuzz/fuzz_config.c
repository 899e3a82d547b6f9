/* fuzz_config.c: config and scenario files (one option per line, read by
 * cmd_config_argv and checked by opts_parse), the ShareGPT reader and the
 * tokenizer.json loader: bad files give an error, never a crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/opts.h"
#include "core/tokenizer.h"
#include "core/workload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/prefixlb-fuzz-%d.conf", (int)getpid());
	FILE *f = fopen(path, "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	int argc;
	char **argv = cmd_config_argv(path, "fuzz", &argc);
	if (argv) {
		long n = 0;
		double d = 0;
		const char *s = NULL;
		int b = 0;
		struct opt_list l = {0};
		const struct opt tab[] = {
			{"num", OPT_INT, &n, "", 0, 100}, {"dbl", OPT_DBL, &d, "", 0, 0}, {"str", OPT_STR, &s, "", 0, 0},
			{"flag", OPT_BOOL, &b, "", 0, 0}, {"list", OPT_LIST, &l, "", 0, 0}, {0},
		};
		opts_parse("fuzz", "", tab, argc, argv, NULL, NULL);
		opt_list_free(&l);
		cmd_free_argv(argv);
	}
	unlink(path);
	struct wl_dataset ds;
	char err[256];
	if (wl_parse_sharegpt((const char *)data, size, &ds, err, sizeof err) == 0)
		wl_free(&ds);
	struct tok *t = NULL;
	if (tok_load(&t, (const char *)data, size, err, sizeof err) == 0)
		tok_free(t);
	return 0;
}
