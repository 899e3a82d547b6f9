/* hist.h: Prometheus-style histograms and text exposition helpers. */
#ifndef PREFIXLB_HIST_H
#define PREFIXLB_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HIST_MAX_BUCKETS 32

struct hist {
	double bounds[HIST_MAX_BUCKETS]; /* upper bounds, ascending; +Inf implied */
	uint64_t counts[HIST_MAX_BUCKETS + 1];
	size_t n;
	double sum;
	uint64_t count;
};

void hist_init(struct hist *h, const double *bounds, size_t n);
void hist_observe(struct hist *h, double v);
/* Appends "# HELP/# TYPE" and the series of one histogram. labels: 'k="v"' or "". */
int hist_format(const struct hist *h, const char *name, const char *help, const char *labels, struct buf *out);
/* One gauge or counter, with its HELP/TYPE lines. */
int metric_format(struct buf *out, const char *name, const char *type, const char *help, const char *labels,
		  double v);

#endif
