/*
 * SHA-256 (FIPS 180-4), written here so that PII hashing needs no crypto
 * library: the transforms only need a stable, well-known digest of short
 * strings, and a small incremental implementation is easy to test against
 * the standard vectors.
 */
#ifndef TM_SHA256_H
#define TM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct Sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[64];
    size_t fill;
} Sha256;

void sha256_init(Sha256 *c);
void sha256_update(Sha256 *c, const void *data, size_t len);
void sha256_final(Sha256 *c, uint8_t digest[32]);

/* digest of data as 64 lower-case hex characters plus NUL. */
void sha256_hex(const void *data, size_t len, char hex[65]);

#endif
