// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the spool's files (src/spool.h), as a crash, a full disk or someone else
 * may leave them. Byte 0 picks the mode, the rest is a file's bytes.
 *   even  spool_file_parse   0 or -EBADMSG with a reason; when 0, the payload lies inside
 *                            the input right after the header, its length and CRC32 are the
 *                            header's, and the header encodes back to the same 40 bytes
 *   odd   the directory      the bytes as the only file of a spool directory: adopted, then
 *                            spool_read_oldest() returns exactly what the parser accepts (the
 *                            payload), or removes the file and counts it (spool_corrupt)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "fuzz_util.h"
#include "spool.h"
#include "stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_parse(const uint8_t *d, size_t n)
{
	struct spool_hdr h;
	const uint8_t *payload = NULL;
	const char *why = NULL;
	uint8_t again[SPOOL_HDR_SIZE];
	int rc = spool_file_parse(d, n, &h, &payload, &why);

	FUZZ_CHECK(rc == 0 || rc == -EBADMSG, "rc %d", rc);
	FUZZ_CHECK(why != NULL, "a reason, even empty");
	if (rc < 0) {
		FUZZ_CHECK(why[0], "a refusal says why");
		return;
	}
	FUZZ_CHECK(payload == d + SPOOL_HDR_SIZE, "payload after the header");
	FUZZ_CHECK(n == SPOOL_HDR_SIZE + h.len, "length %zu", n);
	FUZZ_CHECK(h.version == SPOOL_VERSION, "version %u", h.version);
	FUZZ_CHECK((uint32_t)crc32(0L, payload, (uInt)h.len) == h.crc, "crc");
	spool_hdr_encode(&h, again);
	FUZZ_CHECK(!memcmp(again, d, SPOOL_HDR_SIZE), "the header encodes back the same");
}

static void fuzz_dir(const uint8_t *d, size_t n)
{
	char dir[] = "/tmp/fuzz_spool.XXXXXX", path[64], err[256];
	struct spool_cfg cfg = {.dir = dir, .max_bytes = 1 << 30};
	struct buf out = BUF_INIT(SPOOL_PAYLOAD_MAX);
	struct spool *s;
	struct spool_hdr h, ph;
	const uint8_t *payload;
	const char *why;
	uint64_t id, corrupt = stats.spool_corrupt;
	int fd, rc, want;

	if (!mkdtemp(dir))
		return;
	snprintf(path, sizeof(path), "%s/%020d.spool", dir, 1);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	FUZZ_CHECK(fd >= 0 && write(fd, d, n) == (ssize_t)n, "write the file");
	close(fd);
	s = spool__open(&cfg, err, sizeof(err));
	FUZZ_CHECK(s, "open: %s", err);
	want = spool_file_parse(d, n, &ph, &payload, &why);
	rc = spool_read_oldest(s, &out, &id, &h);
	if (want == 0) {
		FUZZ_CHECK(rc == 0 && id == 1, "a good file read (rc %d)", rc);
		FUZZ_CHECK(out.len == ph.len && !memcmp(out.data, payload, out.len), "payload");
		spool_remove(s, id);
	} else {
		FUZZ_CHECK(rc == -ENOENT, "a bad file skipped (rc %d)", rc);
		FUZZ_CHECK(stats.spool_corrupt == corrupt + 1, "and counted");
	}
	FUZZ_CHECK(spool_files(s) == 0 && access(path, F_OK) < 0, "nothing left");
	spool__free(s);
	buf_free(&out);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_dir(data + 1, size - 1);
	else
		fuzz_parse(data + 1, size - 1);
	return 0;
}
