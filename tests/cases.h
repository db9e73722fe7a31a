/* SPDX-License-Identifier: MIT */
/*
 * cases.h: the data-driven cases of every C runner (tests/data/<name>/cases.json, an array
 * of objects, each with a "name"), read and run the same way. A file that cannot be read, or
 * a case without a name, ends the run (exit 2); a missing key gives the default the runner
 * passes. cases_run() also runs cases that are wrong on purpose, each of which must fail.
 * Each runner is one translation unit, with tests/check.h included first.
 */
#ifndef CLN_OTLP_TESTS_CASES_H
#define CLN_OTLP_TESTS_CASES_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "text.h"

#define CASES_FILE_MAX (4 << 20)

static inline cJSON *cases_load(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *text = malloc(CASES_FILE_MAX + 1);
	size_t n = 0;
	cJSON *root = NULL;

	if (f && text) {
		n = fread(text, 1, CASES_FILE_MAX + 1, f);
		if (n <= CASES_FILE_MAX) {
			text[n] = '\0';
			root = cJSON_Parse(text);
		}
	}
	if (f)
		fclose(f);
	free(text);
	if (!cJSON_IsArray(root)) {
		fprintf(stderr, "%s: not a readable JSON array of cases (%s)\n", path,
			f ? "bad JSON or too big" : strerror(errno));
		exit(2);
	}
	return root;
}

static inline const cJSON *cases_get(const cJSON *o, const char *key)
{
	return o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static inline bool cases_has(const cJSON *o, const char *key)
{
	return cases_get(o, key) != NULL;
}

static inline const char *cases_str(const cJSON *o, const char *key, const char *def)
{
	const cJSON *v = cases_get(o, key);

	return cJSON_IsString(v) ? v->valuestring : def;
}

/* A number, or a string of digits (for 64-bit values a double cannot hold). */
static inline long long cases_int(const cJSON *o, const char *key, long long def)
{
	const cJSON *v = cases_get(o, key);

	if (cJSON_IsString(v))
		return (long long)strtoull(v->valuestring, NULL, 10);
	return cJSON_IsNumber(v) ? (long long)v->valuedouble : def;
}

static inline bool cases_bool(const cJSON *o, const char *key, bool def)
{
	const cJSON *v = cases_get(o, key);

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* A hex string as bytes (malloc'd, at least 1 byte); NULL when the key is absent. */
static inline uint8_t *cases_hex(const cJSON *o, const char *key, size_t *len)
{
	const char *hex = cases_str(o, key, NULL);
	uint8_t *out;

	*len = 0;
	if (!hex)
		return NULL;
	*len = strlen(hex) / 2;
	out = malloc(*len + 1);
	if (!out || !text_hex_decode(hex, *len * 2, out)) {
		fprintf(stderr, "%s: not hex: %s\n", key, hex);
		exit(2);
	}
	return out;
}

/*
 * Run every case of @path (only the one named @only, if given) through @run. With
 * @all_fail each case must fail at least one check; its failures are expected, so they
 * are taken back and one check per case says whether it failed.
 */
static inline void cases_run(const char *path, const char *only, bool all_fail,
			     void (*run)(cJSON *c))
{
	cJSON *cases = cases_load(path), *c;
	int found = 0;

	if (all_fail)
		fprintf(stderr, "every case of %s must fail: the FAIL lines below are expected\n",
			path);
	cJSON_ArrayForEach(c, cases)
	{
		const char *name = cases_str(c, "name", NULL);
		int passed = check_passed, failed = check_failed;

		if (!name) {
			fprintf(stderr, "%s: a case without a name\n", path);
			exit(2);
		}
		if (only && strcmp(only, name))
			continue;
		found++;
		check_case(name);
		run(c);
		if (all_fail) {
			bool caught = check_failed > failed;

			check_passed = passed;
			check_failed = failed;
			CHECK_MSG(caught, "passed, but every case in %s must fail", path);
		}
	}
	check_case(NULL);
	cJSON_Delete(cases);
	if (only && !found) {
		fprintf(stderr, "no case named %s in %s\n", only, path);
		exit(2);
	}
}

#endif
