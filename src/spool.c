// SPDX-License-Identifier: MIT
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "log.h"
#include "stats.h"

#define SPOOL_FILES_MAX 65536u /* files at most, whatever their size */
#define SPOOL_NAME_LEN	32     /* 20 digits, ".spool", NUL, with room */

struct spool_file {
	uint64_t seq;
	uint64_t size; /* the file's bytes, header included */
	uint32_t n_spans;
};

struct spool {
	int dfd;
	char *dir;
	uint64_t max_bytes;
	uint64_t bytes;
	struct spool_file *files; /* oldest first: files[head..n) */
	size_t head, n, cap;
	uint64_t next_seq;
	struct log_ratelimit rl_evict, rl_corrupt, rl_io;
};

/* ---- the file format ------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t crc_of(const uint8_t *p, size_t n)
{
	uLong c = crc32(0L, Z_NULL, 0);

	while (n) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;

		c = crc32(c, p, chunk);
		p += chunk;
		n -= chunk;
	}
	return (uint32_t)c;
}

void spool_hdr_encode(const struct spool_hdr *h, uint8_t out[SPOOL_HDR_SIZE])
{
	memcpy(out, SPOOL_MAGIC, 8);
	put32(out + 8, h->version);
	put32(out + 12, h->flags);
	put32(out + 16, h->n_spans);
	put32(out + 20, 0);
	put64(out + 24, h->len);
	put32(out + 32, h->crc);
	put32(out + 36, crc_of(out, 36));
}

/* The header alone: 0, or -EBADMSG with *@why. */
static int spool_hdr_parse(const uint8_t *data, size_t len, struct spool_hdr *h, const char **why)
{
	if (len < SPOOL_HDR_SIZE) {
		*why = "shorter than its header (torn)";
		return -EBADMSG;
	}
	if (memcmp(data, SPOOL_MAGIC, 8) != 0) {
		*why = "not a spool file (bad magic)";
		return -EBADMSG;
	}
	if (get32(data + 36) != crc_of(data, 36)) {
		*why = "header checksum mismatch";
		return -EBADMSG;
	}
	h->version = get32(data + 8);
	h->flags = get32(data + 12);
	h->n_spans = get32(data + 16);
	h->len = get64(data + 24);
	h->crc = get32(data + 32);
	if (h->version != SPOOL_VERSION) {
		*why = "unknown version";
		return -EBADMSG;
	}
	if (h->len > SPOOL_PAYLOAD_MAX) {
		*why = "payload length out of range";
		return -EBADMSG;
	}
	return 0;
}

int spool_file_parse(const uint8_t *data, size_t len, struct spool_hdr *h, const uint8_t **payload,
		     const char **why)
{
	int rc = spool_hdr_parse(data, len, h, why);

	if (rc < 0)
		return rc;
	if (len - SPOOL_HDR_SIZE != h->len) {
		*why = len - SPOOL_HDR_SIZE < h->len ? "shorter than its header says (truncated)"
						     : "longer than its header says";
		return -EBADMSG;
	}
	if (crc_of(data + SPOOL_HDR_SIZE, (size_t)h->len) != h->crc) {
		*why = "payload checksum mismatch";
		return -EBADMSG;
	}
	*payload = data + SPOOL_HDR_SIZE;
	*why = "";
	return 0;
}

/* ---- the index of files ---------------------------------------------------------------- */

static void file_name(char out[SPOOL_NAME_LEN], uint64_t seq, const char *ext)
{
	snprintf(out, SPOOL_NAME_LEN, "%020" PRIu64 ".%s", seq, ext);
}

/* "NNNNNNNNNNNNNNNNNNNN.<ext>": true with the number. */
static bool name_seq(const char *name, const char *ext, uint64_t *seq)
{
	char *end;

	if (strlen(name) != 21 + strlen(ext) || name[20] != '.' || strcmp(name + 21, ext) != 0)
		return false;
	for (int i = 0; i < 20; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	errno = 0;
	*seq = strtoull(name, &end, 10);
	return errno == 0 && end == name + 20;
}

static int index_add(struct spool *s, uint64_t seq, uint64_t size, uint32_t n_spans)
{
	if (s->head && s->n == s->cap) {
		memmove(s->files, s->files + s->head, (s->n - s->head) * sizeof(*s->files));
		s->n -= s->head;
		s->head = 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct spool_file *f = realloc(s->files, cap * sizeof(*f));

		if (!f)
			return -ENOMEM;
		s->files = f;
		s->cap = cap;
	}
	s->files[s->n++] = (struct spool_file){seq, size, n_spans};
	s->bytes += size;
	return 0;
}

static int file_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct spool_file *)a)->seq, y = ((const struct spool_file *)b)->seq;

	return x < y ? -1 : x > y;
}

/* Drop the oldest file from the index and the disk. */
static void pop_oldest(struct spool *s)
{
	struct spool_file *f = &s->files[s->head++];
	char name[SPOOL_NAME_LEN];

	file_name(name, f->seq, "spool");
	if (unlinkat(s->dfd, name, 0) < 0 && errno != ENOENT)
		log_limited(&s->rl_io, LOG_LVL_WARN, "spool: cannot remove %s/%s: %s", s->dir, name,
			    strerror(errno));
	s->bytes -= f->size;
	if (s->head == s->n)
		s->head = s->n = 0;
}

size_t spool_files(const struct spool *s)
{
	return s ? s->n - s->head : 0;
}

uint64_t spool_bytes(const struct spool *s)
{
	return s ? s->bytes : 0;
}

static void make_room(struct spool *s, uint64_t size);

/* ---- opening --------------------------------------------------------------------------- */

/* The spans a file says it holds (0 when its header does not check out). */
static uint32_t file_spans(int dfd, const char *name)
{
	uint8_t hdr[SPOOL_HDR_SIZE];
	struct spool_hdr h;
	const char *why;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = pread(fd, hdr, sizeof(hdr), 0);
	close(fd);
	if (n != (ssize_t)sizeof(hdr) || spool_hdr_parse(hdr, sizeof(hdr), &h, &why) < 0)
		return 0;
	return h.n_spans;
}

/* The files a previous run left: adopted, oldest first; its unfinished .tmp files removed. */
static int spool_adopt(struct spool *s, char *err, size_t err_size)
{
	int fd = dup(s->dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	int rc = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		snprintf(err, err_size, "cannot read the spool directory %s: %s", s->dir,
			 strerror(errno));
		return -errno;
	}
	while (rc == 0 && (e = readdir(d))) {
		struct stat st;
		uint64_t seq;

		if (name_seq(e->d_name, "tmp", &seq)) {
			unlinkat(s->dfd, e->d_name, 0); /* a write a crash cut short */
			continue;
		}
		if (!name_seq(e->d_name, "spool", &seq) ||
		    fstatat(s->dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		rc = index_add(s, seq, (uint64_t)st.st_size, file_spans(s->dfd, e->d_name));
		if (seq >= s->next_seq)
			s->next_seq = seq + 1;
	}
	closedir(d);
	if (rc < 0) {
		snprintf(err, err_size, "spool %s: out of memory", s->dir);
		return rc;
	}
	if (s->n)
		qsort(s->files, s->n, sizeof(*s->files), file_cmp);
	make_room(s, 0); /* --spool-size may be smaller than last time */
	if (s->n)
		log_info("spool: %zu batches (%" PRIu64 " bytes) left in %s by a previous run: "
			 "sent once the collector answers",
			 s->n, s->bytes, s->dir);
	return 0;
}

/* @dir is ours to write spans into: a directory, not writable by group or others. */
static int spool_check_dir(struct spool *s, char *err, size_t err_size)
{
	struct stat st;

	if (fstat(s->dfd, &st) < 0) {
		snprintf(err, err_size, "spool directory %s: %s", s->dir, strerror(errno));
		return -errno;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, err_size,
			 "spool directory %s is writable by group or others (mode %04o): it holds "
			 "span data; chmod 700 %s",
			 s->dir, (unsigned)(st.st_mode & 07777), s->dir);
		return -EPERM;
	}
	if (st.st_mode & (S_IRGRP | S_IROTH | S_IXGRP | S_IXOTH))
		log_warn("spool: %s is readable by group or others (mode %04o): the spans in it "
			 "are too; chmod 700 %s",
			 s->dir, (unsigned)(st.st_mode & 07777), s->dir);
	return 0;
}

struct spool *spool__open(const struct spool_cfg *cfg, char *err, size_t err_size)
{
	struct spool *s = calloc(1, sizeof(*s));

	err[0] = '\0';
	if (!s || !(s->dir = strdup(cfg->dir))) {
		free(s);
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	s->dfd = -1;
	s->max_bytes = cfg->max_bytes;
	s->next_seq = 1;
	if (mkdir(cfg->dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, err_size, "cannot create the spool directory %s: %s", cfg->dir,
			 strerror(errno));
		goto fail;
	}
	s->dfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dfd < 0) {
		snprintf(err, err_size, "cannot open the spool directory %s: %s%s", cfg->dir,
			 strerror(errno), errno == ENOTDIR ? " (--spool names a directory)" : "");
		goto fail;
	}
	if (spool_check_dir(s, err, err_size) < 0 || spool_adopt(s, err, err_size) < 0)
		goto fail;
	return s;
fail:
	spool__free(s);
	return NULL;
}

void spool__free(struct spool *s)
{
	if (!s)
		return;
	if (s->dfd >= 0)
		close(s->dfd);
	free(s->files);
	free(s->dir);
	free(s);
}

int spool_check_access(struct spool *s, char *err, size_t err_size)
{
	struct stat st;

	if (fstat(s->dfd, &st) < 0 || faccessat(s->dfd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		snprintf(err, err_size,
			 "the spool directory %s is not writable by uid %u, whom cln-otlp runs as: "
			 "make it that user's (install -d -m 700 -o USER %s), or give --user",
			 s->dir, (unsigned)geteuid(), s->dir);
		return -EACCES;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, err_size,
			 "the spool directory %s belongs to uid %u, not to uid %u whom cln-otlp "
			 "runs as: chown %u %s (it holds span data)",
			 s->dir, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(),
			 s->dir);
		return -EACCES;
	}
	return 0;
}

/* ---- writing --------------------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The file for @seq: written as .tmp, fsynced, renamed, the directory fsynced. */
static int write_file(struct spool *s, uint64_t seq, const uint8_t *hdr, const uint8_t *payload,
		      size_t len)
{
	char tmp[SPOOL_NAME_LEN], name[SPOOL_NAME_LEN];
	int fd, rc;

	file_name(tmp, seq, "tmp");
	file_name(name, seq, "spool");
	fd = openat(s->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, hdr, SPOOL_HDR_SIZE);
	if (rc == 0)
		rc = write_all(fd, payload, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(s->dfd, tmp, s->dfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(s->dfd, tmp, 0);
		return rc;
	}
	if (fsync(s->dfd) < 0)
		return -errno; /* renamed, maybe not durable: still there for this run */
	return 0;
}

/* Room for @size more bytes (and one more file): the oldest files go, counted. */
static void make_room(struct spool *s, uint64_t size)
{
	uint64_t spans = 0, files = 0;

	while (spool_files(s) &&
	       (s->bytes + size > s->max_bytes || spool_files(s) >= SPOOL_FILES_MAX)) {
		spans += s->files[s->head].n_spans;
		files++;
		pop_oldest(s);
	}
	if (!files)
		return;
	stats.spool_evicted += spans;
	log_limited(&s->rl_evict, LOG_LVL_WARN,
		    "spool %s full (--spool-size %" PRIu64 " bytes): removed the %" PRIu64
		    " oldest batches (%" PRIu64 " spans) to make room",
		    s->dir, s->max_bytes, files, spans);
}

int spool_put(struct spool *s, const uint8_t *payload, size_t len, uint32_t n_spans, uint32_t flags)
{
	struct spool_hdr h = {SPOOL_VERSION, flags, n_spans, len, 0};
	uint8_t hdr[SPOOL_HDR_SIZE];
	uint64_t size = SPOOL_HDR_SIZE + (uint64_t)len;
	int rc;

	if (len > SPOOL_PAYLOAD_MAX || size > s->max_bytes)
		return -E2BIG;
	make_room(s, size);
	h.crc = crc_of(payload, len);
	spool_hdr_encode(&h, hdr);
	rc = write_file(s, s->next_seq, hdr, payload, len);
	if (rc < 0) {
		log_limited(&s->rl_io, LOG_LVL_ERROR, "spool: cannot write a batch to %s: %s",
			    s->dir, strerror(-rc));
		return rc;
	}
	rc = index_add(s, s->next_seq++, size, n_spans);
	if (rc < 0) {
		char name[SPOOL_NAME_LEN];

		file_name(name, s->next_seq - 1, "spool");
		unlinkat(s->dfd, name, 0);
		return rc;
	}
	stats.spooled_spans += n_spans;
	stats.spooled_batches++;
	stats.spooled_bytes += size;
	return 0;
}

/* ---- reading --------------------------------------------------------------------------- */

/* Read file @name whole into @out. */
static int read_file(struct spool *s, const char *name, struct buf *out)
{
	struct stat st;
	int fd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;

	buf_reset(out);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		rc = -errno;
	else if ((uint64_t)st.st_size > SPOOL_HDR_SIZE + (uint64_t)SPOOL_PAYLOAD_MAX)
		rc = -EFBIG;
	else
		rc = buf_reserve(out, (size_t)st.st_size);
	while (rc == 0 && out->len < (size_t)st.st_size) {
		ssize_t n = read(fd, out->data + out->len, (size_t)st.st_size - out->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* shorter than it was: the parse says so */
		out->len += (size_t)n;
	}
	close(fd);
	return rc;
}

static void drop_corrupt(struct spool *s, const char *name, const char *why)
{
	stats.spool_corrupt++;
	log_limited(&s->rl_corrupt, LOG_LVL_WARN, "spool: %s/%s skipped and removed: %s", s->dir,
		    name, why);
	pop_oldest(s);
}

int spool_read_oldest(struct spool *s, struct buf *out, uint64_t *id, struct spool_hdr *h)
{
	while (spool_files(s)) {
		struct spool_file *f = &s->files[s->head];
		char name[SPOOL_NAME_LEN];
		const uint8_t *payload;
		const char *why;
		int rc;

		file_name(name, f->seq, "spool");
		rc = read_file(s, name, out);
		if (rc == -ENOENT || rc == -EFBIG) {
			drop_corrupt(s, name, rc == -ENOENT ? "gone" : "too large");
			continue;
		}
		if (rc < 0)
			return rc;
		if (spool_file_parse(out->data, out->len, h, &payload, &why) < 0) {
			drop_corrupt(s, name, why);
			continue;
		}
		memmove(out->data, payload, (size_t)h->len);
		out->len = (size_t)h->len;
		f->n_spans = h->n_spans;
		*id = f->seq;
		return 0;
	}
	return -ENOENT;
}

/* The index entry of file @id, if it is the oldest (replays always are). */
static bool is_oldest(const struct spool *s, uint64_t id)
{
	return spool_files(s) && s->files[s->head].seq == id;
}

void spool_remove(struct spool *s, uint64_t id)
{
	if (is_oldest(s, id)) {
		pop_oldest(s);
		return;
	}
	for (size_t i = s->head; i < s->n; i++) {
		char name[SPOOL_NAME_LEN];

		if (s->files[i].seq != id)
			continue;
		file_name(name, id, "spool");
		unlinkat(s->dfd, name, 0);
		s->bytes -= s->files[i].size;
		memmove(&s->files[i], &s->files[i + 1], (s->n - i - 1) * sizeof(*s->files));
		s->n--;
		return;
	}
}

void spool_reject(struct spool *s, uint64_t id, const char *why)
{
	char name[SPOOL_NAME_LEN];

	file_name(name, id, "spool");
	stats.spool_corrupt++;
	log_limited(&s->rl_corrupt, LOG_LVL_WARN, "spool: %s/%s skipped and removed: %s", s->dir,
		    name, why);
	spool_remove(s, id);
}

void spool_mark_sent(struct spool *s, uint64_t id)
{
	char name[SPOOL_NAME_LEN];
	uint8_t hdr[SPOOL_HDR_SIZE];
	struct spool_hdr h;
	const char *why;
	int fd;

	file_name(name, id, "spool");
	fd = openat(s->dfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	if (pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
	    spool_hdr_parse(hdr, sizeof(hdr), &h, &why) == 0) {
		h.flags |= SPOOL_F_SENT;
		spool_hdr_encode(&h, hdr);
		if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || fsync(fd) < 0)
			log_limited(&s->rl_io, LOG_LVL_WARN, "spool: cannot mark %s/%s: %s", s->dir,
				    name, strerror(errno));
	}
	close(fd);
}
