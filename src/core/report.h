/* report.h: what a benchmark run writes, built in memory (the caller writes
 * the files): vLLM's result JSON (benchmark_serving.py --save-result, key for
 * key: existing notebooks read these files), a CSV line per request, and the
 * lines our result block adds after vLLM's. */
#ifndef PREFIXLB_REPORT_H
#define PREFIXLB_REPORT_H

#include <stddef.h>

#include "buf.h"
#include "client.h"
#include "stats.h"

struct report_meta {
	const char *date;         /* "%Y%m%d-%H%M%S", local time */
	const char *backend;      /* vllm, openai, openai-chat */
	const char *model;        /* model_id */
	const char *tokenizer_id; /* --tokenizer when given, else the model (as vLLM) */
	long num_prompts;         /* the flag's value */
	double request_rate;      /* inf allowed */
	double burstiness;
	long max_concurrency;     /* <= 0: null */
	unsigned selected;        /* --percentile-metrics as (1 << M_TTFT) | ... */
	int goodput;              /* --goodput given */
};

/* Python's repr of a float (shortest round trip; "200.0", "inf"), as json.dump writes it. */
int report_py_float(struct buf *out, double v);
/* The result JSON of benchmark_serving.py (vLLM 0.7), plus "failed" and
 * "cache_hit_rate" (and rejected/timed_out/aborted counts when there were any). */
int report_vllm_json(struct buf *out, const struct report_meta *m, const struct client *c,
		     const struct bench_metrics *bm);
/* index,conversation,turn,backend,success,prompt_tokens,output_tokens,cached_tokens,start_ms,ttft_ms,latency_ms,error */
int report_csv(struct buf *out, const struct client *c, uint64_t t_start);
/* Failed requests by reason (with the first server message of each),
 * timeouts, prefix-cache hit rate, achieved dispatch rate, semaphore waits,
 * requests per backend; the same "{:<40} {:<10}" layout as vLLM's block. */
int report_extras(struct buf *out, const struct client *c, const struct bench_metrics *bm, long max_concurrency);

#endif
