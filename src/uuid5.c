// SPDX-License-Identifier: MIT
#include "uuid5.h"

#include <errno.h>
#include <string.h>

#include "text.h"

#define SHA1_BLOCK 64

struct sha1 {
	uint32_t h[5];
	uint8_t block[SHA1_BLOCK];
	size_t fill;   /* bytes in block */
	uint64_t bits; /* message length so far */
};

static uint32_t rol(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

/* One 512-bit block (RFC 3174, section 6.1). */
static void sha1_block(struct sha1 *c, const uint8_t *p)
{
	uint32_t w[80], a = c->h[0], b = c->h[1], d = c->h[3], e = c->h[4], cc = c->h[2];

	for (int t = 0; t < 16; t++)
		w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
		       (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
	for (int t = 16; t < 80; t++)
		w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
	for (int t = 0; t < 80; t++) {
		uint32_t f, k, tmp;

		if (t < 20) {
			f = (b & cc) | (~b & d);
			k = 0x5A827999;
		} else if (t < 40) {
			f = b ^ cc ^ d;
			k = 0x6ED9EBA1;
		} else if (t < 60) {
			f = (b & cc) | (b & d) | (cc & d);
			k = 0x8F1BBCDC;
		} else {
			f = b ^ cc ^ d;
			k = 0xCA62C1D6;
		}
		tmp = rol(a, 5) + f + e + w[t] + k;
		e = d;
		d = cc;
		cc = rol(b, 30);
		b = a;
		a = tmp;
	}
	c->h[0] += a;
	c->h[1] += b;
	c->h[2] += cc;
	c->h[3] += d;
	c->h[4] += e;
}

static void sha1_init(struct sha1 *c)
{
	static const uint32_t h0[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};

	memcpy(c->h, h0, sizeof(h0));
	c->fill = 0;
	c->bits = 0;
}

static void sha1_add(struct sha1 *c, const uint8_t *p, size_t len)
{
	c->bits += (uint64_t)len * 8;
	while (len) {
		size_t take = SHA1_BLOCK - c->fill < len ? SHA1_BLOCK - c->fill : len;

		memcpy(c->block + c->fill, p, take);
		c->fill += take;
		p += take;
		len -= take;
		if (c->fill == SHA1_BLOCK) {
			sha1_block(c, c->block);
			c->fill = 0;
		}
	}
}

/* Padding: 0x80, zeros, the length in bits as 64 bits big-endian (RFC 3174, section 4). */
static void sha1_end(struct sha1 *c, uint8_t digest[20])
{
	uint64_t bits = c->bits;
	uint8_t len[8];

	c->block[c->fill++] = 0x80;
	if (c->fill > SHA1_BLOCK - 8) {
		memset(c->block + c->fill, 0, SHA1_BLOCK - c->fill);
		sha1_block(c, c->block);
		c->fill = 0;
	}
	memset(c->block + c->fill, 0, SHA1_BLOCK - 8 - c->fill);
	for (int i = 0; i < 8; i++)
		len[i] = (uint8_t)(bits >> (56 - 8 * i));
	memcpy(c->block + SHA1_BLOCK - 8, len, 8);
	sha1_block(c, c->block);
	for (int i = 0; i < 20; i++)
		digest[i] = (uint8_t)(c->h[i / 4] >> (24 - 8 * (i % 4)));
}

void uuid5_sha1(const void *data, size_t len, uint8_t digest[20])
{
	struct sha1 c;

	sha1_init(&c);
	sha1_add(&c, data, len);
	sha1_end(&c, digest);
}

/* RFC 9562, section 5.5: SHA-1 of namespace then name, first 16 bytes, version and variant. */
void uuid5_str(const uint8_t ns[16], const char *name, size_t len, char out[UUID5_STR_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[20];
	struct sha1 c;
	size_t o = 0;

	sha1_init(&c);
	sha1_add(&c, ns, 16);
	sha1_add(&c, (const uint8_t *)name, len);
	sha1_end(&c, digest);
	digest[6] = (uint8_t)((digest[6] & 0x0f) | 0x50);
	digest[8] = (uint8_t)((digest[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[digest[i] >> 4];
		out[o++] = hex[digest[i] & 15];
	}
	out[o] = '\0';
}

int uuid5_parse(const char *text, uint8_t out[16])
{
	size_t at = 0;

	for (int i = 0; i < 16; i++) {
		int hi, lo;

		if (i == 4 || i == 6 || i == 8 || i == 10) {
			if (text[at] != '-')
				return -EINVAL;
			at++;
		}
		if (!text[at] || !text[at + 1])
			return -EINVAL;
		hi = text_hex_digit(text[at]);
		lo = text_hex_digit(text[at + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
		at += 2;
	}
	return text[at] ? -EINVAL : 0;
}
