// SPDX-License-Identifier: MIT
/*
 * targets without the kernel: lightningd and its plugins found in fake install trees, and
 * what is attached and detached when the files change (replaced, rewritten, renamed into
 * place, hard-linked, gone, without probes). The attach and detach callbacks only count.
 * The emitter stands in for a binary with CLN's probes, /bin/true for one without. No root
 * needed.
 *
 * usage: test-targets EMITTER
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "clock.h"
#include "exe_paths.h"
#include "elf_notes.h"
#include "log.h"
#include "span.h"
#include "targets.h"

static const char *emitter;
static char *saved_path; /* PATH as the test was started with */
static char tmp[512];	 /* the test directory: short, so a path under it fits PATH_MAX */

/* ---- attaching, counted ---- */

struct fake {
	int live;      /* handles given and not detached yet */
	int attaches;  /* handles given in all */
	int fail_next; /* the next attach fails with this errno */
};

static int fake_attach(void *ctx, size_t idx, const char *path, void **att)
{
	struct fake *f = ctx;
	int n;

	if (f->fail_next) {
		n = -f->fail_next;
		f->fail_next = 0;
		return n;
	}
	n = elf_notes_count_probe(path, TARGETS_PROVIDER, "span_emit");
	if (n < 0)
		return n;
	if (n == 0)
		return -ENOMSG;
	*att = strdup(path);
	if (!*att)
		return -ENOMEM;
	f->live++;
	f->attaches++;
	return 3;
}

static void fake_detach(void *ctx, void *att)
{
	struct fake *f = ctx;

	if (!att)
		return;
	f->live--;
	free(att);
}

static const char *fake_hint(void *ctx, int err)
{
	return "";
}

static const struct targets_ops fake_ops = {
	.attach = fake_attach,
	.detach = fake_detach,
	.err_hint = fake_hint,
};

/* ---- files ---- */

static void path_of(char *out, const char *rel)
{
	snprintf(out, PATH_MAX, "%s/%s", tmp, rel);
}

/* @rel under tmp, in one of four buffers used in turn (a call may need two). */
static const char *tmp_path(const char *rel)
{
	static char bufs[4][PATH_MAX];
	static unsigned next;
	char *p = bufs[next++ % 4];

	path_of(p, rel);
	return p;
}

static void mkdirs(const char *rel)
{
	char p[PATH_MAX];

	path_of(p, rel);
	for (char *s = p + strlen(tmp) + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0755);
}

/* Copy @from to @to: into a new file renamed over @to (a new inode), or in place. */
static int copy_file(const char *from, const char *to, bool in_place)
{
	char tmpname[PATH_MAX + 8], buf[65536];
	int in, out, ret = -1;
	ssize_t n;

	snprintf(tmpname, sizeof(tmpname), "%s.part", to);
	in = open(from, O_RDONLY);
	out = open(in_place ? to : tmpname, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	if (in < 0 || out < 0)
		goto cleanup;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			goto cleanup;
	if (n < 0 || fchmod(out, 0755))
		goto cleanup;
	ret = in_place ? 0 : rename(tmpname, to);
cleanup:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ret;
}

static void install(const char *from, const char *rel, bool in_place)
{
	char p[PATH_MAX];

	path_of(p, rel);
	CHECK_MSG(copy_file(from, p, in_place) == 0, "copy %s to %s: %s", from, p, strerror(errno));
}

/* Give @rel an mtime @secs seconds ago: changed files are attached once settled (1 s). */
static void age(const char *rel, int secs)
{
	struct timespec ts[2];
	char p[PATH_MAX];

	path_of(p, rel);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= secs;
	ts[1] = ts[0];
	CHECK_MSG(utimensat(AT_FDCWD, p, ts, 0) == 0, "utimensat %s: %s", p, strerror(errno));
}

/* The mtime of @rel, in nanoseconds since the epoch (0 when it cannot be read). */
static uint64_t mtime_ns(const char *rel)
{
	struct stat st;

	if (!CHECK_MSG(stat(tmp_path(rel), &st) == 0, "stat %s: %s", rel, strerror(errno)))
		return 0;
	return (uint64_t)st.st_mtim.tv_sec * 1000000000ull + st.st_mtim.tv_nsec;
}

/* Look now, as the eBPF source does. */
static void watch(struct targets *t)
{
	targets_watch(t, clock_real_ns());
}

static void write_file(const char *rel, const char *text, mode_t mode)
{
	char p[PATH_MAX];
	FILE *f;

	path_of(p, rel);
	f = fopen(p, "w");
	if (!CHECK_MSG(f != NULL, "create %s: %s", p, strerror(errno)))
		return;
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
}

/* The index of the target at @rel (under tmp), or -1. */
static int find(const struct targets *t, const char *rel)
{
	char p[PATH_MAX], real[PATH_MAX];

	path_of(p, rel);
	if (!realpath(p, real))
		snprintf(real, sizeof(real), "%s", p);
	for (size_t i = 0; i < targets_count(t); i++)
		if (!strcmp(targets_path(t, i), real))
			return (int)i;
	return -1;
}

/* Run with PATH=@dir (NULL: as started). */
static void set_path(const char *dir)
{
	if (dir)
		setenv("PATH", dir, 1);
	else if (saved_path)
		setenv("PATH", saved_path, 1);
	else
		unsetenv("PATH");
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = s ? strlen(s) : 0, m = strlen(tail);

	return n >= m && !strcmp(s + n - m, tail);
}

/* ---- the tests ---- */

static void test_find_on_path(void)
{
	char list[3 * PATH_MAX], out[PATH_MAX], want[PATH_MAX];

	check_case("find_on_path");
	mkdirs("path/a");
	mkdirs("path/b");
	mkdirs("path/c");
	write_file("path/a/tool", "#!/bin/sh\n", 0644); /* not executable: skipped */
	write_file("path/b/tool", "#!/bin/sh\n", 0755);
	write_file("path/c/tool", "#!/bin/sh\n", 0755);
	snprintf(list, sizeof(list), "::%s/path/a::%s/path/b:%s/path/c:", tmp, tmp, tmp);
	path_of(want, "path/b/tool");
	CHECK_EQ(targets_find_on_path("tool", list, out, sizeof(out)), 0);
	CHECK_STR(out, want);
	CHECK_EQ(targets_find_on_path("nothing", list, out, sizeof(out)), -ENOENT);
	/* A candidate longer than the buffer is not a match. */
	CHECK_EQ(targets_find_on_path("tool", list, out, 8), -ENOENT);
	/* Without PATH, the usual directories. */
	CHECK_EQ(targets_find_on_path("sh", NULL, out, sizeof(out)), 0);
	CHECK_MSG(ends_with(out, "bin/sh"), "sh found as %s", out);
	CHECK_EQ(targets_find_on_path("sh", "", out, sizeof(out)), 0);
}

static int add_main(struct targets *t, const char *ld, uint32_t pid, char *err, size_t size)
{
	static char arg[PATH_MAX];
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	if (ld) {
		snprintf(arg, sizeof(arg), "%s", ld);
		cfg.lightningd[cfg.n_lightningd++] = arg;
	}
	if (pid)
		cfg.pids[cfg.n_pids++] = pid;
	err[0] = '\0';
	return targets_add_main(t, &cfg, err, size);
}

static void expect_error(const char *ld, uint32_t pid, int want, const char *needle,
			 const char *needle2)
{
	struct fake f = {0};
	struct targets *t = targets__new(&fake_ops, &f, true);
	char err[1024];

	if (!CHECK(t != NULL))
		return;
	CHECK_EQ(add_main(t, ld, pid, err, sizeof(err)), want);
	CHECK_MSG(strstr(err, needle), "message without \"%s\": %s", needle, err);
	CHECK_MSG(!needle2 || strstr(err, needle2), "message without \"%s\": %s", needle2, err);
	CHECK_EQ(targets_count(t), 0);
	targets__free(t);
}

static void test_main_errors(void)
{
	char p[PATH_MAX];

	check_case("main binary errors");
	path_of(p, "nope/lightningd");
	expect_error(p, 0, -ENOENT, "--lightningd", "No such file");
	expect_error("/bin/true", 0, -ENOMSG, "no lightningd:span_emit probe", "HAVE_USDT=1");
	write_file("wrapper", "#!/bin/sh\nexec /opt/cln/lightningd \"$@\"\n", 0755);
	path_of(p, "wrapper");
	expect_error(p, 0, -ENOEXEC, "not an ELF executable", "--lightningd");
	/* --pid: the process's binary (this test, without probes); a process that is not. */
	expect_error(NULL, (uint32_t)getpid(), -ENOMSG, "no lightningd:span_emit probe", NULL);
	expect_error(NULL, 0x7ffffffe, -ENOENT, "--pid 2147483646: cannot find its binary",
		     "--lightningd");
	/* A binary named through the root of a process that is not. */
	expect_error("/proc/2147483646/root/bin/lightningd", 0, -ENOENT,
		     "--lightningd /proc/2147483646/root/bin/lightningd",
		     "cannot look into the root of its process");
	/* Nothing given: lightningd on PATH. */
	mkdirs("empty");
	set_path(tmp_path("empty"));
	expect_error(NULL, 0, -ENOENT, "lightningd not found on PATH", "--lightningd");
	set_path(NULL);
}

static void test_main_found(void)
{
	struct fake f = {0};
	struct targets *t = targets__new(&fake_ops, &f, false);
	char err[1024], ld[PATH_MAX], proc_root[PATH_MAX + 32];

	check_case("main binary found");
	if (!CHECK(t != NULL))
		return;
	mkdirs("onpath/bin");
	install(emitter, "onpath/bin/lightningd", false);
	path_of(ld, "onpath/bin/lightningd");
	set_path(tmp_path("onpath/bin"));
	CHECK_EQ(add_main(t, NULL, 0, err, sizeof(err)), 0);
	set_path(NULL);
	CHECK_EQ(find(t, "onpath/bin/lightningd"), 0);
	/* The same file again: by its path, through a symlink, a hard link. */
	CHECK_EQ(add_main(t, ld, 0, err, sizeof(err)), 0);
	CHECK_EQ(symlink(ld, tmp_path("onpath/bin/sym")), 0);
	CHECK_EQ(add_main(t, tmp_path("onpath/bin/sym"), 0, err, sizeof(err)), 0);
	CHECK_EQ(link(ld, tmp_path("onpath/bin/hard")), 0);
	CHECK_EQ(add_main(t, tmp_path("onpath/bin/hard"), 0, err, sizeof(err)), 0);
	/* Through the root of a process that shares ours (this one): the same file too. */
	snprintf(proc_root, sizeof(proc_root), "/proc/%d/root%s", (int)getpid(), ld);
	CHECK_EQ(add_main(t, proc_root, 0, err, sizeof(err)), 0);
	CHECK_EQ(targets_count(t), 1);
	CHECK_EQ(targets_root_pid(t, 0), 0);   /* looked up in our root, not through /proc */
	CHECK(targets_exe_path(t, 0) == NULL); /* not attached yet */
	CHECK(targets_exe_path(t, 1) == NULL);
	CHECK(targets_path(t, 1) == NULL);
	targets__free(t);
}

/*
 * A tree with lightningd at @ld and, in @dir, pay (probes), clnrest (ELF, no probes), a
 * Python plugin and a README. Returns its targets, attached.
 */
static struct targets *tree(struct fake *f, const char *ld, const char *dir, bool plugins)
{
	struct targets_tally n = {0};
	char rel[PATH_MAX], p[PATH_MAX], err[1024];
	struct targets *t;

	snprintf(rel, sizeof(rel), "%s", ld);
	*strrchr(rel, '/') = '\0';
	mkdirs(rel);
	mkdirs(dir);
	install(emitter, ld, false);
	snprintf(rel, sizeof(rel), "%s/pay", dir);
	install(emitter, rel, false);
	snprintf(rel, sizeof(rel), "%s/clnrest", dir);
	install("/bin/true", rel, false);
	snprintf(rel, sizeof(rel), "%s/summary.py", dir);
	write_file(rel, "#!/usr/bin/python3\n", 0755);
	snprintf(rel, sizeof(rel), "%s/README", dir);
	write_file(rel, "not a plugin\n", 0644);

	t = targets__new(&fake_ops, f, plugins);
	if (!CHECK(t != NULL))
		return NULL;
	path_of(p, ld);
	CHECK_EQ(add_main(t, p, 0, err, sizeof(err)), 0);
	CHECK_MSG(targets_attach(t, &n, err, sizeof(err)) == 0, "attach: %s", err);
	CHECK_EQ(n.mains, 1);
	CHECK_EQ(n.plugins, plugins ? 1 : 0);
	CHECK_EQ(n.probes, plugins ? 6 : 3);
	return t;
}

static void test_layouts(void)
{
	static const char *const layouts[][2] = {
		{"inst/bin/lightningd", "inst/libexec/c-lightning/plugins"},
		{"build/lightningd/lightningd", "build/plugins"},
		{"flat/lightningd", "flat/plugins"},
	};

	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
		struct fake f = {0};
		char want[PATH_MAX], p[PATH_MAX];
		struct targets *t;
		int pay;

		check_case(layouts[i][1]);
		t = tree(&f, layouts[i][0], layouts[i][1], true);
		if (!t)
			continue;
		path_of(p, layouts[i][1]);
		CHECK(realpath(p, want) != NULL);
		CHECK_EQ(targets_n_plugin_dirs(t), 1);
		CHECK_STR(targets_plugin_dir(t, 0), want);
		/* lightningd, pay, and the two executables without probes (seen, not traced) */
		CHECK_EQ(targets_count(t), 4);
		CHECK_EQ(f.live, 2);
		snprintf(p, sizeof(p), "%s/pay", layouts[i][1]);
		pay = find(t, p);
		CHECK(pay > 0);
		CHECK_STR(targets_exe_path(t, pay), targets_path(t, pay));
		snprintf(p, sizeof(p), "%s/clnrest", layouts[i][1]);
		CHECK(find(t, p) > 0 && targets_exe_path(t, find(t, p)) == NULL);
		snprintf(p, sizeof(p), "%s/README", layouts[i][1]);
		CHECK_EQ(find(t, p), -1);
		targets__free(t);
		CHECK_EQ(f.live, 0);
	}
}

static void test_no_plugins(void)
{
	struct fake f = {0};
	struct targets *t;

	check_case("no plugins");
	t = tree(&f, "np/bin/lightningd", "np/libexec/c-lightning/plugins", false);
	if (!t)
		return;
	CHECK_EQ(targets_count(t), 1);
	CHECK_EQ(targets_n_plugin_dirs(t), 0);
	watch(t);
	CHECK_EQ(targets_count(t), 1);
	targets__free(t);
}

#define LD  "w/bin/lightningd"
#define DIR "w/libexec/c-lightning/plugins"

static void test_replace(struct targets *t, struct fake *f)
{
	int live = f->live, attaches = f->attaches;
	uint64_t mtime;

	check_case("nothing changed");
	watch(t);
	CHECK_EQ(f->attaches, attaches);

	check_case("lightningd replaced (new inode)");
	install(emitter, LD, false);
	age(LD, 100);
	watch(t);
	CHECK_EQ(f->attaches, attaches + 1);
	CHECK_EQ(f->live, live + 1); /* the old file's probes stay: it may still run */
	install(emitter, LD, false);
	age(LD, 90);
	watch(t);
	CHECK_EQ(f->attaches, attaches + 2);
	CHECK_EQ(f->live, live + 1); /* only the one before stays */
	CHECK_STR(targets_exe_path(t, 0), targets_path(t, 0));

	check_case("not settled yet");
	install(emitter, LD, false);
	mtime = mtime_ns(LD);
	targets_watch(t, mtime + 999999999); /* written 1 s less 1 ns before */
	CHECK_EQ(f->attaches, attaches + 2);
	targets_watch(t, mtime + 1000000000);
	CHECK_EQ(f->attaches, attaches + 3);

	check_case("mtime in the future (a clock set back): no reason to wait");
	install(emitter, LD, false);
	targets_watch(t, mtime_ns(LD) - 1);
	CHECK_EQ(f->attaches, attaches + 4);

	check_case("rewritten in place (same inode)");
	install(emitter, LD, true);
	age(LD, 70);
	watch(t);
	CHECK_EQ(f->attaches, attaches + 5);
	CHECK_EQ(f->live, live); /* the old probes are gone, and so is the one before */

	check_case("attach fails, then works");
	install(emitter, LD, false);
	age(LD, 60);
	f->fail_next = EPERM;
	watch(t);
	CHECK_EQ(f->attaches, attaches + 5);
	watch(t);
	CHECK_EQ(f->attaches, attaches + 6);
	CHECK_EQ(f->live, live + 1);
}

static void test_plugins_change(struct targets *t, struct fake *f)
{
	int n = (int)targets_count(t), attaches = f->attaches, live = f->live, staged, pay;

	check_case("new plugin");
	install(emitter, DIR "/offers", false);
	watch(t);
	CHECK_EQ(targets_count(t), n + 1);
	CHECK_EQ(f->attaches, attaches + 1);
	CHECK(find(t, DIR "/offers") == n && targets_exe_path(t, n) != NULL);

	check_case("plugin installed under a temporary name, renamed over the old one");
	pay = find(t, DIR "/pay");
	install(emitter, DIR "/pay.dpkg-new", false);
	age(DIR "/pay.dpkg-new", 100);
	watch(t);
	staged = find(t, DIR "/pay.dpkg-new");
	CHECK_EQ(staged, n + 1);
	CHECK_EQ(f->attaches, attaches + 2);
	CHECK_EQ(f->live, live + 2);
	CHECK_EQ(rename(tmp_path(DIR "/pay.dpkg-new"), tmp_path(DIR "/pay")), 0);
	watch(t);
	CHECK_EQ(f->attaches, attaches + 2); /* taken over, not attached twice */
	CHECK_EQ(f->live, live + 2);	     /* the old pay's probes stay */
	CHECK_STR(targets_exe_path(t, pay), targets_path(t, pay));
	CHECK_STR(targets_exe_path(t, staged), targets_path(t, pay));

	check_case("new plugin installed under a temporary name, renamed");
	install(emitter, DIR "/xpay.dpkg-new", false);
	watch(t);
	staged = find(t, DIR "/xpay.dpkg-new");
	CHECK(staged > 0);
	CHECK_EQ(rename(tmp_path(DIR "/xpay.dpkg-new"), tmp_path(DIR "/xpay")), 0);
	watch(t);
	CHECK_EQ(find(t, DIR "/xpay"), staged);
	CHECK_STR(targets_exe_path(t, staged), targets_path(t, staged));
	CHECK_EQ(f->attaches, attaches + 3);

	check_case("hard link");
	n = (int)targets_count(t);
	CHECK_EQ(link(tmp_path(DIR "/xpay"), tmp_path(DIR "/xpay2")), 0);
	watch(t);
	CHECK_EQ(targets_count(t), n);
	CHECK_EQ(f->attaches, attaches + 3);
	CHECK_EQ(find(t, DIR "/xpay"), staged); /* still named as it was */
	CHECK_EQ(find(t, DIR "/xpay2"), -1);

	check_case("symlink to a plugin elsewhere");
	mkdirs("w/opt");
	install(emitter, "w/opt/linked", false);
	CHECK_EQ(symlink(tmp_path("w/opt/linked"), tmp_path(DIR "/linked")), 0);
	watch(t);
	watch(t);
	CHECK_EQ(targets_count(t), n + 1);
	CHECK_EQ(f->attaches, attaches + 4);
	CHECK_STR(targets_path(t, n), tmp_path("w/opt/linked")); /* the name it resolves to */
}

static void test_plugins_gone(struct targets *t, struct fake *f)
{
	int offers = find(t, DIR "/offers"), attaches = f->attaches, live = f->live;

	check_case("plugin gone and back");
	CHECK_EQ(unlink(tmp_path(DIR "/offers")), 0);
	watch(t);
	CHECK_EQ(f->live, live); /* a process may still run it */
	install(emitter, DIR "/offers", false);
	age(DIR "/offers", 100);
	watch(t);
	CHECK_EQ(find(t, DIR "/offers"), offers);
	CHECK_EQ(f->attaches, attaches + 1);

	check_case("replaced by a build without probes, then with");
	install("/bin/true", DIR "/offers", false);
	age(DIR "/offers", 90);
	watch(t);
	CHECK_EQ(f->attaches, attaches + 1);
	install(emitter, DIR "/offers", false);
	age(DIR "/offers", 80);
	watch(t);
	CHECK_EQ(f->attaches, attaches + 2);

	check_case("a plugin without probes gets them");
	install(emitter, DIR "/clnrest", false);
	age(DIR "/clnrest", 100);
	watch(t);
	CHECK_EQ(f->attaches, attaches + 3);
	CHECK(targets_exe_path(t, find(t, DIR "/clnrest")) != NULL);
}

static void test_watch(void)
{
	struct fake f = {0};
	struct targets *t;

	t = tree(&f, LD, DIR, true);
	if (!t)
		return;
	test_replace(t, &f);
	test_plugins_change(t, &f);
	test_plugins_gone(t, &f);
	check_case("detach all");
	targets_detach_all(t);
	CHECK_EQ(f.live, 0);
	targets__free(t);
}

static void test_cap(void)
{
	struct fake f = {0};
	struct targets *t;
	char rel[64];

	check_case("at most TARGETS_MAX binaries");
	t = tree(&f, "cap/bin/lightningd", "cap/plugins", true);
	if (!t)
		return;
	for (int i = 0; i < TARGETS_MAX; i++) {
		snprintf(rel, sizeof(rel), "cap/plugins/p%03d", i);
		write_file(rel, "#!/bin/sh\n", 0755);
	}
	watch(t);
	CHECK_EQ(targets_count(t), TARGETS_MAX);
	targets__free(t);
	CHECK_EQ(f.live, 0);
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/test-targets-XXXXXX", real[PATH_MAX];

	if (argc != 2) {
		fprintf(stderr, "usage: test-targets EMITTER\n");
		return 2;
	}
	emitter = argv[1];
	saved_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
	if (!mkdtemp(tmpl) || !realpath(tmpl, real) || strlen(real) >= sizeof(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	strcpy(tmp, real);
	log_set_level(LOG_LVL_ERROR);
	test_find_on_path();
	test_main_errors();
	test_main_found();
	test_layouts();
	test_no_plugins();
	test_watch();
	test_cap();
	if (!check_failed) {
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd))
			fprintf(stderr, "could not remove %s\n", tmp);
	} else {
		fprintf(stderr, "files kept in %s\n", tmp);
	}
	free(saved_path);
	exe_paths_reset();
	return check_summary();
}
