/* SPDX-License-Identifier: MIT */
/*
 * text: the small helpers every module that handles outside text needs, in one place.
 * Pure: no allocation, no I/O.
 *   - UTF-8: OTLP strings must be well-formed UTF-8 (no overlong forms, no surrogates,
 *     nothing past U+10FFFF), or a collector rejects the whole request;
 *   - hex: span and trace ids;
 *   - base64: gRPC's binary trailers (grpc-status-details-bin);
 *   - printable: what an untrusted peer says, made safe for a log line; messages cut to fit.
 */
#ifndef CLN_OTLP_TEXT_H
#define CLN_OTLP_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at @s (at most @avail bytes), 0 when invalid. */
size_t text_utf8_len(const unsigned char *s, size_t avail);
/* True when the NUL-terminated @s is well-formed UTF-8. */
bool text_utf8_valid(const char *s);

/* The value of one hex digit (either case), -1 for anything else. */
int text_hex_digit(char c);
/* Parse exactly @n hex digits (either case) into n/2 bytes. False on an odd @n or a non-hex. */
bool text_hex_decode(const char *hex, size_t n, uint8_t *out);
/* Write 2*n lowercase hex digits and a NUL into @out. */
void text_hex_encode(const uint8_t *in, size_t n, char *out);

/*
 * Decode base64 (standard or URL alphabet, padding optional). Returns the bytes written, or
 * -EINVAL for a character outside the alphabets, a dangling character, or output past
 * @out_size.
 */
int text_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_size);

/*
 * Copy at most @len bytes of @src (stopping at a NUL) into @dst for a log line: printable
 * ASCII is kept, newlines and tabs become spaces, anything else '?'; trailing spaces are
 * trimmed; always NUL-terminated (cut to @size).
 */
void text_printable(char *dst, size_t size, const char *src, size_t len);

/* snprintf for messages, where cutting a long message short at @size is the intent. */
void text_printf(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Overwrite a NUL-terminated string with zeros (explicit_bzero: never optimised away), then
 * free it: for anything that may hold a secret (header values, URLs with a password), so
 * freed heap memory keeps no copy. NULL is fine.
 */
void text_free_wiped(char *s);

/*
 * Text measured and written in one pass (the /metrics exposition): what fits goes into
 * buf[0, size), len counts every byte asked for, so a caller sizes a buffer with a NULL
 * one first.
 */
struct text_out {
	char *buf;
	size_t size;
	size_t len; /* needed, may exceed size */
};

void text_out_printf(struct text_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* @len bytes of @s as a Prometheus label value: backslash, quote and newline escaped. */
void text_out_label(struct text_out *o, const char *s, size_t len);

#endif
