/* cmd.h: the subcommand table and helpers shared by the command shells. */
#ifndef PREFIXLB_CMD_H
#define PREFIXLB_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"

struct tok;

struct cmd_entry {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int cmd_tokenize(int argc, char **argv);
int cmd_engine(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_dataset(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_lab(int argc, char **argv);

/* Reads a whole file (at most max bytes) into out. On error prints
 * "prefixlb: PATH: reason" to stderr and returns -1. */
int cmd_read_file(const char *path, size_t max, struct buf *out);
/* Writes path atomically (PATH.tmp, then rename): a reader never sees it half
 * written. Returns 0 or -1. */
int cmd_write_file_atomic(const char *path, const char *data, size_t len);
/* Loads the tokenizer from path, or when path is NULL from $PREFIXLB_TOKENIZER,
 * then data/tokenizer.json next to the binary's ../, then ./data/. Prints a
 * clear error and returns NULL on failure. */
struct tok *cmd_load_tokenizer(const char *path);
/* Reads a file of options, one per line ("name = value" or "name value", '#'
 * comments) into argv form {cmd, "--name", "value", ..., NULL} (owned; free
 * with cmd_free_argv). NULL with a message on error. */
char **cmd_config_argv(const char *path, const char *cmd, int *argc_out);
void cmd_free_argv(char **v);
/* Loads a conversations data set: the generator's preset when preset is not
 * NULL (drawn with seed), else the ShareGPT file at path. Prints
 * "prefixlb: PATH:LINE:COL: problem" and returns -1 on error. */
struct wl_dataset;
int cmd_load_dataset(const char *path, const char *preset, uint64_t seed, struct wl_dataset *ds);
/* Raises the open-files limit as far as allowed (thousands of streams). */
void cmd_raise_nofile(void);

#endif
