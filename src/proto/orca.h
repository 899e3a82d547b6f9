/* orca.h: in-band load reports (ORCA), the `endpoint-load-metrics` response
 * header that vLLM attaches when a request carries
 * `endpoint-load-metrics-format: text|json`.
 *
 * What vLLM sends (vllm-project/vllm@7be59d7621e2872dfb0a37130aceca4ba2c208cb,
 * vllm/entrypoints/serve/utils/orca_metrics.py; the same at 090cb922 in
 * vllm/entrypoints/openai/orca_metrics.py):
 *   request  endpoint-load-metrics-format: TEXT | JSON (case-insensitive; any
 *            other value, or none: no header)
 *   response endpoint-load-metrics: TEXT named_metrics.kv_cache_usage_perc=0.4, named_metrics.num_requests_waiting=3.0
 *            endpoint-load-metrics: JSON {"named_metrics": {"kv_cache_usage_perc": 0.4, "num_requests_waiting": 3.0}}
 * The values are the gauges vllm:kv_cache_usage_perc (0..1) and
 * vllm:num_requests_waiting, Python floats, one entry per engine (several
 * with data parallelism). vLLM adds the header only to non-streamed answers
 * (completion/api_router.py, chat_completion/api_router.py: JSONResponse gets
 * headers=metrics_header(...), the StreamingResponse none). The ORCA text
 * form also has top-level fields (cpu_utilization, mem_utilization,
 * rps_fractional, eps, application_utilization) and the maps named_metrics.*,
 * utilization.*, request_cost.* (xds orca_load_report.proto).
 *
 * prefixlb's engine answers the same way and adds
 * named_metrics.num_requests_running (a named metric: any ORCA reader that
 * does not know it ignores it).
 *
 * The parser is strict about syntax (one key=number per comma-separated item,
 * decimal numbers only, finite, counts >= 0, KV usage in 0..1; JSON: an object
 * of numbers and objects of numbers, no duplicate keys) and lenient about
 * content: unknown keys are skipped, so later ORCA fields do not break it. A
 * value without the TEXT/JSON prefix is read by its first character ('{':
 * JSON). Duplicates of a count add up, KV usages average (data parallelism). */
#ifndef PREFIXLB_ORCA_H
#define PREFIXLB_ORCA_H

#include <stddef.h>

#include "../core/buf.h"

#define ORCA_REQUEST_HEADER "endpoint-load-metrics-format"
#define ORCA_RESPONSE_HEADER "endpoint-load-metrics"
#define ORCA_MAX_VALUE 8192 /* longest value read */
#define ORCA_MAX_ITEMS 64   /* most key=value items (TEXT) or members (JSON) */

enum orca_format { ORCA_NONE = 0, ORCA_TEXT, ORCA_JSON };

/* What a report said. have: ORCA_HAVE_* bits of the fields that were there. */
enum {
	ORCA_HAVE_WAITING = 1,
	ORCA_HAVE_RUNNING = 2,
	ORCA_HAVE_KV = 4,
	ORCA_HAVE_CPU = 8,
	ORCA_HAVE_MEM = 16,
};

struct orca_load {
	unsigned have;
	double waiting;  /* named_metrics.num_requests_waiting (summed over duplicates) */
	double running;  /* named_metrics.num_requests_running (prefixlb's engine) */
	double kv_usage; /* named_metrics.kv_cache_usage_perc (or kv_cache_utilization), mean */
	double cpu_utilization, mem_utilization;
	unsigned n_items; /* items read, known or not */
	unsigned n_kv_dup; /* (parser's own: KV usages averaged) */
};

/* The request header's value: "text" or "json" in any case, surrounded by
 * optional whitespace; ORCA_NONE for anything else (vLLM then sends no
 * header). */
enum orca_format orca_format_parse(const char *v, size_t n);
/* "TEXT", "JSON" (NULL for ORCA_NONE): the prefix of a report and what a
 * client asks for. */
const char *orca_format_name(enum orca_format f);

/* Parses an endpoint-load-metrics value (n <= ORCA_MAX_VALUE). Returns 0, or
 * PLB_EPARSE / PLB_ERANGE / PLB_ETOOBIG with a message in err. Nothing is
 * allocated but JSON's temporary tree. */
int orca_parse(const char *v, size_t n, struct orca_load *out, char *err, size_t errlen);

/* Appends a report of l's fields (the have bits: KV usage, waiting, running)
 * in format f as vLLM writes it, without the header's name. */
void orca_write(struct buf *b, enum orca_format f, const struct orca_load *l);

#endif
