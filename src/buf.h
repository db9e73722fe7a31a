/* SPDX-License-Identifier: MIT */
/*
 * buf: a growable byte buffer with a cap, in the manner of curl's dynbuf. Every buffer says
 * the most it may ever hold; growing past it fails with -E2BIG instead of eating memory.
 * Memory is kept across buf_reset() (buffers are reused batch after batch).
 */
#ifndef CLN_OTLP_BUF_H
#define CLN_OTLP_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len; /* bytes in use */
	size_t cap; /* bytes allocated */
	size_t max; /* the cap: len never exceeds it */
};

#define BUF_INIT(maxbytes)                                          \
	{                                                           \
		.data = NULL, .len = 0, .cap = 0, .max = (maxbytes) \
	}

void buf_init(struct buf *b, size_t max);
/* Room for @more bytes past len. Returns 0, -E2BIG (past the cap) or -ENOMEM. */
int buf_reserve(struct buf *b, size_t more);
/* Append @n bytes. Returns 0, -E2BIG or -ENOMEM (nothing appended then). */
int buf_add(struct buf *b, const void *p, size_t n);
/* Forget the contents, keep the memory. */
void buf_reset(struct buf *b);
/* Release the memory; the cap stays, so the buffer can be used again. NULL is fine. */
void buf_free(struct buf *b);

#endif
