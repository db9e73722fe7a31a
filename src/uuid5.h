/* SPDX-License-Identifier: MIT */
/*
 * uuid5: name-based UUIDs (version 5, SHA-1; RFC 9562 section 5.5) and the SHA-1 they need
 * (RFC 3174), for service.instance.id. Pure, no allocation. A small SHA-1 of our own: it
 * hashes a few hundred bytes per batch, and no crypto library is linked otherwise. SHA-1 is
 * not used for security here, only to turn a name into an opaque, stable identifier.
 */
#ifndef CLN_OTLP_UUID5_H
#define CLN_OTLP_UUID5_H

#include <stddef.h>
#include <stdint.h>

#define UUID5_STR_SIZE 37 /* 8-4-4-4-12 hex digits and NUL */

/* SHA-1 of @len bytes of @data. */
void uuid5_sha1(const void *data, size_t len, uint8_t digest[20]);

/*
 * The UUID of @name (@len bytes) in namespace @ns (16 bytes, network order), as lowercase
 * text "xxxxxxxx-xxxx-5xxx-yxxx-xxxxxxxxxxxx".
 */
void uuid5_str(const uint8_t ns[16], const char *name, size_t len, char out[UUID5_STR_SIZE]);

/* Parse "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (any case). Returns 0 or -EINVAL. */
int uuid5_parse(const char *text, uint8_t out[16]);

#endif
