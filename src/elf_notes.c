// SPDX-License-Identifier: MIT
#include "elf_notes.h"

#ifdef CLN_OTLP_HAVE_BPF /* libelf is linked with the eBPF source */

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

#define ELF_NOTES_NT_STAPSDT 3

/*
 * A stapsdt note's descriptor: three addresses (probe site, the .stapsdt.base address it
 * was linked against, semaphore), each 4 or 8 bytes by ELF class, then three NUL-terminated
 * strings: provider, name, argument spec.
 */
static int elf_notes_parse(const char *desc, size_t len, size_t addr_size,
			   struct elf_notes_probe *p)
{
	const char *s, *end = desc + len;
	uint64_t addr[3] = {0};

	if (len < 3 * addr_size)
		return -EBADMSG;
	for (int i = 0; i < 3; i++) {
		if (addr_size == 8) {
			memcpy(&addr[i], desc + i * 8, 8);
		} else {
			uint32_t a;

			memcpy(&a, desc + i * 4, 4);
			addr[i] = a;
		}
	}
	s = desc + 3 * addr_size;
	p->provider = s;
	s = memchr(s, '\0', end - s);
	if (!s)
		return -EBADMSG;
	p->name = ++s;
	s = memchr(s, '\0', end - s);
	if (!s)
		return -EBADMSG;
	p->args = ++s;
	if (!memchr(s, '\0', end - s))
		return -EBADMSG;
	p->pc = addr[0];
	p->base = addr[1];
	p->semaphore = addr[2];
	return 0;
}

static int elf_notes_section(Elf *elf, Elf_Scn *scn, size_t addr_size, elf_notes_cb cb, void *ctx)
{
	Elf_Data *data = NULL;

	while ((data = elf_getdata(scn, data)) != NULL) {
		size_t off = 0, name_off, desc_off;
		GElf_Nhdr nhdr;

		while ((off = gelf_getnote(data, off, &nhdr, &name_off, &desc_off)) > 0) {
			const char *base = data->d_buf;
			struct elf_notes_probe p;
			int err;

			if (nhdr.n_type != ELF_NOTES_NT_STAPSDT || nhdr.n_namesz != 8 ||
			    memcmp(base + name_off, "stapsdt", 8))
				continue;
			err = elf_notes_parse(base + desc_off, nhdr.n_descsz, addr_size, &p);
			if (err)
				return err;
			err = cb(&p, ctx);
			if (err)
				return err;
		}
	}
	return 0;
}

int elf_notes_for_each_probe(const char *path, elf_notes_cb cb, void *ctx)
{
	Elf_Scn *scn = NULL;
	Elf *elf = NULL;
	size_t shstrndx, addr_size;
	int fd, err;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOSYS;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		err = -ENOEXEC;
		goto cleanup;
	}
	addr_size = gelf_getclass(elf) == ELFCLASS32 ? 4 : 8;
	if (elf_getshdrstrndx(elf, &shstrndx)) {
		err = -EBADMSG;
		goto cleanup;
	}
	err = 0;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name || strcmp(name, ".note.stapsdt"))
			continue;
		err = elf_notes_section(elf, scn, addr_size, cb, ctx);
		if (err)
			break;
	}
cleanup:
	elf_end(elf);
	close(fd);
	return err;
}

struct elf_notes_count_ctx {
	const char *provider;
	const char *name;
	int n;
};

static int elf_notes_count_cb(const struct elf_notes_probe *p, void *ctx)
{
	struct elf_notes_count_ctx *c = ctx;

	if (!strcmp(p->provider, c->provider) && !strcmp(p->name, c->name))
		c->n++;
	return 0;
}

int elf_notes_count_probe(const char *path, const char *provider, const char *name)
{
	struct elf_notes_count_ctx c = {.provider = provider, .name = name};
	int err = elf_notes_for_each_probe(path, elf_notes_count_cb, &c);

	return err < 0 ? err : c.n;
}

#else /* !CLN_OTLP_HAVE_BPF */

#include <errno.h>

int elf_notes_for_each_probe(const char *path, elf_notes_cb cb, void *ctx)
{
	return -ENOTSUP;
}

int elf_notes_count_probe(const char *path, const char *provider, const char *name)
{
	return -ENOTSUP;
}

#endif
