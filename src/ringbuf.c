// SPDX-License-Identifier: MIT
/*
 * ringbuf: reading a BPF ring buffer through one mapping of its data (see ringbuf.h).
 */
#include "ringbuf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The kernel's record header (include/uapi/linux/bpf.h). */
#define RB_BUSY_BIT    (1u << 31)
#define RB_DISCARD_BIT (1u << 30)
#define RB_HDR_SZ      8u

struct ringbuf {
	int fd;
	bool mapped;	      /* cons and prod are mappings of the map (not test memory) */
	size_t page;	      /* the mappings' unit */
	uint64_t *cons;	      /* the consumer position: written here */
	const uint64_t *prod; /* the producer position, followed by the data when mapped */
	const unsigned char *data;
	uint64_t mask;	     /* data size - 1 */
	unsigned char *wrap; /* a record crossing the end, copied whole */
	size_t wrap_cap;
	uint64_t skipped;
};

struct ringbuf *ringbuf__new_mem(uint64_t *cons, const uint64_t *prod, const void *data,
				 size_t data_size)
{
	struct ringbuf *rb;

	if (!data_size || (data_size & (data_size - 1))) {
		errno = EINVAL;
		return NULL;
	}
	rb = calloc(1, sizeof(*rb));
	if (!rb)
		return NULL;
	rb->fd = -1;
	rb->cons = cons;
	rb->prod = prod;
	rb->data = data;
	rb->mask = data_size - 1;
	return rb;
}

struct ringbuf *ringbuf__new(int map_fd, size_t data_size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct ringbuf *rb;
	void *cons, *prod;
	int err;

	if (!data_size || (data_size & (data_size - 1)) || data_size % page) {
		errno = EINVAL;
		return NULL;
	}
	/* The consumer page is the one page user space may map writable. */
	cons = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
	if (cons == MAP_FAILED)
		return NULL;
	/* The producer page and the data, once: the kernel also allows the data twice. */
	prod = mmap(NULL, page + data_size, PROT_READ, MAP_SHARED, map_fd, (off_t)page);
	if (prod == MAP_FAILED) {
		err = errno;
		munmap(cons, page);
		errno = err;
		return NULL;
	}
	rb = ringbuf__new_mem(cons, prod, (const unsigned char *)prod + page, data_size);
	if (!rb) {
		err = errno;
		munmap(cons, page);
		munmap(prod, page + data_size);
		errno = err;
		return NULL;
	}
	rb->fd = map_fd;
	rb->mapped = true;
	rb->page = page;
	return rb;
}

void ringbuf__free(struct ringbuf *rb)
{
	if (!rb)
		return;
	if (rb->mapped) {
		munmap(rb->cons, rb->page);
		munmap((void *)rb->prod, rb->page + rb->mask + 1);
	}
	free(rb->wrap);
	free(rb);
}

int ringbuf_fd(const struct ringbuf *rb)
{
	return rb->fd;
}

uint64_t ringbuf_avail(const struct ringbuf *rb)
{
	return __atomic_load_n(rb->prod, __ATOMIC_ACQUIRE) -
	       __atomic_load_n(rb->cons, __ATOMIC_ACQUIRE);
}

uint64_t ringbuf_skipped(const struct ringbuf *rb)
{
	return rb->skipped;
}

/*
 * The @len bytes of the record starting at data offset @off, in one piece: in place, or
 * copied into rb->wrap when they cross the end. NULL when that copy cannot be made.
 */
static const void *ringbuf_record(struct ringbuf *rb, uint64_t off, uint32_t len)
{
	uint64_t size = rb->mask + 1, first = size - off;

	if (len <= first)
		return rb->data + off;
	if (rb->wrap_cap < len) {
		unsigned char *p = realloc(rb->wrap, len);

		if (!p)
			return NULL;
		rb->wrap = p;
		rb->wrap_cap = len;
	}
	memcpy(rb->wrap, rb->data + off, first);
	memcpy(rb->wrap + first, rb->data, len - first);
	return rb->wrap;
}

int ringbuf_consume(struct ringbuf *rb, ringbuf_record_fn fn, void *ctx)
{
	uint64_t cons = __atomic_load_n(rb->cons, __ATOMIC_ACQUIRE);
	uint64_t prod = __atomic_load_n(rb->prod, __ATOMIC_ACQUIRE);
	int n = 0, ret = 0;

	for (;;) {
		if (cons >= prod) {
			/* Caught up: look once more, records may have come meanwhile. */
			prod = __atomic_load_n(rb->prod, __ATOMIC_ACQUIRE);
			if (cons >= prod)
				break;
		}
		/* Headers start on 8 bytes in a ring of a power-of-two size: never split. */
		const uint32_t *hdr = (const uint32_t *)(rb->data + (cons & rb->mask));
		uint32_t word = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
		uint32_t len = word & ~(RB_BUSY_BIT | RB_DISCARD_BIT);

		if (word & RB_BUSY_BIT)
			break; /* still being written: its turn comes at the next read */
		uint64_t next = cons + ((RB_HDR_SZ + len + 7) & ~(uint64_t)7);

		if (!(word & RB_DISCARD_BIT)) {
			const void *rec = ringbuf_record(rb, (cons + RB_HDR_SZ) & rb->mask, len);

			if (!rec) {
				rb->skipped++;
				ret = -ENOMEM;
			} else {
				int r = fn(ctx, rec, len);

				n++;
				if (r < 0) {
					__atomic_store_n(rb->cons, next, __ATOMIC_RELEASE);
					return r;
				}
			}
		}
		cons = next;
		/* Give the space back record by record: the producer may be waiting for it. */
		__atomic_store_n(rb->cons, cons, __ATOMIC_RELEASE);
	}
	return ret < 0 && !n ? ret : n;
}
