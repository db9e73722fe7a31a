/* SPDX-License-Identifier: MIT */
/*
 * config: command line and OTEL_* environment, validated into one struct. Pure: the
 * environment is read through a callback so tests can supply their own.
 *
 * Every option is one row of one table (config.c): its long and short name, its variable and
 * the variable's OTEL_EXPORTER_OTLP_TRACES_ form, its type, bounds, unit, default, field and
 * help. The command line, the environment, --help and the man page (made from --help) all
 * come from that table.
 *
 * Precedence: defaults < OTEL_EXPORTER_OTLP_X < OTEL_EXPORTER_OTLP_TRACES_X < flags.
 * Following the OpenTelemetry environment specification, a variable's unknown enum value or
 * bad boolean is a warning (cfg->warnings), not an error: the default (or the base variable
 * under a bad TRACES_ one) is used; flags stay strict.
 * Headers: the variable's < --header-file's < --header's (a same-named one is replaced).
 * Empty variables count as unset. Errors name the flag or variable at fault.
 *
 * Pure but for --header-file, which config_load reads (config_read_header_file).
 */
#ifndef CLN_OTLP_CONFIG_H
#define CLN_OTLP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_LIST	    32 /* files, binaries, pids, headers, resource attributes */
#define CONFIG_MAX_WARNINGS 16 /* warnings kept from one load; more are counted */
#define CONFIG_WARNING_LEN  256
#define CONFIG_LOG_UNSET    -1 /* log_level: OTEL_LOG_LEVEL not given */

enum config_exporter {
	CONFIG_EXPORTER_OTLP = 0,
	CONFIG_EXPORTER_STDOUT,
	CONFIG_EXPORTER_CONSOLE,
	CONFIG_EXPORTER_NONE, /* capture and count, send nothing (OTEL_TRACES_EXPORTER=none) */
};

enum config_protocol {
	CONFIG_PROTO_HTTP_PROTOBUF = 0,
	CONFIG_PROTO_HTTP_JSON,
	CONFIG_PROTO_GRPC,
};

/* A header (its value is a secret: never logged) or a resource attribute. */
struct config_kv {
	char *key;
	char *value;
};

struct config {
	/* sources */
	char *files[CONFIG_MAX_LIST];
	size_t n_files;
	bool follow;
	char *socket_path;
	char *socket_mode_arg;			  /* --socket-mode as given; NULL: the default */
	uint32_t socket_mode;			  /* its permission bits (config_load sets it) */
	char *socket_group;			  /* name or gid; NULL: the creating user's */
	char *socket_allow_uids[CONFIG_MAX_LIST]; /* names or uids; none: anyone */
	size_t n_socket_allow_uids;
	char *lightningd[CONFIG_MAX_LIST];
	size_t n_lightningd;
	bool usdt; /* capture with eBPF (--lightningd given, or no other source) */
	bool no_plugins;
	bool all_probes; /* also attach span_start/span_end (costs two more uprobe hits a span) */
	uint32_t pids[CONFIG_MAX_LIST];
	size_t n_pids;
	uint64_t ringbuf_size; /* bytes, power of two */

	/* export */
	enum config_exporter exporter;
	enum config_protocol protocol;
	/*
	 * The collector's URL as given (flag, variable or default). With endpoint_append, a base
	 * URL: the exporter appends the signal path (v1/traces) to its path; otherwise the URL
	 * requests go to (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). gRPC takes scheme://host:port or
	 * host:port, its path ignored (the Export method has its own).
	 */
	char *endpoint;
	bool endpoint_append;
	struct config_kv headers[CONFIG_MAX_LIST];
	size_t n_headers;
	char *header_file; /* --header-file: read by config_load, merged into headers */
	bool gzip;
	uint64_t timeout_ms; /* per request */
	char *ca_cert;
	char *client_cert;
	char *client_key;
	/*
	 * OTEL_EXPORTER_OTLP_INSECURE, --insecure: a gRPC endpoint without a scheme (host:port)
	 * is plaintext (h2c) rather than TLS. Nothing else: https:// always verifies.
	 */
	bool insecure;
	bool tls_skip_verify; /* --tls-skip-verify: https without certificate checks */
	unsigned max_inflight;
	uint64_t retry_max_elapsed_ms;
	char *spool_dir;      /* --spool: undelivered batches kept here (spool.h); NULL: none */
	uint64_t spool_bytes; /* --spool-size */

	/* batching */
	size_t max_queue_spans;
	size_t max_queue_bytes;
	size_t batch_size;
	uint64_t schedule_delay_ms;
	uint64_t export_timeout_ms; /* OTEL_BSP_EXPORT_TIMEOUT */
	uint64_t shutdown_timeout_ms;

	/* volume (volume.h) */
	char *drop_spans[CONFIG_MAX_LIST]; /* --drop-span GLOB or GLOB<DURATION, as given */
	size_t n_drop_spans;
	char *sample_arg;	 /* --sample as given; NULL: OTEL_TRACES_SAMPLER decides */
	double sample_ratio;	 /* of traces kept by the sampler, 0 to 1 (config_load sets it) */
	bool keep_errors;	 /* --keep-errors */
	char *keep_slower_arg;	 /* --keep-slower-than as given */
	bool keep_slow;		 /* --keep-slower-than given: keep_slower_ns applies */
	uint64_t keep_slower_ns; /* (config_load sets it) */
	uint64_t hold_ms;	 /* a held trace is decided this long after its first span */
	size_t hold_spans;	 /* spans held waiting for their trace's decision, at most */
	size_t hold_bytes;	 /* their memory, at most */

	/* resource */
	char *service_name;
	struct config_kv resource_attrs[CONFIG_MAX_LIST];
	size_t n_resource_attrs;
	bool raw_tags; /* --raw-tags: CLN's tag names, not the semantic conventions' */

	/* operation */
	int verbosity;	   /* 0 default, >0 -v, <0 -q */
	int log_level;	   /* OTEL_LOG_LEVEL as an enum log_level, or CONFIG_LOG_UNSET; -v/-q win */
	bool sdk_disabled; /* OTEL_SDK_DISABLED=true: the caller exits at once, doing nothing */
	uint64_t stats_interval_s;
	char *metrics_listen;
	char *user;
	char *rpc_file;
	uint64_t suspend_ttl_ms; /* suspend/resume times kept for spans not yet emitted */

	bool check; /* --check: run the preflight checks (check.h) and exit */
	bool help;
	bool version;

	/*
	 * What the environment got wrong but the run survives (an unknown enum value, a bad
	 * boolean: the spec says warn and go on), and advice about likely mistakes: the caller
	 * logs them once logging is set up. None holds a secret.
	 */
	char warnings[CONFIG_MAX_WARNINGS][CONFIG_WARNING_LEN];
	size_t n_warnings;
	size_t warnings_lost; /* past CONFIG_MAX_WARNINGS, counted only */
};

typedef const char *(*config_getenv_fn)(const char *name);

/* Every setting at its default (the table's). */
void config_init(struct config *cfg);
void config_free(struct config *cfg);

/*
 * Defaults, then @getenv (NULL: no environment), then @argv. Returns 0, or -EINVAL with a
 * message in @err naming the flag or variable and what it accepts (-ENOMEM: out of memory).
 * @cfg is initialised here (config_init), so it must not hold a loaded config; on failure
 * it may hold some strings: config_free() it either way. -h/-V stop parsing at once and
 * return 0 with cfg->help/cfg->version set. Uses getopt_long (resets optind; argv is not
 * permuted). Header values and endpoint URLs are never quoted in messages.
 */
int config_load(struct config *cfg, int argc, char **argv, config_getenv_fn getenv_fn, char *err,
		size_t err_size);

/*
 * Parse "k=v,k2=v2" with percent-decoded keys and values (OTEL headers, resource attrs).
 * Spaces and tabs around keys and values are trimmed, blank entries skipped, a value may
 * hold '='. Fills out[0..*n) with allocated strings (the caller frees them). Returns 0,
 * -EINVAL (an entry without '=', an empty key, a malformed escape) or -E2BIG (more than
 * @max entries); on error nothing stays allocated and *n is 0.
 */
int config_parse_kv_list(const char *s, struct config_kv *out, size_t max, size_t *n);
/*
 * Percent-decode @len bytes of @s into a new string; NULL on a malformed escape ('%' not
 * followed by two hex digits), on "%00" (the result is a C string) or on ENOMEM.
 */
char *config_percent_decode(const char *s, size_t len);

/*
 * Headers in the text of a --header file: one "NAME: VALUE" a line (the name before the
 * first ':', both trimmed of spaces and tabs, the value taken literally: no decoding), a
 * CRLF line end is fine, blank lines and lines starting with '#' are skipped. Fills
 * out[0..*n) with allocated strings (a later same-named entry is kept as well: the caller
 * merges). Returns 0, -EINVAL (a line without ':', an empty name, a NUL byte; its number in
 * *@bad_line) or -E2BIG (more than @max entries); on error nothing stays allocated.
 */
int config_parse_header_lines(const char *text, size_t len, struct config_kv *out, size_t max,
			      size_t *n, size_t *bad_line);
/*
 * Read the headers of the --header file @path (at most CONFIG_HEADER_FILE_MAX bytes). The
 * file holds secrets, so it must be a regular file owned by the effective user or root,
 * neither readable nor writable by group or others. Returns 0, or a negative errno with a
 * message that says what to do (never quoting the file's content).
 */
int config_read_header_file(const char *path, struct config_kv *out, size_t max, size_t *n,
			    char *err, size_t err_size);
#define CONFIG_HEADER_FILE_MAX (64u * 1024)

/*
 * Overwrite in place the secrets in @argv, already copied by config_load: --header values
 * and the password of an --endpoint's user:password@, so that ps and /proc/PID/cmdline do not
 * show them. Returns how many values were wiped.
 */
size_t config_wipe_argv(int argc, char **argv);

/* Usage text (--help), made from the option table. */
void config_usage(FILE *out);

#endif
