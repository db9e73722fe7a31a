// SPDX-License-Identifier: MIT
#include "exe_paths.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct exe_path {
	size_t refs;
	uint32_t slot; /* index in exe_paths[] */
	char str[];
};

static struct exe_path *exe_paths[EXE_PATHS_MAX];
static size_t exe_paths_n;
static struct log_ratelimit exe_paths_rl;

static struct exe_path *exe_path_entry(const char *path)
{
	struct exe_path *e = (struct exe_path *)(uintptr_t)(path - offsetof(struct exe_path, str));

	assert(e->slot < EXE_PATHS_MAX && exe_paths[e->slot] == e && e->refs > 0);
	return e;
}

static const char *exe_path_lost(const char *s, const char *why)
{
	log_limited(&exe_paths_rl, LOG_LVL_WARN,
		    "%s: spans of %s go without process.executable.path (%zu paths in use)", why, s,
		    exe_paths_n);
	return NULL;
}

const char *exe_path_get(const char *s)
{
	struct exe_path *e;
	size_t free_slot = EXE_PATHS_MAX, len;

	if (!s)
		return NULL;
	for (size_t i = 0; i < EXE_PATHS_MAX; i++) {
		if (!exe_paths[i]) {
			if (free_slot == EXE_PATHS_MAX)
				free_slot = i;
		} else if (!strcmp(exe_paths[i]->str, s)) {
			exe_paths[i]->refs++;
			return exe_paths[i]->str;
		}
	}
	if (free_slot == EXE_PATHS_MAX)
		return exe_path_lost(s, "the table of executable paths is full");
	len = strlen(s);
	e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return exe_path_lost(s, "out of memory");
	e->refs = 1;
	e->slot = (uint32_t)free_slot;
	memcpy(e->str, s, len + 1);
	exe_paths[free_slot] = e;
	exe_paths_n++;
	return e->str;
}

const char *exe_path_ref(const char *path)
{
	if (path)
		exe_path_entry(path)->refs++;
	return path;
}

void exe_path_put(const char *path)
{
	struct exe_path *e;

	if (!path)
		return;
	e = exe_path_entry(path);
	if (--e->refs)
		return;
	exe_paths[e->slot] = NULL;
	exe_paths_n--;
	free(e);
}

size_t exe_paths_count(void)
{
	return exe_paths_n;
}

bool exe_paths_full(void)
{
	return exe_paths_n == EXE_PATHS_MAX;
}

void exe_paths_reset(void)
{
	for (size_t i = 0; i < EXE_PATHS_MAX; i++) {
		free(exe_paths[i]);
		exe_paths[i] = NULL;
	}
	exe_paths_n = 0;
}
