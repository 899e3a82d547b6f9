/* opts.h: one options table drives a subcommand's flags and its --help
 * (tmux's options_table idea). Flags are "--name VALUE" or "--name=VALUE";
 * booleans take no value ("--name") but accept "--name=true|false". */
#ifndef PREFIXLB_OPTS_H
#define PREFIXLB_OPTS_H

#include <stddef.h>

enum opt_type { OPT_STR, OPT_INT, OPT_DBL, OPT_BOOL, OPT_LIST };

struct opt_list {
	char **v;
	size_t n;
};

struct opt {
	const char *name;
	enum opt_type type;
	void *dst; /* char **, long *, double *, int *, struct opt_list * */
	const char *help;
	double min, max; /* for INT and DBL when min < max */
};

/* Parses argv[1..] (argv[0] is the subcommand). Unknown flags, missing or bad
 * values print "prefixlb CMD: ..." and return -1. "--help" prints the table
 * (with usage first) and returns 1. Returns 0 on success. extra, when not
 * NULL, is called for flags not in the table; it returns 1 if it took a value,
 * 0 if it took none, -1 if unknown. */
int opts_parse(const char *cmd, const char *usage, const struct opt *tab, int argc, char **argv,
	       int (*extra)(void *ctx, const char *name, const char *value), void *ctx);
/* The same for arguments read from a file (cmd_config_argv_lines): errors
 * say "FILE:LINE: what". */
int opts_parse_file(const char *cmd, const char *usage, const struct opt *tab, int argc, char **argv,
		    int (*extra)(void *ctx, const char *name, const char *value), void *ctx, const char *file,
		    const int *lines);
void opts_help(const char *usage, const struct opt *tab);
void opt_list_free(struct opt_list *l);

#endif
