/* SPDX-License-Identifier: MIT */
/*
 * spool: what the exporter could not deliver (retry budget spent, shutdown timeout reached,
 * queue full), kept on disk in --spool DIR and sent again, oldest first, once the collector
 * answers, in this run or a later one.
 *
 * One file a batch, named by a sequence number (NNNNNNNNNNNNNNNNNNNN.spool: the name's order
 * is the age). A file is written under a temporary name (.tmp), fsynced, renamed into place,
 * and the directory fsynced, every batch: once spool_put() returns 0 the batch survives a
 * crash and a power loss (a .tmp left by a crash is removed at the next start). The file is
 * a 40-byte header (below) then the request body exactly as it went on the wire (the encoded
 * ExportTraceServiceRequest, gzipped and gRPC-framed if the exporter does that), so a replay
 * sends the bytes as they are. A file whose header or payload does not check out (torn,
 * flipped, truncated, another version) is removed and counted (spool_corrupt), never sent.
 *
 * Bounded by bytes (--spool-size, headers included): the oldest files go first to make
 * room, counted (spool_evicted, spans). At start, the files already in DIR are adopted.
 * DIR holds span data: it is created 0700, and refused when group or others may write it.
 */
#ifndef CLN_OTLP_SPOOL_H
#define CLN_OTLP_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * The header, little-endian: magic "CLNSPOOL", version u32, flags u32, spans u32, 0 u32,
 * payload length u64, CRC32 of the payload u32, CRC32 of the 36 bytes before it u32.
 */
#define SPOOL_MAGIC	  "CLNSPOOL"
#define SPOOL_VERSION	  1u
#define SPOOL_HDR_SIZE	  40u
#define SPOOL_PAYLOAD_MAX (256u << 20) /* a request body is far smaller */

enum spool_flag {
	SPOOL_F_GZIP = 1u << 0, /* the body is gzipped */
	SPOOL_F_GRPC = 1u << 1, /* the body is a gRPC message (framed) */
	SPOOL_F_JSON = 1u << 2, /* the body is OTLP/JSON (else protobuf) */
	SPOOL_F_SENT = 1u << 3, /* it was in flight when given up: may have been delivered */
	SPOOL_F_FORMAT = SPOOL_F_GZIP | SPOOL_F_GRPC | SPOOL_F_JSON,
};

struct spool_hdr {
	uint32_t version;
	uint32_t flags;
	uint32_t n_spans;
	uint64_t len; /* payload bytes */
	uint32_t crc; /* CRC32 (zlib's) of the payload */
};

/* Write @h (its crc and len as given) into @out. */
void spool_hdr_encode(const struct spool_hdr *h, uint8_t out[SPOOL_HDR_SIZE]);
/*
 * Check a whole file's bytes: 0 with the header in @h and the payload at *@payload (inside
 * @data), or -EBADMSG with *@why saying what is wrong (short, bad magic, header checksum,
 * version, length, payload checksum). Never reads past @len.
 */
int spool_file_parse(const uint8_t *data, size_t len, struct spool_hdr *h, const uint8_t **payload,
		     const char **why);

struct spool;

struct spool_cfg {
	const char *dir;
	uint64_t max_bytes; /* files' bytes at most */
};

/*
 * Open (create, 0700) @cfg->dir and adopt its files. Refuses a directory that group or
 * others may write, or that is not a directory. Returns NULL with a message in @err.
 */
struct spool *spool__open(const struct spool_cfg *cfg, char *err, size_t err_size);
void spool__free(struct spool *s);
/*
 * After the privilege drop: can this process, as it now is, create and remove files in the
 * directory, and does it own it? Returns 0, or -EACCES with a message in @err saying what
 * to do.
 */
int spool_check_access(struct spool *s, char *err, size_t err_size);

/*
 * Keep @len bytes of @payload (@n_spans spans, @flags) durably, evicting the oldest files if
 * needed. Returns 0 (counted in spooled_*), or a negative errno (-E2BIG: larger than the
 * whole spool; disk full, I/O error): nothing kept then, the caller drops and counts.
 */
int spool_put(struct spool *s, const uint8_t *payload, size_t len, uint32_t n_spans,
	      uint32_t flags);
/* Files waiting. */
size_t spool_files(const struct spool *s);
/* Their bytes. */
uint64_t spool_bytes(const struct spool *s);

/*
 * The oldest file's payload into @out (replacing its contents), its id in *@id and header
 * in @h. Files that do not check out are removed and counted on the way. Returns 0, or
 * -ENOENT when none is left (or a negative errno when reading fails: the file stays).
 */
int spool_read_oldest(struct spool *s, struct buf *out, uint64_t *id, struct spool_hdr *h);
/* File @id was delivered (or refused for good): remove it. */
void spool_remove(struct spool *s, uint64_t id);
/* File @id cannot be sent (@why): removed and counted as corrupt. */
void spool_reject(struct spool *s, uint64_t id, const char *why);
/* File @id was in flight when the run ended: mark it SPOOL_F_SENT (its next delivery counts). */
void spool_mark_sent(struct spool *s, uint64_t id);

#endif
