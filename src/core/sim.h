/* sim.h: the lab's discrete-event simulator. It runs the SAME client
 * (client.c), the SAME routing policies (lb.c, policy_*.c) and the SAME
 * engine model (engine.c) as the live processes, with sockets replaced by
 * events and fixed network delays. Virtual time only: nothing sleeps, so a
 * run costs CPU, not time.
 *
 * Client -> router -> replica: a request the client sends at t is routed at
 * t (the router's pick and lease) and reaches the replica at t + net_delay;
 * each token reaches the client net_delay after the replica emits it. A
 * warm-up pass may come first: the same client with warm_requests requests,
 * routed by warm_lb and not measured; the measured pass starts when it has
 * drained, as a fresh client (a live run starts a new bench). */
#ifndef PREFIXLB_SIM_H
#define PREFIXLB_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "admit.h"
#include "client.h"
#include "engine.h"
#include "lb.h"
#include "stats.h"
#include "tokenizer.h"

/* A change of the fleet mid-run: replica `replica` goes down (crashes: its
 * requests in flight fail; those with no token back yet are retried elsewhere
 * by the router, the others are cut; its cache is lost) or comes up (joins
 * with an empty cache). */
struct sim_fleet_event {
	double t_s; /* seconds after the measured pass starts */
	int replica;
	int up;
};

/* Requests reach the routers as a Kubernetes Service spreads connections:
 * each request independently at random (kube-proxy's iptables mode picks a
 * backend per connection at random), or in turn. */
enum { SIM_ASSIGN_RANDOM = 0, SIM_ASSIGN_ROUND_ROBIN = 1 };

struct sim_cfg {
	struct engine_profile profile; /* every replica's, unless profiles */
	const struct engine_profile *profiles; /* per replica (a mixed fleet), or NULL */
	int replicas;     /* replica slots */
	int start_replicas; /* replicas up at the start: [0, start_replicas) (0: all) */
	const struct sim_fleet_event *events; /* in time order */
	size_t n_events;
	int retries;      /* the router's retries (a replica gone before the first token) */
	double signals_ms; /* the routers read each engine's load this often (vLLM /metrics); 0: never */
	int orca;          /* each response head carries its replica's load to the router that sent the request
			      (in-band, ORCA endpoint-load-metrics): read when the head leaves, one hop old on arrival */
	int routers;       /* routers of the measured pass (0 or 1: one), each with its own routing state */
	int router_assign; /* which router takes a request: SIM_ASSIGN_* */
	enum chat_template tpl; /* how the engines render chat: the text of char-block policies */
	struct lb_opts lb;
	double net_delay_ms; /* one way, client <-> replica */
	struct client_cfg client;
	/* LIST: the token ids of client.plan->items[i], as the engine sees them */
	const struct tok_ids *item_ids;
	size_t warm_requests; /* LIST: a warm-up pass of this many requests first (0: none) */
	struct lb_opts warm_lb;
	int warm_same_router; /* the warm-up goes through the measured pass's router (lb, not warm_lb): its
			       * state (prefix index, counters) carries over, as in a router that kept running */
	/* KV events (simkv.h): the engines' batches reach the router's precise
	 * index kv_events_delay_ms after their step (off unless kv_events) */
	int kv_events;
	double kv_events_delay_ms;
	const uint32_t *filler; /* what the engines generate (engine_new) */
	size_t n_filler;
	struct admit_cfg admit; /* the router's admission control (admit.h; off: none) */
};

struct sim_result {
	double duration;                     /* s, the measured pass: first clock start -> last end */
	uint64_t prefix_hits, prompt_tokens; /* over all replicas, measured pass */
	uint64_t preemptions;
	double load_spread;    /* max / mean requests per replica */
	uint64_t *per_replica; /* requests sent to each replica (measured pass) */
	size_t n_requests;     /* requests of the measured pass */
	uint64_t retries, cut;   /* requests retried elsewhere / cut mid-answer by a replica going down */
	struct admit_stats admit; /* admission's outcomes (zero when off) */
	struct client *client; /* its records: client_metrics, client_rec */
};

/* Runs one simulation. Returns 0, or -1 on a bad configuration. Free the
 * result with sim_result_free. */
int sim_run(const struct sim_cfg *cfg, struct sim_result *res);
void sim_result_free(struct sim_result *res);

#endif
