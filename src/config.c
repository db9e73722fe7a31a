// SPDX-License-Identifier: MIT
/*
 * config: command line and OTEL_* environment, validated into one struct.
 *
 * config_load() works in three passes so that a flag always wins and a flag can fix a bad
 * environment variable: (1) getopt_long() stores flag values and remembers which settings
 * the command line fixed; (2) each environment variable is read (TRACES_ variant first)
 * only for the settings no flag fixed; (3) lists are merged (flag headers and resource
 * attributes over the environment's), the endpoint URL is built and cross-field rules are
 * checked. Every string in struct config is a copy owned by it.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text.h"

#define CONFIG_PROG "cln-otlp"

#define CONFIG_KIB 1024ULL
#define CONFIG_MIB (1024ULL * 1024)
#define CONFIG_GIB (1024ULL * 1024 * 1024)

/* Defaults (documented in config_usage()). */
#define CONFIG_DEF_RINGBUF	  (16 * CONFIG_MIB)
#define CONFIG_DEF_TIMEOUT_MS	  10000
#define CONFIG_DEF_MAX_INFLIGHT	  4
#define CONFIG_DEF_RETRY_MAX_MS	  300000
#define CONFIG_DEF_QUEUE_SPANS	  65536 /* spec: 2048, too few for CLN's start-up burst */
#define CONFIG_DEF_QUEUE_BYTES	  (64 * CONFIG_MIB)
#define CONFIG_DEF_BATCH_SIZE	  512
#define CONFIG_DEF_SCHEDULE_MS	  5000
#define CONFIG_DEF_EXPORT_TIMEOUT 30000
#define CONFIG_DEF_SHUTDOWN_MS	  5000
#define CONFIG_DEF_STATS_S	  60
#define CONFIG_DEF_SUSPEND_TTL_MS 600000
#define CONFIG_DEF_ENDPOINT_HTTP  "http://localhost:4318"
#define CONFIG_DEF_ENDPOINT_GRPC  "http://localhost:4317"

/* Bounds. Milliseconds fit an int: poll/epoll and timerfd callers take them as int. */
#define CONFIG_MS_MAX	       ((uint64_t)INT_MAX)
#define CONFIG_S_MAX	       ((uint64_t)INT_MAX / 1000)
#define CONFIG_RINGBUF_MIN     4096ULL
#define CONFIG_RINGBUF_MAX     CONFIG_GIB
#define CONFIG_INFLIGHT_MAX    64
#define CONFIG_QUEUE_SPANS_MAX (16ULL * 1024 * 1024)
#define CONFIG_QUEUE_BYTES_MIN (64 * CONFIG_KIB)
#define CONFIG_QUEUE_BYTES_MAX (16 * CONFIG_GIB)
#define CONFIG_PID_MAX	       4194304ULL /* PID_MAX_LIMIT on 64-bit Linux */
#define CONFIG_SUN_PATH_MAX    107	  /* sizeof(sockaddr_un.sun_path) - 1 */
#define CONFIG_SHOWN_MAX       64	  /* characters of a bad value quoted back */

enum config_opt {
	OPT_FILE = 256,
	OPT_FOLLOW,
	OPT_SOCKET,
	OPT_LIGHTNINGD,
	OPT_NO_PLUGINS,
	OPT_ALL_PROBES,
	OPT_PID,
	OPT_RINGBUF_SIZE,
	OPT_EXPORTER,
	OPT_ENDPOINT,
	OPT_PROTOCOL,
	OPT_HEADER,
	OPT_COMPRESSION,
	OPT_TIMEOUT,
	OPT_CA_CERT,
	OPT_CLIENT_CERT,
	OPT_CLIENT_KEY,
	OPT_INSECURE,
	OPT_MAX_INFLIGHT,
	OPT_RETRY_MAX_ELAPSED,
	OPT_QUEUE_SIZE,
	OPT_QUEUE_BYTES,
	OPT_BATCH_SIZE,
	OPT_BATCH_DELAY,
	OPT_EXPORT_TIMEOUT,
	OPT_SHUTDOWN_TIMEOUT,
	OPT_SERVICE_NAME,
	OPT_RESOURCE_ATTR,
	OPT_STATS_INTERVAL,
	OPT_METRICS_LISTEN,
	OPT_USER,
	OPT_RPC_FILE,
	OPT_SUSPEND_TTL,
	OPT_END,
};

#define OPT_COUNT (OPT_END - OPT_FILE)

static const struct option config_longopts[] = {
	{"file", required_argument, NULL, OPT_FILE},
	{"follow", no_argument, NULL, OPT_FOLLOW},
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"lightningd", required_argument, NULL, OPT_LIGHTNINGD},
	{"no-plugins", no_argument, NULL, OPT_NO_PLUGINS},
	{"all-probes", no_argument, NULL, OPT_ALL_PROBES},
	{"pid", required_argument, NULL, OPT_PID},
	{"ringbuf-size", required_argument, NULL, OPT_RINGBUF_SIZE},
	{"exporter", required_argument, NULL, OPT_EXPORTER},
	{"endpoint", required_argument, NULL, OPT_ENDPOINT},
	{"protocol", required_argument, NULL, OPT_PROTOCOL},
	{"header", required_argument, NULL, OPT_HEADER},
	{"compression", required_argument, NULL, OPT_COMPRESSION},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"ca-cert", required_argument, NULL, OPT_CA_CERT},
	{"client-cert", required_argument, NULL, OPT_CLIENT_CERT},
	{"client-key", required_argument, NULL, OPT_CLIENT_KEY},
	{"insecure", no_argument, NULL, OPT_INSECURE},
	{"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
	{"retry-max-elapsed", required_argument, NULL, OPT_RETRY_MAX_ELAPSED},
	{"queue-size", required_argument, NULL, OPT_QUEUE_SIZE},
	{"queue-bytes", required_argument, NULL, OPT_QUEUE_BYTES},
	{"batch-size", required_argument, NULL, OPT_BATCH_SIZE},
	{"batch-delay", required_argument, NULL, OPT_BATCH_DELAY},
	{"export-timeout", required_argument, NULL, OPT_EXPORT_TIMEOUT},
	{"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT},
	{"service-name", required_argument, NULL, OPT_SERVICE_NAME},
	{"resource-attr", required_argument, NULL, OPT_RESOURCE_ATTR},
	{"verbose", no_argument, NULL, 'v'},
	{"quiet", no_argument, NULL, 'q'},
	{"stats-interval", required_argument, NULL, OPT_STATS_INTERVAL},
	{"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
	{"user", required_argument, NULL, OPT_USER},
	{"rpc-file", required_argument, NULL, OPT_RPC_FILE},
	{"suspend-ttl", required_argument, NULL, OPT_SUSPEND_TTL},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* What config_load() collects beyond the struct itself; freed before it returns. */
struct config_pending {
	bool seen[OPT_COUNT]; /* setting fixed by a flag */
	struct config_header flag_headers[CONFIG_MAX_LIST];
	size_t n_flag_headers;
	struct config_header flag_attrs[CONFIG_MAX_LIST];
	size_t n_flag_attrs;
	struct config_header env_attrs[CONFIG_MAX_LIST];
	size_t n_env_attrs;
	char *flag_endpoint;
	bool env_endpoint_traces; /* cfg->endpoint holds OTEL_EXPORTER_OTLP_TRACES_ENDPOINT */
};

static bool config_seen(const struct config_pending *p, enum config_opt opt)
{
	return p->seen[opt - OPT_FILE];
}

__attribute__((format(printf, 3, 4))) static int config_fail(char *err, size_t err_size,
							     const char *fmt, ...)
{
	va_list ap;

	if (err && err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int config_oom(char *err, size_t err_size)
{
	if (err && err_size)
		snprintf(err, err_size, "out of memory while reading the configuration");
	return -ENOMEM;
}

static void config_headers_free(struct config_header *h, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		free(h[i].name);
		free(h[i].value);
		h[i].name = NULL;
		h[i].value = NULL;
	}
	*n = 0;
}

static void config_pending_free(struct config_pending *p)
{
	config_headers_free(p->flag_headers, &p->n_flag_headers);
	config_headers_free(p->flag_attrs, &p->n_flag_attrs);
	config_headers_free(p->env_attrs, &p->n_env_attrs);
	free(p->flag_endpoint);
	p->flag_endpoint = NULL;
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ringbuf_size = CONFIG_DEF_RINGBUF;
	cfg->exporter = CONFIG_EXPORTER_OTLP;
	cfg->protocol = CONFIG_PROTO_HTTP_PROTOBUF;
	cfg->timeout_ms = CONFIG_DEF_TIMEOUT_MS;
	cfg->max_inflight = CONFIG_DEF_MAX_INFLIGHT;
	cfg->retry_max_elapsed_ms = CONFIG_DEF_RETRY_MAX_MS;
	cfg->max_queue_spans = CONFIG_DEF_QUEUE_SPANS;
	cfg->max_queue_bytes = CONFIG_DEF_QUEUE_BYTES;
	cfg->batch_size = CONFIG_DEF_BATCH_SIZE;
	cfg->schedule_delay_ms = CONFIG_DEF_SCHEDULE_MS;
	cfg->export_timeout_ms = CONFIG_DEF_EXPORT_TIMEOUT;
	cfg->shutdown_timeout_ms = CONFIG_DEF_SHUTDOWN_MS;
	cfg->stats_interval_s = CONFIG_DEF_STATS_S;
	cfg->suspend_ttl_ms = CONFIG_DEF_SUSPEND_TTL_MS;
}

void config_free(struct config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->n_files; i++)
		free(cfg->files[i]);
	for (i = 0; i < cfg->n_lightningd; i++)
		free(cfg->lightningd[i]);
	config_headers_free(cfg->headers, &cfg->n_headers);
	for (i = 0; i < cfg->n_resource_attrs; i++) {
		free((char *)cfg->resource_attrs[i].key);
		free((char *)cfg->resource_attrs[i].value);
	}
	free(cfg->socket_path);
	free(cfg->endpoint);
	free(cfg->ca_cert);
	free(cfg->client_cert);
	free(cfg->client_key);
	free(cfg->service_name);
	free(cfg->metrics_listen);
	free(cfg->user);
	free(cfg->rpc_file);
	/* Back to a state that config_free() and config_load() accept again. */
	config_init(cfg);
}

/* ---- Values ---------------------------------------------------------------------------- */

/*
 * "%XX" decodes to byte XX; a '%' not followed by two hex digits is malformed, and so is
 * "%00" (the result is a C string). Everything else is copied as is ('+' stays '+': this
 * is the W3C Baggage encoding OTEL uses, not form encoding).
 */
char *config_percent_decode(const char *s, size_t len)
{
	char *out;
	size_t i, o = 0;
	int hi, lo;

	out = malloc(len + 1);
	if (!out)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '\0')
			goto malformed;
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (len - i < 3)
			goto malformed;
		hi = text_hex_digit(s[i + 1]);
		lo = text_hex_digit(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			goto malformed;
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
malformed:
	free(out);
	return NULL;
}

static bool config_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Trim spaces and tabs around [*b, *e). */
static void config_trim(const char **b, const char **e)
{
	while (*b < *e && config_is_space(**b))
		(*b)++;
	while (*e > *b && config_is_space((*e)[-1]))
		(*e)--;
}

/*
 * The work of config_parse_kv_list(), telling which entry (1-based) failed in @bad_entry.
 * Entries that are empty or only whitespace are skipped (a trailing comma is fine).
 */
static int config_kv_parse(const char *s, struct config_header *out, size_t max, size_t *n,
			   size_t *bad_entry)
{
	const char *p = s, *end, *eq, *kb, *ke, *vb, *ve;
	size_t entry = 0;
	int err = 0;

	*n = 0;
	*bad_entry = 0;
	while (*p) {
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		entry++;
		kb = p;
		ve = end;
		config_trim(&kb, &ve);
		if (kb == ve)
			goto next;
		eq = memchr(kb, '=', (size_t)(ve - kb));
		if (!eq) {
			err = -EINVAL;
			goto cleanup;
		}
		ke = eq;
		vb = eq + 1;
		config_trim(&kb, &ke);
		config_trim(&vb, &ve);
		if (kb == ke) {
			err = -EINVAL;
			goto cleanup;
		}
		if (*n == max) {
			err = -E2BIG;
			goto cleanup;
		}
		out[*n].name = config_percent_decode(kb, (size_t)(ke - kb));
		out[*n].value = config_percent_decode(vb, (size_t)(ve - vb));
		/* Counted even if half-decoded, so that cleanup frees it. */
		(*n)++;
		if (!out[*n - 1].name || !out[*n - 1].value) {
			/* Malformed escape (or ENOMEM, which this interface cannot tell apart). */
			err = -EINVAL;
			goto cleanup;
		}
	next:
		p = *end ? end + 1 : end;
	}
cleanup:
	if (err) {
		*bad_entry = entry;
		config_headers_free(out, n);
	}
	return err;
}

int config_parse_kv_list(const char *s, struct config_header *out, size_t max, size_t *n)
{
	size_t bad;

	return config_kv_parse(s, out, max, n, &bad);
}

/* Strict unsigned decimal: digits only, no sign, no spaces, no junk, no overflow. */
static int config_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned d;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -EINVAL; /* junk is reported as such even in a number that overflows */
	for (; *s; s++) {
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* A byte count: decimal, optionally followed by K, M or G (powers of 1024), then B/iB. */
static int config_parse_size(const char *s, uint64_t *out)
{
	const char *p = s;
	uint64_t v = 0, mult = 1;
	bool overflow = false;
	unsigned d;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = CONFIG_KIB;
		break;
	case 'm':
	case 'M':
		mult = CONFIG_MIB;
		break;
	case 'g':
	case 'G':
		mult = CONFIG_GIB;
		break;
	default:
		return -EINVAL;
	}
	if (*p) {
		p++;
		if (!strcasecmp(p, "ib") || !strcasecmp(p, "b"))
			p += strlen(p);
		if (*p)
			return -EINVAL;
	}
	if (overflow || v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

/*
 * Parse @s (from @who: a flag or a variable) as an integer in [@min, @max]. @unit says what
 * it counts, for the message.
 */
static int config_get_u64(const char *who, const char *s, bool size, uint64_t min, uint64_t max,
			  const char *unit, uint64_t *out, char *err, size_t err_size)
{
	uint64_t v;
	int ret;

	ret = size ? config_parse_size(s, &v) : config_parse_u64(s, &v);
	if (ret == -EINVAL) {
		if (size)
			return config_fail(
				err, err_size,
				"%s: \"%.*s\" is not a size (%s: a non-negative integer, "
				"optionally followed by K, M or G)",
				who, CONFIG_SHOWN_MAX, s, unit);
		return config_fail(err, err_size, "%s: \"%.*s\" is not a non-negative integer (%s)",
				   who, CONFIG_SHOWN_MAX, s, unit);
	}
	if (ret == -ERANGE || v < min || v > max)
		return config_fail(
			err, err_size,
			"%s: \"%.*s\" is out of range: must be between %llu and %llu (%s)", who,
			CONFIG_SHOWN_MAX, s, (unsigned long long)min, (unsigned long long)max,
			unit);
	*out = v;
	return 0;
}

static int config_set_str(char **dst, const char *src, char *err, size_t err_size)
{
	char *copy = strdup(src);

	if (!copy)
		return config_oom(err, err_size);
	free(*dst);
	*dst = copy;
	return 0;
}

/* A non-empty string flag (environment values are never empty here: empty means unset). */
static int config_set_nonempty(const char *who, char **dst, const char *src, const char *what,
			       char *err, size_t err_size)
{
	if (!*src)
		return config_fail(err, err_size, "%s: expects %s, not an empty string", who, what);
	return config_set_str(dst, src, err, err_size);
}

static int config_get_bool(const char *who, const char *s, bool *out, char *err, size_t err_size)
{
	if (!strcasecmp(s, "true")) {
		*out = true;
		return 0;
	}
	if (!strcasecmp(s, "false")) {
		*out = false;
		return 0;
	}
	return config_fail(err, err_size, "%s: \"%.*s\" is not true or false", who,
			   CONFIG_SHOWN_MAX, s);
}

static int config_get_protocol(const char *who, const char *s, enum config_protocol *out, char *err,
			       size_t err_size)
{
	if (!strcasecmp(s, "http/protobuf"))
		*out = CONFIG_PROTO_HTTP_PROTOBUF;
	else if (!strcasecmp(s, "http/json"))
		*out = CONFIG_PROTO_HTTP_JSON;
	else if (!strcasecmp(s, "grpc"))
		*out = CONFIG_PROTO_GRPC;
	else
		return config_fail(
			err, err_size,
			"%s: \"%.*s\" is not a protocol (http/protobuf, http/json or grpc)", who,
			CONFIG_SHOWN_MAX, s);
	return 0;
}

static int config_get_compression(const char *who, const char *s, bool *gzip, char *err,
				  size_t err_size)
{
	if (!strcasecmp(s, "gzip"))
		*gzip = true;
	else if (!strcasecmp(s, "none"))
		*gzip = false;
	else
		return config_fail(err, err_size,
				   "%s: \"%.*s\" is not a compression (gzip or none)", who,
				   CONFIG_SHOWN_MAX, s);
	return 0;
}

static int config_get_exporter(const char *who, const char *s, enum config_exporter *out, char *err,
			       size_t err_size)
{
	if (!strcmp(s, "otlp"))
		*out = CONFIG_EXPORTER_OTLP;
	else if (!strcmp(s, "stdout"))
		*out = CONFIG_EXPORTER_STDOUT;
	else if (!strcmp(s, "console"))
		*out = CONFIG_EXPORTER_CONSOLE;
	else
		return config_fail(err, err_size,
				   "%s: \"%.*s\" is not an exporter (otlp, stdout or console)", who,
				   CONFIG_SHOWN_MAX, s);
	return 0;
}

/* RFC 9110 token characters, the only ones allowed in a header name. */
static bool config_is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/*
 * Header names must be tokens; values must not hold control characters (CR and LF would
 * split the request). The value is a secret: messages name the header, never the value,
 * and name an invalid name by its position only (it may be a mistyped value).
 */
static int config_check_header(const char *who, size_t entry, const struct config_header *h,
			       char *err, size_t err_size)
{
	const unsigned char *c;

	for (c = (const unsigned char *)h->name; *c; c++) {
		if (!config_is_tchar(*c))
			return config_fail(err, err_size,
					   "%s: header %zu has a name with a character (0x%02x) "
					   "not allowed in HTTP header names (letters, digits and "
					   "!#$%%&'*+-.^_`|~)",
					   who, entry, *c);
	}
	for (c = (const unsigned char *)h->value; *c; c++) {
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return config_fail(err, err_size,
					   "%s: the value of header \"%s\" contains a control "
					   "character (CR, LF...), which HTTP does not allow",
					   who, h->name);
	}
	return 0;
}

/* Split a "K=V" flag value (taken literally, no percent-decoding), trimming both sides. */
static int config_split_kv_flag(const char *who, const char *arg, const char *what,
				struct config_header *out, char *err, size_t err_size)
{
	const char *eq = strchr(arg, '='), *kb = arg, *ke, *vb, *ve;

	/* Never quote @arg back: for --header it holds a secret. */
	if (!eq)
		return config_fail(err, err_size, "%s: expects %s=VALUE (no '=' found)", who, what);
	ke = eq;
	vb = eq + 1;
	ve = arg + strlen(arg);
	config_trim(&kb, &ke);
	config_trim(&vb, &ve);
	if (kb == ke)
		return config_fail(err, err_size, "%s: expects %s=VALUE (the %s is empty)", who,
				   what, what);
	out->name = strndup(kb, (size_t)(ke - kb));
	out->value = strndup(vb, (size_t)(ve - vb));
	if (!out->name || !out->value) {
		free(out->name);
		free(out->value);
		out->name = out->value = NULL;
		return config_oom(err, err_size);
	}
	return 0;
}

/* Move @h into @list, replacing an entry of the same name (case-insensitive if @icase). */
static int config_list_put_take(struct config_header *list, size_t *n, struct config_header *h,
				bool icase, const char *who, const char *what, char *err,
				size_t err_size)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		if (icase ? !strcasecmp(list[i].name, h->name) : !strcmp(list[i].name, h->name)) {
			free(list[i].name);
			free(list[i].value);
			list[i] = *h;
			h->name = h->value = NULL;
			return 0;
		}
	}
	if (*n == CONFIG_MAX_LIST)
		return config_fail(err, err_size, "%s: too many %s (at most %d)", who, what,
				   CONFIG_MAX_LIST);
	list[(*n)++] = *h;
	h->name = h->value = NULL;
	return 0;
}

/* ---- Command line ---------------------------------------------------------------------- */

static int config_add_list_str(const char *who, char **list, size_t *n, const char *arg,
			       const char *what, char *err, size_t err_size)
{
	if (!*arg)
		return config_fail(err, err_size, "%s: expects %s, not an empty string", who, what);
	if (*n == CONFIG_MAX_LIST)
		return config_fail(err, err_size, "%s: given too many times (at most %d)", who,
				   CONFIG_MAX_LIST);
	list[*n] = strdup(arg);
	if (!list[*n])
		return config_oom(err, err_size);
	(*n)++;
	return 0;
}

/* "ADDR:PORT" with a non-empty ADDR (IPv6 in brackets) and a port 1..65535. */
static int config_check_listen(const char *who, const char *s, char *err, size_t err_size)
{
	const char *colon = strrchr(s, ':');
	uint64_t port;
	size_t addr_len;

	if (!colon)
		goto bad;
	addr_len = (size_t)(colon - s);
	if (!addr_len)
		goto bad;
	if (s[0] == '[' ? (addr_len < 3 || colon[-1] != ']') : memchr(s, ':', addr_len) != NULL)
		goto bad;
	if (config_parse_u64(colon + 1, &port) || port < 1 || port > 65535)
		goto bad;
	return 0;
bad:
	return config_fail(err, err_size,
			   "%s: \"%.*s\" is not ADDR:PORT (e.g. 127.0.0.1:9464 or [::1]:9464, "
			   "port 1-65535)",
			   who, CONFIG_SHOWN_MAX, s);
}

/* The command-line element being parsed, for messages: "--name" without any "=value". */
static void config_opt_name(const char *elem, int optopt_c, char *buf, size_t size)
{
	size_t len;

	if (elem && elem[0] == '-' && elem[1] == '-') {
		len = strcspn(elem, "=");
		snprintf(buf, size, "%.*s", (int)(len > CONFIG_SHOWN_MAX ? CONFIG_SHOWN_MAX : len),
			 elem);
	} else if (optopt_c > 0 && optopt_c < 256 && isprint(optopt_c)) {
		snprintf(buf, size, "-%c", optopt_c);
	} else {
		snprintf(buf, size, "%.*s", CONFIG_SHOWN_MAX, elem ? elem : "?");
	}
}

static bool config_is_noarg_long(const char *elem)
{
	const struct option *o;
	size_t len;

	if (!elem || elem[0] != '-' || elem[1] != '-' || !strchr(elem, '='))
		return false;
	len = strcspn(elem + 2, "=");
	for (o = config_longopts; o->name; o++) {
		if (o->has_arg == no_argument && strlen(o->name) == len &&
		    !strncmp(o->name, elem + 2, len))
			return true;
	}
	return false;
}

static const char *config_long_name(int opt)
{
	const struct option *o;

	for (o = config_longopts; o->name; o++) {
		if (o->val == opt)
			return o->name;
	}
	return "?";
}

static int config_apply_flag(struct config *cfg, struct config_pending *p, int opt, const char *arg,
			     char *err, size_t err_size)
{
	char who[64];
	uint64_t v = 0;
	struct config_header kv = {0};
	int ret = 0;

	snprintf(who, sizeof(who), "--%s", config_long_name(opt));
	if (opt >= OPT_FILE && opt < OPT_END)
		p->seen[opt - OPT_FILE] = true;

	switch (opt) {
	case OPT_FILE:
		return config_add_list_str(who, cfg->files, &cfg->n_files, arg,
					   "a file path (or - for stdin)", err, err_size);
	case OPT_FOLLOW:
		cfg->follow = true;
		return 0;
	case OPT_SOCKET:
		if (strlen(arg) > CONFIG_SUN_PATH_MAX)
			return config_fail(err, err_size,
					   "%s: the path is %zu bytes long, unix sockets allow at "
					   "most %d",
					   who, strlen(arg), CONFIG_SUN_PATH_MAX);
		return config_set_nonempty(who, &cfg->socket_path, arg, "a socket path", err,
					   err_size);
	case OPT_LIGHTNINGD:
		return config_add_list_str(who, cfg->lightningd, &cfg->n_lightningd, arg,
					   "the path of a lightningd binary", err, err_size);
	case OPT_NO_PLUGINS:
		cfg->no_plugins = true;
		return 0;
	case OPT_ALL_PROBES:
		cfg->all_probes = true;
		return 0;
	case OPT_PID:
		if (cfg->n_pids == CONFIG_MAX_LIST)
			return config_fail(err, err_size, "%s: given too many times (at most %d)",
					   who, CONFIG_MAX_LIST);
		ret = config_get_u64(who, arg, false, 1, CONFIG_PID_MAX, "a process id", &v, err,
				     err_size);
		if (!ret)
			cfg->pids[cfg->n_pids++] = (uint32_t)v;
		return ret;
	case OPT_RINGBUF_SIZE:
		ret = config_get_u64(who, arg, true, CONFIG_RINGBUF_MIN, CONFIG_RINGBUF_MAX,
				     "bytes", &v, err, err_size);
		if (ret)
			return ret;
		if (v & (v - 1))
			return config_fail(err, err_size,
					   "%s: \"%.*s\" is not a power of two (e.g. 4M, 16M, 64M)",
					   who, CONFIG_SHOWN_MAX, arg);
		cfg->ringbuf_size = v;
		return 0;
	case OPT_EXPORTER:
		return config_get_exporter(who, arg, &cfg->exporter, err, err_size);
	case OPT_ENDPOINT:
		return config_set_nonempty(who, &p->flag_endpoint, arg, "a URL", err, err_size);
	case OPT_PROTOCOL:
		return config_get_protocol(who, arg, &cfg->protocol, err, err_size);
	case OPT_HEADER:
		ret = config_split_kv_flag(who, arg, "NAME", &kv, err, err_size);
		if (!ret)
			ret = config_check_header(who, p->n_flag_headers + 1, &kv, err, err_size);
		if (!ret)
			ret = config_list_put_take(p->flag_headers, &p->n_flag_headers, &kv, true,
						   who, "headers", err, err_size);
		free(kv.name);
		free(kv.value);
		return ret;
	case OPT_COMPRESSION:
		return config_get_compression(who, arg, &cfg->gzip, err, err_size);
	case OPT_TIMEOUT:
		ret = config_get_u64(who, arg, false, 1, CONFIG_MS_MAX, "milliseconds", &v, err,
				     err_size);
		if (!ret)
			cfg->timeout_ms = v;
		return ret;
	case OPT_CA_CERT:
		return config_set_nonempty(who, &cfg->ca_cert, arg, "a file path", err, err_size);
	case OPT_CLIENT_CERT:
		return config_set_nonempty(who, &cfg->client_cert, arg, "a file path", err,
					   err_size);
	case OPT_CLIENT_KEY:
		return config_set_nonempty(who, &cfg->client_key, arg, "a file path", err,
					   err_size);
	case OPT_INSECURE:
		cfg->insecure = true;
		return 0;
	case OPT_MAX_INFLIGHT:
		ret = config_get_u64(who, arg, false, 1, CONFIG_INFLIGHT_MAX, "concurrent requests",
				     &v, err, err_size);
		if (!ret)
			cfg->max_inflight = (unsigned)v;
		return ret;
	case OPT_RETRY_MAX_ELAPSED:
		ret = config_get_u64(who, arg, false, 0, CONFIG_MS_MAX, "milliseconds", &v, err,
				     err_size);
		if (!ret)
			cfg->retry_max_elapsed_ms = v;
		return ret;
	case OPT_QUEUE_SIZE:
		ret = config_get_u64(who, arg, false, 1, CONFIG_QUEUE_SPANS_MAX, "spans", &v, err,
				     err_size);
		if (!ret)
			cfg->max_queue_spans = (size_t)v;
		return ret;
	case OPT_QUEUE_BYTES:
		ret = config_get_u64(who, arg, true, CONFIG_QUEUE_BYTES_MIN, CONFIG_QUEUE_BYTES_MAX,
				     "bytes", &v, err, err_size);
		if (!ret)
			cfg->max_queue_bytes = (size_t)v;
		return ret;
	case OPT_BATCH_SIZE:
		ret = config_get_u64(who, arg, false, 1, CONFIG_QUEUE_SPANS_MAX, "spans", &v, err,
				     err_size);
		if (!ret)
			cfg->batch_size = (size_t)v;
		return ret;
	case OPT_BATCH_DELAY:
		ret = config_get_u64(who, arg, false, 0, CONFIG_MS_MAX, "milliseconds", &v, err,
				     err_size);
		if (!ret)
			cfg->schedule_delay_ms = v;
		return ret;
	case OPT_EXPORT_TIMEOUT:
		ret = config_get_u64(who, arg, false, 1, CONFIG_MS_MAX, "milliseconds", &v, err,
				     err_size);
		if (!ret)
			cfg->export_timeout_ms = v;
		return ret;
	case OPT_SHUTDOWN_TIMEOUT:
		ret = config_get_u64(who, arg, false, 0, CONFIG_MS_MAX, "milliseconds", &v, err,
				     err_size);
		if (!ret)
			cfg->shutdown_timeout_ms = v;
		return ret;
	case OPT_SERVICE_NAME:
		if (!text_utf8_valid(arg))
			return config_fail(err, err_size, "%s: the name is not valid UTF-8", who);
		return config_set_nonempty(who, &cfg->service_name, arg, "a service name", err,
					   err_size);
	case OPT_RESOURCE_ATTR:
		ret = config_split_kv_flag(who, arg, "KEY", &kv, err, err_size);
		if (!ret && (!text_utf8_valid(kv.name) || !text_utf8_valid(kv.value)))
			ret = config_fail(err, err_size, "%s: the key or value is not valid UTF-8",
					  who);
		if (!ret)
			ret = config_list_put_take(p->flag_attrs, &p->n_flag_attrs, &kv, false, who,
						   "resource attributes", err, err_size);
		free(kv.name);
		free(kv.value);
		return ret;
	case 'v':
		if (cfg->verbosity < 16)
			cfg->verbosity++;
		return 0;
	case 'q':
		if (cfg->verbosity > -16)
			cfg->verbosity--;
		return 0;
	case OPT_STATS_INTERVAL:
		ret = config_get_u64(who, arg, false, 0, CONFIG_S_MAX, "seconds, 0 = off", &v, err,
				     err_size);
		if (!ret)
			cfg->stats_interval_s = v;
		return ret;
	case OPT_METRICS_LISTEN:
		ret = config_check_listen(who, arg, err, err_size);
		if (!ret)
			ret = config_set_str(&cfg->metrics_listen, arg, err, err_size);
		return ret;
	case OPT_USER:
		return config_set_nonempty(who, &cfg->user, arg, "a user name", err, err_size);
	case OPT_RPC_FILE:
		return config_set_nonempty(who, &cfg->rpc_file, arg, "a file path", err, err_size);
	case OPT_SUSPEND_TTL:
		ret = config_get_u64(who, arg, false, 0, CONFIG_MS_MAX, "milliseconds", &v, err,
				     err_size);
		if (!ret)
			cfg->suspend_ttl_ms = v;
		return ret;
	default:
		return config_fail(err, err_size, "internal error: option %d not handled", opt);
	}
}

static int config_parse_argv(struct config *cfg, struct config_pending *p, int argc, char **argv,
			     char *err, size_t err_size)
{
	char name[CONFIG_SHOWN_MAX + 8];
	const char *elem;
	int opt, at, ret;

	if (argc <= 1 || !argv)
		return 0;
	/*
	 * '+': stop at the first non-option (never permute the caller's argv); ':': report a
	 * missing argument as ':' rather than '?'. optind = 0 fully re-initialises GNU getopt,
	 * so config_load() can run more than once in a process.
	 */
	opterr = 0;
	optind = 0;
	for (;;) {
		at = optind > 0 ? optind : 1;
		opt = getopt_long(argc, argv, "+:vqhV", config_longopts, NULL);
		if (opt == -1)
			break;
		elem = at < argc ? argv[at] : NULL;
		switch (opt) {
		case 'h':
			cfg->help = true;
			return 0;
		case 'V':
			cfg->version = true;
			return 0;
		case ':':
			config_opt_name(elem, optopt, name, sizeof(name));
			return config_fail(err, err_size,
					   "option %s needs a value (run " CONFIG_PROG
					   " --help for the options)",
					   name);
		case '?':
			config_opt_name(elem, optopt, name, sizeof(name));
			if (config_is_noarg_long(elem))
				return config_fail(err, err_size,
						   "option %s takes no value (run " CONFIG_PROG
						   " --help for the options)",
						   name);
			return config_fail(err, err_size,
					   "unknown or ambiguous option %s (run " CONFIG_PROG
					   " --help for the options)",
					   name);
		default:
			ret = config_apply_flag(cfg, p, opt, optarg, err, err_size);
			if (ret)
				return ret;
		}
	}
	if (optind < argc)
		return config_fail(
			err, err_size,
			"unexpected argument \"%.*s\": options take the form --name VALUE "
			"(run " CONFIG_PROG " --help for the options)",
			CONFIG_SHOWN_MAX, argv[optind]);
	return 0;
}

/* ---- Environment ----------------------------------------------------------------------- */

struct config_env {
	config_getenv_fn fn;
};

static const char *config_env_get(const struct config_env *env, const char *name)
{
	const char *v;

	if (!env->fn)
		return NULL;
	v = env->fn(name);
	return v && *v ? v : NULL;
}

/*
 * OTEL_EXPORTER_OTLP_TRACES_<x>, else OTEL_EXPORTER_OTLP_<x>. @who receives the name of
 * the variable the value came from; @traces tells which one it was.
 */
static const char *config_env_otlp(const struct config_env *env, const char *x, char *who,
				   size_t who_size, bool *traces)
{
	const char *v;

	snprintf(who, who_size, "OTEL_EXPORTER_OTLP_TRACES_%s", x);
	v = config_env_get(env, who);
	if (traces)
		*traces = v != NULL;
	if (v)
		return v;
	snprintf(who, who_size, "OTEL_EXPORTER_OTLP_%s", x);
	return config_env_get(env, who);
}

static int config_env_ms(const struct config_env *env, const char *name, bool otlp, uint64_t min,
			 uint64_t *out, char *err, size_t err_size)
{
	char who[64];
	const char *v;

	if (otlp) {
		v = config_env_otlp(env, name, who, sizeof(who), NULL);
	} else {
		snprintf(who, sizeof(who), "%s", name);
		v = config_env_get(env, who);
	}
	if (!v)
		return 0;
	return config_get_u64(who, v, false, min, CONFIG_MS_MAX, "milliseconds", out, err,
			      err_size);
}

static int config_env_path(const struct config_env *env, const char *x, char **dst, char *err,
			   size_t err_size)
{
	char who[64];
	const char *v = config_env_otlp(env, x, who, sizeof(who), NULL);

	return v ? config_set_str(dst, v, err, err_size) : 0;
}

/* Parse an OTEL k=v list variable; messages never quote it (headers hold secrets). */
static int config_env_kv(const char *who, const char *v, struct config_header *out, size_t *n,
			 const char *what, char *err, size_t err_size)
{
	size_t bad;
	int ret;

	ret = config_kv_parse(v, out, CONFIG_MAX_LIST, n, &bad);
	if (ret == -E2BIG)
		return config_fail(err, err_size, "%s: too many %s (at most %d)", who, what,
				   CONFIG_MAX_LIST);
	if (ret)
		return config_fail(err, err_size,
				   "%s: entry %zu is not key=value (comma-separated, with '%%' "
				   "followed by two hex digits for a percent-encoded byte)",
				   who, bad);
	return 0;
}

static int config_load_env(struct config *cfg, struct config_pending *p,
			   const struct config_env *env, char *err, size_t err_size)
{
	struct config_header list[CONFIG_MAX_LIST];
	size_t n = 0, i;
	uint64_t v = 0;
	char who[64];
	const char *s;
	bool traces;
	int ret = 0;

	if (!config_seen(p, OPT_PROTOCOL)) {
		s = config_env_otlp(env, "PROTOCOL", who, sizeof(who), NULL);
		if (s) {
			ret = config_get_protocol(who, s, &cfg->protocol, err, err_size);
			if (ret)
				goto cleanup;
		}
	}
	if (!config_seen(p, OPT_ENDPOINT)) {
		s = config_env_otlp(env, "ENDPOINT", who, sizeof(who), &traces);
		if (s) {
			/* Stash the raw value; config_finish() builds the URL. */
			ret = config_set_str(&cfg->endpoint, s, err, err_size);
			if (ret)
				goto cleanup;
			p->env_endpoint_traces = traces;
		}
	}
	s = config_env_otlp(env, "HEADERS", who, sizeof(who), NULL);
	if (s) {
		ret = config_env_kv(who, s, list, &n, "headers", err, err_size);
		if (ret)
			goto cleanup;
		for (i = 0; i < n; i++) {
			ret = config_check_header(who, i + 1, &list[i], err, err_size);
			if (ret)
				goto cleanup;
		}
		for (i = 0; i < n; i++) {
			ret = config_list_put_take(cfg->headers, &cfg->n_headers, &list[i], true,
						   who, "headers", err, err_size);
			if (ret)
				goto cleanup;
		}
	}
	if (!config_seen(p, OPT_TIMEOUT)) {
		ret = config_env_ms(env, "TIMEOUT", true, 1, &cfg->timeout_ms, err, err_size);
		if (ret)
			goto cleanup;
	}
	if (!config_seen(p, OPT_COMPRESSION)) {
		s = config_env_otlp(env, "COMPRESSION", who, sizeof(who), NULL);
		if (s) {
			ret = config_get_compression(who, s, &cfg->gzip, err, err_size);
			if (ret)
				goto cleanup;
		}
	}
	if (!config_seen(p, OPT_CA_CERT)) {
		ret = config_env_path(env, "CERTIFICATE", &cfg->ca_cert, err, err_size);
		if (ret)
			goto cleanup;
	}
	if (!config_seen(p, OPT_CLIENT_CERT)) {
		ret = config_env_path(env, "CLIENT_CERTIFICATE", &cfg->client_cert, err, err_size);
		if (ret)
			goto cleanup;
	}
	if (!config_seen(p, OPT_CLIENT_KEY)) {
		ret = config_env_path(env, "CLIENT_KEY", &cfg->client_key, err, err_size);
		if (ret)
			goto cleanup;
	}
	if (!config_seen(p, OPT_INSECURE)) {
		s = config_env_otlp(env, "INSECURE", who, sizeof(who), NULL);
		if (s) {
			ret = config_get_bool(who, s, &cfg->insecure, err, err_size);
			if (ret)
				goto cleanup;
		}
	}

	/* Service and resource. */
	s = config_env_get(env, "OTEL_SERVICE_NAME");
	if (!config_seen(p, OPT_SERVICE_NAME) && s) {
		if (!text_utf8_valid(s)) {
			ret = config_fail(err, err_size,
					  "OTEL_SERVICE_NAME: the name is not valid "
					  "UTF-8");
			goto cleanup;
		}
		ret = config_set_str(&cfg->service_name, s, err, err_size);
		if (ret)
			goto cleanup;
	}
	s = config_env_get(env, "OTEL_RESOURCE_ATTRIBUTES");
	if (s) {
		ret = config_env_kv("OTEL_RESOURCE_ATTRIBUTES", s, list, &n, "resource attributes",
				    err, err_size);
		if (ret)
			goto cleanup;
		for (i = 0; i < n; i++) {
			if (!text_utf8_valid(list[i].name) || !text_utf8_valid(list[i].value)) {
				ret = config_fail(
					err, err_size,
					"OTEL_RESOURCE_ATTRIBUTES: entry %zu does not decode "
					"to valid UTF-8",
					i + 1);
				goto cleanup;
			}
		}
		for (i = 0; i < n; i++) {
			ret = config_list_put_take(p->env_attrs, &p->n_env_attrs, &list[i], false,
						   "OTEL_RESOURCE_ATTRIBUTES",
						   "resource attributes", err, err_size);
			if (ret)
				goto cleanup;
		}
	}

	/* Batch span processor. */
	if (!config_seen(p, OPT_BATCH_DELAY)) {
		ret = config_env_ms(env, "OTEL_BSP_SCHEDULE_DELAY", false, 0,
				    &cfg->schedule_delay_ms, err, err_size);
		if (ret)
			goto cleanup;
	}
	if (!config_seen(p, OPT_EXPORT_TIMEOUT)) {
		ret = config_env_ms(env, "OTEL_BSP_EXPORT_TIMEOUT", false, 1,
				    &cfg->export_timeout_ms, err, err_size);
		if (ret)
			goto cleanup;
	}
	if (!config_seen(p, OPT_QUEUE_SIZE)) {
		s = config_env_get(env, "OTEL_BSP_MAX_QUEUE_SIZE");
		if (s) {
			ret = config_get_u64("OTEL_BSP_MAX_QUEUE_SIZE", s, false, 1,
					     CONFIG_QUEUE_SPANS_MAX, "spans", &v, err, err_size);
			if (ret)
				goto cleanup;
			cfg->max_queue_spans = (size_t)v;
		}
	}
	if (!config_seen(p, OPT_BATCH_SIZE)) {
		s = config_env_get(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
		if (s) {
			ret = config_get_u64("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", s, false, 1,
					     CONFIG_QUEUE_SPANS_MAX, "spans", &v, err, err_size);
			if (ret)
				goto cleanup;
			cfg->batch_size = (size_t)v;
		}
	}
cleanup:
	config_headers_free(list, &n);
	return ret;
}

/* ---- Final rules ----------------------------------------------------------------------- */

/* "http://" or "https://" (any case), something after it, no spaces or control bytes. */
static bool config_url_ok(const char *url)
{
	const unsigned char *c;
	size_t skip;

	if (!strncasecmp(url, "http://", 7))
		skip = 7;
	else if (!strncasecmp(url, "https://", 8))
		skip = 8;
	else
		return false;
	if (!url[skip] || url[skip] == '/')
		return false;
	for (c = (const unsigned char *)url; *c; c++) {
		if (*c <= 0x20 || *c == 0x7f)
			return false;
	}
	return true;
}

static int config_finish(struct config *cfg, struct config_pending *p, char *err, size_t err_size)
{
	bool grpc = cfg->protocol == CONFIG_PROTO_GRPC;
	bool env_traces = p->env_endpoint_traces;
	const char *who, *base;
	struct config_header kv = {0};
	bool append;
	size_t i;
	int ret = 0;

	/* Endpoint: flag (a base), else TRACES variable (as is), else base variable. */
	if (p->flag_endpoint) {
		who = "--endpoint";
		base = p->flag_endpoint;
		append = true;
	} else if (cfg->endpoint) {
		who = env_traces ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
				 : "OTEL_EXPORTER_OTLP_ENDPOINT";
		base = cfg->endpoint;
		append = !env_traces;
	} else {
		who = NULL;
		base = grpc ? CONFIG_DEF_ENDPOINT_GRPC : CONFIG_DEF_ENDPOINT_HTTP;
		append = true;
	}
	/* The URL may carry credentials (user:password@): never quote it back. */
	if (who && !config_url_ok(base)) {
		ret = config_fail(err, err_size,
				  "%s: expects a URL starting with http:// or https:// followed by "
				  "a host, without spaces (e.g. %s)",
				  who, grpc ? CONFIG_DEF_ENDPOINT_GRPC : CONFIG_DEF_ENDPOINT_HTTP);
		goto cleanup;
	}
	cfg->endpoint_append = append && !grpc;
	if (base != cfg->endpoint) {
		ret = config_set_str(&cfg->endpoint, base, err, err_size);
		if (ret)
			goto cleanup;
	}

	/* Headers: flags over the environment's, same name (any case) replaced. */
	for (i = 0; i < p->n_flag_headers; i++) {
		ret = config_list_put_take(cfg->headers, &cfg->n_headers, &p->flag_headers[i], true,
					   "--header", "headers (environment and flags together)",
					   err, err_size);
		if (ret)
			goto cleanup;
	}

	/*
	 * Resource attributes: the environment's, then the flags' over them. service.name is
	 * lifted out into service_name unless a flag or OTEL_SERVICE_NAME already set it.
	 */
	for (i = 0; i < p->n_flag_attrs; i++) {
		ret = config_list_put_take(
			p->env_attrs, &p->n_env_attrs, &p->flag_attrs[i], false, "--resource-attr",
			"resource attributes (environment and flags together)", err, err_size);
		if (ret)
			goto cleanup;
	}
	for (i = 0; i < p->n_env_attrs; i++) {
		kv = p->env_attrs[i];
		p->env_attrs[i].name = p->env_attrs[i].value = NULL;
		if (!strcmp(kv.name, "service.name")) {
			if (!cfg->service_name && kv.value[0]) {
				cfg->service_name = kv.value;
				kv.value = NULL;
			}
			free(kv.name);
			free(kv.value);
			continue;
		}
		cfg->resource_attrs[cfg->n_resource_attrs].key = kv.name;
		cfg->resource_attrs[cfg->n_resource_attrs].value = kv.value;
		cfg->n_resource_attrs++;
	}
	p->n_env_attrs = 0;

	/* Cross-field rules. */
	if (cfg->batch_size > cfg->max_queue_spans) {
		ret = config_fail(
			err, err_size,
			"the batch size (%zu spans; --batch-size or "
			"OTEL_BSP_MAX_EXPORT_BATCH_SIZE) must not exceed the queue size (%zu "
			"spans; --queue-size or OTEL_BSP_MAX_QUEUE_SIZE)",
			cfg->batch_size, cfg->max_queue_spans);
		goto cleanup;
	}
	if (cfg->follow && !cfg->n_files) {
		ret = config_fail(err, err_size, "--follow needs a --file to follow");
		goto cleanup;
	}
	cfg->usdt = cfg->n_lightningd || cfg->n_pids || (!cfg->n_files && !cfg->socket_path);
cleanup:
	return ret;
}

int config_load(struct config *cfg, int argc, char **argv, config_getenv_fn getenv_fn, char *err,
		size_t err_size)
{
	struct config_pending *p;
	struct config_env env = {.fn = getenv_fn};
	int ret;

	config_init(cfg);
	if (err && err_size)
		err[0] = '\0';
	p = calloc(1, sizeof(*p));
	if (!p)
		return config_oom(err, err_size);

	ret = config_parse_argv(cfg, p, argc, argv, err, err_size);
	if (ret || cfg->help || cfg->version)
		goto cleanup;
	ret = config_load_env(cfg, p, &env, err, err_size);
	if (ret)
		goto cleanup;
	ret = config_finish(cfg, p, err, err_size);
cleanup:
	config_pending_free(p);
	free(p);
	return ret;
}

/* ---- Usage ----------------------------------------------------------------------------- */

void config_usage(FILE *out)
{
	fputs("Usage: " CONFIG_PROG " [OPTIONS]\n"
	      "\n"
	      "Capture Core Lightning's tracing spans and export them as OpenTelemetry\n"
	      "traces (OTLP). With no source option, attach with eBPF to the lightningd\n"
	      "found on PATH (needs root, or CAP_BPF, CAP_PERFMON and, for uprobes on\n"
	      "current kernels, CAP_SYS_ADMIN).\n"
	      "\n"
	      "Precedence: defaults < OTEL_EXPORTER_OTLP_X < OTEL_EXPORTER_OTLP_TRACES_X\n"
	      "< options. Empty variables count as unset. BYTES accept a K, M or G suffix\n"
	      "(powers of 1024). MS are milliseconds.\n"
	      "\n"
	      "Sources:\n"
	      "  --file PATH             replay a CLN trace file (- for stdin); repeatable\n"
	      "  --follow                keep reading the files as they grow, like tail -F\n"
	      "  --socket PATH           receive spans on a unix datagram socket\n"
	      "  --lightningd PATH       capture this lightningd binary with eBPF;\n"
	      "                          repeatable (default: lightningd on PATH when no\n"
	      "                          other source is given)\n"
	      "  --no-plugins            do not attach to lightningd's C plugins\n"
	      "  --all-probes            also attach span_start/span_end (two more probe\n"
	      "                          hits per span; only span_emit is needed)\n"
	      "  --pid PID               capture only process PID; repeatable\n"
	      "                          (default: every process running the binaries)\n"
	      "  --ringbuf-size BYTES    eBPF ring buffer, a power of two from 4K to 1G\n"
	      "                          (default 16M)\n"
	      "\n"
	      "Export:\n"
	      "  --exporter NAME         otlp, stdout (OTLP/JSON lines) or console (traces\n"
	      "                          as indented trees, for a terminal) (default otlp)\n"
	      "  --endpoint URL          collector base URL: /v1/traces is appended for\n"
	      "                          http/*, grpc uses it as is\n"
	      "                          (OTEL_EXPORTER_OTLP_ENDPOINT; default\n"
	      "                          http://localhost:4318, or http://localhost:4317\n"
	      "                          for grpc). The full URL can instead be given in\n"
	      "                          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.\n"
	      "  --protocol PROTO        http/protobuf, http/json or grpc\n"
	      "                          (OTEL_EXPORTER_OTLP_PROTOCOL; default\n"
	      "                          http/protobuf)\n"
	      "  --header NAME=VALUE     add a request header, e.g. an API key; repeatable,\n"
	      "                          replaces a same-named one from\n"
	      "                          OTEL_EXPORTER_OTLP_HEADERS (k=v,k2=v2,\n"
	      "                          percent-encoded). Values are never logged.\n"
	      "  --compression ALG       gzip or none (OTEL_EXPORTER_OTLP_COMPRESSION;\n"
	      "                          default none)\n"
	      "  --timeout MS            per request (OTEL_EXPORTER_OTLP_TIMEOUT;\n"
	      "                          default 10000)\n"
	      "  --ca-cert FILE          CA bundle to verify the collector\n"
	      "                          (OTEL_EXPORTER_OTLP_CERTIFICATE)\n"
	      "  --client-cert FILE      TLS client certificate\n"
	      "                          (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)\n"
	      "  --client-key FILE       TLS client key (OTEL_EXPORTER_OTLP_CLIENT_KEY)\n"
	      "  --insecure              skip TLS verification\n"
	      "                          (OTEL_EXPORTER_OTLP_INSECURE=true|false;\n"
	      "                          default false)\n"
	      "  --max-inflight N        concurrent export requests, 1 to 64 (default 4)\n"
	      "  --retry-max-elapsed MS  give a batch up after retrying it this long\n"
	      "                          (default 300000: 5 minutes)\n"
	      "\n"
	      "Batching:\n"
	      "  --queue-size SPANS      spans held, waiting or in flight\n"
	      "                          (OTEL_BSP_MAX_QUEUE_SIZE; default 65536: the\n"
	      "                          spec's 2048 cannot hold the several thousand spans\n"
	      "                          CLN emits in its first seconds)\n"
	      "  --queue-bytes BYTES     payload bytes held, waiting or in flight, from 64K\n"
	      "                          to 16G (default 64M)\n"
	      "  --batch-size N          spans per export request, at most the queue size\n"
	      "                          (OTEL_BSP_MAX_EXPORT_BATCH_SIZE; default 512)\n"
	      "  --batch-delay MS        longest a span waits for its batch to fill\n"
	      "                          (OTEL_BSP_SCHEDULE_DELAY; default 5000)\n"
	      "  --export-timeout MS     longest one export may take\n"
	      "                          (OTEL_BSP_EXPORT_TIMEOUT; default 30000)\n"
	      "  --shutdown-timeout MS   on exit, time to flush what is queued\n"
	      "                          (default 5000)\n"
	      "\n"
	      "Resource:\n"
	      "  --service-name NAME     service.name of every span (OTEL_SERVICE_NAME;\n"
	      "                          default: a service.name in the resource\n"
	      "                          attributes, else the span's own, e.g. lightningd)\n"
	      "  --resource-attr K=V     add a resource attribute; repeatable, replaces a\n"
	      "                          same-named one from OTEL_RESOURCE_ATTRIBUTES\n"
	      "                          (k=v,k2=v2, percent-encoded)\n"
	      "\n"
	      "Operation:\n"
	      "  -v, --verbose           more messages; repeatable\n"
	      "  -q, --quiet             warnings and errors only\n"
	      "  --stats-interval SECS   log counters this often, 0 = off (default 60)\n"
	      "  --metrics-listen ADDR:PORT\n"
	      "                          serve counters for Prometheus, e.g.\n"
	      "                          127.0.0.1:9464 (default off)\n"
	      "  --user NAME             drop privileges to this user once capture is set\n"
	      "                          up (default: keep running as the caller)\n"
	      "  --rpc-file PATH         lightningd's JSON-RPC socket (lightning-rpc), to\n"
	      "                          add the node's version, id, alias and network to\n"
	      "                          the resource (default: with a live source, the\n"
	      "                          socket in the traced lightningd's directory, or\n"
	      "                          in ~/.lightning/<network>/)\n"
	      "  --suspend-ttl MS        how long suspend/resume times are kept for spans\n"
	      "                          not yet emitted (default 600000)\n"
	      "  -h, --help              show this help and exit\n"
	      "  -V, --version           show the version and exit\n"
	      "\n"
	      "Examples:\n"
	      "  Replay a trace file to stdout as OTLP/JSON:\n"
	      "    " CONFIG_PROG " --file trace.log --exporter stdout\n"
	      "  Bridge the local node to a collector on this machine:\n"
	      "    sudo " CONFIG_PROG " --lightningd /usr/local/bin/lightningd \\\n"
	      "      --endpoint http://localhost:4318\n"
	      "  Send to Honeycomb, with the API key in a header:\n"
	      "    sudo " CONFIG_PROG " --endpoint https://api.honeycomb.io \\\n"
	      "      --header x-honeycomb-team=YOUR_API_KEY --service-name my-node\n"
	      "  The same through the environment, over gRPC:\n"
	      "    sudo env OTEL_EXPORTER_OTLP_PROTOCOL=grpc \\\n"
	      "      OTEL_EXPORTER_OTLP_ENDPOINT=https://api.honeycomb.io:443 \\\n"
	      "      OTEL_EXPORTER_OTLP_HEADERS=x-honeycomb-team=YOUR_API_KEY \\\n"
	      "      OTEL_SERVICE_NAME=my-node " CONFIG_PROG "\n",
	      out);
}
