/* test_openai.c: request parsing and the routing key (src/proto/openai.c):
 * oai_parse (jansson, the engine's) and oai_route_info (tree-less, the
 * router's), which must agree on the model and the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/openai.h"

static int parse(const char *s, int chat, struct oai_req *r, char *err)
{
	return oai_parse(s, strlen(s), chat, 100, r, err, 256);
}

static void test_completions(void **state)
{
	(void)state;
	struct oai_req r;
	char err[256];
	assert_int_equal(parse("{\"model\":\"m\",\"prompt\":\"hi there\",\"max_tokens\":5,\"stream\":true,"
			       "\"stream_options\":{\"include_usage\":true}}", 0, &r, err), 0);
	assert_string_equal(r.model, "m");
	assert_int_equal(r.max_tokens, 5);
	assert_true(r.stream && r.include_usage);
	size_t n;
	const char *k = oai_prefix_text(&r, &n);
	assert_int_equal(n, 8);
	assert_memory_equal(k, "hi there", 8);
	oai_req_free(&r);
	assert_int_equal(parse("{\"prompt\":[\"only\"]}", 0, &r, err), 0);
	assert_memory_equal(r.prompt, "only", 4);
	assert_int_equal(r.max_tokens, -1);
	oai_req_free(&r);
	assert_int_equal(parse("{\"prompt\":[1,2,3]}", 0, &r, err), 0);
	assert_int_equal(r.n_prompt_ids, 3);
	assert_null(oai_prefix_text(&r, &n));
	oai_req_free(&r);
	/* batches: several strings, or several token-id lists; one prompt each */
	assert_int_equal(parse("{\"prompt\":[\"first\",\"second one\",\"\"]}", 0, &r, err), 0);
	assert_int_equal(r.n_prompts, 3);
	assert_memory_equal(r.prompts[1].text, "second one", 10);
	assert_int_equal(r.prompts[1].len, 10);
	assert_int_equal(r.prompts[2].len, 0);
	assert_null(r.prompts[0].ids);
	k = oai_prefix_text(&r, &n); /* the router's key: the first prompt */
	assert_memory_equal(k, "first", 5);
	oai_req_free(&r);
	assert_int_equal(parse("{\"prompt\":[[1,2],[3,4,5],[]]}", 0, &r, err), 0);
	assert_int_equal(r.n_prompts, 3);
	assert_int_equal(r.prompts[0].n_ids, 2);
	assert_int_equal(r.prompts[1].n_ids, 3);
	assert_int_equal(r.prompts[1].ids[2], 5);
	assert_int_equal(r.prompts[2].n_ids, 0);
	assert_int_equal(r.n_prompt_ids, 2);
	assert_int_equal(r.prompt_ids[1], 2);
	oai_req_free(&r);
	assert_int_equal(parse("{\"prompt\":\"one\"}", 0, &r, err), 0);
	assert_int_equal(r.n_prompts, 1);
	oai_req_free(&r);
	/* at most max_items prompts (100 here) */
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_puts(&b, "{\"prompt\":[");
	for (int i = 0; i < 100; i++)
		buf_printf(&b, "%s\"p%d\"", i ? "," : "", i);
	assert_int_equal(parse(b.data, 0, &r, err), -1); /* unterminated */
	buf_puts(&b, "]}");
	assert_int_equal(parse(b.data, 0, &r, err), 0);
	assert_int_equal(r.n_prompts, 100);
	oai_req_free(&r);
	b.len -= 2;
	buf_puts(&b, ",\"p100\"]}");
	assert_int_equal(parse(b.data, 0, &r, err), -1);
	assert_non_null(strstr(err, "too many prompts in the batch: 101 (at most 100)"));
	buf_free(&b);
	const char *bads[] = {"", "{", "[]", "{\"prompt\":1}", "{\"prompt\":[]}", "{\"prompt\":[1,\"a\"]}",
			      "{\"prompt\":[\"a\",1]}", "{\"prompt\":[\"a\",[1]]}", "{\"prompt\":[[1],\"a\"]}",
			      "{\"prompt\":[[1],[\"a\"]]}", "{\"prompt\":[[1],[-1]]}", "{\"prompt\":[{}]}",
			      "{\"prompt\":\"a\",\"stream\":1}", "{\"prompt\":\"a\",\"max_tokens\":1.5}",
			      "{\"prompt\":\"a\",\"model\":3}", "{\"prompt\":\"a\",\"prompt\":\"b\"}"};
	for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
		err[0] = 0;
		assert_int_equal(parse(bads[i], 0, &r, err), -1);
		assert_true(strlen(err) > 0);
	}
}

static void test_chat(void **state)
{
	(void)state;
	struct oai_req r;
	char err[256];
	assert_int_equal(parse("{\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},"
			       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
			       "{\"type\":\"image_url\",\"image_url\":{}},{\"type\":\"text\",\"text\":\"b\"}]},"
			       "{\"role\":\"user\",\"content\":\"second\"}],\"max_completion_tokens\":9}",
			       1, &r, err),
			 0);
	assert_int_equal(r.n_msgs, 3);
	assert_int_equal(r.max_tokens, 9);
	size_t n;
	const char *k = oai_prefix_text(&r, &n);
	/* the routing key: the FIRST user message, text parts joined with nothing
	 * (KubeAI); the chat template renders them joined with "\n" (vLLM) */
	assert_int_equal(n, 2);
	assert_memory_equal(k, "ab", 2);
	assert_int_equal(r.msgs[1].content_len, 3);
	assert_memory_equal(r.msgs[1].content, "a\nb", 3);
	assert_memory_equal(r.msgs[0].content, "sys", 3);
	oai_req_free(&r);
	assert_int_equal(parse("{\"messages\":[{\"role\":\"system\",\"content\":\"only\"}]}", 1, &r, err), 0);
	assert_null(oai_prefix_text(&r, &n));
	oai_req_free(&r);
	const char *bads[] = {"{\"messages\":[]}", "{\"messages\":{}}", "{\"messages\":[{\"role\":1,\"content\":\"a\"}]}",
			      "{\"messages\":[{\"role\":\"user\",\"content\":5}]}",
			      "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}"};
	for (size_t i = 0; i < sizeof bads / sizeof *bads; i++)
		assert_int_equal(parse(bads[i], 1, &r, err), -1);
	/* message count limit */
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_puts(&b, "{\"messages\":[");
	for (int i = 0; i < 101; i++)
		buf_printf(&b, "%s{\"role\":\"user\",\"content\":\"x\"}", i ? "," : "");
	buf_puts(&b, "]}");
	assert_int_equal(parse(b.data, 1, &r, err), -1);
	assert_non_null(strstr(err, "too many messages"));
	buf_free(&b);
}

/* ---- oai_route_info: the router's tree-less reader ----------------------- */

/* Reads body with oai_route_info (kind, key_bytes) and expects model (NULL:
 * none) and the routing key (key NULL: none). With compare (chat and
 * completions), the jansson path (oai_parse + oai_prefix_text) must accept the
 * same body and give the same model, the same key once cut at key_bytes and
 * the same number of messages. */
static void check_route(const char *body, int kind, size_t key_bytes, const char *model, const char *key,
			size_t key_len, int compare)
{
	struct oai_route r;
	char err[256] = "";
	assert_int_equal(oai_route_info(body, strlen(body), kind, key_bytes, &r, err, sizeof err), 0);
	if (model)
		assert_string_equal(r.model, model);
	else
		assert_null(r.model);
	assert_int_equal(r.has_key, key != NULL);
	assert_int_equal(r.key.len, key ? key_len : 0);
	if (key_len)
		assert_memory_equal(r.key.data, key, key_len);
	struct oai_req q;
	if (compare) {
		assert_int_not_equal(kind, OAI_OTHER);
		if (oai_parse(body, strlen(body), kind == OAI_CHAT, 100, &q, err, sizeof err))
			fail_msg("jansson refuses %s: %s", body, err);
		if (model)
			assert_string_equal(q.model, model);
		else
			assert_null(q.model);
		size_t n;
		const char *t = oai_prefix_text(&q, &n);
		assert_int_equal(t != NULL, key != NULL);
		if (t) {
			size_t cut = n < key_bytes ? n : key_bytes;
			assert_int_equal(cut, key_len);
			assert_memory_equal(t, key, cut);
		}
		if (kind == OAI_CHAT)
			assert_int_equal(q.n_msgs, r.n_messages);
		oai_req_free(&q);
	}
	oai_route_free(&r);
}

/* Both readers, which must agree. */
static void expect_route(const char *body, int kind, size_t key_bytes, const char *model, const char *key,
			 size_t key_len)
{
	check_route(body, kind, key_bytes, model, key, key_len, 1);
}

/* The router's reader alone: bodies the engine refuses later (or, for
 * OAI_OTHER, never parses). */
static void expect_route_only(const char *body, int kind, size_t key_bytes, const char *model, const char *key,
			      size_t key_len)
{
	check_route(body, kind, key_bytes, model, key, key_len, 0);
}

/* a literal key and its length */
#define K(lit) lit, sizeof(lit) - 1

static int route_rc(const char *body, size_t len, int kind, char *err)
{
	struct oai_route r;
	err[0] = 0;
	int rc = oai_route_info(body, len, kind, 400, &r, err, 256);
	if (rc == 0)
		oai_route_free(&r);
	return rc;
}

static void test_route_completions(void **state)
{
	(void)state;
	expect_route("{\"model\":\"m\",\"prompt\":\"hello world\",\"max_tokens\":3}", OAI_COMPLETIONS, 400, "m",
		     "hello world", 11);
	/* the key is found wherever "prompt" sits, and "model" may come last */
	expect_route("{ \"stream\" : true , \"prompt\" : \"p\" , \"model\" : \"m2\" }", OAI_COMPLETIONS, 400, "m2", "p",
		     1);
	/* a list of strings: prompt[0] (KubeAI's prompt0) */
	expect_route("{\"model\":\"m\",\"prompt\":[ \"first\" ]}", OAI_COMPLETIONS, 400, "m", "first", 5);
	/* a batch: both readers key it by its first prompt; token-id lists have no key */
	expect_route("{\"model\":\"m\",\"prompt\":[\"first\",\"second\"]}", OAI_COMPLETIONS, 400, "m", "first", 5);
	expect_route("{\"model\":\"m\",\"prompt\":[[1,2],[3]]}", OAI_COMPLETIONS, 400, "m", NULL, 0);
	/* token ids: no key */
	expect_route("{\"model\":\"m\",\"prompt\":[1,2,3]}", OAI_COMPLETIONS, 400, "m", NULL, 0);
	/* no model; a null model is no model */
	expect_route("{\"prompt\":\"x\"}", OAI_COMPLETIONS, 400, NULL, "x", 1);
	expect_route("{\"model\":null,\"prompt\":\"x\"}", OAI_COMPLETIONS, 400, NULL, "x", 1);
	/* an empty prompt is a key, the empty one */
	expect_route("{\"model\":\"m\",\"prompt\":\"\"}", OAI_COMPLETIONS, 400, "m", "", 0);
	/* "messages" means nothing to completions, "prompt" nothing to chat */
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"u\"}],\"prompt\":\"p\"}",
		     OAI_COMPLETIONS, 400, "m", "p", 1);
	/* escapes are decoded: \n \" \\ \/ \u00e9 and a surrogate pair */
	expect_route("{\"model\":\"m\",\"prompt\":\"a\\nb\\\"c\\\\d\\/e\\u00e9\\ud83d\\ude00!\"}", OAI_COMPLETIONS, 400,
		     "m", K("a\nb\"c\\d/e\xc3\xa9\xf0\x9f\x98\x80!"));
	/* the key is cut at key_bytes bytes (the router asks for 4 x 100 code points) */
	static char big[2000], want[400];
	memset(want, 'x', sizeof want);
	snprintf(big, sizeof big, "{\"model\":\"m\",\"prompt\":\"%.1000s\"}",
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	expect_route(big, OAI_COMPLETIONS, 400, "m", want, 400);
	/* ... in bytes, even inside a character (the router hashes whole code
	 * points of it: 4 bytes per code point are always enough) */
	expect_route("{\"model\":\"m\",\"prompt\":\"\\u00e9\\u00e9\\u00e9\"}", OAI_COMPLETIONS, 5, "m",
		     "\xc3\xa9\xc3\xa9\xc3", 5);
	expect_route("{\"model\":\"m\",\"prompt\":\"abc\"}", OAI_COMPLETIONS, 0, "m", "", 0);
}

static void test_route_chat(void **state)
{
	(void)state;
	/* the FIRST message whose role is "user": not system, not assistant, not a later user */
	const char *conv = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
			   "{\"role\":\"assistant\",\"content\":\"hello\"},{\"content\":\"first user\",\"role\":\"user\"},"
			   "{\"role\":\"user\",\"content\":\"second user\"}]}";
	expect_route(conv, OAI_CHAT, 400, "m", "first user", 10);
	struct oai_route r;
	char err[256];
	assert_int_equal(oai_route_info(conv, strlen(conv), OAI_CHAT, 400, &r, err, sizeof err), 0);
	assert_int_equal(r.n_messages, 4);
	oai_route_free(&r);
	/* no user message: no key */
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
		     "{\"role\":\"assistant\",\"content\":\"a\"}]}",
		     OAI_CHAT, 400, "m", NULL, 0);
	/* roles compare exactly, after decoding: "User" is not "user", "us\u0065r" is */
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"User\",\"content\":\"a\"},"
		     "{\"role\":\"us\\u0065r\",\"content\":\"b\"}]}",
		     OAI_CHAT, 400, "m", "b", 1);
	/* the first user message is the key even with no content or a null one
	 * (what KubeAI's Prefix returns for it: ""), never a later message */
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"},{\"role\":\"user\",\"content\":\"later\"}]}",
		     OAI_CHAT, 400, "m", "", 0);
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null},"
		     "{\"role\":\"user\",\"content\":\"later\"}]}",
		     OAI_CHAT, 400, "m", "", 0);
	/* content as parts: text parts only, joined with NOTHING (KubeAI's
	 * Prefix: s += part.Text); image parts carry no text */
	const char *parts = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\","
			    "\"content\":[{\"type\":\"text\",\"text\":\"Describe \"},{\"type\":\"image_url\","
			    "\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}},{\"text\":\"this\",\"type\":\"text\"},"
			    "{\"type\":\"text\",\"text\":\" picture\\n\"}]}]}";
	expect_route(parts, OAI_CHAT, 400, "m", "Describe this picture\n", 22);
	/* ... while the engine's rendering of the same message keeps vLLM's "\n" */
	struct oai_req q;
	assert_int_equal(oai_parse(parts, strlen(parts), 1, 100, &q, err, sizeof err), 0);
	assert_int_equal(q.n_msgs, 2);
	assert_int_equal(q.msgs[1].content_len, 24);
	assert_memory_equal(q.msgs[1].content, "Describe \nthis\n picture\n", 24);
	oai_req_free(&q);
	/* a member name written with escapes is the same name */
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"typ\\u0065\":\"text\","
		     "\"t\\u0065xt\":\"esc\"},{\"type\":\"text\",\"text\":\"aped\"}]}]}",
		     OAI_CHAT, 400, "m", "escaped", 7);
	/* escapes decoded in the key */
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
		     "\"content\":\"\\u00e9t\\u00e9 \\ud83d\\ude00\\t\\\"x\\\"\"}]}",
		     OAI_CHAT, 400, "m", K("\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\t\"x\""));
	/* cut at key_bytes, across parts: nothing between the parts, nothing past the limit */
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"abc\"},"
		     "{\"type\":\"text\",\"text\":\"def\"},{\"type\":\"text\",\"text\":\"ghi\"}]}]}",
		     OAI_CHAT, 4, "m", "abcd", 4);
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"abc\"},"
		     "{\"type\":\"text\",\"text\":\"def\"}]}]}",
		     OAI_CHAT, 3, "m", "abc", 3);
	/* an empty list of parts, or of messages */
	expect_route("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}", OAI_CHAT, 400, "m", "", 0);
	expect_route_only("{\"model\":\"m\",\"messages\":[]}", OAI_CHAT, 400, "m", NULL, 0); /* the engine's 400 */
	const char *three = "{\"messages\":[{},{},{\"role\":\"user\"}]}";
	assert_int_equal(oai_route_info(three, strlen(three), OAI_CHAT, 400, &r, err, sizeof err), 0);
	assert_int_equal(r.n_messages, 3);
	oai_route_free(&r);
}

static void test_route_rejects(void **state)
{
	(void)state;
	char err[256];
	/* duplicate keys the router reads; jansson (JSON_REJECT_DUPLICATES) agrees */
	const char *dups[] = {"{\"model\":\"a\",\"prompt\":\"x\",\"model\":\"b\"}", "{\"model\":\"a\",\"model\":null}",
			      "{\"prompt\":\"x\",\"prompt\":\"y\"}"};
	for (size_t i = 0; i < sizeof dups / sizeof *dups; i++) {
		assert_int_equal(route_rc(dups[i], strlen(dups[i]), OAI_COMPLETIONS, err), -1);
		assert_non_null(strstr(err, "duplicate key"));
		struct oai_req q;
		assert_int_equal(oai_parse(dups[i], strlen(dups[i]), 0, 100, &q, err, sizeof err), -1);
	}
	const char *dm = "{\"messages\":[],\"messages\":[]}";
	assert_int_equal(route_rc(dm, strlen(dm), OAI_CHAT, err), -1);
	assert_string_equal(err, "duplicate key 'messages'");
	/* invalid UTF-8, in the key or anywhere else */
	const char *u1 = "{\"model\":\"m\",\"prompt\":\"caf\xc3\"}";
	const char *u2 = "{\"model\":\"m\",\"prompt\":\"a\",\"x\":\"\xed\xa0\x80\"}"; /* a surrogate */
	assert_int_equal(route_rc(u1, strlen(u1), OAI_COMPLETIONS, err), -1);
	assert_string_equal(err, "request body is not valid UTF-8");
	assert_int_equal(route_rc(u2, strlen(u2), OAI_CHAT, err), -1);
	assert_string_equal(err, "request body is not valid UTF-8");
	/* not JSON, not an object, trailing bytes, bad model */
	const char *bad[] = {"", "[]", "{", "{\"model\":\"m\"", "{\"model\":\"m\"} x", "{\"model\":\"m\",}",
			     "{\"prompt\":\"x\\q\"}", "{\"model\":5,\"prompt\":\"x\"}",
			     "{\"model\":\"m\",\"prompt\":\"a\nb\"}"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_int_equal(route_rc(bad[i], strlen(bad[i]), OAI_COMPLETIONS, err), -1);
		assert_true(strlen(err) > 0);
	}
	assert_int_equal(route_rc("{\"model\":5}", 11, OAI_CHAT, err), -1);
	assert_string_equal(err, "'model' must be a string");
	/* OAI_OTHER (any other /v1/ POST) never fails: only the model is read, when there is one */
	const char *others[] = {"", "not json", "[1,2]", "{\"model\":\"a\",\"model\":\"b\"}", "{\"x\":\"\xff\"}",
				"{\"model\":5}",
				"{\"model\":\"m\",\"prompt\":\"p\",\"messages\":[{\"role\":\"user\",\"content\":\"u\"}]}"};
	for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
		struct oai_route r;
		assert_int_equal(oai_route_info(others[i], strlen(others[i]), OAI_OTHER, 400, &r, err, sizeof err), 0);
		assert_false(r.has_key);
		assert_int_equal(r.key.len, 0);
		assert_int_equal(r.model != NULL, i == 6);
		oai_route_free(&r);
	}
	expect_route_only("{\"input\":\"embed me\",\"model\":\"emb\"}", OAI_OTHER, 400, "emb", NULL, 0);
}

/* One error body for the engine and the router: OpenAI's nested shape. */
/* The whole prompt for the prefix index, from what oai_route_info saw in its
 * one pass: every message (content parts joined with "\n"), the completions
 * prompt (the first of a list), max_completion_tokens over max_tokens. */
static void whole(const char *body, int kind, int rc, struct oai_fullprompt *fp)
{
	struct oai_route r;
	char err[256];
	assert_int_equal(oai_route_info(body, strlen(body), kind, 400, &r, err, sizeof err), 0);
	assert_int_equal(oai_route_prompt(&r, kind, 1000, fp), rc);
	oai_route_free(&r);
}

static void test_route_whole_prompt(void **state)
{
	(void)state;
	struct oai_fullprompt fp;
	whole("{\"max_tokens\":7,\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
	      "{\"content\":[{\"type\":\"text\",\"text\":\"a\\\"b\"},{\"type\":\"text\",\"text\":\"c\"}],"
	      "\"role\":\"user\"}],\"model\":\"m\",\"max_completion_tokens\":9}",
	      OAI_CHAT, 0, &fp);
	assert_int_equal(fp.n_msgs, 2);
	assert_int_equal(fp.max_tokens, 9); /* max_completion_tokens wins, wherever it comes */
	assert_memory_equal(fp.msgs[0].role, "system", 6);
	assert_int_equal(fp.msgs[0].content_len, 8);
	assert_memory_equal(fp.msgs[0].content, "be brief", 8);
	assert_int_equal(fp.msgs[1].role_len, 4);
	assert_int_equal(fp.msgs[1].content_len, 5);
	assert_memory_equal(fp.msgs[1].content, "a\"b\nc", 5);
	oai_fullprompt_free(&fp);
	whole("{\"max_completion_tokens\":3,\"max_tokens\":7,\"messages\":[]}", OAI_CHAT, 0, &fp);
	assert_int_equal(fp.max_tokens, 3);
	assert_int_equal(fp.n_msgs, 0);
	oai_fullprompt_free(&fp);
	whole("{\"prompt\":[\"first\",\"second\"],\"max_tokens\":5}", OAI_COMPLETIONS, 0, &fp);
	assert_int_equal(fp.text_len, 5);
	assert_memory_equal(fp.text, "first", 5);
	assert_int_equal(fp.max_tokens, 5);
	oai_fullprompt_free(&fp);
	whole("{\"prompt\":[1,2,3]}", OAI_COMPLETIONS, -1, &fp); /* token ids: no text */
	assert_int_equal(fp.max_tokens, -1);
	oai_fullprompt_free(&fp);
	whole("{\"model\":\"m\"}", OAI_CHAT, -1, &fp);
	oai_fullprompt_free(&fp);
}

static void test_error_body(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 16);
	const char *ctype = NULL;
	oai_error_body(400, "bad \"x\"\n", &b, &ctype);
	assert_string_equal(ctype, "application/json");
	assert_string_equal(b.data, "{\"error\":{\"message\":\"bad \\\"x\\\"\\n\",\"type\":\"invalid_request_error\","
				    "\"param\":null,\"code\":400}}");
	json_error_t je;
	json_t *j = json_loadb(b.data, b.len, 0, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "bad \"x\"\n");
	json_decref(j);
	const struct {
		int status;
		const char *type;
	} cases[] = {{404, "invalid_request_error"}, {413, "invalid_request_error"}, {431, "invalid_request_error"},
		     {429, "rate_limit_error"},      {500, "server_error"},          {502, "server_error"},
		     {503, "server_error"},          {504, "timeout"}};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		buf_reset(&b);
		oai_error_body(cases[i].status, "m", &b, &ctype);
		char want[128];
		snprintf(want, sizeof want, "\"type\":\"%s\",\"param\":null,\"code\":%d}}", cases[i].type, cases[i].status);
		assert_non_null(strstr(b.data, want));
	}
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_completions), cmocka_unit_test(test_chat),
					   cmocka_unit_test(test_route_completions), cmocka_unit_test(test_route_chat),
					   cmocka_unit_test(test_route_rejects), cmocka_unit_test(test_route_whole_prompt),
					   cmocka_unit_test(test_error_body)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
