/* SPDX-License-Identifier: MIT */
/*
 * ringbuf: a reader of a BPF ring buffer map (BPF_MAP_TYPE_RINGBUF) that maps the ring's
 * data once. libbpf's reader maps the data area twice, back to back, so that a record
 * crossing the end of the ring reads as one piece: that doubles the ring's share of the
 * process's resident memory (4 MiB for a 2 MiB ring, from the first second, since the
 * kernel maps every page at mmap time). Here a record that crosses the end is copied out in
 * its two parts into a buffer of the reader's own, which happens to at most one record per
 * lap of the ring.
 *
 * The layout is the kernel's (kernel/bpf/ringbuf.c): a consumer page (the consumer
 * position, the only thing user space writes), a producer page (the producer position),
 * then the data; each record starts on 8 bytes with an 8-byte header whose length word has
 * a busy bit (reserved, not committed yet) and a discard bit. The map's fd is what to poll:
 * it is readable while records wait.
 */
#ifndef CLN_OTLP_RINGBUF_H
#define CLN_OTLP_RINGBUF_H

#include <stddef.h>
#include <stdint.h>

struct ringbuf;

/*
 * One record, @size bytes at @data (valid only during the call). Return 0 to go on, or a
 * negative number to stop: the record counts as read, and that number is returned by
 * ringbuf_consume().
 */
typedef int (*ringbuf_record_fn)(void *ctx, const void *data, size_t size);

/*
 * Map the ring of BPF map @map_fd, whose data area is @data_size bytes (its max_entries: a
 * power of two, a multiple of the page size). Returns NULL with errno set on failure.
 */
struct ringbuf *ringbuf__new(int map_fd, size_t data_size);
void ringbuf__free(struct ringbuf *rb);

/* The fd to poll (the map's): readable while records wait. */
int ringbuf_fd(const struct ringbuf *rb);

/* Bytes written to the ring (committed or not) and not read yet. */
uint64_t ringbuf_avail(const struct ringbuf *rb);

/*
 * Hand every committed record, in order, to @fn, up to a record still being written.
 * Returns the number of records handed on, @fn's negative result when it stopped, or
 * -ENOMEM when a record crossing the end could not be copied (that record is skipped and
 * counted in ringbuf_skipped(); reading goes on past it).
 */
int ringbuf_consume(struct ringbuf *rb, ringbuf_record_fn fn, void *ctx);

/* Records skipped because memory ran out. */
uint64_t ringbuf_skipped(const struct ringbuf *rb);

/*
 * For tests: a reader over a ring laid out in ordinary memory (@cons and @prod point at the
 * positions, @data at @data_size bytes). Free with ringbuf__free (it unmaps nothing).
 */
struct ringbuf *ringbuf__new_mem(uint64_t *cons, const uint64_t *prod, const void *data,
				 size_t data_size);

#endif
