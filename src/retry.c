// SPDX-License-Identifier: MIT
#include "retry.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

void retry_policy_init(struct retry_policy *p, uint64_t max_elapsed_ms)
{
	p->initial_ms = RETRY_INITIAL_MS;
	p->max_wait_ms = RETRY_MAX_WAIT_MS;
	p->max_elapsed_ms = max_elapsed_ms;
}

void retry_state_start(struct retry_state *st, uint64_t now_ms)
{
	st->first_ms = now_ms;
	st->prev_wait_ms = 0;
	st->attempts = 1;
}

bool retry_http_status(long status)
{
	switch (status) {
	case 429: /* Too Many Requests */
	case 502: /* Bad Gateway */
	case 503: /* Service Unavailable */
	case 504: /* Gateway Timeout */
		return true;
	default:
		return false;
	}
}

bool retry_grpc_code(int code, bool has_retry_info)
{
	switch (code) {
	case 1:	 /* CANCELLED */
	case 4:	 /* DEADLINE_EXCEEDED */
	case 10: /* ABORTED */
	case 11: /* OUT_OF_RANGE */
	case 14: /* UNAVAILABLE */
	case 15: /* DATA_LOSS */
		return true;
	case 8: /* RESOURCE_EXHAUSTED: only when the server says when to come back */
		return has_retry_info;
	default:
		return false;
	}
}

/* gRPC's "HTTP to gRPC status code mapping" (doc/http-grpc-status-mapping.md). */
int retry_http_to_grpc(long status)
{
	switch (status) {
	case 400:
		return 13; /* INTERNAL */
	case 401:
		return 16; /* UNAUTHENTICATED */
	case 403:
		return 7; /* PERMISSION_DENIED */
	case 404:
		return 12; /* UNIMPLEMENTED */
	case 429:
	case 502:
	case 503:
	case 504:
		return 14; /* UNAVAILABLE */
	default:
		return 2; /* UNKNOWN */
	}
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A cursor over a bounded, not necessarily NUL-terminated string. */
struct cur {
	const char *p;
	const char *end;
};

static void skip_blanks(struct cur *c)
{
	while (c->p < c->end && is_blank(*c->p))
		c->p++;
}

static bool eat(struct cur *c, char ch)
{
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

/* 1 to @max digits; returns the number of digits read (0: none). */
static int read_num(struct cur *c, int max, long *out)
{
	long v = 0;
	int n = 0;

	while (c->p < c->end && is_digit(*c->p) && n < max) {
		v = v * 10 + (*c->p - '0');
		c->p++;
		n++;
	}
	*out = v;
	return n;
}

static int read_word(struct cur *c, char *out, size_t size)
{
	size_t n = 0;

	while (c->p < c->end && is_alpha(*c->p)) {
		if (n + 1 < size)
			out[n] = *c->p;
		n++;
		c->p++;
	}
	out[n < size ? n : size - 1] = '\0';
	return (int)n;
}

static int month_index(const char *w)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

	if (strlen(w) != 3)
		return -1;
	for (int i = 0; i < 12; i++)
		if (strcasecmp(w, months[i]) == 0)
			return i;
	return -1;
}

static bool read_time(struct cur *c, struct tm *tm)
{
	long h, m, s;

	if (read_num(c, 2, &h) != 2 || !eat(c, ':') || read_num(c, 2, &m) != 2 || !eat(c, ':') ||
	    read_num(c, 2, &s) != 2)
		return false;
	if (h > 23 || m > 59 || s > 60)
		return false;
	tm->tm_hour = (int)h;
	tm->tm_min = (int)m;
	tm->tm_sec = (int)s;
	return true;
}

static bool valid_mday(const struct tm *tm)
{
	static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return tm->tm_mday >= 1 && tm->tm_mday <= days[tm->tm_mon];
}

int retry_parse_http_date(const char *value, size_t len, time_t *out)
{
	if (!value || !len)
		return -EINVAL; /* and no arithmetic on a NULL pointer */
	struct cur c = {value, value + len};
	struct tm tm;
	char word[16];
	long day, year;
	int nd, mon;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	skip_blanks(&c);
	/* Every form starts with the day name; its value is redundant. */
	if (read_word(&c, word, sizeof(word)) < 3)
		return -EINVAL;
	if (eat(&c, ',')) {
		/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" or RFC 850 "Sunday, 06-Nov-94 ..." */
		char sep;

		skip_blanks(&c);
		if (read_num(&c, 2, &day) == 0 || c.p >= c.end)
			return -EINVAL;
		sep = *c.p;
		if (sep != ' ' && sep != '-')
			return -EINVAL;
		c.p++;
		read_word(&c, word, sizeof(word));
		mon = month_index(word);
		if (mon < 0 || !eat(&c, sep))
			return -EINVAL;
		nd = read_num(&c, 4, &year);
		if (nd == 2)
			year += year < 70 ? 2000 : 1900;
		else if (nd != 4)
			return -EINVAL;
		if (!eat(&c, ' ') || !read_time(&c, &tm) || !eat(&c, ' '))
			return -EINVAL;
		if (read_word(&c, word, sizeof(word)) != 3 || strcmp(word, "GMT") != 0)
			return -EINVAL;
	} else {
		/* asctime "Sun Nov  6 08:49:37 1994" */
		if (!eat(&c, ' '))
			return -EINVAL;
		read_word(&c, word, sizeof(word));
		mon = month_index(word);
		if (mon < 0 || !eat(&c, ' '))
			return -EINVAL;
		eat(&c, ' '); /* a one-digit day is padded with a space */
		if (read_num(&c, 2, &day) == 0 || !eat(&c, ' ') || !read_time(&c, &tm) ||
		    !eat(&c, ' ') || read_num(&c, 4, &year) != 4)
			return -EINVAL;
	}
	skip_blanks(&c);
	if (c.p != c.end)
		return -EINVAL;
	tm.tm_mday = (int)day;
	tm.tm_mon = mon;
	tm.tm_year = (int)(year - 1900);
	if (!valid_mday(&tm))
		return -EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*out = t;
	return 0;
}

/* Retry-After values larger than this (a day) are taken as this. */
#define RETRY_AFTER_MAX_S 86400

int retry_parse_retry_after(const char *value, size_t len, time_t now, uint64_t *ms)
{
	if (!value || !len)
		return -EINVAL; /* and no arithmetic on a NULL pointer */
	const char *p = value, *end = value + len;
	uint64_t secs = 0;
	time_t when;

	while (p < end && is_blank(*p))
		p++;
	while (end > p && (is_blank(end[-1]) || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (p == end)
		return -EINVAL;
	if (is_digit(*p)) {
		for (; p < end; p++) {
			if (!is_digit(*p))
				return -EINVAL;
			if (secs < RETRY_AFTER_MAX_S)
				secs = secs * 10 + (uint64_t)(*p - '0');
		}
		if (secs > RETRY_AFTER_MAX_S)
			secs = RETRY_AFTER_MAX_S;
		*ms = secs * 1000;
		return 0;
	}
	if (retry_parse_http_date(p, (size_t)(end - p), &when) < 0)
		return -EINVAL;
	if (when <= now) {
		*ms = 0;
		return 0;
	}
	secs = (uint64_t)(when - now);
	if (secs > RETRY_AFTER_MAX_S)
		secs = RETRY_AFTER_MAX_S;
	*ms = secs * 1000;
	return 0;
}

/* A minimal protobuf reader: enough to walk google.rpc.Status and find RetryInfo. */
struct pb {
	const uint8_t *p;
	const uint8_t *end;
};

static int pb_varint(struct pb *b, uint64_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		if (b->p >= b->end)
			return -EBADMSG;
		x |= (uint64_t)(*b->p & 0x7f) << shift;
		if (!(*b->p++ & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -EBADMSG;
}

/*
 * Next field: its number and wire type; for length-delimited fields, @sub covers the bytes;
 * other fields are skipped. Returns 1 for a field, 0 at the end, or -EBADMSG.
 */
static int pb_next(struct pb *b, uint32_t *field, struct pb *sub, uint64_t *varint)
{
	uint64_t key, n;

	if (b->p == b->end)
		return 0;
	if (pb_varint(b, &key) < 0)
		return -EBADMSG;
	*field = (uint32_t)(key >> 3);
	sub->p = sub->end = NULL;
	*varint = 0;
	switch (key & 7) {
	case 0:
		return pb_varint(b, varint) < 0 ? -EBADMSG : 1;
	case 1:
		if (b->end - b->p < 8)
			return -EBADMSG;
		b->p += 8;
		return 1;
	case 2:
		if (pb_varint(b, &n) < 0 || n > (uint64_t)(b->end - b->p))
			return -EBADMSG;
		sub->p = b->p;
		sub->end = b->p + n;
		b->p += n;
		return 1;
	case 5:
		if (b->end - b->p < 4)
			return -EBADMSG;
		b->p += 4;
		return 1;
	default:
		return -EBADMSG;
	}
}

#define RETRY_INFO_TYPE "google.rpc.RetryInfo"

/* google.rpc.RetryInfo{1 google.protobuf.Duration retry_delay{1 int64 seconds, 2 int32 nanos}} */
static int parse_retry_info(struct pb b, uint64_t *ms)
{
	struct pb sub, d;
	uint32_t f, g;
	uint64_t v, secs = 0, nanos = 0;
	int rc;

	while ((rc = pb_next(&b, &f, &sub, &v)) > 0) {
		if (f != 1 || !sub.p)
			continue;
		while ((rc = pb_next(&sub, &g, &d, &v)) > 0) {
			if (g == 1)
				secs = v;
			else if (g == 2)
				nanos = v;
		}
		if (rc < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	if ((int64_t)secs < 0 || (int64_t)nanos < 0)
		secs = nanos = 0;
	if (secs > RETRY_AFTER_MAX_S)
		secs = RETRY_AFTER_MAX_S;
	*ms = secs * 1000 + (nanos % 1000000000) / 1000000;
	return 0;
}

int retry_grpc_retry_info(const uint8_t *status, size_t len, uint64_t *ms)
{
	if (!status || !len)
		return -ENOENT; /* no RetryInfo in nothing, and no arithmetic on NULL */
	struct pb b = {status, status + len}, any, val, sub;
	uint32_t f, g;
	uint64_t v;
	int rc;

	while ((rc = pb_next(&b, &f, &any, &v)) > 0) {
		bool is_retry_info = false;

		if (f != 3 || !any.p) /* Status.details: repeated google.protobuf.Any */
			continue;
		val.p = val.end = NULL;
		while ((rc = pb_next(&any, &g, &sub, &v)) > 0) {
			size_t n = sizeof(RETRY_INFO_TYPE) - 1;

			if (g == 1 && sub.p && (size_t)(sub.end - sub.p) >= n &&
			    memcmp(sub.end - n, RETRY_INFO_TYPE, n) == 0 &&
			    (size_t)(sub.end - sub.p) > n && sub.end[-(long)n - 1] == '/')
				is_retry_info = true;
			else if (g == 2 && sub.p)
				val = sub;
		}
		if (rc < 0)
			return rc;
		if (!is_retry_info)
			continue;
		if (val.p)
			return parse_retry_info(val, ms);
		*ms = 0; /* RetryInfo without a delay: retry at once */
		return 0;
	}
	return rc < 0 ? rc : -ENOENT;
}

bool retry_next(const struct retry_policy *p, struct retry_state *st, uint64_t now_ms,
		int64_t hint_ms, uint64_t rnd, uint64_t *wait_ms)
{
	uint64_t elapsed = now_ms > st->first_ms ? now_ms - st->first_ms : 0;
	uint64_t remaining, wait;

	if (elapsed >= p->max_elapsed_ms)
		return false;
	remaining = p->max_elapsed_ms - elapsed;
	if (hint_ms >= 0) {
		wait = (uint64_t)hint_ms;
	} else {
		/* Decorrelated jitter: uniform in [initial, 3 * previous], capped. */
		uint64_t lo = p->initial_ms;
		uint64_t hi = st->prev_wait_ms * 3;

		if (hi > p->max_wait_ms)
			hi = p->max_wait_ms;
		if (hi < lo)
			hi = lo;
		wait = lo + rnd % (hi - lo + 1);
		if (wait > p->max_wait_ms)
			wait = p->max_wait_ms;
	}
	if (wait > remaining)
		wait = remaining;
	st->prev_wait_ms = wait > st->prev_wait_ms ? wait : st->prev_wait_ms;
	st->attempts++;
	*wait_ms = wait;
	return true;
}
