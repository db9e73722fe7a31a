/* SPDX-License-Identifier: MIT */
/*
 * cases.h: reading the data-driven cases of the export runners (tests/data/<name>/cases.json,
 * an array of objects with a "name"). A file that cannot be read ends the run (exit 2); a
 * missing key gives the default the runner passes. Each runner is one translation unit.
 */
#ifndef CLN_OTLP_TESTS_EXPORT_CASES_H
#define CLN_OTLP_TESTS_EXPORT_CASES_H

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

#endif
