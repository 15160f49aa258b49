/*
 * The pgoutput decoder: bytes of one logical-replication message (the
 * payload of an XLogData frame, protocol version 1 as sent by PostgreSQL 15)
 * into one Change. Every read is length-checked; anything truncated, corrupt
 * or not understood is rejected with a message naming the message type and
 * offset, never read past the buffer.
 */
#ifndef TM_PGOUTPUT_H
#define TM_PGOUTPUT_H

#include "core/arena.h"
#include "core/change.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes buf[0..len) into *out. Strings and arrays are allocated in arena;
 * ColValue.data points into buf, so buf must outlive the use of *out.
 * Returns 0, or -EBADMSG (malformed) / -EPROTO (unsupported message) with
 * tm_error() set.
 */
int pgoutput_decode(const uint8_t *buf, size_t len, Arena *arena, Change *out);

/* "Begin", "Insert", ... for messages and logs. */
const char *pgoutput_kind_name(ChangeKind kind);

#endif
