// SPDX-License-Identifier: MIT
/*
 * cln-emitter: fires Core Lightning's tracing probes exactly as lightningd does (provider
 * `lightningd`, span_emit(char *id, char *json), span_start/span_end/span_suspend/
 * span_resume(u64 id)), either replaying CLN trace files (CLN_DEV_TRACE_FILE output) or
 * firing synthetic spans of an exact payload size. Used by the integration tests and by the
 * probe-cost benchmarks; see README.md for the command line.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/sdt.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EMITTER_MAX_JSON   65536 /* synthetic payloads may exceed CLN's 2048 to test cutting */
#define EMITTER_MAX_EVENTS 10000000

enum ev_kind {
	EV_START,
	EV_END,
	EV_EMIT,
	EV_SUSPEND,
	EV_RESUME,
};

struct ev {
	enum ev_kind kind;
	uint64_t id;
	char *json; /* EV_EMIT: owned, NUL-terminated */
	size_t len; /* strlen(json) */
};

struct evs {
	struct ev *v;
	size_t n, cap;
};

struct opts {
	double rate;	     /* span_emit fires per second; 0: as fast as possible */
	unsigned long burst; /* --burst: span_emit fired back to back per deadline */
	unsigned long work;  /* --work: iterations of busy work before each burst */
	unsigned long repeat;
	unsigned long synthetic;
	size_t size;
	const char *log_path;
	const char *wait_file;
	const char *linger_file; /* --linger-file: after firing, wait for it before exiting */
	bool wait_signal;
	bool emit_only;
	bool unique_ids;
	bool quiet;
	const char *pid_file;
	unsigned long seed;	       /* --seed, 0 when not given */
	unsigned long child_synthetic; /* --child-synthetic: spans of the forked child */
	const char *socket_path;       /* --socket: each span_emit also sent there */
};

/*
 * --socket: as lightningd with CLN_TRACE_SOCKET, each span_emit payload is also sent as one
 * datagram, non-blocking; what the socket refuses is lost, counted here.
 */
#define SEND_HIST_NS 10	  /* the width of one bucket of sendto times */
#define SEND_HIST    5000 /* buckets: up to 50 us; the last one holds the longer calls */
struct emit_socket {
	int fd;
	struct sockaddr_un addr;
	uint64_t sent, eagain, unreachable, other;
	int first_errno;
	/*
	 * The wall time each sendto took: its median is what one costs the node, free of the
	 * noise of a shared machine (an interrupt or a preemption lands in a few calls only).
	 */
	uint32_t hist[SEND_HIST];
	uint64_t calls, total_ns;
};

static void usage(FILE *out)
{
	fputs("usage: cln-emitter [options] [TRACE_FILE...]\n"
	      "Fire lightningd:span_* USDT probes like Core Lightning does.\n"
	      "  --rate N[/s]      span_emit fires per second (0: as fast as possible; default 0)\n"
	      "  --burst N         with --rate: fire N span_emit back to back per deadline\n"
	      "                    (default 1; 3 is a node answering getinfo calls)\n"
	      "  --work N          before each burst, N iterations of busy work (~1 ns each): a\n"
	      "                    node busy between spans, not asleep (cost benchmarks)\n"
	      "  --repeat N        replay the input N times (default 1)\n"
	      "  --unique-ids      give every repeat its own span ids (id XOR repeat number)\n"
	      "  --synthetic N     fire N synthetic spans instead of (or after) trace files\n"
	      "  --size B          exact JSON size of synthetic spans in bytes (default 280)\n"
	      "  --seed N          seed of the synthetic span ids (default: fixed; runs repeat)\n"
	      "  --emit-only       fire only span_emit (no start/end/suspend/resume)\n"
	      "  --log FILE        write every fired span as '<id> <json>' (suspend/resume as\n"
	      "                    'span_suspend <id>' / 'span_resume <id>')\n"
	      "  --wait-file FILE  wait until FILE exists before firing\n"
	      "  --linger-file FILE  after firing, wait until FILE exists before exiting (a\n"
	      "                    node stays up: its identity can still be asked)\n"
	      "  --wait-signal     wait for SIGUSR1 before firing\n"
	      "  --pid-file FILE   write the process id to FILE before waiting\n"
	      "  --child-synthetic N  fork a child (a subdaemon's stand-in) that waits likewise\n"
	      "                    and fires N synthetic spans with seed+1 (SIGUSR1 is passed on;\n"
	      "                    --log and --pid-file get '.child' files); wait for it\n"
	      "  --socket PATH     also send each span_emit payload as one datagram to the\n"
	      "                    unix datagram socket PATH, non-blocking (CLN_TRACE_SOCKET);\n"
	      "                    refused datagrams are counted in the summary\n"
	      "  --quiet           no summary on stderr\n"
	      "lightningd's options are accepted and ignored, so a copy named lightningd runs\n"
	      "with a node's command line: --lightning-dir D, --network N, --rpc-file F (or\n"
	      "--opt=VALUE), --mainnet, --testnet, --testnet4, --signet, --regtest\n",
	      out);
}

static int evs_push(struct evs *e, enum ev_kind kind, uint64_t id, char *json)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 1024;
		struct ev *v;

		if (cap > EMITTER_MAX_EVENTS)
			return -E2BIG;
		v = realloc(e->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n].kind = kind;
	e->v[e->n].id = id;
	e->v[e->n].json = json;
	e->v[e->n].len = json ? strlen(json) : 0;
	e->n++;
	return 0;
}

static bool parse_id(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n != 16)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		v = v << 4 | d;
	}
	*out = v;
	return true;
}

/* One trace file: `span_start <id> <name>`, `span_end <id>`, `span_emit <id> <json>`... */
static int load_trace(const char *path, struct evs *e)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	int err = 0;

	if (!f) {
		fprintf(stderr, "cln-emitter: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *sp, *id, *rest;
		enum ev_kind kind;
		size_t idlen;
		uint64_t v;

		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		sp = strchr(line, ' ');
		if (!sp)
			goto bad;
		*sp = '\0';
		id = sp + 1;
		rest = strchr(id, ' ');
		idlen = rest ? (size_t)(rest - id) : strlen(id);
		if (!parse_id(id, idlen, &v))
			goto bad;
		if (!strcmp(line, "span_start"))
			kind = EV_START;
		else if (!strcmp(line, "span_end"))
			kind = EV_END;
		else if (!strcmp(line, "span_emit"))
			kind = EV_EMIT;
		else if (!strcmp(line, "span_suspend"))
			kind = EV_SUSPEND;
		else if (!strcmp(line, "span_resume"))
			kind = EV_RESUME;
		else
			goto bad;
		if (kind == EV_EMIT) {
			char *json;

			if (!rest)
				goto bad;
			json = strdup(rest + 1);
			if (!json) {
				err = -ENOMEM;
				break;
			}
			err = evs_push(e, kind, v, json);
			if (err)
				free(json);
		} else {
			err = evs_push(e, kind, v, NULL);
		}
		if (err)
			break;
		continue;
	bad:
		fprintf(stderr, "cln-emitter: %s:%lu: not a CLN trace line\n", path, lineno);
		err = -EINVAL;
		break;
	}
	free(line);
	fclose(f);
	return err;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
	/* splitmix64: deterministic, so runs are reproducible */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (z ^ (z >> 31)) | 1; /* never zero */
}

/*
 * A CLN-shaped span whose JSON is exactly @size bytes: the tag `query` is padded to fit.
 * Every 8th span is a root (no parentId); the others are children of their group's root.
 */
static char *synthetic_json(size_t i, size_t size, uint64_t id, uint64_t root, uint64_t trace_hi,
			    uint64_t trace_lo)
{
	static const char fill[] = "SELECT x FROM t WHERE n = 'synthetic-0123456789-abcdefghij' ";
	char head[512], tail[128];
	bool is_root = id == root;
	size_t hl, tl, pad;
	char *out;

	if (is_root)
		snprintf(head, sizeof(head),
			 "[{\"id\":\"%016" PRIx64
			 "\",\"name\":\"synthetic/root\",\"timestamp\":%" PRIu64
			 ",\"duration\":%zu,\"localEndpoint\":{\"serviceName\":\"lightningd\"},"
			 "\"tags\":{\"n\":\"%zu\", \"query\":\"",
			 id, (uint64_t)1795660314000000ull + i * 10, i % 1000 + 1, i);
	else
		snprintf(head, sizeof(head),
			 "[{\"id\":\"%016" PRIx64
			 "\",\"name\":\"synthetic/child\",\"timestamp\":%" PRIu64
			 ",\"duration\":%zu,\"localEndpoint\":{\"serviceName\":\"lightningd\"},"
			 "\"parentId\":\"%016" PRIx64 "\",\"tags\":{\"n\":\"%zu\", \"query\":\"",
			 id, (uint64_t)1795660314000000ull + i * 10, i % 1000 + 1, root, i);
	snprintf(tail, sizeof(tail), "\"},\"traceId\":\"%016" PRIx64 "%016" PRIx64 "\"}]", trace_hi,
		 trace_lo);
	hl = strlen(head);
	tl = strlen(tail);
	if (hl + tl > size)
		return NULL;
	pad = size - hl - tl;
	out = malloc(size + 1);
	if (!out)
		return NULL;
	memcpy(out, head, hl);
	for (size_t k = 0; k < pad; k++)
		out[hl + k] = fill[(k + i) % (sizeof(fill) - 1)];
	memcpy(out + hl + pad, tail, tl + 1);
	return out;
}

static int build_synthetic(struct evs *e, unsigned long n, size_t size, bool emit_only)
{
	uint64_t root = 0, thi = 0, tlo = 0;

	for (unsigned long i = 0; i < n; i++) {
		uint64_t id = rng_next();
		char *json;
		int err;

		if (i % 8 == 0) {
			root = id;
			thi = rng_next();
			tlo = rng_next();
		}
		json = synthetic_json(i, size, id, root, thi, tlo);
		if (!json) {
			fprintf(stderr, "cln-emitter: --size %zu is too small for a CLN span\n",
				size);
			return -EINVAL;
		}
		if (!emit_only && (err = evs_push(e, EV_START, id, NULL)))
			goto fail;
		if (!emit_only && (err = evs_push(e, EV_END, id, NULL)))
			goto fail;
		if ((err = evs_push(e, EV_EMIT, id, json)))
			goto fail;
		continue;
	fail:
		free(json);
		return err;
	}
	return 0;
}

static volatile sig_atomic_t got_usr1;
static volatile pid_t child_pid; /* --child-synthetic: SIGUSR1 is passed on to it */

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
	if (child_pid > 0)
		kill(child_pid, SIGUSR1);
}

/* lightningd's options, taken and ignored: 1 a flag, 2 with its value, 0 not one. */
static int lightningd_opt(const char *a)
{
	static const char *const flags[] = {"--mainnet", "--testnet", "--testnet4", "--signet",
					    "--regtest"};
	static const char *const valued[] = {"--lightning-dir", "--network", "--rpc-file"};

	for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
		if (!strcmp(a, flags[k]))
			return 1;
	for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
		size_t n = strlen(valued[k]);

		if (!strncmp(a, valued[k], n) && a[n] == '=')
			return 1;
		if (!strcmp(a, valued[k]))
			return 2;
	}
	return 0;
}

/* @pid into @path (with @suffix), whole or not at all: written aside, then renamed. */
static int write_pid_file(const char *path, const char *suffix, pid_t pid)
{
	char final[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *pf;

	snprintf(final, sizeof(final), "%s%s", path, suffix);
	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	pf = fopen(tmp, "w");
	if (!pf || fprintf(pf, "%d\n", (int)pid) < 0 || fclose(pf) || rename(tmp, final)) {
		fprintf(stderr, "cln-emitter: %s: %s\n", final, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * --child-synthetic, in the forked child: its own spans (seed + 1), log and pid file; then
 * it waits and fires like its parent.
 */
static int become_child(const struct opts *o, struct evs *e, FILE **log)
{
	char path[PATH_MAX];
	sigset_t usr1;

	if (*log)
		fclose(*log);
	*log = NULL;
	for (size_t k = 0; k < e->n; k++)
		free(e->v[k].json);
	e->n = 0;
	rng_state = o->seed + 1;
	rng_state = rng_next();
	if (build_synthetic(e, o->child_synthetic, o->size, o->emit_only))
		return -1;
	if (o->log_path) {
		snprintf(path, sizeof(path), "%s.child", o->log_path);
		*log = fopen(path, "w");
		if (!*log) {
			fprintf(stderr, "cln-emitter: %s: %s\n", path, strerror(errno));
			return -1;
		}
	}
	if (o->pid_file && write_pid_file(o->pid_file, ".child", getpid()))
		return -1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &usr1, NULL);
	return 0;
}

/* Fork the child (-1 on failure); in the parent, SIGUSR1 is passed on from now on. */
static int fork_child(const struct opts *o, struct evs *e, FILE **log)
{
	sigset_t usr1, old;
	pid_t pid, parent;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	fflush(NULL);
	parent = getpid();
	pid = fork();
	if (pid == 0) {
		/*
		 * A subdaemon dies with its lightningd: so does this one (fork clears the death
		 * signal its parent may have had), or a test that stops early leaves it waiting.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		return become_child(o, e, log);
	}
	if (pid < 0)
		fprintf(stderr, "cln-emitter: fork: %s\n", strerror(errno));
	child_pid = pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	return pid < 0 ? -1 : 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = {.tv_sec = t / 1000000000ull, .tv_nsec = t % 1000000000ull};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Rewrite the 16-hex value after every `"<key>":"` in @json with id ^ @x. */
static void remap_json(char *json, uint64_t x)
{
	static const char *const keys[] = {"\"id\":\"", "\"parentId\":\""};

	for (size_t k = 0; k < 2; k++) {
		char *p = strstr(json, keys[k]);
		uint64_t v;
		char buf[17];

		if (!p)
			continue;
		p += strlen(keys[k]);
		if (!parse_id(p, 16, &v) || strlen(p) < 16)
			continue;
		snprintf(buf, sizeof(buf), "%016" PRIx64, v ^ x);
		memcpy(p, buf, 16);
	}
}

static int socket_open(struct emit_socket *so, const char *path)
{
	so->fd = -1;
	if (strlen(path) >= sizeof(so->addr.sun_path)) {
		fprintf(stderr, "cln-emitter: --socket %s: path too long\n", path);
		return -1;
	}
	so->addr.sun_family = AF_UNIX;
	strcpy(so->addr.sun_path, path);
	so->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (so->fd < 0) {
		fprintf(stderr, "cln-emitter: --socket: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* One span, as CLN sends it: the JSON without its NUL, never waiting. */
static void socket_send(struct emit_socket *so, const char *json, size_t len)
{
	uint64_t t0 = now_ns(), dt;
	ssize_t r = sendto(so->fd, json, len, MSG_DONTWAIT, (const struct sockaddr *)&so->addr,
			   sizeof(so->addr));
	int err = errno;

	dt = now_ns() - t0;
	so->hist[dt / SEND_HIST_NS < SEND_HIST ? dt / SEND_HIST_NS : SEND_HIST - 1]++;
	so->calls++;
	so->total_ns += dt;
	errno = err;
	if (r >= 0) {
		so->sent++;
		return;
	}
	if (!so->first_errno)
		so->first_errno = errno;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		so->eagain++;
	else if (errno == ENOENT || errno == ECONNREFUSED)
		so->unreachable++;
	else
		so->other++;
}

/* @n steps of a generator the compiler cannot drop: CPU spent as a node spends it. */
static void busy_work(unsigned long n)
{
	static volatile uint64_t sink;
	uint64_t x = sink;

	for (unsigned long i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		__asm__ volatile("" : "+r"(x));
	}
	sink = x;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

/* The median time of a sendto, in ns (the middle of its bucket). */
static uint64_t socket_median_ns(const struct emit_socket *so)
{
	uint64_t seen = 0;

	for (size_t i = 0; i < SEND_HIST; i++) {
		seen += so->hist[i];
		if (seen * 2 >= so->calls)
			return i * SEND_HIST_NS + SEND_HIST_NS / 2;
	}
	return 0;
}

static int parse_ulong(const char *flag, const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || end == s || *end) {
		fprintf(stderr, "cln-emitter: %s wants a number, not '%s'\n", flag, s);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {.repeat = 1, .size = 280, .burst = 1};
	struct emit_socket so = {.fd = -1};
	struct evs e = {0};
	FILE *log = NULL;
	char *scratch = NULL;
	const char **files;
	size_t n_files = 0;
	uint64_t t0, t1, c0, c1, fired = 0, emits = 0;
	int ret = 1;
	int i;

	files = calloc(argc, sizeof(*files));
	if (!files)
		return 1;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned long u;

		if (a[0] != '-' || !a[1]) {
			files[n_files++] = a;
			continue;
		} else if (!strcmp(a, "--")) {
			while (++i < argc)
				files[n_files++] = argv[i];
			break;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			ret = 0;
			goto cleanup;
		} else if (!strcmp(a, "--emit-only")) {
			o.emit_only = true;
			continue;
		} else if (!strcmp(a, "--unique-ids")) {
			o.unique_ids = true;
			continue;
		} else if (!strcmp(a, "--wait-signal")) {
			o.wait_signal = true;
			continue;
		} else if (!strcmp(a, "--quiet")) {
			o.quiet = true;
			continue;
		} else if (lightningd_opt(a)) {
			if (lightningd_opt(a) == 2 && !val) {
				fprintf(stderr, "cln-emitter: %s needs a value\n", a);
				goto usage_err;
			}
			i += lightningd_opt(a) - 1;
			continue;
		}
		if (strcmp(a, "--rate") && strcmp(a, "--repeat") && strcmp(a, "--synthetic") &&
		    strcmp(a, "--size") && strcmp(a, "--seed") && strcmp(a, "--log") &&
		    strcmp(a, "--wait-file") && strcmp(a, "--pid-file") &&
		    strcmp(a, "--child-synthetic") && strcmp(a, "--linger-file") &&
		    strcmp(a, "--socket") && strcmp(a, "--burst") && strcmp(a, "--work")) {
			fprintf(stderr, "cln-emitter: unknown option %s (see --help)\n", a);
			goto usage_err;
		}
		if (!val) {
			fprintf(stderr, "cln-emitter: %s needs a value (see --help)\n", a);
			goto usage_err;
		}
		i++;
		if (!strcmp(a, "--rate")) {
			char *end;

			errno = 0;
			o.rate = strtod(val, &end);
			if (errno || end == val || (*end && strcmp(end, "/s")) || o.rate < 0) {
				fprintf(stderr, "cln-emitter: --rate wants N or N/s, not '%s'\n",
					val);
				goto usage_err;
			}
		} else if (!strcmp(a, "--work")) {
			if (parse_ulong(a, val, &o.work))
				goto usage_err;
		} else if (!strcmp(a, "--burst")) {
			if (parse_ulong(a, val, &o.burst) || !o.burst)
				goto usage_err;
		} else if (!strcmp(a, "--repeat")) {
			if (parse_ulong(a, val, &o.repeat))
				goto usage_err;
		} else if (!strcmp(a, "--synthetic")) {
			if (parse_ulong(a, val, &o.synthetic))
				goto usage_err;
		} else if (!strcmp(a, "--child-synthetic")) {
			if (parse_ulong(a, val, &o.child_synthetic) || !o.child_synthetic)
				goto usage_err;
		} else if (!strcmp(a, "--seed")) {
			if (parse_ulong(a, val, &u))
				goto usage_err;
			o.seed = u;
			/* Start each seed at an unrelated point of the sequence. */
			rng_state = u;
			rng_state = rng_next();
		} else if (!strcmp(a, "--size")) {
			if (parse_ulong(a, val, &u))
				goto usage_err;
			if (u > EMITTER_MAX_JSON) {
				fprintf(stderr, "cln-emitter: --size at most %d\n",
					EMITTER_MAX_JSON);
				goto usage_err;
			}
			o.size = u;
		} else if (!strcmp(a, "--log")) {
			o.log_path = val;
		} else if (!strcmp(a, "--wait-file")) {
			o.wait_file = val;
		} else if (!strcmp(a, "--linger-file")) {
			o.linger_file = val;
		} else if (!strcmp(a, "--pid-file")) {
			o.pid_file = val;
		} else if (!strcmp(a, "--socket")) {
			o.socket_path = val;
		} else {
			fprintf(stderr, "cln-emitter: unknown option %s (see --help)\n", a);
			goto usage_err;
		}
	}
	for (size_t f = 0; f < n_files; f++)
		if (load_trace(files[f], &e))
			goto cleanup;
	if (o.synthetic && build_synthetic(&e, o.synthetic, o.size, o.emit_only))
		goto cleanup;
	if (e.n == 0) {
		fprintf(stderr,
			"cln-emitter: nothing to fire: give trace files or --synthetic N\n");
		goto cleanup;
	}
	scratch = malloc(EMITTER_MAX_JSON + 1);
	if (!scratch)
		goto cleanup;
	if (o.log_path) {
		log = fopen(o.log_path, "w");
		if (!log) {
			fprintf(stderr, "cln-emitter: %s: %s\n", o.log_path, strerror(errno));
			goto cleanup;
		}
	}
	if (o.wait_signal) {
		struct sigaction sa = {.sa_handler = on_usr1};

		sigaction(SIGUSR1, &sa, NULL);
	}
	if (o.socket_path && socket_open(&so, o.socket_path))
		goto cleanup;
	if (o.pid_file && write_pid_file(o.pid_file, "", getpid()))
		goto cleanup;
	if (o.child_synthetic && fork_child(&o, &e, &log))
		goto cleanup;
	if (!o.quiet)
		fprintf(stderr, "cln-emitter: pid %d, %zu events x %lu\n", (int)getpid(), e.n,
			o.repeat);
	while (o.wait_signal && !got_usr1)
		usleep(1000);
	if (o.wait_file) {
		struct stat st;

		while (stat(o.wait_file, &st) != 0)
			usleep(1000);
	}

	c0 = cpu_ns();
	t0 = now_ns();
	for (unsigned long r = 0; r < o.repeat; r++) {
		uint64_t x = o.unique_ids ? (uint64_t)r * 0x9e3779b97f4a7c15ull : 0;

		for (size_t k = 0; k < e.n; k++) {
			const struct ev *ev = &e.v[k];
			uint64_t id = ev->id ^ x;
			char idhex[17];

			if (o.emit_only && ev->kind != EV_EMIT)
				continue;
			switch (ev->kind) {
			case EV_START:
				DTRACE_PROBE1(lightningd, span_start, id);
				break;
			case EV_END:
				DTRACE_PROBE1(lightningd, span_end, id);
				break;
			case EV_SUSPEND:
				DTRACE_PROBE1(lightningd, span_suspend, id);
				if (log)
					fprintf(log, "span_suspend %016" PRIx64 "\n", id);
				break;
			case EV_RESUME:
				DTRACE_PROBE1(lightningd, span_resume, id);
				if (log)
					fprintf(log, "span_resume %016" PRIx64 "\n", id);
				break;
			case EV_EMIT: {
				char *json = ev->json;

				if (o.work && emits % o.burst == 0)
					busy_work(o.work);
				if (o.rate > 0) {
					uint64_t first = emits - emits % o.burst;
					uint64_t due = t0 + (uint64_t)(first / o.rate * 1e9);

					if (due > now_ns())
						sleep_until(due);
				}
				/*
				 * CLN formats each span into one buffer just before the probe,
				 * so the probe reads hot memory: copy into ours likewise.
				 */
				memcpy(scratch, json, ev->len + 1);
				if (x)
					remap_json(scratch, x);
				json = scratch;
				snprintf(idhex, sizeof(idhex), "%016" PRIx64, id);
				DTRACE_PROBE2(lightningd, span_emit, idhex, json);
				if (so.fd >= 0)
					socket_send(&so, json, ev->len);
				if (log)
					fprintf(log, "%s %s\n", idhex, json);
				emits++;
				break;
			}
			}
			fired++;
		}
	}
	t1 = now_ns();
	c1 = cpu_ns();
	if (log && fclose(log)) {
		log = NULL;
		fprintf(stderr, "cln-emitter: %s: %s\n", o.log_path, strerror(errno));
		goto cleanup;
	}
	log = NULL;
	if (o.linger_file) {
		struct stat st;

		while (stat(o.linger_file, &st) != 0)
			usleep(1000);
	}
	if (!o.quiet) {
		double s = (t1 - t0) / 1e9;

		fprintf(stderr,
			"cln-emitter: fired %" PRIu64 " probes (%" PRIu64 " span_emit) in %.3f s: "
			"%.1f ns/probe, %.0f span_emit/s (asked: %s%.0f)\n",
			fired, emits, s, fired ? (t1 - t0) / (double)fired : 0.0,
			s > 0 ? emits / s : 0.0, o.rate > 0 ? "" : "unpaced ", o.rate);
		fprintf(stderr, "cln-emitter: cpu %.1f ns/span_emit (user + system, firing loop)\n",
			emits ? (c1 - c0) / (double)emits : 0.0);
		if (so.fd >= 0)
			fprintf(stderr,
				"cln-emitter: socket %s: sent %" PRIu64 ", eagain %" PRIu64
				", unreachable %" PRIu64 ", other %" PRIu64 "%s%s\n",
				o.socket_path, so.sent, so.eagain, so.unreachable, so.other,
				so.first_errno ? ", first error: " : "",
				so.first_errno ? strerror(so.first_errno) : "");
		if (so.calls)
			fprintf(stderr,
				"cln-emitter: sendto: median %" PRIu64 " ns, mean %.0f ns per call "
				"(wall time inside the call)\n",
				socket_median_ns(&so), so.total_ns / (double)so.calls);
	}
	ret = 0;
	goto cleanup;
usage_err:
	ret = 2;
cleanup:
	if (child_pid > 0) {
		int status;

		if (ret)
			kill(child_pid, SIGKILL); /* it would wait for ever */
		while (waitpid(child_pid, &status, 0) < 0)
			if (errno != EINTR) {
				status = 1;
				break;
			}
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "cln-emitter: the child %d failed\n", (int)child_pid);
			ret = ret ? ret : 1;
		}
	}
	if (log)
		fclose(log);
	if (so.fd >= 0)
		close(so.fd);
	for (size_t k = 0; k < e.n; k++)
		free(e.v[k].json);
	free(e.v);
	free(scratch);
	free(files);
	return ret;
}
