// SPDX-License-Identifier: MIT
/*
 * Unit tests of the spool (src/spool.c):
 *   test_spool tests/data/spool/cases.json [--all-fail]
 * Data-driven cases of the file format: a payload is written as a file's bytes, the case's
 * mutations applied (flip a byte, truncate, set a 32-bit field, append), and
 * spool_file_parse() must accept it (with its spans, flags and payload) or name what is
 * wrong. Then the directory, in a temporary one: put, read oldest first, remove; files
 * adopted by a new spool (after a restart) and a .tmp left by a crash removed; a corrupt
 * file skipped, removed and counted; the byte bound evicting the oldest, counted; a
 * directory others may write refused.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "../check.h"
#include "../cases.h"
#include "spool.h"
#include "stats.h"

/* The file's bytes for the case's payload and header fields: malloc'd, length in *@len. */
static uint8_t *file_bytes(const cJSON *c, size_t *len)
{
	const char *payload = cases_str(c, "payload", "");
	size_t n = strlen(payload);
	struct spool_hdr h = {SPOOL_VERSION, (uint32_t)cases_int(c, "flags", 0),
			      (uint32_t)cases_int(c, "n_spans", 1), n, 0};
	uint8_t *out = malloc(SPOOL_HDR_SIZE + n + 64);

	h.crc = (uint32_t)crc32(0L, (const Bytef *)payload, (uInt)n);
	spool_hdr_encode(&h, out);
	memcpy(out + SPOOL_HDR_SIZE, payload, n);
	*len = SPOOL_HDR_SIZE + n;
	return out;
}

/* Re-seal the header's own checksum (a field changed on purpose, the header intact). */
static void reseal(uint8_t *b)
{
	uint32_t c = (uint32_t)crc32(0L, b, 36);

	for (int i = 0; i < 4; i++)
		b[36 + i] = (uint8_t)(c >> (8 * i));
}

static void mutate(const cJSON *m, uint8_t *b, size_t *len)
{
	const char *op = cases_str(m, "op", "");
	size_t at = (size_t)cases_int(m, "at", 0);

	if (!strcmp(op, "flip") && at < *len) {
		b[at] ^= (uint8_t)cases_int(m, "mask", 0x01);
	} else if (!strcmp(op, "truncate") && at <= *len) {
		*len = at;
	} else if (!strcmp(op, "set32") && at + 4 <= *len) {
		uint32_t v = (uint32_t)cases_int(m, "value", 0);

		for (int i = 0; i < 4; i++)
			b[at + i] = (uint8_t)(v >> (8 * i));
		if (cases_bool(m, "reseal", true))
			reseal(b);
	} else if (!strcmp(op, "append")) {
		size_t n = 0;
		uint8_t *x = cases_hex(m, "hex", &n);

		if (n > 64)
			n = 64;
		memcpy(b + *len, x, n);
		*len += n;
		free(x);
	} else {
		CHECK_FAIL("mutation %s does not apply", op);
	}
}

static void run_case(cJSON *c)
{
	const cJSON *want = cases_get(c, "expect"), *m;
	size_t len;
	uint8_t *b = file_bytes(c, &len);
	struct spool_hdr h;
	const uint8_t *payload = NULL;
	const char *why = "?";
	const char *want_why = cases_str(want, "why", NULL);
	int rc;

	cJSON_ArrayForEach(m, cases_get(c, "mutate")) mutate(m, b, &len);
	rc = spool_file_parse(b, len, &h, &payload, &why);
	if (!want_why) {
		const char *p = cases_str(want, "payload", cases_str(c, "payload", ""));

		CHECK_MSG(rc == 0, "accepted (got: %s)", why);
		if (rc == 0) {
			CHECK_EQ(h.n_spans, cases_int(want, "n_spans", cases_int(c, "n_spans", 1)));
			CHECK_EQ(h.flags, cases_int(want, "flags", cases_int(c, "flags", 0)));
			CHECK_EQ(h.len, strlen(p));
			CHECK_MSG(!memcmp(payload, p, strlen(p)), "the payload as written");
		}
	} else {
		CHECK_MSG(rc == -EBADMSG, "refused (rc %d)", rc);
		CHECK_MSG(rc < 0 && strstr(why, want_why), "why \"%s\" says \"%s\"", why, want_why);
	}
	free(b);
}

/* ---- the directory --------------------------------------------------------------------- */

static char dir[64];

static struct spool *open_dir(uint64_t max)
{
	struct spool_cfg cfg = {.dir = dir, .max_bytes = max};
	char err[512];
	struct spool *s = spool__open(&cfg, err, sizeof(err));

	CHECK_MSG(s != NULL, "spool__open: %s", err);
	return s;
}

static int put_text(struct spool *s, const char *text, uint32_t n_spans)
{
	return spool_put(s, (const uint8_t *)text, strlen(text), n_spans, SPOOL_F_GZIP);
}

/* The oldest file must hold @text; removed when @remove. */
static void expect_oldest(struct spool *s, const char *text, bool remove)
{
	struct buf b = BUF_INIT(1 << 20);
	struct spool_hdr h;
	uint64_t id = 0;
	int rc = spool_read_oldest(s, &b, &id, &h);

	CHECK_MSG(rc == 0, "a file to read (rc %d), wanted %s", rc, text);
	if (rc == 0) {
		CHECK_MSG(b.len == strlen(text) && !memcmp(b.data, text, b.len), "oldest is %s",
			  text);
		CHECK_EQ(h.flags, SPOOL_F_GZIP);
		if (remove)
			spool_remove(s, id);
	}
	buf_free(&b);
}

static void path_of(char *out, size_t size, uint64_t seq, const char *ext)
{
	snprintf(out, size, "%s/%020llu.%s", dir, (unsigned long long)seq, ext);
}

static void test_put_read_adopt(void)
{
	struct spool *s;
	char p[128];
	int fd;

	check_case("put, read, adopt");
	s = open_dir(1 << 20);
	if (!s)
		return;
	CHECK_EQ(put_text(s, "first", 1), 0);
	CHECK_EQ(put_text(s, "second", 2), 0);
	CHECK_EQ(put_text(s, "third", 3), 0);
	CHECK_EQ(spool_files(s), 3);
	CHECK_EQ(spool_bytes(s), 3 * SPOOL_HDR_SIZE + 5 + 6 + 5);
	CHECK_EQ(stats.spooled_spans, 6);
	CHECK_EQ(stats.spooled_batches, 3);
	expect_oldest(s, "first", true);
	spool__free(s);

	/* A restart: the files are adopted in order; a torn write's .tmp is removed. */
	path_of(p, sizeof(p), 99, "tmp");
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	s = open_dir(1 << 20);
	if (!s)
		return;
	CHECK_EQ(spool_files(s), 2);
	CHECK_MSG(access(p, F_OK) < 0, "the .tmp file is removed");
	CHECK_EQ(put_text(s, "fourth", 4), 0);
	path_of(p, sizeof(p), 4, "spool");
	CHECK_MSG(access(p, F_OK) == 0, "numbering goes on after the adopted files");
	expect_oldest(s, "second", true);
	expect_oldest(s, "third", true);
	expect_oldest(s, "fourth", true);
	CHECK_EQ(spool_files(s), 0);
	CHECK_EQ(spool_bytes(s), 0);
	spool__free(s);
}

/* The path of the @n-th oldest spool file (0 first); "" when there are fewer. */
static void nth_file(char *out, size_t size, int n)
{
	struct dirent **names = NULL;
	int k = scandir(dir, &names, NULL, alphasort), found = 0;

	out[0] = '\0';
	for (int i = 0; i < k; i++) {
		if (strstr(names[i]->d_name, ".spool") && found++ == n)
			snprintf(out, size, "%s/%s", dir, names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

static void test_corrupt_skipped(void)
{
	struct spool *s;
	char p[512];
	uint64_t before = stats.spool_corrupt;
	int fd;

	check_case("corrupt files skipped and counted");
	s = open_dir(1 << 20);
	if (!s)
		return;
	CHECK_EQ(put_text(s, "flipped", 1), 0);
	CHECK_EQ(put_text(s, "truncated", 1), 0);
	CHECK_EQ(put_text(s, "good", 1), 0);
	nth_file(p, sizeof(p), 0);
	fd = open(p, O_RDWR);
	CHECK(fd >= 0 && pwrite(fd, "X", 1, SPOOL_HDR_SIZE + 2) == 1);
	if (fd >= 0)
		close(fd);
	nth_file(p, sizeof(p), 1);
	CHECK(truncate(p, SPOOL_HDR_SIZE + 3) == 0);
	expect_oldest(s, "good", true);
	CHECK_EQ(stats.spool_corrupt - before, 2);
	CHECK_MSG(access(p, F_OK) < 0, "a corrupt file is removed");
	CHECK_EQ(spool_files(s), 0);
	spool__free(s);
}

static void test_evict_oldest(void)
{
	uint64_t before = stats.spool_evicted;
	struct spool *s;
	char big[1000];

	check_case("full: the oldest evicted, counted");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* room for two files of 999 + 40 bytes, not three */
	s = open_dir(2 * (999 + SPOOL_HDR_SIZE) + 500);
	if (!s)
		return;
	big[0] = '1';
	CHECK_EQ(put_text(s, big, 10), 0);
	big[0] = '2';
	CHECK_EQ(put_text(s, big, 20), 0);
	big[0] = '3';
	CHECK_EQ(put_text(s, big, 30), 0);
	CHECK_EQ(spool_files(s), 2);
	CHECK_EQ(stats.spool_evicted - before, 10);
	CHECK(spool_bytes(s) <= 2 * (999 + SPOOL_HDR_SIZE) + 500);
	big[0] = '2';
	expect_oldest(s, big, true);
	big[0] = '3';
	expect_oldest(s, big, true);
	CHECK_EQ(put_text(s, big, 1), 0);
	spool__free(s);
	/* a smaller bound at the next start applies to the files adopted */
	s = open_dir(64);
	if (s) {
		CHECK_EQ(spool_files(s), 0);
		/* larger than the whole spool: refused */
		CHECK_EQ(put_text(s, big, 1), -E2BIG);
		spool__free(s);
	}
}

static void test_refused_dir(void)
{
	struct spool_cfg cfg = {.dir = dir, .max_bytes = 1 << 20};
	char err[512] = "";
	struct spool *s;

	check_case("a directory others may write is refused");
	CHECK(chmod(dir, 0777) == 0);
	s = spool__open(&cfg, err, sizeof(err));
	CHECK_MSG(s == NULL, "refused");
	CHECK_MSG(strstr(err, "chmod 700"), "says what to do: %s", err);
	spool__free(s);
	CHECK(chmod(dir, 0700) == 0);
}

int main(int argc, char **argv)
{
	bool all_fail = argc == 3 && !strcmp(argv[2], "--all-fail");

	if (argc < 2) {
		fprintf(stderr, "usage: test_spool CASES.json [--all-fail]\n");
		return 2;
	}
	cases_run(argv[1], NULL, all_fail, run_case);
	if (all_fail)
		return check_summary();
	snprintf(dir, sizeof(dir), "/tmp/test_spool.XXXXXX");
	if (!mkdtemp(dir)) {
		CHECK_FAIL("mkdtemp");
		return check_summary();
	}
	test_put_read_adopt();
	test_corrupt_skipped();
	test_evict_oldest();
	test_refused_dir();
	if (check_failed == 0) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return check_summary();
}
