// SPDX-License-Identifier: MIT
/*
 * cln-otlp: wires the modules together and runs the loop. Nothing else lives here.
 *
 * Exit status: 0 when the sources were read to the end (or a signal stopped them) and
 * every accepted span was delivered; 1 when the run failed (input I/O error, spans lost);
 * 2 on bad options or a start-up failure. --check: 0 when every needed check passed, else 1.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "exe_paths.h"
#include "export_console.h"
#include "export_http.h"
#include "export_none.h"
#include "export_stdout.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "node_info.h"
#include "nodes.h"
#include "pipeline.h"
#include "privs.h"
#include "source_dir.h"
#include "source_file.h"
#include "source_socket.h"
#include "source_usdt.h"
#include "stats.h"
#include "suspend.h"

struct app {
	struct config cfg;
	/* The command line as given, for SIGHUP (argv itself is wiped of secrets). */
	int argc;
	char **argv;
	struct exporter *ex;
	struct otlp_resource_cfg res;
	struct otlp_kv attrs[CONFIG_MAX_LIST];
	char host[256];
	struct loop *loop;
	struct pipeline *pipeline;
	struct source_file *files[CONFIG_MAX_LIST];
	size_t n_files;
	struct source_dir *dirs[CONFIG_MAX_LIST]; /* --file patterns and directories */
	size_t n_dirs;
	size_t files_done;
	struct source_socket *socket;
	struct source_usdt *usdt;
	struct metrics *metrics;
	struct node_info *node; /* one identity for every span (--rpc-file, files) */
	struct nodes *nodes;	/* or one per node (live sources) */
	int sigfd;
	struct loop_timer *shutdown_timer;
	struct loop_timer *stats_timer;
	bool stopping;
	bool timed_out;
};

static void app_print_stats(const char *when)
{
	char line[1024];

	stats_format_line(line, sizeof(line));
	log_info("%s: %s", when, line);
}

static void app_idle(void *ctx)
{
	struct app *app = ctx;

	loop_stop(app->loop);
}

static void app_shutdown_timeout(struct loop *loop, void *ctx)
{
	struct app *app = ctx;

	log_warn("shutdown timeout (%llu ms) reached with %llu spans undelivered: giving up",
		 (unsigned long long)app->cfg.shutdown_timeout_ms,
		 (unsigned long long)stats.queue_spans);
	app->timed_out = true;
	pipeline_abort(app->pipeline);
	loop_stop(loop);
}

/* Stop reading, send what was read, and stop the loop once it is delivered (or timed out). */
static void app_begin_shutdown(struct app *app, bool with_deadline)
{
	if (app->stopping)
		return;
	app->stopping = true;
	source_usdt_drain(app->usdt);
	for (size_t i = 0; i < app->n_files; i++)
		source_file_stop(app->files[i]);
	for (size_t i = 0; i < app->n_dirs; i++)
		source_dir_stop(app->dirs[i]);
	source_socket_stop(app->socket);
	if (with_deadline)
		loop_timer_arm(app->shutdown_timer, app->cfg.shutdown_timeout_ms);
	pipeline_on_idle(app->pipeline, app_idle, app);
	pipeline_flush(app->pipeline);
}

static void app_file_done(void *ctx)
{
	struct app *app = ctx;
	bool live = app->socket || app->cfg.follow || app->usdt;

	/* With only files to read, the end of the last one is the end of the run. */
	if (++app->files_done == app->n_files + app->n_dirs && !live)
		app_begin_shutdown(app, false);
}

/*
 * SIGHUP: what a reload can safely redo. Logs go to stderr (nothing to reopen) and the
 * settings are read once at start (systemd reads the EnvironmentFile itself), so there is
 * nothing yet: the run and its queue go on untouched. Settings that can be re-read safely
 * (a header file) belong here.
 */
static void app_reload(struct app *app)
{
	const struct passwd *pw;
	struct config fresh;
	char err[512] = "";
	int ret;

	if (!app->cfg.header_file || !app->ex || !app->ex->ops->reload) {
		log_info("SIGHUP: nothing to reload (only --header-file is re-read, for the OTLP "
			 "exporter); the other settings are read at start: restart to apply them");
		return;
	}
	/* Everything again, so that the headers keep their precedence; only they are used. */
	config_init(&fresh);
	ret = config_load(&fresh, app->argc, app->argv, (config_getenv_fn)getenv, err, sizeof(err));
	if (ret == 0)
		ret = app->ex->ops->reload(app->ex, &fresh, err, sizeof(err));
	if (ret < 0) {
		pw = getpwuid(geteuid());
		log_warn("SIGHUP: headers not reloaded, those in use stay: %s (cln-otlp runs as "
			 "user %s now: the file must be readable by it)",
			 err, pw ? pw->pw_name : "?");
	} else {
		log_info("SIGHUP: re-read --header-file %s: %zu request headers, used from the "
			 "next request on",
			 fresh.header_file, fresh.n_headers);
	}
	config_free(&fresh);
}

static void app_signal(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct app *app = ctx;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			app_print_stats("stats");
			continue;
		}
		if (si.ssi_signo == SIGHUP) {
			app_reload(app);
			continue;
		}
		if (app->stopping) {
			log_warn("second signal: giving up on undelivered spans");
			app->timed_out = true;
			pipeline_abort(app->pipeline);
			loop_stop(loop);
			return;
		}
		log_info("%s: stopping; flushing (up to %llu ms)", strsignal((int)si.ssi_signo),
			 (unsigned long long)app->cfg.shutdown_timeout_ms);
		app_begin_shutdown(app, true);
	}
}

static void app_stats_timer(struct loop *loop, void *ctx)
{
	struct app *app = ctx;

	app_print_stats("stats");
	loop_timer_arm(app->stats_timer, app->cfg.stats_interval_s * 1000);
}

/*
 * Every signal whose default action ends the process, other than a fault, is a request to
 * stop: it stops the sources and delivers what was read, as SIGTERM does (a kill must not
 * lose the queue). SIGUSR1 prints the counters, SIGHUP reloads (app_reload). SIGPIPE and
 * SIGXFSZ are ignored: the write that raised them fails instead, and is counted. Faults
 * (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP) keep their default action.
 */
static const int app_stop_signals[] = {
	SIGINT,	 SIGTERM,   SIGQUIT, SIGUSR2, SIGALRM, SIGVTALRM,
	SIGPROF, SIGSTKFLT, SIGIO,   SIGPWR,  SIGXCPU,
};

static int app_signals(struct app *app)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(app_stop_signals) / sizeof(app_stop_signals[0]); i++)
		sigaddset(&set, app_stop_signals[i]);
	/* The real-time signals the C library leaves free also end a process by default. */
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaddset(&set, sig);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	app->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (app->sigfd < 0)
		return -errno;
	return loop_add(app->loop, app->sigfd, EPOLLIN, app_signal, app);
}

static struct exporter *app_exporter(struct app *app, char *err, size_t err_size)
{
	switch (app->cfg.exporter) {
	case CONFIG_EXPORTER_STDOUT:
		return export_stdout__new(&app->res, stdout);
	case CONFIG_EXPORTER_OTLP:
		return export_http__new(app->loop, &app->cfg, &app->res, err, err_size);
	case CONFIG_EXPORTER_NONE:
		log_info("exporter none: spans are captured and counted (as exported), nothing "
			 "is sent");
		return export_none__new();
	case CONFIG_EXPORTER_CONSOLE: {
		/* How long a tree waits for a parent that may never come (export_console.h). */
		const char *t = getenv("CLN_OTLP_CONSOLE_TIMEOUT_MS");
		uint64_t ms = EXPORT_CONSOLE_DEFAULT_TIMEOUT_MS;

		if (t && *t && export_console_parse_ms(t, &ms) < 0) {
			snprintf(err, err_size,
				 "CLN_OTLP_CONSOLE_TIMEOUT_MS: expected milliseconds "
				 "(0 to 86400000)");
			return NULL;
		}
		return export_console__new(app->loop, stdout, &app->res, ms);
	}
	}
	return NULL;
}

/* The resource every span shares: host, service name, the configured attributes. */
static void app_resource(struct app *app)
{
	if (gethostname(app->host, sizeof(app->host) - 1) == 0)
		app->res.host_name = app->host;
	app->res.service_name = app->cfg.service_name;
	app->res.raw_tags = app->cfg.raw_tags;
	for (size_t i = 0; i < app->cfg.n_resource_attrs; i++)
		app->attrs[i] = (struct otlp_kv){app->cfg.resource_attrs[i].key,
						 app->cfg.resource_attrs[i].value};
	app->res.attrs = app->attrs;
	app->res.n_attrs = app->cfg.n_resource_attrs;
}

/* The loop, its signals and timers. */
static int app_start_loop(struct app *app)
{
	app->loop = loop__new();
	if (!app->loop || app_signals(app) < 0) {
		log_error("cannot set up the event loop: %s", strerror(errno));
		return -1;
	}
	app->shutdown_timer = loop_timer__new(app->loop, app_shutdown_timeout, app);
	app->stats_timer = loop_timer__new(app->loop, app_stats_timer, app);
	if (!app->shutdown_timer || !app->stats_timer)
		return -1;
	if (app->cfg.stats_interval_s)
		loop_timer_arm(app->stats_timer, app->cfg.stats_interval_s * 1000);
	return 0;
}

static void app_saw_pid(void *ctx, uint32_t pid)
{
	nodes_saw(ctx, pid);
}

static bool app_hold(void *ctx, uint64_t now_ms, uint64_t *until_ms)
{
	return nodes_hold(ctx, now_ms, until_ms);
}

/*
 * In the finder helper, just forked: it needs none of our secrets (header values, the
 * endpoint's password, the environment they may have come from), so its copy of them goes.
 */
static void app_scrub(void *ctx)
{
	struct app *app = ctx;

	for (size_t i = 0; i < app->cfg.n_headers; i++)
		if (app->cfg.headers[i].value)
			explicit_bzero(app->cfg.headers[i].value,
				       strlen(app->cfg.headers[i].value));
	if (app->cfg.endpoint)
		explicit_bzero(app->cfg.endpoint, strlen(app->cfg.endpoint));
	for (int i = 0; app->argv && i < app->argc; i++)
		explicit_bzero(app->argv[i], strlen(app->argv[i]));
	for (char **e = environ; e && *e; e++)
		explicit_bzero(*e, strlen(*e));
}

/*
 * The node's identity. Live sources tell each span's process: each node gets its own
 * (nodes), looked up by the finder helper, forked now while we still have the privileges
 * it keeps. --rpc-file names one node for every span, and followed files (which name no
 * live process) take the one under the user's ~/.lightning (node_info): asked before the
 * sources open, so the first batch already carries it (at most a second, once). A replayed
 * file may come from any node: it gets none.
 */
static int app_start_identity(struct app *app, char *err, size_t err_size)
{
	if (!app->cfg.rpc_file && (app->cfg.usdt || app->cfg.socket_path)) {
		struct finder_helper *helper = NULL;

		if (finder_helper__spawn(app->cfg.user, app_scrub, app, &helper, err, err_size) <
		    0) {
			log_warn("node identity: %s; looking nodes up in this process instead, "
				 "with what it keeps of its privileges",
				 err);
			err[0] = '\0';
			helper = NULL;
		}
		app->nodes = nodes__new(app->loop, helper, &app->res);
		if (!app->nodes) {
			snprintf(err, err_size, "cannot set up the node lookup: out of memory");
			return -1;
		}
		return 0;
	}
	if (app->cfg.rpc_file || app->cfg.follow) {
		struct node_info_cfg ncfg = {.rpc_file = app->cfg.rpc_file,
					     .startup_wait_ms = 1000};

		app->node = node_info__new(app->loop, &ncfg, &app->res);
		if (!app->node) {
			snprintf(err, err_size,
				 "cannot set up the node identity lookup: out of memory");
			return -1;
		}
	}
	return 0;
}

/* The node's identity, the exporter, the pipeline and /metrics: everything but sources. */
static int app_start_core(struct app *app, char *err, size_t err_size)
{
	struct pipeline_cfg pcfg = {
		.queue = {.max_spans = app->cfg.max_queue_spans,
			  .max_bytes = app->cfg.max_queue_bytes,
			  .batch_size = app->cfg.batch_size},
		.schedule_delay_ms = app->cfg.schedule_delay_ms,
		.suspend_ttl_ms = app->cfg.suspend_ttl_ms,
		.suspend_max = SUSPEND_DEFAULT_MAX,
		.volume = {.sample = app->cfg.sample_ratio < 1.0,
			   .ratio = app->cfg.sample_ratio,
			   .keep_errors = app->cfg.keep_errors,
			   .keep_slow = app->cfg.keep_slow,
			   .keep_slower_ns = app->cfg.keep_slower_ns,
			   .rules = (const char *const *)app->cfg.drop_spans,
			   .n_rules = app->cfg.n_drop_spans,
			   .hold_ms = app->cfg.hold_ms,
			   .hold_spans = app->cfg.hold_spans,
			   .hold_bytes = app->cfg.hold_bytes},
	};
	struct exporter *ex;

	if (app_start_identity(app, err, err_size) < 0)
		return -1;
	ex = app_exporter(app, err, err_size);
	app->ex = ex;
	if (!ex) {
		if (!err[0])
			snprintf(err, err_size, "cannot create the exporter: out of memory");
		return -1;
	}
	app->pipeline = pipeline__new(app->loop, &pcfg, ex);
	if (!app->pipeline) {
		snprintf(err, err_size, "cannot create the pipeline: out of memory");
		return -1;
	}
	if (app->nodes) {
		struct pipeline_hooks hooks = {app_saw_pid, app_hold, app->nodes};

		pipeline_set_hooks(app->pipeline, &hooks);
	}
	/* Before the sources: a taken port fails fast, and binding needs the privileges. */
	if (app->cfg.metrics_listen) {
		app->metrics = metrics__new(app->loop, app->cfg.metrics_listen, err, err_size);
		if (!app->metrics)
			return -1;
	}
	return 0;
}

static int app_start_sources(struct app *app, char *err, size_t err_size)
{
	if (app->cfg.usdt) {
		app->usdt = source_usdt__new(app->loop, &app->cfg, app->pipeline, err, err_size);
		if (!app->usdt)
			return -1;
	}
	if (app->cfg.socket_path) {
		app->socket =
			source_socket__new(app->loop, &app->cfg, app->pipeline, err, err_size);
		if (!app->socket)
			return -1;
	}
	for (size_t i = 0; i < app->cfg.n_files; i++) {
		if (source_dir_wanted(app->cfg.files[i])) {
			app->dirs[app->n_dirs] =
				source_dir__new(app->loop, app->pipeline, app->cfg.files[i],
						app->cfg.follow, app_file_done, app, err, err_size);
			if (!app->dirs[app->n_dirs++])
				return -1;
			continue;
		}
		struct source_file *f =
			source_file__new(app->loop, app->pipeline, app->cfg.files[i],
					 app->cfg.follow, app_file_done, app, err, err_size);
		if (!f)
			return -1;
		app->files[app->n_files++] = f;
	}
	return 0;
}

/* No binary will be attached again: what was kept for it can go. */
static void app_no_reattach(void *ctx)
{
	char err[256];

	if (privs_drop_all(err, sizeof(err)) < 0)
		log_warn("privileges: %s", err);
}

static int app_start(struct app *app)
{
	struct privs_opts po = {.user = app->cfg.user};
	const struct {
		const char *who, *path;
	} tls[] = {{"--ca-cert", app->cfg.ca_cert},
		   {"--client-cert", app->cfg.client_cert},
		   {"--client-key", app->cfg.client_key}};
	bool https = app->cfg.exporter == CONFIG_EXPORTER_OTLP && app->cfg.endpoint &&
		     !strncasecmp(app->cfg.endpoint, "https://", 8);
	char err[512] = "";

	app_resource(app);
	if (app_start_loop(app) < 0)
		return -1;
	if (app_start_core(app, err, sizeof(err)) < 0 ||
	    app_start_sources(app, err, sizeof(err)) < 0)
		goto fail;
	/* Every source is set up: give up what the rest of the run does not need. */
	po.attach = app->usdt != NULL;
	po.discover = source_usdt_discovering(app->usdt);
	if (privs_drop(&po, err, sizeof(err)) < 0)
		goto fail;
	/* The spool's files are written and removed as the user we are now. */
	if (app->cfg.exporter == CONFIG_EXPORTER_OTLP &&
	    export_http_spool_check(app->ex, err, sizeof(err)) < 0)
		goto fail;
	/*
	 * libcurl opens these at each https connection, as the user we are now: fail now, not
	 * then (export_http checked them as the user we were).
	 */
	for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]) && https; i++)
		if (tls[i].path &&
		    privs_check_readable(tls[i].who, tls[i].path, err, sizeof(err)) < 0)
			goto fail;
	source_usdt_on_no_reattach(app->usdt, app_no_reattach, app);
	return 0;
fail:
	log_error("%s", err);
	return -1;
}

static void app_free(struct app *app)
{
	metrics__free(app->metrics);
	for (size_t i = 0; i < app->n_files; i++)
		source_file__free(app->files[i]);
	for (size_t i = 0; i < app->n_dirs; i++)
		source_dir__free(app->dirs[i]);
	source_socket__free(app->socket);
	source_usdt__free(app->usdt);
	pipeline__free(app->pipeline);
	nodes__free(app->nodes);
	node_info__free(app->node);
	loop_timer__free(app->stats_timer);
	loop_timer__free(app->shutdown_timer);
	if (app->sigfd > 0)
		close(app->sigfd);
	loop__free(app->loop);
	exe_paths_reset();
	config_free(&app->cfg);
	for (int i = 0; app->argv && i < app->argc; i++) {
		explicit_bzero(app->argv[i], strlen(app->argv[i]));
		free(app->argv[i]);
	}
	free(app->argv);
}

/* A copy of the command line (the original gets wiped): NULL when out of memory. */
static char **app_copy_argv(int argc, char **argv)
{
	char **copy = calloc((size_t)argc + 1, sizeof(*copy));

	for (int i = 0; copy && i < argc; i++) {
		copy[i] = strdup(argv[i]);
		if (!copy[i]) {
			while (i--)
				free(copy[i]);
			free(copy);
			return NULL;
		}
	}
	return copy;
}

static int app_exit_status(const struct app *app)
{
	int status = 0;

	for (size_t i = 0; i < app->n_files; i++) {
		if (app->n_files > 1 || stats_rejected_total() || log_get_level() >= LOG_LVL_INFO)
			source_file_summary(app->files[i], stderr);
		if (source_file_error(app->files[i]))
			status = 1;
	}
	for (size_t i = 0; i < app->n_dirs; i++) {
		source_dir_summary(app->dirs[i], stderr);
		if (source_dir_error(app->dirs[i]))
			status = 1;
	}
	app_print_stats("done");
	if (stats_dropped_total() || stats.partial_rejected || stats.unconfirmed ||
	    stats.spool_evicted) {
		log_error("%llu spans were not delivered (%llu dropped, %llu refused by the "
			  "collector, %llu answered with something that is not an OTLP response, "
			  "%llu evicted from a full spool)",
			  (unsigned long long)(stats_dropped_total() + stats.partial_rejected +
					       stats.unconfirmed + stats.spool_evicted),
			  (unsigned long long)stats_dropped_total(),
			  (unsigned long long)stats.partial_rejected,
			  (unsigned long long)stats.unconfirmed,
			  (unsigned long long)stats.spool_evicted);
		status = 1;
	}
	return status;
}

/*
 * -v/-q win over OTEL_LOG_LEVEL, which wins over the default (info). Then what the
 * environment got wrong but the run survives, now that it can be said.
 */
static void app_log_level(const struct config *cfg)
{
	enum log_level level =
		cfg->log_level == CONFIG_LOG_UNSET ? LOG_LVL_INFO : (enum log_level)cfg->log_level;

	if (cfg->verbosity)
		level = cfg->verbosity > 0 ? LOG_LVL_DEBUG : LOG_LVL_WARN;
	log_set_level(level);
	for (size_t i = 0; i < cfg->n_warnings; i++)
		log_warn("%s", cfg->warnings[i]);
	if (cfg->warnings_lost)
		log_warn("and %zu more warnings about the configuration", cfg->warnings_lost);
}

int main(int argc, char **argv)
{
	struct app app = {.sigfd = -1};
	char err[512];
	int status = 2;

	/*
	 * Secrets (headers, a URL's password, the environment) are in memory from the start:
	 * no process of the same user may ptrace this one or read its /proc/PID/environ or mem
	 * (it also means no core dump). Always, not only with a secret configured.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		fprintf(stderr, "cln-otlp: cannot make the process non-dumpable: %s\n",
			strerror(errno));
		return 2;
	}
	app.argc = argc;
	app.argv = app_copy_argv(argc, argv);
	if (!app.argv) {
		fprintf(stderr, "cln-otlp: out of memory\n");
		return 2;
	}
	config_init(&app.cfg);
	if (config_load(&app.cfg, argc, argv, (config_getenv_fn)getenv, err, sizeof(err)) < 0) {
		config_wipe_argv(argc, argv);
		fprintf(stderr, "cln-otlp: %s\n", err);
		app_free(&app);
		return 2;
	}
	/* Copied: ps and /proc/PID/cmdline no longer show header values or a URL password. */
	config_wipe_argv(argc, argv);
	if (app.cfg.help) {
		config_usage(stdout);
		app_free(&app);
		return 0;
	}
	if (app.cfg.version) {
		printf("cln-otlp %s\n", CLN_OTLP_VERSION);
		app_free(&app);
		return 0;
	}
	app_log_level(&app.cfg);
	/*
	 * OTEL_SDK_DISABLED=true (sdk-environment-variables.md: "Disable the SDK for all
	 * signals"): cln-otlp is nothing but an exporter, so a disabled one has nothing to do.
	 * It neither captures (eBPF probes cost lightningd something) nor runs: it exits 0 at
	 * once, so a service manager does not restart it, saying why. --check says so too.
	 */
	if (app.cfg.sdk_disabled) {
		log_info("OTEL_SDK_DISABLED is true: telemetry is disabled, nothing to capture or "
			 "export; exiting");
		app_free(&app);
		return 0;
	}
	if (app.cfg.check) {
		/* The preflight: what a start would do, checked and printed; nothing runs. */
		if (!app.cfg.verbosity && app.cfg.log_level == CONFIG_LOG_UNSET)
			log_set_level(LOG_LVL_WARN); /* the lines on stdout say it all */
		status = check_run(&app.cfg, stdout);
		app_free(&app);
		return status;
	}
	if (app_start(&app) == 0) {
		int r = loop_run(app.loop);

		if (r < 0)
			log_error("event loop failed: %s", strerror(-r));
		status = app_exit_status(&app);
		if (r < 0)
			status = 1;
	}
	app_free(&app);
	return status;
}
