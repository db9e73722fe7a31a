// SPDX-License-Identifier: MIT
/*
 * finder: the pure parsers (container.id from /proc/PID/cgroup, where lightningd's
 * lightning-rpc is from its command line), then real processes (root): a copy of the
 * emitter named lightningd with a forked child standing in for a subdaemon, processes
 * without the probe, sockets of the wrong owner, a node run by another user, a container's
 * cgroup, and the helper process answering over its socketpair as an unprivileged user.
 *
 * usage: test-finder pure
 *        test-finder procs EMITTER     (root)
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "clock.h"
#include "finder.h"

#define ID_A	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID_B	"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define ID_UP	"0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
#define WAIT_MS 30000
#define NOBODY	65534

/* ---- pure ------------------------------------------------------------------------------ */

struct cid_case {
	const char *name, *text, *want; /* want NULL: none */
};

static const struct cid_case cid_cases[] = {
	{"docker v1", "12:pids:/docker/" ID_A "\n11:memory:/docker/" ID_A "\n", ID_A},
	{"docker v2 systemd", "0::/system.slice/docker-" ID_A ".scope\n", ID_A},
	{"podman", "0::/machine.slice/libpod-" ID_A ".scope/container\n", ID_A},
	{"podman v1", "1:name=systemd:/machine.slice/libpod-" ID_B ".scope\n", ID_B},
	{"containerd systemd",
	 "0::/kubepods.slice/kubepods-burstable.slice/"
	 "kubepods-burstable-pod3d5f0b2e_1a2b_4c3d_9e8f_0123456789ab.slice/cri-containerd-" ID_A
	 ".scope\n",
	 ID_A},
	{"kubepods cgroupfs nested",
	 "11:memory:/kubepods/burstable/pod3d5f0b2e-1a2b-4c3d-9e8f-0123456789ab/" ID_B "\n", ID_B},
	{"crio", "0::/kubepods.slice/kubepods-besteffort.slice/crio-" ID_A ".scope\n", ID_A},
	{"docker in docker", "0::/docker/" ID_A "/docker/" ID_B "\n", ID_B},
	{"first line with one",
	 "4:memory:/process_api/d26328edf51428ea1976beb9b5f87f25\n3:pids:/\n"
	 "2:cpu:/docker/" ID_B "\n",
	 ID_B},
	{"uppercase", "0::/docker/" ID_UP "\n", ID_A},
	{"no newline at the end", "0::/docker/" ID_A, ID_A},
	{"host v2", "0::/user.slice/user-1000.slice/session-2.scope\n", NULL},
	{"host v1", "9:name=systemd:/\n8:pids:/\n0::/\n", NULL},
	{"32 hex", "4:memory:/process_api/d26328edf51428ea1976beb9b5f87f25\n", NULL},
	{"65 hex", "0::/docker/0" ID_A "\n", NULL},
	{"followed by a letter", "0::/system.slice/docker-" ID_A "x.scope\n", NULL},
	{"no controller field", "/docker/" ID_A "\n", NULL},
	{"empty", "", NULL},
};

static void check_cid(const char *name, const char *text, size_t len, const char *want)
{
	char out[FINDER_ID_SIZE];
	bool got;

	memset(out, 'X', sizeof(out));
	check_case(name);
	got = finder_container_id(text, len, out);
	CHECK_MSG(got == (want != NULL), "found %d, want %s", got, want ? want : "none");
	CHECK_STR(out, want ? want : "");
}

static void test_container_id(void)
{
	char text[256];

	for (size_t i = 0; i < sizeof(cid_cases) / sizeof(cid_cases[0]); i++) {
		const struct cid_case *c = &cid_cases[i];

		check_cid(c->name, c->text, strlen(c->text), c->want);
	}
	snprintf(text, sizeof(text), "0::/docker/%.63s\n", ID_A);
	check_cid("63 hex", text, strlen(text), NULL);
	snprintf(text, sizeof(text), "0::/docker/%.63sg\n", ID_A);
	check_cid("64 characters, one not hex", text, strlen(text), NULL);
	/* Only @len bytes count: the id cut short is no id. */
	snprintf(text, sizeof(text), "0::/docker/%s\n", ID_A);
	check_cid("cut by len", text, strlen(text) - 2, NULL);
	check_case(NULL);
}

struct rpc_case {
	const char *name;
	const char *cmd; /* NUL-separated */
	size_t len;
	const char *home;
	size_t max;
	const char *want[3];
};

/* A command line as /proc/PID/cmdline has it: every argument NUL-terminated. */
#define CMD(s) s, sizeof(s)

static const struct rpc_case rpc_cases[] = {
	{"defaults",
	 CMD("lightningd"),
	 "/home/x",
	 4,
	 {"/home/x/.lightning/bitcoin/lightning-rpc", "lightning-rpc"}},
	{"dir with =, --regtest",
	 CMD("lightningd\0--lightning-dir=/d\0--regtest"),
	 "/h",
	 4,
	 {"/d/regtest/lightning-rpc", "lightning-rpc"}},
	{"dir and network with a space",
	 CMD("lightningd\0--lightning-dir\0/d\0--network\0signet"),
	 "/h",
	 4,
	 {"/d/signet/lightning-rpc", "lightning-rpc"}},
	{"last wins",
	 CMD("lightningd\0--network=testnet\0--regtest\0--lightning-dir=/a\0--lightning-dir=/b\0"
	     "--testnet4"),
	 "/h",
	 4,
	 {"/b/testnet4/lightning-rpc", "lightning-rpc"}},
	{"--mainnet after --network",
	 CMD("lightningd\0--network=regtest\0--mainnet"),
	 "/h",
	 4,
	 {"/h/.lightning/bitcoin/lightning-rpc", "lightning-rpc"}},
	{"--testnet",
	 CMD("lightningd\0--testnet"),
	 "/h",
	 4,
	 {"/h/.lightning/testnet/lightning-rpc", "lightning-rpc"}},
	{"absolute rpc-file",
	 CMD("lightningd\0--lightning-dir=/d\0--rpc-file=/run/ln/rpc"),
	 "/h",
	 4,
	 {"/run/ln/rpc"}},
	{"absolute rpc-file, space",
	 CMD("lightningd\0--rpc-file\0/run/ln/rpc"),
	 NULL,
	 4,
	 {"/run/ln/rpc"}},
	{"relative rpc-file",
	 CMD("lightningd\0--rpc-file\0rpc.sock"),
	 "/h",
	 4,
	 {"/h/.lightning/bitcoin/rpc.sock", "rpc.sock"}},
	{"no home", CMD("lightningd\0--regtest"), NULL, 4, {"lightning-rpc"}},
	{"empty home", CMD("lightningd"), "", 4, {"lightning-rpc"}},
	{"relative home", CMD("lightningd"), "h", 4, {"lightning-rpc"}},
	{"relative lightning-dir",
	 CMD("lightningd\0--lightning-dir=node"),
	 "/h",
	 4,
	 {"lightning-rpc"}},
	{"--network without a value",
	 CMD("lightningd\0--regtest\0--network"),
	 "/h",
	 4,
	 {"/h/.lightning/regtest/lightning-rpc", "lightning-rpc"}},
	{"a network that climbs",
	 CMD("lightningd\0--lightning-dir=/d\0--network=../../etc"),
	 "/h",
	 4,
	 {"lightning-rpc"}},
	{"empty values",
	 CMD("lightningd\0--rpc-file=\0--network=\0--lightning-dir="),
	 "/h",
	 4,
	 {"/h/.lightning/bitcoin/lightning-rpc", "lightning-rpc"}},
	{"argv[0] is no option",
	 CMD("--regtest\0--signet"),
	 "/h",
	 4,
	 {"/h/.lightning/signet/lightning-rpc", "lightning-rpc"}},
	{"a cut last argument",
	 "lightningd\0--network=regtest",
	 28,
	 "/h",
	 4,
	 {"/h/.lightning/bitcoin/lightning-rpc", "lightning-rpc"}},
	{"a longer option is another",
	 CMD("lightningd\0--networks=regtest\0--rpc-filex=/a"),
	 "/h",
	 4,
	 {"/h/.lightning/bitcoin/lightning-rpc", "lightning-rpc"}},
	{"max 1", CMD("lightningd\0--regtest"), "/h", 1, {"/h/.lightning/regtest/lightning-rpc"}},
	{"max 0", CMD("lightningd"), "/h", 0, {NULL}},
	{"empty", "", 0, "/h", 4, {"/h/.lightning/bitcoin/lightning-rpc", "lightning-rpc"}},
};

static void test_rpc_paths(void)
{
	char out[4][PATH_MAX];
	char *big;

	for (size_t i = 0; i < sizeof(rpc_cases) / sizeof(rpc_cases[0]); i++) {
		const struct rpc_case *c = &rpc_cases[i];
		size_t want = 0, n;

		while (want < 3 && c->want[want])
			want++;
		check_case(c->name);
		n = finder_rpc_paths(c->cmd, c->len, c->home, out, c->max);
		CHECK_EQ(n, want);
		for (size_t k = 0; k < n && k < want; k++)
			CHECK_STR(out[k], c->want[k]);
	}
	/* A directory that makes the path PATH_MAX long: that candidate is left out. */
	check_case("too long");
	big = malloc(PATH_MAX + 64);
	if (big) {
		size_t n;

		memcpy(big, "lightningd\0--lightning-dir=/", 28);
		memset(big + 28, 'a', PATH_MAX - 20);
		big[PATH_MAX + 8] = '\0';
		n = finder_rpc_paths(big, PATH_MAX + 9, "/h", out, 4);
		CHECK_EQ(n, 1);
		CHECK_STR(out[0], "lightning-rpc");
		free(big);
	}
	check_case(NULL);
}

/* ---- real processes ---------------------------------------------------------------------- */

static char tmp[PATH_MAX];

/* @rel in the test's directory. */
static void path_in(char *out, const char *rel)
{
	snprintf(out, PATH_MAX, "%.2000s/%.2000s", tmp, rel);
}

static int copy_file(const char *from, const char *to)
{
	char cmd[3 * PATH_MAX];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0755 '%s'", from, to, to);
	return system(cmd);
}

/* Start @argv with working directory @cwd, as @uid (0: as we are). */
static pid_t start(char *const argv[], const char *cwd, uid_t uid)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	if (uid && (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
		_exit(126);
	if (chdir(cwd))
		_exit(126);
	execv(argv[0], argv);
	_exit(127);
}

/* The pid written in @path, waiting (bounded) for the file to appear. */
static pid_t wait_pid_file(const char *path)
{
	uint64_t end = clock_mono_ms() + WAIT_MS;
	struct timespec tick = {.tv_nsec = 5 * 1000 * 1000};

	do {
		FILE *f = fopen(path, "r");
		int pid = 0;

		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid > 0)
			return pid;
		nanosleep(&tick, NULL);
	} while (clock_mono_ms() < end);
	CHECK_FAIL("%s did not appear", path);
	return -1;
}

/* /proc/@pid/stat shows @exe's name (the exec is done). */
static void wait_exec(pid_t pid, const char *comm)
{
	uint64_t end = clock_mono_ms() + WAIT_MS;
	struct timespec tick = {.tv_nsec = 2 * 1000 * 1000};
	char path[64], buf[64];

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	do {
		FILE *f = fopen(path, "r");
		bool ok = f && fgets(buf, sizeof(buf), f) && !strncmp(buf, comm, strlen(comm));

		if (f)
			fclose(f);
		if (ok)
			return;
		nanosleep(&tick, NULL);
	} while (clock_mono_ms() < end);
	CHECK_FAIL("process %d never ran %s", (int)pid, comm);
}

static int listen_at(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(sa.sun_path)) {
		CHECK_FAIL("%s: too long for a socket path", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) || listen(s, 8) ||
	    chmod(path, 0600)) {
		CHECK_FAIL("listen at %s: %s", path, strerror(errno));
		return -1;
	}
	return s;
}

/* @fd (maybe still connecting) reaches @listener: accept, and a byte goes through. */
static void check_reaches(int fd, bool connecting, int listener)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int c;
	char b = 0;

	if (connecting)
		CHECK_EQ(poll(&p, 1, WAIT_MS), 1);
	p = (struct pollfd){.fd = listener, .events = POLLIN};
	CHECK_EQ(poll(&p, 1, WAIT_MS), 1);
	c = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	CHECK_MSG(c >= 0, "accept: %s", strerror(errno));
	if (c < 0)
		return;
	CHECK_EQ(write(fd, "x", 1), 1);
	p = (struct pollfd){.fd = c, .events = POLLIN};
	CHECK_EQ(poll(&p, 1, WAIT_MS), 1);
	CHECK_EQ(read(c, &b, 1), 1);
	CHECK_EQ(b, 'x');
	close(c);
}

static uint64_t start_of(pid_t pid)
{
	struct finder *f = finder__new();
	struct finder_req req = {.op = FINDER_WHO, .pid = (uint32_t)pid};
	struct finder_reply r;

	finder_who(f, &req, &r);
	finder__free(f);
	return r.start;
}

static void who(struct finder *f, pid_t pid, struct finder_reply *r)
{
	struct finder_req req = {.op = FINDER_WHO, .seq = 7, .pid = (uint32_t)pid};

	finder_who(f, &req, r);
	CHECK_EQ(r->seq, 7);
	CHECK_EQ(r->pid, (uint32_t)pid);
}

static void check_why(const struct finder_reply *r, int err, const char *part)
{
	CHECK_MSG(r->err == err && strstr(r->why, part),
		  "err %d (want %d), why \"%s\" (want \"%s\")", r->err, err, r->why, part);
}

static int connect_node(struct finder *f, pid_t pid, uint64_t start, struct finder_reply *r)
{
	struct finder_req req = {
		.op = FINDER_CONNECT, .seq = 9, .pid = (uint32_t)pid, .start = start};

	return finder_connect(f, &req, r);
}

struct node {
	pid_t pid, child;
	int listener;
	char sock[PATH_MAX];
};

/* The node and its subdaemon: who belongs to whom, and its socket. */
static void test_who_connect(struct finder *f, const struct node *n)
{
	char own[FINDER_ID_SIZE] = "", buf[4096], want[PATH_MAX + 64];
	struct finder_reply r;
	FILE *cg = fopen("/proc/self/cgroup", "r");
	size_t len = cg ? fread(buf, 1, sizeof(buf), cg) : 0;
	int fd;

	if (cg)
		fclose(cg);
	finder_container_id(buf, len, own); /* the node runs in our cgroups */
	check_case("who: the subdaemon");
	who(f, n->child, &r);
	CHECK_MSG(r.err == 0, "%s", r.why);
	CHECK_EQ(r.node_pid, (uint32_t)n->pid);
	CHECK_EQ(r.node_uid, 0);
	CHECK_EQ(r.node_start, start_of(n->pid));
	CHECK(r.start != 0 && r.start >= r.node_start);
	CHECK_STR(r.container_id, own);
	check_case("who: lightningd");
	who(f, n->pid, &r);
	CHECK_MSG(r.err == 0, "%s", r.why);
	CHECK_EQ(r.node_pid, (uint32_t)n->pid);
	CHECK_EQ(r.start, r.node_start);

	check_case("connect");
	fd = connect_node(f, n->pid, r.node_start, &r);
	CHECK_MSG(fd >= 0 && r.err == 0 && !r.why[0], "err %d: %s", r.err, r.why);
	snprintf(want, sizeof(want), "%s (lightningd pid %d)", n->sock, (int)n->pid);
	CHECK_STR(r.shown, want);
	if (fd >= 0) {
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		check_reaches(fd, r.connecting, n->listener);
		close(fd);
	}
	check_case("connect: another start time");
	fd = connect_node(f, n->pid, r.start + 1, &r);
	CHECK_EQ(fd, -1);
	check_why(&r, -ESRCH, "has exited");

	check_case("connect: a socket of another user");
	CHECK(chown(n->sock, NOBODY, NOBODY) == 0);
	fd = connect_node(f, n->pid, start_of(n->pid), &r);
	CHECK_EQ(fd, -1);
	if (fd >= 0)
		close(fd);
	check_why(&r, -EPERM, "is owned by uid 65534, not by the node's user 0: not trusted");
	CHECK(chown(n->sock, 0, 0) == 0);
	check_case(NULL);
}

/* Processes that are not (part of) a node. */
static void test_not_nodes(struct finder *f, const char *emitter)
{
	char sleeper[PATH_MAX], plugin[PATH_MAX], dir[PATH_MAX];
	char *sleep_argv[] = {"/bin/sleep", "600", NULL};
	char *fake_argv[] = {sleeper, "600", NULL};
	char *plugin_argv[] = {plugin, "--synthetic", "1", "--wait-signal", "--quiet", NULL};
	struct finder_reply r;
	pid_t p1, p2, p3, gone;

	path_in(dir, "x");
	path_in(sleeper, "x/lightningd");
	path_in(plugin, "bin/plugin");
	CHECK(mkdir(dir, 0755) == 0 && copy_file("/bin/sleep", sleeper) == 0 &&
	      copy_file(emitter, plugin) == 0);
	p1 = start(sleep_argv, "/", 0);
	p2 = start(fake_argv, "/", 0);
	p3 = start(plugin_argv, "/", 0);
	wait_exec(p1, "sleep");
	wait_exec(p2, "lightningd");
	wait_exec(p3, "plugin");

	check_case("who: sleep");
	who(f, p1, &r);
	check_why(&r, -EPERM, "carries no lightningd:span_emit probe: its spans get no node");
	check_case("who: a lightningd without the probe");
	who(f, p2, &r);
	check_why(&r, -EPERM, "x/lightningd which carries no lightningd:span_emit probe");
	check_case("who: probed, under no lightningd");
	who(f, p3, &r);
	check_why(&r, -ENOENT, "/bin/plugin) and its ancestors run no lightningd");
	kill(p1, SIGKILL);
	kill(p2, SIGKILL);
	kill(p3, SIGKILL);
	waitpid(p1, NULL, 0);
	waitpid(p2, NULL, 0);
	waitpid(p3, NULL, 0);
	gone = p1;
	check_case("who: gone");
	who(f, gone, &r);
	check_why(&r, -ESRCH, "has exited");
	check_case(NULL);
}

/* A node of uid 65534 whose lightning-rpc is a symlink to a root-owned socket. */
static void test_other_user(struct finder *f, const char *lightningd, const struct node *root)
{
	char dir[PATH_MAX], net[PATH_MAX], link[PATH_MAX], pidf[PATH_MAX], want[PATH_MAX + 128];
	char *argv[] = {(char *)lightningd, "--lightning-dir", dir,  "--network",
			"regtest",	    "--synthetic",     "1",  "--wait-signal",
			"--quiet",	    "--pid-file",      pidf, NULL};
	struct finder_reply r;
	pid_t pid;
	int fd;

	path_in(dir, "nn");
	path_in(net, "nn/regtest");
	path_in(link, "nn/regtest/lightning-rpc");
	path_in(pidf, "nn/ld.pid");
	CHECK(mkdir(dir, 0755) == 0 && mkdir(net, 0755) == 0 && symlink(root->sock, link) == 0 &&
	      chown(dir, NOBODY, NOBODY) == 0 && chown(net, NOBODY, NOBODY) == 0 &&
	      lchown(link, NOBODY, NOBODY) == 0);
	pid = start(argv, net, NOBODY);
	CHECK_EQ(wait_pid_file(pidf), pid);
	check_case("other user: who");
	who(f, pid, &r);
	CHECK_MSG(r.err == 0, "%s", r.why);
	CHECK_EQ(r.node_uid, NOBODY);
	check_case("other user: a symlink to root's socket");
	fd = connect_node(f, pid, r.node_start, &r);
	CHECK_EQ(fd, -1);
	if (fd >= 0)
		close(fd);
	snprintf(want, sizeof(want),
		 "%s (lightningd pid %d) is owned by uid 0, not by the node's user 65534", link,
		 (int)pid);
	check_why(&r, -EPERM, want);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	check_case(NULL);
}

/* A node with no socket anywhere: the places looked at. */
static void test_nothing_there(struct finder *f, const char *lightningd)
{
	char dir[PATH_MAX], pidf[PATH_MAX], want[3 * PATH_MAX];
	char *argv[] = {(char *)lightningd,
			"--lightning-dir=",
			dir,
			"--regtest",
			"--quiet",
			"--synthetic",
			"1",
			"--wait-signal",
			"--pid-file",
			pidf,
			NULL};
	struct finder_reply r;
	pid_t pid;
	int fd;

	path_in(dir, "empty");
	path_in(pidf, "empty.pid");
	argv[1] = "--lightning-dir";
	CHECK(mkdir(dir, 0700) == 0);
	pid = start(argv, tmp, 0);
	CHECK_EQ(wait_pid_file(pidf), pid);
	check_case("connect: nothing there");
	fd = connect_node(f, pid, start_of(pid), &r);
	CHECK_EQ(fd, -1);
	snprintf(want, sizeof(want),
		 "no lightning-rpc at %s/regtest/lightning-rpc (lightningd pid %d), "
		 "%s/lightning-rpc (lightningd pid %d)",
		 dir, (int)pid, tmp, (int)pid);
	check_why(&r, -ENOENT, want);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	check_case(NULL);
}

/* A mounted cgroup hierarchy we may create groups in: v1 pids, else the v2 one. */
static bool cgroup_root(char *out, size_t size, bool *v2)
{
	char line[1024], dev[256], mnt[512], type[64], opts[512];
	FILE *f = fopen("/proc/mounts", "r");
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%255s %511s %63s %511s", dev, mnt, type, opts) == 4 &&
		    !strncmp(opts, "rw", 2)) {
			if (!strcmp(type, "cgroup") && strstr(opts, "pids")) {
				snprintf(out, size, "%s", mnt);
				*v2 = false;
				found = true;
				break;
			}
			if (!strcmp(type, "cgroup2") && !found) {
				snprintf(out, size, "%s", mnt);
				*v2 = true;
				found = true;
			}
		}
	fclose(f);
	return found;
}

/* Where @pid is in the hierarchy (v1 pids or v2 line of /proc/PID/cgroup). */
static bool cgroup_of(pid_t pid, bool v2, char *out, size_t size)
{
	char path[64], line[1024];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "r");
	while (f && !found && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2 || (v2 ? c2 != c1 + 1 || strncmp(line, "0:", 2) : !strstr(line, ":pids:")))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(out, size, "%s", c2 + 1);
		found = true;
	}
	if (f)
		fclose(f);
	return found;
}

static bool write_pid(const char *dir, pid_t pid)
{
	char path[PATH_MAX + 32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "w");
	if (!f)
		return false;
	fprintf(f, "%d\n", (int)pid);
	return fclose(f) == 0;
}

static void test_container(struct finder *f, const struct node *n)
{
	char root[512], was[1024], back[2048], docker[1024], group[2048];
	bool v2 = false, made_docker;
	struct finder_reply r;

	check_case("container.id");
	if (!cgroup_root(root, sizeof(root), &v2) || !cgroup_of(n->pid, v2, was, sizeof(was))) {
		CHECK_FAIL("no writable cgroup hierarchy mounted");
		return;
	}
	snprintf(docker, sizeof(docker), "%s/docker", root);
	snprintf(group, sizeof(group), "%s/%s", docker, ID_B);
	snprintf(back, sizeof(back), "%s%s", root, was);
	made_docker = mkdir(docker, 0755) == 0;
	CHECK_MSG(mkdir(group, 0755) == 0, "mkdir %s: %s", group, strerror(errno));
	CHECK_MSG(write_pid(group, n->pid), "%s/cgroup.procs: %s", group, strerror(errno));
	who(f, n->child, &r);
	CHECK_MSG(r.err == 0, "%s", r.why);
	CHECK_STR(r.container_id, ID_B);
	CHECK_MSG(write_pid(back, n->pid), "%s/cgroup.procs: %s", back, strerror(errno));
	CHECK_MSG(rmdir(group) == 0, "rmdir %s: %s", group, strerror(errno));
	if (made_docker)
		rmdir(docker);
	check_case(NULL);
}

/* Wait (bounded) for one reply from the helper. */
static int helper_reply(struct finder_helper *h, struct finder_reply *r, int *fd)
{
	struct pollfd p = {.fd = finder_helper_fd(h), .events = POLLIN};

	if (poll(&p, 1, WAIT_MS) != 1)
		return -ETIMEDOUT;
	return finder_helper_recv(h, r, fd);
}

static unsigned uid_of(pid_t pid)
{
	char path[64], line[256];
	unsigned real = 0, eff = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %u %u", &real, &eff) == 2)
			break;
	if (f)
		fclose(f);
	return eff;
}

static void test_helper(const struct node *n)
{
	struct finder_req req = {.op = FINDER_WHO, .seq = 1, .pid = (uint32_t)n->child};
	struct finder_helper *h = NULL;
	struct finder_reply r;
	char err[512] = "";
	uint64_t t0;
	int fd = -1, ret;
	pid_t pid;

	check_case("helper");
	ret = finder_helper__spawn(NULL, NULL, NULL, &h, err, sizeof(err));
	CHECK_MSG(ret == 0 && h, "spawn: %d %s", ret, err);
	if (!h)
		return;
	pid = finder_helper_pid(h);
	/* It switched user: what follows needs the capabilities it kept. */
	CHECK_MSG(uid_of(pid) != 0, "the helper runs as uid %u", uid_of(pid));
	CHECK(fcntl(finder_helper_fd(h), F_GETFL) & O_NONBLOCK);
	CHECK_EQ(finder_helper_recv(h, &r, &fd), 0); /* nothing waiting */

	CHECK_EQ(finder_helper_send(h, &req), 0);
	req = (struct finder_req){
		.op = FINDER_CONNECT, .seq = 2, .pid = (uint32_t)n->pid, .start = start_of(n->pid)};
	CHECK_EQ(finder_helper_send(h, &req), 0);
	req = (struct finder_req){.op = 99, .seq = 3, .pid = 1};
	CHECK_EQ(finder_helper_send(h, &req), 0);
	CHECK_EQ(send(finder_helper_fd(h), "abc", 3, 0), 3);

	check_case("helper: who");
	CHECK_EQ(helper_reply(h, &r, &fd), 1);
	CHECK_MSG(r.op == FINDER_WHO && r.seq == 1 && r.err == 0 && fd == -1, "op %u seq %u: %s",
		  r.op, r.seq, r.why);
	CHECK_EQ(r.node_pid, (uint32_t)n->pid);
	check_case("helper: connect");
	CHECK_EQ(helper_reply(h, &r, &fd), 1);
	CHECK_MSG(r.op == FINDER_CONNECT && r.seq == 2 && r.err == 0 && fd >= 0,
		  "op %u seq %u fd %d: %s", r.op, r.seq, fd, r.why);
	if (fd >= 0) {
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		check_reaches(fd, r.connecting, n->listener);
		close(fd);
	}
	check_case("helper: unknown op");
	CHECK_EQ(helper_reply(h, &r, &fd), 1);
	CHECK_MSG(r.seq == 3 && r.err == -EINVAL && fd == -1, "seq %u err %d", r.seq, r.err);
	check_case("helper: short request");
	CHECK_EQ(helper_reply(h, &r, &fd), 1);
	CHECK_MSG(r.err == -EINVAL && strstr(r.why, "3 bytes"), "err %d: %s", r.err, r.why);

	check_case("helper: exits on EOF");
	t0 = clock_mono_ms();
	finder_helper__free(h);
	CHECK_MSG(clock_mono_ms() - t0 < 1500, "took %llu ms: killed, not exited",
		  (unsigned long long)(clock_mono_ms() - t0));
	CHECK(kill(pid, 0) < 0 && errno == ESRCH);
	check_case(NULL);
}

/* The helper with a user that does not exist: spawn says so. */
static void test_helper_bad_user(void)
{
	struct finder_helper *h = NULL;
	char err[512] = "";
	int ret;

	check_case("helper: no such user");
	ret = finder_helper__spawn("no-such-user-finder", NULL, NULL, &h, err, sizeof(err));
	CHECK_MSG(ret < 0 && !h && strstr(err, "no-such-user-finder"), "%d %s", ret, err);
	check_case(NULL);
}

static int run_procs(const char *emitter)
{
	char bin[PATH_MAX], ld[PATH_MAX], node[PATH_MAX], net[PATH_MAX], pidf[PATH_MAX];
	char child_pidf[PATH_MAX + 8], logf[PATH_MAX], child_log[PATH_MAX + 8], cmd[2 * PATH_MAX];
	char *argv[] = {ld,	   "--lightning-dir", node,	 "--network",
			"regtest", "--synthetic",     "1",	 "--child-synthetic",
			"3",	   "--wait-signal",   "--quiet", "--pid-file",
			pidf,	   "--log",	      logf,	 NULL};
	struct finder *f = finder__new();
	struct node n = {0};
	int status = -1;

	if (geteuid() != 0) {
		fprintf(stderr, "test-finder procs: needs root\n");
		return 1;
	}
	snprintf(tmp, sizeof(tmp), "/tmp/finder-XXXXXX");
	if (!f || !mkdtemp(tmp) || chmod(tmp, 0755))
		return 1;
	path_in(bin, "bin");
	path_in(ld, "bin/lightningd");
	path_in(node, "node");
	path_in(net, "node/regtest");
	path_in(n.sock, "node/regtest/lightning-rpc");
	path_in(pidf, "ld.pid");
	path_in(logf, "ld.log");
	snprintf(child_pidf, sizeof(child_pidf), "%s.child", pidf);
	snprintf(child_log, sizeof(child_log), "%s.child", logf);
	/* The node's directories as lightningd makes them: nobody else may enter. */
	if (mkdir(bin, 0755) || copy_file(emitter, ld) || mkdir(node, 0700) || mkdir(net, 0700)) {
		CHECK_FAIL("set-up in %s: %s", tmp, strerror(errno));
		return check_summary();
	}
	n.listener = listen_at(n.sock);
	n.pid = start(argv, net, 0);
	CHECK_EQ(wait_pid_file(pidf), n.pid);
	n.child = wait_pid_file(child_pidf);
	if (n.child <= 0) {
		kill(n.pid, SIGKILL);
		return check_summary();
	}

	test_who_connect(f, &n);
	test_not_nodes(f, emitter);
	test_other_user(f, ld, &n);
	test_nothing_there(f, ld);
	test_container(f, &n);
	test_helper(&n);
	test_helper_bad_user();

	/* The node and its subdaemon fire on one signal, and both end well. */
	check_case("emitter --child-synthetic");
	CHECK(kill(n.pid, SIGUSR1) == 0);
	CHECK(waitpid(n.pid, &status, 0) == n.pid && WIFEXITED(status) && !WEXITSTATUS(status));
	snprintf(cmd, sizeof(cmd), "test $(wc -l < '%s') = 3", child_log);
	CHECK_MSG(system(cmd) == 0, "%s: not 3 spans", child_log);
	check_case(NULL);

	close(n.listener);
	finder__free(f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd))
		CHECK_FAIL("%s", cmd);
	return check_summary();
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "pure")) {
		test_container_id();
		test_rpc_paths();
		return check_summary();
	}
	if (argc == 3 && !strcmp(argv[1], "procs"))
		return run_procs(argv[2]);
	fprintf(stderr, "usage: test-finder pure | procs EMITTER\n");
	return 2;
}
