// SPDX-License-Identifier: MIT
/*
 * export_http: OTLP/HTTP (protobuf, JSON) and OTLP/gRPC over libcurl, driven by the loop
 * through export_curl; what goes on the wire and what the answer means is export_wire's.
 *
 * A batch occupies one slot from submit() until done(): while it is sent, and while it
 * waits to be retried, so max_inflight also bounds how many batches hammer a collector that
 * is down. A batch is encoded once; its retries resend the same bytes. Failures of the
 * transport itself (refused connections, timeouts, TLS) are judged here, with a hint for
 * what the user should fix when retrying cannot help.
 *
 * Header values are secrets: they go to curl and nowhere else (never logged, curl's
 * verbose mode never turned on).
 *
 * With --spool, a batch given up (retry budget spent, shutdown timeout) is written to the
 * spool (spool.h) as the bytes it was sent as, and so is what the pipeline spills (spill op:
 * the queue full, or still queued at the shutdown timeout). Spooled batches are sent again,
 * oldest first, one at a time, taking turns with live batches for a free slot, once the
 * collector answers: a live success, or a replay that works as a probe (at start, then
 * with a backoff while the collector stays down). A replay is not retried in its slot: on a
 * retryable failure its file stays and the probe waits.
 *
 * Memory: once encoded, a batch's spans are shed (queue_batch_shed): its retries need only
 * the bytes. While every slot is taken, the pipeline parks full batches here (park op): each
 * is encoded and kept as its compressed request body (park.h), and parked bodies take the
 * free slots, oldest first, before any newer batch. A parked batch is a live one (done()
 * counts it; given up, it is spooled like one); memory short (unpark op) or shutdown moves
 * parked bodies to the spool when there is one.
 */
#include "export_http.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <curl/curl.h>

#include "clock.h"
#include "endpoint.h"
#include "export_curl.h"
#include "export_wire.h"
#include "log.h"
#include "park.h"
#include "retry.h"
#include "spool.h"
#include "stats.h"
#include "text.h"

#ifndef CLN_OTLP_VERSION
#define CLN_OTLP_VERSION "0"
#endif

#define EXPORT_HTTP_MAX_INFLIGHT 64
#define PROBE_FIRST_MS		 1000 /* a replay failed: try again this much later, doubling */
#define PROBE_MAX_MS		 5000 /* up to this (the retry policy's cap) */
#define ERR_MSG_CAP		 256

enum slot_state {
	SLOT_FREE = 0,
	SLOT_SENDING, /* easy handle in the multi */
	SLOT_WAITING, /* waiting for its retry timer (or a deferred failure) */
};

struct http_slot {
	struct export_http *ex;
	CURL *easy;
	struct loop_timer *timer; /* retry backoff, or deferred failure */
	enum slot_state state;
	struct queue_batch *batch;
	int deferred; /* > 0: finish with this export_result when the timer fires */

	struct otlp_buf enc; /* the encoded ExportTraceServiceRequest */
	struct buf body;     /* gzip and/or gRPC framing of enc, when needed */
	const uint8_t *req;
	size_t req_len;

	struct retry_state retry;
	bool backoff; /* waiting on our own backoff (not a server's Retry-After hint) */
	uint64_t sent_ns;

	struct export_wire_answer answer; /* to the current attempt */
	const struct curl_slist *headers; /* the header list the easy handle was given */
	char errbuf[CURL_ERROR_SIZE];
	char last_error[2 * ERR_MSG_CAP]; /* why the last attempt failed, for the give-up message */

	/* A replay of a spool file (batch is NULL): its body is in body. */
	bool replay;
	bool replay_dup; /* the file was in flight when an earlier run gave it up */
	uint64_t replay_id;
	size_t replay_spans;
	size_t replay_rejected; /* refused in a partial success */
	bool was_sending;	/* given up by abort() while its request was out */
};

struct export_http {
	struct exporter base;
	struct loop *loop;
	const struct otlp_resource_cfg *res;
	enum config_protocol proto;
	bool gzip;
	bool grpc;
	bool tls;
	bool have_ca;
	bool have_client_cert;
	bool no_reuse;	     /* one connection per request (see check_curl) */
	bool signal_doubled; /* the URL's path holds /v1/traces/v1/traces (a base URL mistake) */
	char *url;
	char *display; /* scheme://host:port, for messages (no credentials, no query) */
	struct export_curl *curl;
	struct export_wire *wire;
	struct curl_slist *headers; /* for requests that start now */
	/* Lists replaced by a reload, freed once no request in flight uses them. */
	struct curl_slist *retired[EXPORT_HTTP_MAX_INFLIGHT + 1];
	size_t n_retired;
	unsigned max_inflight;
	unsigned n_active;
	struct http_slot *slots;
	struct retry_policy policy;
	bool aborting;
	bool closing;
	bool curl_ready;
	uint64_t rnd;
	struct spool *spool;	  /* --spool, or NULL */
	uint32_t spool_format;	  /* SPOOL_F_* of the bodies this run sends */
	struct loop_timer *probe; /* replay again after a failed one (or at start) */
	uint64_t probe_ms;	  /* the next wait after a failed replay */
	bool outage;		  /* a retryable failure and no success since */
	bool quiesced;		  /* shutdown: no more replays */
	unsigned n_replay;	  /* replays in flight (at most 1) */
	struct park *park;	  /* batches parked while every slot is taken */
	struct otlp_buf park_enc; /* encoding a batch to park, and opening a parked body */
	struct buf park_buf;
	struct log_ratelimit rl_transport, rl_refused, rl_partial, rl_expired, rl_internal;
	struct log_ratelimit rl_bad_count, rl_unconfirmed;
};

static const struct exporter_ops export_http_ops;
static const struct exporter_ops export_http_spool_ops;

/* ---- small helpers --------------------------------------------------------------------- */

static uint64_t next_rnd(struct export_http *ex)
{
	/* xorshift64*: jitter needs spread, not secrecy */
	ex->rnd ^= ex->rnd >> 12;
	ex->rnd ^= ex->rnd << 25;
	ex->rnd ^= ex->rnd >> 27;
	return ex->rnd * 2685821657736338717ULL;
}

/* The spans of the slot's batch, or of its spool file. */
static size_t slot_spans(const struct http_slot *slot)
{
	return slot->batch ? slot->batch->n : slot->replay_spans;
}

/* ---- per-request callbacks ------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct http_slot *slot = ctx;
	size_t n = size * nmemb;

	export_wire_body(&slot->answer, data, n);
	return n; /* read and drop anything past the cap */
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ctx)
{
	struct http_slot *slot = ctx;
	size_t len = size * nmemb;

	/* a new response (after a 100 Continue, say) forgets the previous one */
	if (export_wire_header(&slot->answer, line, len))
		slot->errbuf[0] = '\0';
	return len;
}

static void reset_answer(struct http_slot *slot)
{
	export_wire_answer_reset(&slot->answer);
	slot->errbuf[0] = '\0';
}

/* ---- finishing a batch ----------------------------------------------------------------- */

/*
 * A batch went through: the collector is back. Batches sleeping on our own backoff retry
 * now rather than up to a maximum wait later (a server's Retry-After is still honoured).
 */
static void slots_wake(struct export_http *ex)
{
	for (unsigned i = 0; i < ex->max_inflight; i++) {
		struct http_slot *s = &ex->slots[i];

		if (s->state == SLOT_WAITING && s->backoff && s->deferred == 0) {
			s->backoff = false;
			loop_timer_arm(s->timer, 0);
		}
	}
}

/* The slot is free again. */
static void slot_release(struct http_slot *slot)
{
	struct export_http *ex = slot->ex;

	if (slot->replay)
		ex->n_replay--;
	slot->batch = NULL;
	slot->replay = false;
	slot->was_sending = false;
	slot->state = SLOT_FREE;
	slot->deferred = 0;
	ex->n_active--;
}

/*
 * A live batch given up (@res) that the spool can keep: written as it was sent. Returns
 * EXPORT_SPOOLED, or @res when it was not kept (no spool, not encoded, the write failed).
 */
static enum export_result slot_spool(struct http_slot *slot, enum export_result res)
{
	struct export_http *ex = slot->ex;
	uint32_t flags = ex->spool_format | (slot->was_sending ? SPOOL_F_SENT : 0);
	size_t n = slot->batch->n;

	if (!ex->spool || slot->deferred ||
	    (res != EXPORT_FAIL_EXPIRED && res != EXPORT_FAIL_SHUTDOWN))
		return res;
	if (spool_put(ex->spool, slot->req, slot->req_len, (uint32_t)n, flags) < 0) {
		stats.spool_failed += n;
		return res;
	}
	log_debug("export: a batch of %zu spans spooled", n);
	return EXPORT_SPOOLED;
}

static void replay_pump(struct export_http *ex, bool probe);
static void park_pump(struct export_http *ex);

/* A replay ended: its file goes when it was delivered or refused for good, else stays. */
static void replay_finish(struct http_slot *slot, enum export_result res)
{
	struct export_http *ex = slot->ex;
	size_t n = slot->replay_spans;

	if (res == EXPORT_OK) {
		stats.replayed_spans += n - (slot->replay_rejected < n ? slot->replay_rejected : n);
		stats.replayed_batches++;
		if (slot->replay_dup)
			stats.spool_duplicates += n;
		spool_remove(ex->spool, slot->replay_id);
	} else if (res == EXPORT_FAIL_REJECTED) {
		stats.failed_batches++;
		stats.dropped[STATS_DROP_NOT_RETRYABLE] += n;
		spool_remove(ex->spool, slot->replay_id);
	} else if (slot->was_sending) {
		spool_mark_sent(ex->spool, slot->replay_id);
	}
	slot_release(slot);
	/* Live batches first to the slot a replay leaves, then the next replay. */
	park_pump(ex);
	if (ex->base.done && !ex->aborting)
		ex->base.done(ex->base.done_ctx, NULL, EXPORT_OK);
	replay_pump(ex, false);
}

static void slot_finish(struct http_slot *slot, enum export_result res)
{
	struct export_http *ex = slot->ex;
	struct queue_batch *batch = slot->batch;

	slot->backoff = false;
	if (res == EXPORT_OK) {
		ex->outage = false;
		ex->probe_ms = 0;
		slots_wake(ex);
	}
	if (slot->replay) {
		replay_finish(slot, res);
		return;
	}
	res = slot_spool(slot, res);
	if (res == EXPORT_FAIL_REJECTED || res == EXPORT_FAIL_EXPIRED)
		stats.failed_batches++;
	slot_release(slot);
	/* A replay first to the slot a live batch leaves: they take turns. */
	replay_pump(ex, false);
	park_pump(ex);
	if (ex->base.done)
		ex->base.done(ex->base.done_ctx, batch, res);
}

/* Finish from the loop's next turn, not from inside submit(). */
static void slot_defer(struct http_slot *slot, enum export_result res)
{
	slot->state = SLOT_WAITING;
	slot->deferred = (int)res;
	if (loop_timer_arm(slot->timer, 0) < 0)
		slot->deferred = -1; /* cannot happen with a valid timerfd; abort() still ends it */
}

static int slot_send(struct http_slot *slot);
static void replay_failed(struct http_slot *slot);

static void slot_retry_or_expire(struct http_slot *slot, int64_t hint_ms)
{
	struct export_http *ex = slot->ex;
	uint64_t now = clock_mono_ms(), wait;

	ex->outage = true;
	if (slot->replay) {
		replay_failed(slot);
		return;
	}
	if (retry_next(&ex->policy, &slot->retry, now, hint_ms, next_rnd(ex), &wait)) {
		stats.retries++;
		log_limited(&ex->rl_transport, LOG_LVL_WARN,
			    "export to %s failed: %s; retrying in %.1f s", ex->display,
			    slot->last_error, (double)wait / 1000.0);
		log_debug("export: batch of %zu spans, attempt %u in %llu ms", slot_spans(slot),
			  slot->retry.attempts, (unsigned long long)wait);
		slot->state = SLOT_WAITING;
		/* on our own backoff unless the server asked for longer */
		slot->backoff = hint_ms < 0 || wait > (uint64_t)hint_ms;
		if (loop_timer_arm(slot->timer, wait) == 0)
			return;
		/* without a timer, retry now rather than lose the batch */
		if (slot_send(slot) == 0)
			return;
	}
	log_limited(
		&ex->rl_expired, LOG_LVL_ERROR,
		"export to %s: giving up on a batch of %zu spans after %u attempts in %.1f s: %s",
		ex->display, slot_spans(slot), slot->retry.attempts,
		(double)(now - slot->retry.first_ms) / 1000.0, slot->last_error);
	slot_finish(slot, EXPORT_FAIL_EXPIRED);
}

static void slot_refused(struct http_slot *slot, const char *what)
{
	struct export_http *ex = slot->ex;

	log_limited(&ex->rl_refused, LOG_LVL_ERROR,
		    "export to %s: collector refused a batch of %zu spans: %s (not retried)",
		    ex->display, slot_spans(slot), what);
	slot_finish(slot, EXPORT_FAIL_REJECTED);
}

/*
 * A success: count and log what the collector rejected (export_wire clamped it to the batch),
 * or what it said.
 */
static void count_partial(struct http_slot *slot, const struct export_wire_verdict *v)
{
	struct export_http *ex = slot->ex;
	const char *msg = v->message;

	if (v->bad_count) {
		stats.partial_bad_count++;
		log_limited(&ex->rl_bad_count, LOG_LVL_WARN,
			    "export to %s: the collector claims it rejected %lld spans of a batch "
			    "of %zu; counted as %lld",
			    ex->display, (long long)v->claimed, slot_spans(slot),
			    (long long)v->rejected);
	}
	if (v->rejected <= 0) {
		if (msg[0])
			log_limited(&ex->rl_partial, LOG_LVL_WARN,
				    "export to %s: collector says: %s", ex->display, msg);
		return;
	}
	stats.partial_rejected += (uint64_t)v->rejected;
	if (slot->batch)
		slot->batch->rejected = (size_t)v->rejected;
	slot->replay_rejected = (size_t)v->rejected;
	log_limited(&ex->rl_partial, LOG_LVL_WARN,
		    "export to %s: collector rejected %lld of %zu spans%s%s", ex->display,
		    (long long)v->rejected, slot_spans(slot), msg[0] ? ": " : "", msg);
}

/*
 * A success whose answer is no OTLP answer: the spans may or may not have reached a
 * collector. Not retried (that could deliver them twice); counted apart, not as exported.
 */
static void count_unconfirmed(struct http_slot *slot, const char *what)
{
	struct export_http *ex = slot->ex;

	stats.unconfirmed += slot_spans(slot);
	if (slot->batch)
		slot->batch->rejected = slot->batch->n; /* none of them counts as exported */
	slot->replay_rejected = slot_spans(slot);
	log_limited(&ex->rl_unconfirmed, LOG_LVL_WARN,
		    "export to %s: %s; a batch of %zu spans counted as unconfirmed, not exported",
		    ex->display, what, slot_spans(slot));
}

static bool curl_code_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_AGAIN:
		return true;
	default:
		return false;
	}
}

/*
 * The server refused our client certificate (or its absence): a TLS alert that OpenSSL
 * reports as a read or handshake error. Retrying cannot help.
 */
static bool client_cert_refused(const char *errbuf)
{
	return strstr(errbuf, "alert certificate required") ||
	       strstr(errbuf, "alert bad certificate") || strstr(errbuf, "alert unknown ca") ||
	       strstr(errbuf, "alert certificate unknown");
}

/*
 * Why a transfer failed, from curl's code and words: into @why, and *@fix says what the user
 * should do when retrying cannot help ("" otherwise). True when it is worth retrying.
 */
static bool transport_reason(const struct export_http *ex, CURLcode rc, const char *errbuf,
			     char *why, size_t why_size, const char **fix)
{
	*fix = "";
	text_printf(why, why_size, "%s%s%s", curl_easy_strerror(rc), errbuf[0] ? ": " : "", errbuf);
	if (ex->tls && client_cert_refused(errbuf)) {
		text_printf(why, why_size, "the collector refused the TLS client certificate (%s)",
			    errbuf);
		*fix = ex->have_client_cert
			       ? "check that --client-cert is signed by a CA the collector trusts"
			       : "it wants one: give --client-cert and --client-key "
				 "(OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, _CLIENT_KEY)";
		return false;
	}
	/*
	 * OTLP/HTTP to a gRPC port: the HTTP/2 server's binary frames read as an HTTP/0.9
	 * answer. Retrying cannot help.
	 */
	if (!ex->grpc && strstr(errbuf, "HTTP/0.9")) {
		*fix = "this looks like a gRPC endpoint (port 4317?): use --protocol grpc or the "
		       "HTTP port 4318";
		return false;
	}
	/*
	 * gRPC in cleartext to an HTTP/1.1-only port: the server cannot read the HTTP/2
	 * preface and hangs up, or answers in HTTP/1. A collector going down looks the same
	 * (so it is retried), hence a question.
	 */
	if (ex->grpc && !ex->tls &&
	    (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
	     rc == CURLE_HTTP2 || strstr(errbuf, "HTTP/0.9") || strstr(errbuf, "HTTP/1."))) {
		text_printf(why + strlen(why), why_size - strlen(why),
			    " (is this an OTLP/HTTP port, 4318? then use --protocol http/protobuf "
			    "or the gRPC port 4317)");
		return curl_code_retryable(rc);
	}
	if (curl_code_retryable(rc))
		return true;
	if (rc == CURLE_PEER_FAILED_VERIFICATION) {
		text_printf(why, why_size, "the collector's TLS certificate is not trusted (%s)",
			    errbuf);
		*fix = ex->have_ca ? "check that --ca-cert (OTEL_EXPORTER_OTLP_CERTIFICATE) holds "
				     "the CA that signed it, and that the endpoint's host name is "
				     "in it"
				   : "if a private CA signed it, give that CA with --ca-cert "
				     "(OTEL_EXPORTER_OTLP_CERTIFICATE)";
	} else if (rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM) {
		*fix = "check the --ca-cert, --client-cert and --client-key files";
	}
	return false;
}

static void transport_failed(struct http_slot *slot, CURLcode rc)
{
	struct export_http *ex = slot->ex;
	char why[ERR_MSG_CAP];
	const char *fix;

	if (transport_reason(ex, rc, slot->errbuf, why, sizeof(why), &fix)) {
		text_printf(slot->last_error, sizeof(slot->last_error), "%s", why);
		slot_retry_or_expire(slot, -1);
		return;
	}
	text_printf(slot->last_error, sizeof(slot->last_error), "%s%s%s", why,
		    fix[0] ? (rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ? "; "
											    : ": ")
			   : "",
		    fix);
	log_limited(&ex->rl_refused, LOG_LVL_ERROR,
		    "export to %s failed: %s (not retried; %zu spans dropped)", ex->display,
		    slot->last_error, slot_spans(slot));
	slot_finish(slot, EXPORT_FAIL_REJECTED);
}

#define DOUBLED_FIX                                                                              \
	"the URL's path holds /v1/traces/v1/traces: the endpoint given as a base URL "           \
	"(--endpoint, OTEL_EXPORTER_OTLP_ENDPOINT) already ended in /v1/traces, and the signal " \
	"path is appended to it: drop that suffix, or give the full URL in "                     \
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"

/* The collector answered: act on export_wire's verdict (@status: the HTTP one). */
static void slot_answered(struct http_slot *slot, const struct export_wire_verdict *v, long status)
{
	char why[2 * ERR_MSG_CAP];

	switch (v->outcome) {
	case EXPORT_WIRE_SUCCESS:
		count_partial(slot, v);
		slot_finish(slot, EXPORT_OK);
		break;
	case EXPORT_WIRE_UNCONFIRMED:
		count_unconfirmed(slot, v->message);
		slot_finish(slot, EXPORT_OK);
		break;
	case EXPORT_WIRE_RETRY:
		text_printf(slot->last_error, sizeof(slot->last_error), "%s", v->message);
		slot_retry_or_expire(slot, v->hint_ms);
		break;
	default:
		if (status == 404 && slot->ex->signal_doubled) {
			text_printf(why, sizeof(why), "%s; %s", v->message, DOUBLED_FIX);
			slot_refused(slot, why);
			break;
		}
		slot_refused(slot, v->message);
		break;
	}
}

static void slot_completed(struct http_slot *slot, CURLcode rc)
{
	struct export_http *ex = slot->ex;
	uint64_t us = (clock_mono_ns() - slot->sent_ns) / 1000;
	long status = 0, version = 0;
	struct export_wire_verdict v;

	slot->state = SLOT_WAITING;
	if (rc != CURLE_OK) {
		log_debug("export: batch of %zu spans: %s after %llu ms", slot_spans(slot),
			  curl_easy_strerror(rc), (unsigned long long)(us / 1000));
		transport_failed(slot, rc);
		return;
	}
	curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(slot->easy, CURLINFO_HTTP_VERSION, &version);
	stats.batches_sent++;
	stats.export_latency_us_sum += us;
	if (us > stats.export_latency_us_max)
		stats.export_latency_us_max = us;
	log_debug("export: batch of %zu spans: HTTP %ld in %llu ms (attempt %u)", slot_spans(slot),
		  status, (unsigned long long)(us / 1000), slot->retry.attempts);
	export_wire_verdict(&slot->answer, ex->grpc, status, version == CURL_HTTP_VERSION_2_0,
			    slot_spans(slot), (int64_t)(clock_real_ns() / 1000000000), &v);
	slot_answered(slot, &v, status);
}

static void headers_gc(struct export_http *ex);

/* export_curl: a transfer finished. */
static void on_transfer_done(void *ctx, CURL *easy, CURLcode rc)
{
	struct http_slot *slot = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&slot);
	if (slot && slot->state == SLOT_SENDING)
		slot_completed(slot, rc);
	if (slot && slot->ex->n_retired)
		headers_gc(slot->ex);
}

/* ---- sending --------------------------------------------------------------------------- */

static int slot_send(struct http_slot *slot)
{
	struct export_http *ex = slot->ex;
	const char *why = "";

	reset_answer(slot);
	if (slot->headers != ex->headers) { /* reloaded since this handle's last request */
		curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, ex->headers);
		slot->headers = ex->headers;
	}
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)slot->req_len);
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, (const char *)slot->req);
	slot->sent_ns = clock_mono_ns();
	if (export_curl_add(ex->curl, slot->easy, &why) < 0) {
		snprintf(slot->last_error, sizeof(slot->last_error), "%s", why);
		return -EIO;
	}
	slot->state = SLOT_SENDING;
	return 0;
}

static void on_slot_timer(struct loop *loop, void *ctx)
{
	struct http_slot *slot = ctx;

	if (slot->state != SLOT_WAITING)
		return;
	if (slot->deferred > 0) {
		slot_finish(slot, (enum export_result)slot->deferred);
		return;
	}
	if (slot_send(slot) < 0)
		slot_retry_or_expire(slot, -1);
}

/* Encode @b once, then frame/compress it as the protocol wants: the request in *@req. */
static int batch_encode(struct export_http *ex, const struct queue_batch *b, struct otlp_buf *enc,
			struct buf *body, const uint8_t **req, size_t *req_len)
{
	int err;

	if (!b->spans)
		return -EINVAL; /* shed: cannot happen, a shed batch is never encoded again */
	if (ex->proto == CONFIG_PROTO_HTTP_JSON)
		err = otlp_encode_json(ex->res, b->spans, b->n, enc);
	else
		err = otlp_encode_pb(ex->res, b->spans, b->n, enc);
	if (err < 0)
		return err;
	return export_wire_request(ex->wire, &enc->bytes, body, req, req_len);
}

static int slot_encode(struct export_http *ex, struct http_slot *slot)
{
	return batch_encode(ex, slot->batch, &slot->enc, &slot->body, &slot->req, &slot->req_len);
}

static int eh_submit(struct exporter *base, struct queue_batch *batch)
{
	struct export_http *ex = (struct export_http *)base;
	struct http_slot *slot = NULL;
	int err;

	if (ex->aborting || ex->closing || ex->n_active >= ex->max_inflight)
		return -EBUSY;
	for (unsigned i = 0; i < ex->max_inflight; i++) {
		if (ex->slots[i].state == SLOT_FREE) {
			slot = &ex->slots[i];
			break;
		}
	}
	if (!slot)
		return -EBUSY;
	ex->n_active++;
	slot->batch = batch;
	slot->deferred = 0;
	retry_state_start(&slot->retry, clock_mono_ms());
	err = slot_encode(ex, slot);
	if (err < 0) {
		log_limited(&ex->rl_internal, LOG_LVL_ERROR,
			    "export: cannot encode a batch of %zu spans: %s", batch->n,
			    strerror(-err));
		slot_defer(slot, EXPORT_FAIL_ENCODE);
		return 0;
	}
	/* Retries resend these bytes: the spans are not needed any more. */
	queue_batch_shed(batch, slot->req_len);
	if (slot_send(slot) < 0) {
		slot->state = SLOT_WAITING;
		slot_retry_or_expire(slot, -1);
	}
	return 0;
}

/* ---- the spool ------------------------------------------------------------------------- */

/* A free slot, or NULL. */
static struct http_slot *slot_free(struct export_http *ex)
{
	for (unsigned i = 0; i < ex->max_inflight; i++)
		if (ex->slots[i].state == SLOT_FREE)
			return &ex->slots[i];
	return NULL;
}

/* The oldest spool file this run can send into @slot's body: 0, or -ENOENT when none. */
static int replay_load(struct export_http *ex, struct http_slot *slot, struct spool_hdr *h)
{
	int rc;

	while ((rc = spool_read_oldest(ex->spool, &slot->body, &slot->replay_id, h)) == 0) {
		if ((h->flags & SPOOL_F_FORMAT) == ex->spool_format)
			return 0;
		spool_reject(ex->spool, slot->replay_id,
			     "written for another --protocol or --compression");
	}
	if (rc != -ENOENT)
		log_limited(&ex->rl_internal, LOG_LVL_ERROR, "export: cannot read the spool: %s",
			    strerror(-rc));
	return rc;
}

/*
 * Send the oldest spool file if the collector is believed up (or as a probe), a slot is
 * free, no other replay is out, and shutdown has not begun.
 */
static void replay_pump(struct export_http *ex, bool probe)
{
	struct http_slot *slot;
	struct spool_hdr h;

	if (!ex->spool || ex->quiesced || ex->aborting || ex->closing || ex->n_replay ||
	    (ex->outage && !probe) || !spool_files(ex->spool) || !(slot = slot_free(ex)))
		return;
	if (replay_load(ex, slot, &h) < 0) {
		if (spool_files(ex->spool))
			replay_failed(NULL);
		return;
	}
	ex->n_active++;
	ex->n_replay++;
	slot->replay = true;
	slot->replay_dup = h.flags & SPOOL_F_SENT;
	slot->replay_spans = h.n_spans;
	slot->replay_rejected = 0;
	slot->deferred = 0;
	slot->req = slot->body.data;
	slot->req_len = slot->body.len;
	retry_state_start(&slot->retry, clock_mono_ms());
	log_debug("export: replaying a spooled batch of %u spans", h.n_spans);
	if (slot_send(slot) < 0) {
		slot->state = SLOT_WAITING;
		slot_retry_or_expire(slot, -1);
	}
}

/* A replay (@slot, or none: the spool could not be read) failed: try again later. */
static void replay_failed(struct http_slot *slot)
{
	struct export_http *ex = slot ? slot->ex : NULL;

	if (slot) {
		log_limited(&ex->rl_transport, LOG_LVL_WARN,
			    "export to %s failed: %s; %zu spooled batches wait", ex->display,
			    slot->last_error, spool_files(ex->spool));
		slot_release(slot);
		park_pump(ex);
	}
	ex->probe_ms = ex->probe_ms ? ex->probe_ms * 2 : PROBE_FIRST_MS;
	if (ex->probe_ms > PROBE_MAX_MS)
		ex->probe_ms = PROBE_MAX_MS;
	if (!ex->quiesced)
		loop_timer_arm(ex->probe, ex->probe_ms);
}

static void on_probe(struct loop *loop, void *ctx)
{
	replay_pump(ctx, true);
}

/* The pipeline's spill op: encode @batch and keep it in the spool, unsent. */
static int eh_spill(struct exporter *base, struct queue_batch *batch)
{
	struct export_http *ex = (struct export_http *)base;
	struct http_slot tmp;
	int rc;

	if (!ex->spool)
		return -ENOTSUP;
	/* the encoder and framing buffers of a slot of its own, freed at once */
	memset(&tmp, 0, sizeof(tmp));
	otlp_buf_init(&tmp.enc);
	buf_init(&tmp.body, OTLP_BUF_MAX);
	tmp.batch = batch;
	rc = slot_encode(ex, &tmp);
	if (rc == 0)
		rc = spool_put(ex->spool, tmp.req, tmp.req_len, (uint32_t)batch->n,
			       ex->spool_format);
	if (rc < 0)
		stats.spool_failed += batch->n;
	otlp_buf_release(&tmp.enc);
	buf_free(&tmp.body);
	return rc;
}

/* ---- batches parked in memory ---------------------------------------------------------- */

/*
 * Parked batches into the free slots, oldest first, each sent as a live batch (retried in its
 * slot, the collector up or not: a live batch is the probe). Not while aborting or closing.
 */
static void park_pump(struct export_http *ex)
{
	struct http_slot *slot;
	struct park_body *b;
	int err;

	while (ex->park && !ex->aborting && !ex->closing && park_oldest(ex->park) &&
	       (slot = slot_free(ex))) {
		b = park_take(ex->park);
		ex->n_active++;
		slot->batch = b->owner;
		slot->deferred = 0;
		retry_state_start(&slot->retry, clock_mono_ms());
		err = park_open(b, &slot->body);
		free(b);
		if (err < 0) {
			log_limited(&ex->rl_internal, LOG_LVL_ERROR,
				    "export: cannot open a parked batch of %zu spans: %s",
				    slot->batch->n, strerror(-err));
			slot_defer(slot, EXPORT_FAIL_ENCODE);
			continue;
		}
		slot->req = slot->body.data;
		slot->req_len = slot->body.len;
		if (slot_send(slot) < 0) {
			slot->state = SLOT_WAITING;
			slot_retry_or_expire(slot, -1);
		}
	}
	/* The backlog is gone: so is the room it took to encode and open it. */
	if (ex->park && !park_bodies(ex->park) && (ex->park_buf.cap || ex->park_enc.bytes.cap)) {
		otlp_buf_release(&ex->park_enc);
		buf_free(&ex->park_buf);
	}
}

/* The pipeline's park op: keep @batch as its compressed request body, its spans freed. */
static int eh_park(struct exporter *base, struct queue_batch *batch)
{
	struct export_http *ex = (struct export_http *)base;
	struct park_body *b;
	const uint8_t *req;
	size_t len;
	int rc;

	if (!ex->park || ex->aborting || ex->closing)
		return -EBUSY;
	rc = batch_encode(ex, batch, &ex->park_enc, &ex->park_buf, &req, &len);
	if (rc < 0) {
		log_limited(&ex->rl_internal, LOG_LVL_ERROR,
			    "export: cannot encode a batch of %zu spans: %s", batch->n,
			    strerror(-rc));
		return rc;
	}
	/* gzip on the wire: the body is compressed as it is; else deflated, inflated to send. */
	b = park_seal(req, len, (uint32_t)batch->n, !ex->gzip);
	if (!b)
		return -ENOMEM;
	b->owner = batch;
	rc = park_put(ex->park, b);
	if (rc < 0) {
		free(b);
		return rc;
	}
	queue_batch_shed(batch, park_cost(b) + sizeof(*batch));
	log_debug("export: a batch of %zu spans parked in %zu bytes", batch->n, b->len);
	return 0;
}

/* Parked body @b into the spool, as the request it stands for. 0, or a negative errno. */
static int park_spool(struct export_http *ex, const struct park_body *b)
{
	int rc = park_open(b, &ex->park_buf);

	if (rc == 0)
		rc = spool_put(ex->spool, ex->park_buf.data, ex->park_buf.len, b->n_spans,
			       ex->spool_format);
	return rc;
}

/* The pipeline's unpark op: memory is short, the oldest parked batch goes to the spool. */
static int eh_unpark(struct exporter *base)
{
	struct export_http *ex = (struct export_http *)base;
	struct park_body *b = ex->park ? park_oldest(ex->park) : NULL;
	struct queue_batch *batch;

	if (!b || !ex->spool || park_spool(ex, b) < 0)
		return -ENOENT;
	park_take(ex->park);
	batch = b->owner;
	free(b);
	log_debug("export: a parked batch of %zu spans spooled", batch->n);
	if (ex->base.done)
		ex->base.done(ex->base.done_ctx, batch, EXPORT_SPOOLED);
	return 0;
}

/* Shutdown gave up: parked batches to the spool if there is one, else dropped (by done()). */
static void park_abort(struct export_http *ex)
{
	struct park_body *b;

	while (ex->park && (b = park_take(ex->park))) {
		struct queue_batch *batch = b->owner;
		enum export_result res = EXPORT_FAIL_SHUTDOWN;

		if (ex->spool) {
			if (park_spool(ex, b) == 0)
				res = EXPORT_SPOOLED;
			else
				stats.spool_failed += b->n_spans;
		}
		free(b);
		if (ex->base.done)
			ex->base.done(ex->base.done_ctx, batch, res);
	}
}

static void eh_quiesce(struct exporter *base)
{
	struct export_http *ex = (struct export_http *)base;

	ex->quiesced = true;
	if (ex->probe)
		loop_timer_disarm(ex->probe);
}

static bool eh_busy(const struct exporter *base)
{
	const struct export_http *ex = (const struct export_http *)base;

	return ex->aborting || ex->closing || ex->n_active >= ex->max_inflight ||
	       (ex->park && park_bodies(ex->park));
}

static unsigned eh_pending(const struct exporter *base)
{
	const struct export_http *ex = (const struct export_http *)base;

	return ex->n_active + (ex->park ? (unsigned)park_bodies(ex->park) : 0);
}

static void eh_abort(struct exporter *base)
{
	struct export_http *ex = (struct export_http *)base;

	ex->aborting = true;
	if (ex->probe)
		loop_timer_disarm(ex->probe);
	for (unsigned i = 0; i < ex->max_inflight; i++) {
		struct http_slot *slot = &ex->slots[i];

		if (slot->state == SLOT_FREE)
			continue;
		slot->was_sending = slot->state == SLOT_SENDING;
		if (slot->state == SLOT_SENDING)
			export_curl_remove(ex->curl, slot->easy);
		loop_timer_disarm(slot->timer);
		slot_finish(slot, EXPORT_FAIL_SHUTDOWN);
	}
	park_abort(ex);
	ex->aborting = false;
}

static void eh_free(struct exporter *base)
{
	struct export_http *ex = (struct export_http *)base;

	if (!ex)
		return;
	if (ex->slots && (ex->n_active || (ex->park && park_bodies(ex->park))))
		eh_abort(base);
	ex->closing = true;
	if (ex->slots) {
		for (unsigned i = 0; i < ex->max_inflight; i++) {
			struct http_slot *slot = &ex->slots[i];

			if (slot->easy)
				curl_easy_cleanup(slot->easy);
			loop_timer__free(slot->timer);
			otlp_buf_release(&slot->enc);
			buf_free(&slot->body);
			export_wire_answer_release(&slot->answer);
		}
	}
	if (spool_files(ex->spool))
		log_info("spool: %zu batches (%llu bytes) wait in the spool for the next run",
			 spool_files(ex->spool), (unsigned long long)spool_bytes(ex->spool));
	spool__free(ex->spool);
	park__free(ex->park);
	otlp_buf_release(&ex->park_enc);
	buf_free(&ex->park_buf);
	loop_timer__free(ex->probe);
	export_curl__free(ex->curl);
	curl_slist_free_all(ex->headers);
	for (size_t i = 0; i < ex->n_retired; i++)
		curl_slist_free_all(ex->retired[i]);
	export_wire__free(ex->wire);
	free(ex->slots);
	free(ex->url);
	free(ex->display);
	if (ex->curl_ready)
		curl_global_cleanup();
	free(ex);
}

static int eh_reload(struct exporter *base, const struct config *cfg, char *err, size_t err_size);

static const struct exporter_ops export_http_ops = {
	.submit = eh_submit,
	.busy = eh_busy,
	.pending = eh_pending,
	.abort = eh_abort,
	.free = eh_free,
	.reload = eh_reload,
	.park = eh_park,
};

/* With --spool: the same, and what the pipeline cannot hold goes to the spool. */
static const struct exporter_ops export_http_spool_ops = {
	.submit = eh_submit,
	.busy = eh_busy,
	.pending = eh_pending,
	.abort = eh_abort,
	.free = eh_free,
	.reload = eh_reload,
	.spill = eh_spill,
	.park = eh_park,
	.unpark = eh_unpark,
	.quiesce = eh_quiesce,
};

/* ---- construction ---------------------------------------------------------------------- */

static int check_readable(const char *path, const char *what, const char *how, char *err,
			  size_t err_size)
{
	FILE *f;

	if (!path)
		return 0;
	f = fopen(path, "r");
	if (!f) {
		int e = errno;

		snprintf(err, err_size, "cannot read the %s %s: %s; %s", what, path, strerror(e),
			 how);
		return -e;
	}
	fclose(f);
	return 0;
}

static int add_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);

	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

static bool header_token_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f || *s == ':')
			return false;
	return true;
}

static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n' || *s == '\0')
			return false;
	return true;
}

/*
 * One request may take OTEL_EXPORTER_OTLP_TIMEOUT (--timeout), and no longer than the
 * batch processor's OTEL_BSP_EXPORT_TIMEOUT (--export-timeout) allows an export.
 */
static uint64_t request_timeout_ms(const struct config *cfg)
{
	uint64_t t = cfg->timeout_ms ? cfg->timeout_ms : 10000;

	if (cfg->export_timeout_ms && cfg->export_timeout_ms < t)
		t = cfg->export_timeout_ms;
	return t;
}

/*
 * How long a batch may be retried: --retry-max-elapsed, and no longer than the whole export
 * may take, retries included (OTEL_BSP_EXPORT_TIMEOUT, --export-timeout).
 */
static uint64_t retry_budget_ms(const struct config *cfg)
{
	uint64_t t = cfg->retry_max_elapsed_ms;

	if (cfg->export_timeout_ms && cfg->export_timeout_ms < t)
		t = cfg->export_timeout_ms;
	return t;
}

static int build_headers(struct export_http *ex, const struct config *cfg, char *err,
			 size_t err_size)
{
	char line[1024];
	int rc = 0;

	if (ex->grpc) {
		uint64_t t = request_timeout_ms(cfg);

		rc |= add_header(&ex->headers, "content-type: application/grpc");
		rc |= add_header(&ex->headers, "te: trailers");
		/* at most 8 digits */
		if (t <= 99999999)
			snprintf(line, sizeof(line), "grpc-timeout: %llum", (unsigned long long)t);
		else
			snprintf(line, sizeof(line), "grpc-timeout: %lluS",
				 (unsigned long long)(t / 1000 > 99999999 ? 99999999 : t / 1000));
		rc |= add_header(&ex->headers, line);
		if (ex->gzip)
			rc |= add_header(&ex->headers, "grpc-encoding: gzip");
		rc |= add_header(&ex->headers, "grpc-accept-encoding: gzip");
	} else {
		rc |= add_header(&ex->headers, ex->proto == CONFIG_PROTO_HTTP_JSON
						       ? "Content-Type: application/json"
						       : "Content-Type: application/x-protobuf");
		if (ex->gzip)
			rc |= add_header(&ex->headers, "Content-Encoding: gzip");
	}
	rc |= add_header(&ex->headers, "Expect:"); /* no 100-continue round trip */
	rc |= add_header(&ex->headers, "Accept:");
	for (size_t i = 0; i < cfg->n_headers; i++) {
		const struct config_kv *h = &cfg->headers[i];
		int n;

		if (!h->key || !header_token_ok(h->key)) {
			snprintf(err, err_size,
				 "invalid header name \"%s\": use letters, digits and '-' "
				 "(OTEL_EXPORTER_OTLP_HEADERS=name=value,...)",
				 h->key ? h->key : "");
			return -EINVAL;
		}
		if (h->value && !header_value_ok(h->value)) {
			snprintf(err, err_size,
				 "header %s: its value contains a line break; remove it", h->key);
			return -EINVAL;
		}
		/* "Name;" is curl's way to send a header with an empty value */
		if (h->value && h->value[0])
			n = snprintf(line, sizeof(line), "%s: %s", h->key, h->value);
		else
			n = snprintf(line, sizeof(line), "%s;", h->key);
		if (n < 0 || (size_t)n >= sizeof(line)) {
			explicit_bzero(line, sizeof(line));
			snprintf(err, err_size,
				 "header %.64s: its name and value are too long (at most %zu bytes "
				 "together)",
				 h->key, sizeof(line) - 3);
			return -EINVAL;
		}
		rc |= add_header(&ex->headers, line);
		explicit_bzero(line, sizeof(line));
		log_debug("export: sending header %s", h->key);
	}
	if (rc) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* ---- reloading the headers (SIGHUP) ---------------------------------------------------- */

/* Free the replaced lists that no request in flight uses any more. */
static void headers_gc(struct export_http *ex)
{
	size_t kept = 0;

	for (size_t i = 0; i < ex->n_retired; i++) {
		bool used = false;

		for (unsigned k = 0; k < ex->max_inflight && !used; k++)
			used = ex->slots[k].state == SLOT_SENDING &&
			       ex->slots[k].headers == ex->retired[i];
		if (used)
			ex->retired[kept++] = ex->retired[i];
		else
			curl_slist_free_all(ex->retired[i]);
	}
	ex->n_retired = kept;
}

/*
 * New headers for the requests that start from now on. A request in flight keeps the list it
 * was given (curl reads it while sending), so the old list is retired, not freed: at most
 * one list per request in flight stays retired, so there is always room for one more.
 */
static int eh_reload(struct exporter *base, const struct config *cfg, char *err, size_t err_size)
{
	struct export_http *ex = (struct export_http *)base;
	struct curl_slist *old = ex->headers;
	int ret;

	headers_gc(ex);
	if (ex->n_retired == sizeof(ex->retired) / sizeof(ex->retired[0])) {
		snprintf(err, err_size, "internal error: no room to retire the old headers");
		return -ENOSPC;
	}
	ex->headers = NULL;
	ret = build_headers(ex, cfg, err, err_size);
	if (ret < 0) {
		curl_slist_free_all(ex->headers);
		ex->headers = old;
		return ret;
	}
	ex->retired[ex->n_retired++] = old;
	headers_gc(ex);
	return 0;
}

static int setup_easy(struct export_http *ex, const struct config *cfg, struct http_slot *slot)
{
	CURL *e = curl_easy_init();
	CURLcode rc = CURLE_OK;
	uint64_t timeout = request_timeout_ms(cfg);

	if (!e)
		return -ENOMEM;
	slot->easy = e;
#define SET(opt, val)                                       \
	do {                                                \
		if (rc == CURLE_OK)                         \
			rc = curl_easy_setopt(e, opt, val); \
	} while (0)
	SET(CURLOPT_URL, ex->url);
	SET(CURLOPT_PRIVATE, (char *)slot);
	SET(CURLOPT_POST, 1L);
	SET(CURLOPT_HTTPHEADER, ex->headers);
	slot->headers = ex->headers;
	SET(CURLOPT_USERAGENT, "cln-otlp/" CLN_OTLP_VERSION);
	SET(CURLOPT_ERRORBUFFER, slot->errbuf);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, slot);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, slot);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, (long)(timeout > LONG_MAX ? LONG_MAX : timeout));
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_TCP_NODELAY, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	if (ex->grpc) {
		SET(CURLOPT_HTTP_VERSION, ex->tls ? (long)CURL_HTTP_VERSION_2TLS
						  : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
		if (ex->no_reuse) {
			SET(CURLOPT_FRESH_CONNECT, 1L);
			SET(CURLOPT_FORBID_REUSE, 1L);
		} else {
			SET(CURLOPT_PIPEWAIT, 1L);
		}
	} else {
		SET(CURLOPT_HTTP_VERSION,
		    ex->tls ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
		if (ex->tls)
			SET(CURLOPT_PIPEWAIT, 1L);
		SET(CURLOPT_ACCEPT_ENCODING, ""); /* curl inflates compressed answers */
	}
	if (ex->tls) {
		/* Only --tls-skip-verify turns checks off: --insecure never does. */
		SET(CURLOPT_SSL_VERIFYPEER, cfg->tls_skip_verify ? 0L : 1L);
		SET(CURLOPT_SSL_VERIFYHOST, cfg->tls_skip_verify ? 0L : 2L);
		if (cfg->ca_cert)
			SET(CURLOPT_CAINFO, cfg->ca_cert);
		if (cfg->client_cert)
			SET(CURLOPT_SSLCERT, cfg->client_cert);
		if (cfg->client_key)
			SET(CURLOPT_SSLKEY, cfg->client_key);
	}
#undef SET
	return rc == CURLE_OK ? 0 : -EINVAL;
}

/*
 * What this libcurl can do: HTTP/2 for gRPC, TLS for https. libcurl before 8.0 breaks a
 * cleartext HTTP/2 (prior knowledge) connection when a second request reuses it ("Error in
 * the HTTP2 framing layer", curl issue 10634): there, each gRPC request gets a connection of
 * its own; TLS (ALPN) is not affected.
 */
static int check_curl(struct export_http *ex, char *err, size_t err_size)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

	if (ex->grpc && !(cv->features & CURL_VERSION_HTTP2)) {
		snprintf(
			err, err_size,
			"this libcurl (%s) has no HTTP/2, which OTLP/gRPC needs: install a libcurl "
			"built with nghttp2, or use --protocol http/protobuf",
			cv->version);
		return -ENOTSUP;
	}
	if (ex->grpc && !ex->tls && cv->version_num < 0x080000) {
		ex->no_reuse = true;
		log_debug("export: libcurl %s: one connection per gRPC request over cleartext",
			  cv->version);
	}
	if (ex->tls && !(cv->features & CURL_VERSION_SSL)) {
		snprintf(err, err_size,
			 "this libcurl (%s) has no TLS: install one built with TLS, or use http://",
			 cv->version);
		return -ENOTSUP;
	}
	return 0;
}

/* The CA and client certificate files, read before the first batch needs them. */
static int check_tls(struct export_http *ex, const struct config *cfg, char *err, size_t err_size)
{
	int rc;

	if (cfg->insecure && (!ex->grpc || strstr(cfg->endpoint, "://")))
		log_info("export: --insecure (OTEL_EXPORTER_OTLP_INSECURE) only applies to a grpc "
			 "endpoint given as host:port; %s is used as its scheme says%s",
			 ex->display,
			 ex->tls ? " (certificates verified; --tls-skip-verify turns that off)"
				 : "");
	if (!ex->tls) {
		if (cfg->ca_cert || cfg->client_cert || cfg->client_key)
			log_warn("export: endpoint %s is plain http: the CA and client "
				 "certificates are not used (write https:// to use TLS)",
				 ex->display);
		return 0;
	}
	if ((rc = check_readable(cfg->ca_cert, "CA certificate file",
				 "fix --ca-cert (OTEL_EXPORTER_OTLP_CERTIFICATE)", err, err_size)) <
		    0 ||
	    (rc = check_readable(cfg->client_cert, "client certificate file",
				 "fix --client-cert (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)", err,
				 err_size)) < 0 ||
	    (rc = check_readable(cfg->client_key, "client key file",
				 "fix --client-key (OTEL_EXPORTER_OTLP_CLIENT_KEY)", err,
				 err_size)) < 0)
		return rc;
	if (cfg->client_key && !cfg->client_cert) {
		snprintf(err, err_size,
			 "a client key without a client certificate: give --client-cert "
			 "too (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)");
		return -EINVAL;
	}
	if (cfg->tls_skip_verify)
		log_warn("export: WARNING: TLS certificate verification is OFF "
			 "(--tls-skip-verify): anyone on the path to %s can read and alter the "
			 "spans, and the header values (API keys) sent with them",
			 ex->display);
	return 0;
}

/* The connections, and a slot (an easy handle, a retry timer, buffers) per request. */
static int setup_slots(struct export_http *ex, const struct config *cfg, char *err, size_t err_size)
{
	ex->curl =
		export_curl__new(ex->loop, ex->max_inflight, !ex->no_reuse, on_transfer_done, ex);
	ex->slots = calloc(ex->max_inflight, sizeof(*ex->slots));
	if (!ex->curl || !ex->slots) {
		snprintf(err, err_size, "out of memory (or out of file descriptors)");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < ex->max_inflight; i++) {
		struct http_slot *slot = &ex->slots[i];

		slot->ex = ex;
		otlp_buf_init(&slot->enc);
		buf_init(&slot->body, OTLP_BUF_MAX);
		export_wire_answer_init(&slot->answer);
		slot->timer = loop_timer__new(ex->loop, on_slot_timer, slot);
		if (!slot->timer || setup_easy(ex, cfg, slot) < 0) {
			snprintf(err, err_size,
				 "cannot set up a request (out of memory, or a "
				 "libcurl without a needed option)");
			return -ENOMEM;
		}
	}
	return 0;
}

/* Room to park batches while every slot is taken: the queue's own bounds (they count it). */
static int setup_park(struct export_http *ex, const struct config *cfg, char *err, size_t err_size)
{
	struct park_cfg pc = {.max_bodies = cfg->max_queue_spans,
			      .max_bytes = cfg->max_queue_bytes};

	ex->park = park__new(&pc);
	if (!ex->park) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* --spool: open it (before the privilege drop), and replay what it holds from the start. */
static int setup_spool(struct export_http *ex, const struct config *cfg, char *err, size_t err_size)
{
	struct spool_cfg sc = {.dir = cfg->spool_dir, .max_bytes = cfg->spool_bytes};

	ex->spool = spool__open(&sc, err, err_size);
	if (!ex->spool)
		return -EINVAL;
	ex->probe = loop_timer__new(ex->loop, on_probe, ex);
	if (!ex->probe) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	ex->spool_format = (ex->gzip ? SPOOL_F_GZIP : 0) | (ex->grpc ? SPOOL_F_GRPC : 0) |
			   (ex->proto == CONFIG_PROTO_HTTP_JSON ? SPOOL_F_JSON : 0);
	ex->base.ops = &export_http_spool_ops;
	if (spool_files(ex->spool))
		loop_timer_arm(ex->probe, 0);
	return 0;
}

int export_http_spool_check(struct exporter *base, char *err, size_t err_size)
{
	struct export_http *ex = (struct export_http *)base;

	if (base->ops != &export_http_spool_ops)
		return 0;
	return spool_check_access(ex->spool, err, err_size);
}

/* The exporter's settings from @cfg, before anything that can fail. */
static struct export_http *eh_alloc(struct loop *loop, const struct config *cfg,
				    const struct otlp_resource_cfg *res)
{
	struct export_http *ex = calloc(1, sizeof(*ex));

	if (!ex)
		return NULL;
	ex->base.ops = &export_http_ops;
	ex->base.name = cfg->protocol == CONFIG_PROTO_GRPC	  ? "otlp/grpc"
			: cfg->protocol == CONFIG_PROTO_HTTP_JSON ? "otlp/http-json"
								  : "otlp/http-protobuf";
	ex->loop = loop;
	ex->res = res;
	ex->proto = cfg->protocol;
	ex->grpc = cfg->protocol == CONFIG_PROTO_GRPC;
	ex->gzip = cfg->gzip;
	ex->have_ca = cfg->ca_cert != NULL;
	ex->have_client_cert = cfg->client_cert != NULL;
	ex->max_inflight = cfg->max_inflight ? cfg->max_inflight : 1;
	if (ex->max_inflight > EXPORT_HTTP_MAX_INFLIGHT)
		ex->max_inflight = EXPORT_HTTP_MAX_INFLIGHT;
	retry_policy_init(&ex->policy, retry_budget_ms(cfg));
	if (getrandom(&ex->rnd, sizeof(ex->rnd), GRND_NONBLOCK) != sizeof(ex->rnd))
		ex->rnd = clock_real_ns() ^ ((uint64_t)getpid() << 32);
	ex->rnd |= 1;
	otlp_buf_init(&ex->park_enc);
	buf_init(&ex->park_buf, OTLP_BUF_MAX);
	return ex;
}

/* Everything but the request slots: libcurl, the URL, the TLS files, framing, headers. */
static int eh_prepare(struct export_http *ex, const struct config *cfg, char *err, size_t err_size)
{
	struct endpoint_url where;
	int rc;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, err_size, "cannot initialise libcurl");
		return -EIO;
	}
	ex->curl_ready = true;
	rc = endpoint_url_parse(cfg->endpoint, ex->grpc, cfg->endpoint_append, cfg->insecure,
				&where, err, err_size);
	if (rc < 0)
		return rc;
	ex->url = where.url; /* taken */
	ex->display = where.display;
	ex->tls = where.tls;
	ex->signal_doubled = where.signal_doubled;
	if (where.path_ignored)
		log_warn("export: the path of the gRPC endpoint %s is ignored: gRPC requests go "
			 "to %s on the host and port",
			 ex->display, ENDPOINT_GRPC_PATH);
	rc = check_curl(ex, err, err_size);
	if (rc == 0)
		rc = check_tls(ex, cfg, err, err_size);
	if (rc < 0)
		return rc;
	ex->wire = export_wire__new(ex->grpc, ex->gzip);
	if (!ex->wire) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	return build_headers(ex, cfg, err, err_size);
}

struct exporter *export_http__new(struct loop *loop, const struct config *cfg,
				  const struct otlp_resource_cfg *res, char *err, size_t err_size)
{
	struct export_http *ex;
	int rc = 0;

	err[0] = '\0';
	ex = eh_alloc(loop, cfg, res);
	if (!ex) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	rc = eh_prepare(ex, cfg, err, err_size);
	if (rc == 0)
		rc = setup_slots(ex, cfg, err, err_size);
	if (rc == 0)
		rc = setup_park(ex, cfg, err, err_size);
	if (rc == 0 && cfg->spool_dir)
		rc = setup_spool(ex, cfg, err, err_size);
	if (rc < 0)
		goto cleanup;
	log_debug("export: %s to %s, %u request(s) at a time, %s", ex->base.name, ex->display,
		  ex->max_inflight, ex->gzip ? "gzip" : "uncompressed");
cleanup:
	if (rc < 0) {
		eh_free(&ex->base);
		return NULL;
	}
	return &ex->base;
}

/* ---- --check: one empty request, waited for --------------------------------------------- */

/* What to do about an answer that is not a success. */
static const char *check_answer_fix(const struct export_http *ex, long status, int grpc_status)
{
	if (status == 401 || status == 403 || grpc_status == 16 || grpc_status == 7)
		return "check the credentials sent with --header / --header-file "
		       "(OTEL_EXPORTER_OTLP_HEADERS)";
	if (status == 404 && ex->signal_doubled)
		return DOUBLED_FIX;
	if (status == 404 || status == 405 || grpc_status == 12)
		return ex->grpc ? "check --endpoint: it must be the collector's OTLP/gRPC port"
				: "check --endpoint: OTLP/HTTP wants the collector's base URL "
				  "(.../v1/traces is appended) or the full traces URL in "
				  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
	if (status == 429 || status == 502 || status == 503 || status == 504 || grpc_status == 14)
		return "the collector (or a proxy before it) is not ready or overloaded: look at "
		       "its logs and try again";
	if (status == 415 || status == 400)
		return "check --protocol: does the collector take this protocol on this port?";
	return "look at the collector's logs";
}

/* The answer to the check's request: 0 for an accepted one, else -EPROTO. */
static int check_answered(struct export_http *ex, struct http_slot *slot, char *msg,
			  size_t msg_size)
{
	struct export_wire_verdict v;
	long status = 0, version = 0;

	curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(slot->easy, CURLINFO_HTTP_VERSION, &version);
	export_wire_verdict(&slot->answer, ex->grpc, status, version == CURL_HTTP_VERSION_2_0, 0,
			    (int64_t)(clock_real_ns() / 1000000000), &v);
	if (v.outcome == EXPORT_WIRE_SUCCESS) {
		text_printf(msg, msg_size, "%s answered an empty %s export: %s", ex->display,
			    ex->base.name, ex->grpc ? "gRPC OK" : "HTTP 2xx");
		return 0;
	}
	if (v.outcome == EXPORT_WIRE_UNCONFIRMED)
		text_printf(msg, msg_size,
			    "%s: %s — is --endpoint an OTLP collector (not a web server or a "
			    "proxy's page)?",
			    ex->display, v.message);
	else
		text_printf(msg, msg_size, "%s: %s — %s", ex->display, v.message,
			    check_answer_fix(ex, status, slot->answer.grpc_status));
	return -EPROTO;
}

/* Send the empty request on @slot's handle and wait for the answer. */
static int check_send(struct export_http *ex, struct http_slot *slot, char *msg, size_t msg_size)
{
	const char *fix;
	char why[ERR_MSG_CAP];
	CURLcode rc;
	int err;

	if (ex->proto == CONFIG_PROTO_HTTP_JSON)
		err = otlp_encode_json(ex->res, NULL, 0, &slot->enc);
	else
		err = otlp_encode_pb(ex->res, NULL, 0, &slot->enc);
	if (err == 0)
		err = export_wire_request(ex->wire, &slot->enc.bytes, &slot->body, &slot->req,
					  &slot->req_len);
	if (err < 0) {
		text_printf(msg, msg_size, "cannot build the request: %s", strerror(-err));
		return err;
	}
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)slot->req_len);
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, (const char *)slot->req);
	rc = curl_easy_perform(slot->easy);
	if (rc == CURLE_OK)
		return check_answered(ex, slot, msg, msg_size);
	if (transport_reason(ex, rc, slot->errbuf, why, sizeof(why), &fix))
		fix = rc == CURLE_COULDNT_CONNECT ? "is the collector running and listening there? "
						    "check --endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)"
		      : rc == CURLE_OPERATION_TIMEDOUT ? "no answer in time: check the collector, "
							 "or raise --timeout"
		      : rc == CURLE_COULDNT_RESOLVE_HOST ? "check the host name in --endpoint"
							 : "check the collector and the network "
							   "path to it";
	text_printf(msg, msg_size, "%s: %s%s%s", ex->display, why, fix[0] ? " — " : "", fix);
	return -EIO;
}

int export_http_check(const struct config *cfg, char *msg, size_t msg_size)
{
	static const struct otlp_resource_cfg none;
	struct export_http *ex = eh_alloc(NULL, cfg, &none);
	struct http_slot *slot = NULL;
	int rc;

	msg[0] = '\0';
	if (!ex) {
		text_printf(msg, msg_size, "out of memory");
		return -ENOMEM;
	}
	ex->max_inflight = 1;
	rc = eh_prepare(ex, cfg, msg, msg_size);
	if (rc < 0)
		goto cleanup;
	ex->slots = calloc(1, sizeof(*ex->slots));
	rc = ex->slots ? 0 : -ENOMEM;
	if (rc == 0) {
		slot = &ex->slots[0];
		slot->ex = ex;
		otlp_buf_init(&slot->enc);
		buf_init(&slot->body, OTLP_BUF_MAX);
		export_wire_answer_init(&slot->answer);
		rc = setup_easy(ex, cfg, slot);
	}
	if (rc < 0) {
		text_printf(msg, msg_size, "cannot set up a request (out of memory)");
		goto cleanup;
	}
	rc = check_send(ex, slot, msg, msg_size);
cleanup:
	eh_free(&ex->base);
	return rc;
}
