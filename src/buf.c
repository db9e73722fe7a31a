// SPDX-License-Identifier: MIT
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUF_FIRST 4096

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

int buf_reserve(struct buf *b, size_t more)
{
	size_t cap;
	uint8_t *p;

	if (more > b->max - b->len)
		return -E2BIG;
	if (b->cap - b->len >= more)
		return 0;
	cap = b->cap ? b->cap : BUF_FIRST;
	while (cap - b->len < more)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > b->max)
		cap = b->max;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_add(struct buf *b, const void *p, size_t n)
{
	int err;

	if (!n)
		return 0;
	err = buf_reserve(b, n);
	if (err)
		return err;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
