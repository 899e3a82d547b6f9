/* hist.c: cumulative-bucket histograms in the Prometheus text format. */
#include "hist.h"

#include <string.h>

void hist_init(struct hist *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof *h);
	if (n > HIST_MAX_BUCKETS)
		n = HIST_MAX_BUCKETS;
	memcpy(h->bounds, bounds, n * sizeof *bounds);
	h->n = n;
}

void hist_observe(struct hist *h, double v)
{
	size_t i = 0;
	while (i < h->n && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->sum += v;
	h->count++;
}

int hist_format(const struct hist *h, const char *name, const char *help, const char *labels, struct buf *out)
{
	const char *sep = labels && *labels ? "," : "";
	labels = labels ? labels : "";
	int rc = buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	uint64_t cum = 0;
	for (size_t i = 0; i < h->n && !rc; i++) {
		cum += h->counts[i];
		rc = buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i],
				(unsigned long long)cum);
	}
	if (!rc)
		rc = buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels,
				sep, (unsigned long long)h->count, name, labels, h->sum, name, labels,
				(unsigned long long)h->count);
	return rc;
}

int metric_format(struct buf *out, const char *name, const char *type, const char *help, const char *labels,
		  double v)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s{%s} %.17g\n", name, help, name, type, name,
			  labels ? labels : "", v);
}
