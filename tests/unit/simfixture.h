/* simfixture.h: the simulator tests' workload (test_sim.c, test_sim_routers.c):
 * 40 conversations x 5 turns, turn k+1 extends turn k (fork-like); all first
 * turns, then all second turns, ... The key (the prompt) starts with a
 * per-conversation first message of more than 100 characters, so every turn
 * of a conversation has the same routing key. */
#ifndef PREFIXLB_TEST_SIMFIXTURE_H
#define PREFIXLB_TEST_SIMFIXTURE_H

#include <stdio.h>
#include <string.h>

#include "core/tokenizer.h"
#include "core/workload.h"

static const uint32_t filler[] = {279, 315, 323};

struct fixture {
	struct wl_request items[200];
	struct tok_ids ids[200];
	size_t order[200];
	char text[200][160];
	struct wl_plan plan;
};

static void fixture(struct fixture *f)
{
	size_t k = 0;
	for (int turn = 0; turn < 5; turn++)
		for (int c = 0; c < 40; c++, k++) {
			size_t len = 1500 + (size_t)turn * 600;
			memset(&f->ids[k], 0, sizeof f->ids[k]);
			for (size_t i = 0; i < len; i++)
				tok_ids_push(&f->ids[k], (uint32_t)(c * 100000 + (int)i));
			int n = snprintf(f->text[k], sizeof f->text[k],
					 "User: conversation %d, a first message of more than a hundred characters so that every "
					 "turn hashes the same, turn %d",
					 c, turn);
			f->items[k] = (struct wl_request){f->text[k], (size_t)n, (long)len, 20 + c % 7, (size_t)c, (size_t)turn};
			f->order[k] = k;
		}
	f->plan = (struct wl_plan){f->items, 200, f->order, 200, 200};
}

static void fixture_free(struct fixture *f)
{
	for (size_t i = 0; i < 200; i++)
		tok_ids_free(&f->ids[i]);
}

#endif
