/*
 * The streaming-replication framing around pgoutput inside CopyBoth:
 * XLogData ('w') and primary keepalive ('k') from the server, and the
 * standby status update ('r') we send back. Kept apart from the decoder
 * because the feedback rules (flush LSN) are the correctness-critical part.
 */
#ifndef TM_WALPROTO_H
#define TM_WALPROTO_H

#include "core/buf.h"
#include "core/change.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct WalFrame {
    char kind; /* 'w' or 'k' */
    union {
        struct {
            Lsn start;
            Lsn end;
            PgTime send_time;
            const uint8_t *data; /* pgoutput message, points into the input */
            size_t len;
        } xlog;
        struct {
            Lsn wal_end;
            PgTime send_time;
            bool reply_requested;
        } keepalive;
    };
} WalFrame;

/* Returns 0, or -EBADMSG with tm_error() set. */
int walproto_parse(const uint8_t *buf, size_t len, WalFrame *out);

/* Appends a standby status update ('r'): write, flush, apply LSNs and the clock. */
void walproto_status(Buf *out, Lsn write, Lsn flush, Lsn apply, PgTime now, bool reply);

/* Now, in PostgreSQL's epoch (microseconds since 2000-01-01 UTC). */
PgTime walproto_now(void);

#endif
