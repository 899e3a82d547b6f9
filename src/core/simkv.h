/* simkv.h: the lab's model of KV events: each simulated engine's batches
 * (engine_set_kv_events) reach the router's precise index (kvindex.c) a fixed
 * delay after the step that made them, as a subscriber 's ZeroMQ stream
 * would bring them; no loss (the live tests cover gaps and replays). The
 * index is keyed by the router's endpoint of each replica when the batch
 * arrives; batches of a replica that left are dropped. Pure. */
#ifndef PREFIXLB_SIMKV_H
#define PREFIXLB_SIMKV_H

#include <stdint.h>

#include "engine.h"
#include "kvindex.h"

struct simkv;

struct simkv *simkv_new(uint64_t delay_ns, const struct kvindex_cfg *c, int replicas);
void simkv_free(struct simkv *k);
struct kvindex *simkv_index(struct simkv *k);
/* Replica r (its engine e) is endpoint ep from now on: its events flow; its
 * index entries start empty. */
void simkv_join(struct simkv *k, struct engine *e, int r, int ep, uint64_t now);
/* Replica r left: its batches in flight are dropped, its entries too. */
void simkv_leave(struct simkv *k, int r);
/* When the next batch arrives (UINT64_MAX: none). */
uint64_t simkv_next(const struct simkv *k);
/* Applies every batch arrived by now. */
void simkv_deliver(struct simkv *k, uint64_t now);

#endif
