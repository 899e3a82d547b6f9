/* test_openai.c: request parsing and the routing key (src/proto/openai.c). */
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
	assert_int_equal(n, 3);
	assert_memory_equal(k, "a\nb", 3); /* the FIRST user message, parts joined */
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

/* One error body for the engine and the router: OpenAI's nested shape. */
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
					   cmocka_unit_test(test_error_body)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
