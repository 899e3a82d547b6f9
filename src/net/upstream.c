/* upstream.c: libcurl multi on libuv; see upstream.h.
 *
 * libcurl forbids removing an easy handle from inside its own callbacks, yet a
 * write to our client (inside curl's write callback) can fail and make the
 * router cancel this very request. So every entry into curl is bracketed by
 * u->in_curl; a cancel that arrives then only marks the request (its callbacks
 * return an error from then on) and queues it; the queue is drained as soon as
 * curl returns. Requests are freed in exactly two places: after on_done, and
 * when a cancel is carried out. */
#include "../core/mem.h"
#include "upstream.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

struct up_req {
	struct upstream *u;
	CURL *e;
	struct curl_slist *hdrs;
	struct up_callbacks cb;
	void *ctx;
	struct buf head; /* response header lines of the current response */
	int status;
	int head_done;
	int cancelled;
	char errbuf[CURL_ERROR_SIZE];
	struct up_req *next, *prev;     /* live list */
	struct up_req *next_cancel;     /* deferred cancels */
};

#define SPARE_HANDLES 1024

struct upstream {
	uv_loop_t *loop;
	CURLM *multi;
	CURL *spare[SPARE_HANDLES]; /* reset easy handles, reused: no re-allocation per request */
	size_t n_spare;
	uv_timer_t timer;
	struct up_req *reqs;
	struct up_req *cancels;
	size_t active;
	int in_curl;
	int closing;
};

struct sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct upstream *u;
};

static void check_done(struct upstream *u);

static void unlink_req(struct up_req *r)
{
	struct upstream *u = r->u;
	if (r->prev)
		r->prev->next = r->next;
	else
		u->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	u->active--;
}

static void destroy(struct up_req *r)
{
	struct upstream *u = r->u;
	curl_multi_remove_handle(u->multi, r->e);
	if (u->n_spare < SPARE_HANDLES && !u->closing) {
		curl_easy_reset(r->e);
		u->spare[u->n_spare++] = r->e;
	} else {
		curl_easy_cleanup(r->e);
	}
	curl_slist_free_all(r->hdrs);
	buf_free(&r->head);
	unlink_req(r);
	free(r);
}

/* Runs after every entry into curl: deferred cancels, then finished transfers. */
static void after_curl(struct upstream *u)
{
	while (u->cancels) {
		struct up_req *r = u->cancels;
		u->cancels = r->next_cancel;
		destroy(r);
	}
	check_done(u);
}

static void socket_action(struct upstream *u, curl_socket_t fd, int flags)
{
	int running;
	u->in_curl++;
	curl_multi_socket_action(u->multi, fd, flags, &running);
	u->in_curl--;
	if (!u->in_curl)
		after_curl(u);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct sock *s = p->data;
	int flags = 0;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	socket_action(s->u, s->fd, flags);
}

static void on_timeout(uv_timer_t *t)
{
	struct upstream *u = t->data;
	socket_action(u, CURL_SOCKET_TIMEOUT, 0);
}

static void free_sock(uv_handle_t *h)
{
	free(h->data);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)e;
	struct upstream *u = userp;
	struct sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			uv_poll_stop(&s->poll);
			uv_close((uv_handle_t *)&s->poll, free_sock);
			curl_multi_assign(u->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = plb_calloc(1, sizeof *s);
		if (!s)
			return -1;
		s->fd = fd;
		s->u = u;
		if (uv_poll_init_socket(u->loop, &s->poll, fd)) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		curl_multi_assign(u->multi, fd, s);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

static int on_timer(CURLM *m, long ms, void *userp)
{
	(void)m;
	struct upstream *u = userp;
	if (ms < 0)
		uv_timer_stop(&u->timer);
	else
		uv_timer_start(&u->timer, on_timeout, (uint64_t)ms, 0);
	return 0;
}

static enum up_error map_error(CURLcode c)
{
	switch (c) {
	case CURLE_OK: return UP_OK;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY: return UP_ECONNECT;
	case CURLE_OPERATION_TIMEDOUT: return UP_ETIMEOUT;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING: return UP_EPROTO;
	default: return UP_EOTHER;
	}
}

static void check_done(struct upstream *u)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(u->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct up_req *r = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		CURLcode res = msg->data.result;
		int was_cancelled = r->cancelled;
		r->cancelled = 1; /* from here on up_cancel(r) is a no-op */
		if (!was_cancelled && r->cb.on_done) {
			enum up_error err = map_error(res);
			if (res == CURLE_OK && !r->head_done)
				err = UP_EPROTO;
			if (!r->head_done &&
			    (res == CURLE_GOT_NOTHING || res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR))
				err = UP_ELOST; /* e.g. the backend died holding the request */
			r->cb.on_done(r->ctx, err, res == CURLE_OK ? "" : (r->errbuf[0] ? r->errbuf : curl_easy_strerror(res)));
		}
		if (was_cancelled) {
			/* cancelled while finishing: it may sit in the cancel queue */
			struct up_req **pp = &u->cancels;
			while (*pp && *pp != r)
				pp = &(*pp)->next_cancel;
			if (*pp)
				*pp = r->next_cancel;
		}
		destroy(r);
	}
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct up_req *r = ud;
	size_t len = size * n;
	if (r->cancelled)
		return 0;
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		buf_reset(&r->head);
		r->head_done = 0;
		const char *sp = memchr(p, ' ', len);
		r->status = sp && sp + 4 <= p + len ? atoi(sp + 1) : 0;
		return len;
	}
	if (len == 2 && p[0] == '\r' && p[1] == '\n') {
		if (r->status >= 200 && !r->head_done) {
			r->head_done = 1;
			if (r->cb.on_head &&
			    r->cb.on_head(r->ctx, r->status, r->head.data ? r->head.data : "", r->head.len))
				return 0;
		}
		return len;
	}
	if (buf_append(&r->head, p, len))
		return 0; /* headers too large: abort */
	return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
	struct up_req *r = ud;
	size_t len = size * n;
	if (r->cancelled)
		return 0;
	if (!r->cb.on_data)
		return len;
	int rc = r->cb.on_data(r->ctx, p, len);
	if (r->cancelled)
		return 0;
	return rc == UP_PAUSE ? CURL_WRITEFUNC_PAUSE : len;
}

struct upstream *upstream_new(uv_loop_t *loop, long max_connections)
{
	static int inited;
	if (!inited) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		inited = 1;
	}
	struct upstream *u = plb_calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->loop = loop;
	u->multi = curl_multi_init();
	if (!u->multi) {
		free(u);
		return NULL;
	}
	uv_timer_init(loop, &u->timer);
	u->timer.data = u;
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
	curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, max_connections > 0 ? max_connections : 10000L);
	return u;
}

static void free_after_timer(uv_handle_t *h)
{
	struct upstream *u = h->data;
	free(u);
}

void upstream_free(struct upstream *u)
{
	if (!u)
		return;
	while (u->cancels) {
		struct up_req *r = u->cancels;
		u->cancels = r->next_cancel;
		destroy(r);
	}
	u->closing = 1;
	while (u->reqs)
		destroy(u->reqs);
	while (u->n_spare)
		curl_easy_cleanup(u->spare[--u->n_spare]);
	curl_multi_cleanup(u->multi); /* closes pooled connections (CURL_POLL_REMOVE for each) */
	uv_timer_stop(&u->timer);
	uv_close((uv_handle_t *)&u->timer, free_after_timer);
}

struct up_req *up_start(struct upstream *u, const struct up_opts *o, const struct up_callbacks *cb, void *ctx)
{
	struct up_req *r = plb_calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->u = u;
	r->cb = *cb;
	r->ctx = ctx;
	buf_init(&r->head, 256 * 1024);
	r->e = u->n_spare ? u->spare[--u->n_spare] : curl_easy_init();
	if (!r->e) {
		free(r);
		return NULL;
	}
	CURL *e = r->e;
	curl_easy_setopt(e, CURLOPT_URL, o->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L); /* SSE events are ~300 bytes; 10k streams x 16 KiB would be 160 MB */
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000L);
	if (o->total_timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->total_timeout_ms);
	if (strcmp(o->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(o->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body ? o->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
		if (o->body_len) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
		}
	}
	/* no Expect: 100-continue round trip; no Accept header of curl's own */
	r->hdrs = curl_slist_append(r->hdrs, "Expect:");
	r->hdrs = curl_slist_append(r->hdrs, "Accept:");
	for (size_t i = 0; o->headers && o->headers[i]; i++)
		r->hdrs = curl_slist_append(r->hdrs, o->headers[i]);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	r->next = u->reqs;
	if (u->reqs)
		u->reqs->prev = r;
	u->reqs = r;
	u->active++;
	if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		curl_slist_free_all(r->hdrs);
		buf_free(&r->head);
		unlink_req(r);
		free(r);
		return NULL;
	}
	return r;
}

void up_cancel(struct up_req *r)
{
	if (!r || r->cancelled)
		return;
	r->cancelled = 1;
	r->ctx = NULL;
	struct upstream *u = r->u;
	if (u->in_curl) {
		r->next_cancel = u->cancels;
		u->cancels = r;
		return;
	}
	destroy(r);
}

void up_resume(struct up_req *r)
{
	if (!r || r->cancelled)
		return;
	struct upstream *u = r->u;
	u->in_curl++;
	curl_easy_pause(r->e, CURLPAUSE_CONT);
	u->in_curl--;
	if (!u->in_curl)
		after_curl(u);
}

size_t upstream_active(const struct upstream *u)
{
	return u->active;
}
