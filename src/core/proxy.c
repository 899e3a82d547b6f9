/* proxy.c: request lifecycle decisions; see proxy.h. */
#include "proxy.h"

static int can_retry(const struct proxy_req *r, int max_retries)
{
	return !r->head_sent && r->retries < max_retries && r->n_tried < LB_MAX_TRIED;
}

struct proxy_decision proxy_on_head(struct proxy_req *r, int max_retries, int status)
{
	r->upstream_status = status;
	if ((status == 502 || status == 503) && can_retry(r, max_retries)) {
		r->refused = 1;
		return (struct proxy_decision){PROXY_RETRY, status, "the backend answered 502/503"};
	}
	return (struct proxy_decision){PROXY_RELAY, status, NULL};
}

struct proxy_decision proxy_on_end(const struct proxy_req *r, int max_retries, enum proxy_end how, const char *msg)
{
	if (how == PROXY_END_STALE) {
		if (!r->head_sent && !r->refused && r->resends < PROXY_MAX_RESENDS)
			return (struct proxy_decision){PROXY_RESEND, 0, msg};
		how = PROXY_END_LOST;
	}
	int retryable = r->refused || (!r->head_sent && (how == PROXY_END_CONNECT || how == PROXY_END_CTIMEOUT ||
							  how == PROXY_END_LOST));
	int counted = r->refused ? r->upstream_status : how == PROXY_END_OK ? r->upstream_status : 502;
	if (retryable && can_retry(r, max_retries))
		return (struct proxy_decision){PROXY_RETRY, counted, msg};
	if (!r->head_sent) {
		if (r->refused)
			return (struct proxy_decision){PROXY_FAIL, 502, "every backend tried answered 502/503"};
		if (how == PROXY_END_CTIMEOUT)
			return (struct proxy_decision){PROXY_FAIL, 504, "timed out connecting to the backend"};
		return (struct proxy_decision){PROXY_FAIL, 502, msg && *msg ? msg : "bad response from the backend"};
	}
	if (how != PROXY_END_OK)
		return (struct proxy_decision){PROXY_CUT, r->upstream_status, "backend response truncated"};
	return (struct proxy_decision){PROXY_DONE, r->upstream_status, NULL};
}

struct proxy_decision proxy_on_timeout(const struct proxy_req *r, int first_byte)
{
	if (first_byte && !r->head_sent)
		return (struct proxy_decision){PROXY_FAIL, 504, "backend sent no response in time (first-byte timeout)"};
	return (struct proxy_decision){PROXY_CUT, r->upstream_status, "backend went silent (idle timeout)"};
}

void proxy_retry(struct proxy_req *r, int ep)
{
	if (r->n_tried < LB_MAX_TRIED)
		r->tried[r->n_tried++] = ep;
	r->retries++;
	r->refused = 0;
	r->upstream_status = 0;
	r->resends = 0;
}

void proxy_resent(struct proxy_req *r)
{
	r->resends++;
}

int proxy_finish(struct proxy_req *r)
{
	if (r->finished)
		return 0;
	r->finished = 1;
	return 1;
}

int proxy_passive_failure(int *consecutive, int threshold)
{
	return ++*consecutive >= threshold;
}
