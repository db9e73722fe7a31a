// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the node finder's text parsers (src/finder.h), which read /proc of the
 * processes asked about.
 *
 * Input: byte 0 picks the mode.
 *   0  finder_container_id   on the rest, as /proc/PID/cgroup text: true exactly when @out
 *                            holds 64 lowercase hex digits found (in either case) in the
 *                            input between characters that are neither letters nor digits;
 *                            false leaves ""; deterministic
 *   1  finder_rpc_paths      byte 1: max (0-5), byte 2: length of HOME (its bytes follow,
 *                            cut at a NUL), the rest a command line: at most max paths and
 *                            at most two, none empty, each NUL-terminated and shorter than
 *                            PATH_MAX, no duplicates, absolute ones first and at most one of
 *                            each kind, all ending in the same rpc-file name; deterministic
 *                            (and finder_wallet on the same line: sqlite or postgresql)
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "finder.h"
#include "fuzz_util.h"

#define MAX_PATHS 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void check_container_id(const char *text, size_t len)
{
	char out[FINDER_ID_SIZE], again[FINDER_ID_SIZE];
	bool got = finder_container_id(text, len, out), seen = false;

	FUZZ_CHECK(finder_container_id(text, len, again) == got && !strcmp(out, again),
		   "not deterministic");
	if (!got) {
		FUZZ_CHECK(out[0] == '\0', "\"%s\" left on failure", out);
		return;
	}
	FUZZ_CHECK(strlen(out) == FINDER_ID_SIZE - 1, "id of %zu characters", strlen(out));
	for (size_t i = 0; i < FINDER_ID_SIZE - 1; i++)
		FUZZ_CHECK((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f'),
			   "not lowercase hex: %s", out);
	for (size_t i = 0; !seen && i + FINDER_ID_SIZE - 1 <= len; i++)
		seen = !strncasecmp(text + i, out, FINDER_ID_SIZE - 1) &&
		       (i == 0 || !alnum(text[i - 1])) &&
		       (i + FINDER_ID_SIZE - 1 == len || !alnum(text[i + FINDER_ID_SIZE - 1]));
	FUZZ_CHECK(seen, "%s is not a token of the input", out);
}

static const char *last_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static void check_rpc_paths(const uint8_t *data, size_t size)
{
	char(*out)[PATH_MAX], (*again)[PATH_MAX], *home, *cmd;
	const char *wallet;
	size_t max, home_len, n, n2, abs = 0;

	if (size < 3)
		return;
	max = data[1] % (MAX_PATHS + 1);
	home_len = data[2] < size - 3 ? data[2] : size - 3;
	out = malloc(MAX_PATHS * sizeof(*out));
	again = malloc(MAX_PATHS * sizeof(*again));
	home = malloc(home_len + 1);
	cmd = fuzz_dup(data + 3 + home_len, size - 3 - home_len);
	if (!out || !again || !home || !cmd)
		goto out;
	memcpy(home, data + 3, home_len);
	home[home_len] = '\0';
	n = finder_rpc_paths(cmd, size - 3 - home_len, home, out, max);
	n2 = finder_rpc_paths(cmd, size - 3 - home_len, home, again, max);
	FUZZ_CHECK(n <= max && n <= 2, "%zu paths, max %zu", n, max);
	FUZZ_CHECK(n2 == n, "not deterministic");
	for (size_t i = 0; i < n; i++) {
		size_t len = strnlen(out[i], PATH_MAX);

		FUZZ_CHECK(len > 0 && len < PATH_MAX, "path %zu of %zu bytes", i, len);
		FUZZ_CHECK(!strcmp(out[i], again[i]), "not deterministic");
		FUZZ_CHECK(out[i][0] == '/' ? i == abs++ : i == n - 1, "order of \"%s\"", out[i]);
		FUZZ_CHECK(!strcmp(last_name(out[i]), last_name(out[0])),
			   "\"%s\" and \"%s\" name other files", out[i], out[0]);
		for (size_t k = 0; k < i; k++)
			FUZZ_CHECK(strcmp(out[i], out[k]), "\"%s\" twice", out[i]);
	}
	FUZZ_CHECK(abs <= 1, "%zu absolute paths", abs);
	wallet = finder_wallet(cmd, size - 3 - home_len);
	FUZZ_CHECK(!strcmp(wallet, "sqlite") || !strcmp(wallet, "postgresql"), "wallet %s",
		   wallet);
out:
	free(out);
	free(again);
	free(home);
	free(cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1)
		return 0;
	if (data[0] % 2 == 0) {
		text = fuzz_dup(data + 1, size - 1);
		if (text)
			check_container_id(text, size - 1);
		free(text);
	} else {
		check_rpc_paths(data, size);
	}
	return 0;
}
