/* openai.h: OpenAI-compatible request bodies, parsed once with jansson.
 *
 * Covers what prefixlb's engine serves and what its router must look at:
 * /v1/completions (prompt: a string, [token ids], or a batch: [strings] or
 * [[token ids]], one choice per prompt) and /v1/chat/completions (messages
 * with string or [{type: text, text}] content).
 * Errors carry a message fit for a 400 response. */
#ifndef PREFIXLB_OPENAI_H
#define PREFIXLB_OPENAI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/buf.h"
#include "../core/chat.h"

struct oai_prompt {
	const char *text; /* a text prompt (slice into the request's tree), or NULL */
	size_t len;
	const uint32_t *ids; /* token ids, or NULL (text prompt) */
	size_t n_ids;
};

struct oai_req {
	int chat;
	json_t *root; /* owned */
	const char *model; /* NULL when absent */
	int stream;
	int include_usage;
	long max_tokens; /* -1 when absent */
	long n;
	/* completions: n_prompts >= 1 prompts, each a text or token ids (a batch
	 * when more than one); prompt/prompt_ids repeat prompts[0] */
	struct oai_prompt *prompts; /* owned */
	size_t n_prompts;
	const char *prompt; /* string prompt, or NULL */
	size_t prompt_len;
	uint32_t *prompt_ids; /* token-id prompt, or NULL */
	size_t n_prompt_ids;
	uint32_t *id_store; /* owned: the token ids of every prompt */
	/* chat: messages with text content (parts joined), slices into arena/root */
	struct chat_msg *msgs;
	size_t n_msgs;
	/* chat: the routing key, a slice into arena/root (oai_prefix_text) */
	const char *key;
	size_t key_len;
	struct buf arena;
};

/* Writes the OpenAI error body for an HTTP status to out:
 *   {"error":{"message":"<msg>","type":"<type>","param":null,"code":<status>}}
 * (msg JSON-escaped), the shape the openai SDKs read; type: rate_limit_error
 * for 429, timeout for 504, server_error for other 5xx, invalid_request_error
 * otherwise. Sets *ctype to "application/json". Its signature is that of
 * http_server_cfg.error_body, so the engine and the router hand it to their
 * servers and use it for their own errors alike. */
void oai_error_body(int status, const char *msg, struct buf *out, const char **ctype);

/* Parses a request body. chat selects the schema. Returns 0, or -1 with a
 * message in err (the request is then freed already). max_items limits the
 * messages of a chat request and the prompts of a completions batch. */
int oai_parse(const char *body, size_t len, int chat, size_t max_items, struct oai_req *r, char *err,
	      size_t errlen);
void oai_req_free(struct oai_req *r);

/* The routing key text of a request (KubeAI's rule): chat -> the content of the
 * FIRST message whose role is "user" (text parts joined with nothing between
 * them, unlike the "\n" of the chat template's rendering in msgs); completions
 * -> the prompt (the first one of a batch of strings). Returns a slice valid
 * as long as r, or NULL with *len 0 when there is none. */
const char *oai_prefix_text(const struct oai_req *r, size_t *len);

/* What the router needs from a request, read without building a tree (the
 * router's hot path: jansson cost a third of its CPU on 2 KB bodies).
 * kind: OAI_COMPLETIONS, OAI_CHAT, or OAI_OTHER (any /v1/ POST: only model,
 * and a body that isn't JSON is not an error). The body must be valid UTF-8
 * and valid JSON (depth <= 512); the keys read must not repeat. */
enum { OAI_COMPLETIONS, OAI_CHAT, OAI_OTHER };

struct oai_route {
	char *model;    /* owned, NULL when absent */
	struct buf key; /* routing text: at most key_bytes of it */
	int has_key;
	size_t n_messages; /* chat: entries in "messages" */
	const char *main_v, *main_e; /* the value of "prompt" / "messages", into the body (NULL: absent) */
	long max_tokens;             /* max_completion_tokens, else max_tokens; -1 when absent */
};

int oai_route_info(const char *body, size_t len, int kind, size_t key_bytes, struct oai_route *out, char *err,
		   size_t errlen);
void oai_route_free(struct oai_route *r);

/* The whole prompt of a request oai_route_info has accepted (ri, whose body
 * is still there: nothing is read twice), for the prefix
 * index: completions: the prompt (the first of a list; token-id prompts give
 * nothing); chat: every message's role and content (text parts joined with
 * "\n", as vLLM renders them), in msgs[0..n_msgs) pointing into arena.
 * Returns 0, or -1 when the body holds neither. */
struct oai_fullprompt {
	struct buf arena;
	struct chat_msg *msgs;
	size_t n_msgs;
	const char *text; /* completions: the prompt, into arena */
	size_t text_len;
	long max_tokens;  /* max_tokens / max_completion_tokens, -1 when absent */
};
int oai_route_prompt(const struct oai_route *ri, int kind, size_t max_msgs, struct oai_fullprompt *out);
void oai_fullprompt_free(struct oai_fullprompt *p);

/* One event of a streamed response (an SSE data payload), read without a
 * tree: whether it carries a token (non-empty "choices"), that token's text
 * (choices[0].text, or .delta.content for chat; appended to text when not
 * NULL), and usage's completion_tokens and prompt_tokens_details.cached_tokens
 * (-1 when absent). Returns 0, or -1 when the payload is not a JSON object. */
struct oai_event {
	int has_choices;
	long completion_tokens, cached_tokens;
};
/* The message of an error body: OpenAI's {"error":{"message":...}}, the old
 * vLLM {"message":...} or FastAPI's {"detail":...}. Copies it (cut to fit)
 * into out and returns 1, or returns 0 when the body has none. */
int oai_error_message(const char *body, size_t len, char *out, size_t cap);
int oai_stream_event(const char *p, size_t n, struct buf *text, struct oai_event *ev);

#endif
