/* sim.h: the lab's discrete-event simulator. It runs the SAME engine model
 * (engine.c), the SAME routing policies (lb.c) and the SAME metrics (stats.c)
 * as the live processes, with sockets replaced by events and fixed network
 * delays. Virtual time only: nothing sleeps, so a run costs CPU, not time.
 *
 * Client: requests are released by a Gamma(burstiness) arrival process at
 * request_rate (optionally no closer than dispatch_floor_ms), pass a
 * max_concurrency semaphore (their clock starts there, as in vLLM's client),
 * then router -> replica after net_delay; tokens come back after net_delay. */
#ifndef PREFIXLB_SIM_H
#define PREFIXLB_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "lb.h"
#include "stats.h"

struct sim_req;

struct sim_cfg {
	struct engine_profile profile;
	int replicas;
	struct lb_opts lb;
	double request_rate; /* <= 0 or inf: all at once */
	double burstiness;
	long max_concurrency; /* <= 0: unlimited */
	double dispatch_floor_ms;
	double net_delay_ms; /* one way, client <-> replica */
	double client_lag_ms; /* client clock start -> request leaves the client (a lagging client) */
	uint64_t seed;
	/* reqs[0..warm) are a warm-up: sent the same way, not measured; the
	 * measured requests start once the last of them has finished, and the
	 * result (duration, hits, per-replica counts) covers only the rest. */
	size_t warm;
	/* The warm-up's routing: warm_lb when warm_lb_set, else lb (a fleet that
	 * served the same requests under another policy before this run). */
	struct lb_opts warm_lb;
	int warm_lb_set;
	/* Sessions (a closed loop, as `prefixlb bench --multi-turn-mode
	 * sessions`): when next_turn is set, reqs[0..n) are the sessions' first
	 * turns, opened by the arrival process (rate inf: max_concurrency sessions
	 * at once, the next when one ends); when a turn's answer is complete,
	 * next_turn(turn_ctx, session, answer ids) fills the session's next turn
	 * (its memory must live until sim_run returns) and returns 0, or returns
	 * 1 when the session is over. The next turn is sent think_s later. At most
	 * max_requests requests in all: out[] must have room for them. No warm-up. */
	int (*next_turn)(void *ctx, size_t session, const uint32_t *answer, size_t n_answer, struct sim_req *out);
	void *turn_ctx;
	double think_s;
	size_t max_requests;
};

struct sim_req {
	const uint32_t *ids; /* prompt token ids (BOS included) */
	size_t n_ids;
	uint32_t max_tokens;
	const char *key; /* routing text (prompt / first user message) */
	size_t key_len;
};

struct sim_result {
	double duration;              /* s, first dispatch -> last completion */
	uint64_t prefix_hits, prompt_tokens; /* over all replicas */
	uint64_t preemptions;
	double load_spread;           /* max / mean requests per replica */
	size_t n_requests;            /* out[0..n_requests) are filled (sessions: the turns sent) */
	uint64_t per_replica[256];
};

/* Runs reqs[0..n); out[i] gets request i's timings (itl arrays allocated,
 * free with sim_results_free). Returns 0 or -1. */
int sim_run(const struct sim_cfg *cfg, const struct sim_req *reqs, size_t n, const uint32_t *filler, size_t n_filler,
	    struct req_result *out, struct sim_result *res);
void sim_results_free(struct req_result *out, size_t n);

#endif
