/* main.c: `prefixlb SUBCOMMAND ...`, dispatched through cmd_table. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

/* `git describe --always --dirty` of the tree it was built from, passed by the
 * Makefile; a fixed fallback when built outside a git checkout. */
#ifndef PREFIXLB_VERSION
#define PREFIXLB_VERSION "0.1-unknown"
#endif

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("prefixlb %s\n", PREFIXLB_VERSION);
	return 0;
}

static const struct cmd_entry cmd_table[] = {
	{"tokenize", "count, list or decode Llama 3 tokens of stdin", cmd_tokenize},
	{"engine", "a fleet of simulated vLLM replicas (OpenAI API)", cmd_engine},
	{"route", "the prefix-cache-aware load balancer", cmd_route},
	{"bench", "a benchmark client compatible with vLLM's benchmark_serving.py", cmd_bench},
	{"dataset", "a synthetic ShareGPT-style data set and its statistics", cmd_dataset},
	{"lab", "rerun the seed's experiment in virtual time", cmd_lab},
	{"version", "print the version (also --version)", cmd_version},
};

static void usage(FILE *f)
{
	fputs("usage: prefixlb COMMAND [OPTIONS]   (prefixlb COMMAND --help for its options)\n\ncommands:\n", f);
	for (size_t i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++)
		fprintf(f, "  %-10s %s\n", cmd_table[i].name, cmd_table[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++)
		if (strcmp(argv[1], cmd_table[i].name) == 0)
			return cmd_table[i].run(argc - 1, argv + 1);
	fprintf(stderr, "prefixlb: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
