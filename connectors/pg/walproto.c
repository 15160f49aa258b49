/*
 * Streaming-replication framing (see walproto.h). The frames have fixed
 * layouts, so parsing is a length check followed by big-endian loads; the
 * pgoutput payload of an XLogData frame is handed on untouched.
 */
#include "connectors/pg/walproto.h"
#include "core/error.h"

#include <time.h>

/* Byte1 kind + Int64 start + Int64 end + Int64 send_time. */
#define XLOGDATA_HDR_LEN 25
/* Byte1 kind + Int64 wal_end + Int64 send_time + Byte1 reply_requested. */
#define KEEPALIVE_LEN 18

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int walproto_parse(const uint8_t *buf, size_t len, WalFrame *out)
{
    if (len == 0)
        return tm_fail(-EBADMSG, "walproto: empty CopyData message from server");
    out->kind = (char)buf[0];
    switch (buf[0]) {
    case 'w':
        if (len < XLOGDATA_HDR_LEN)
            return tm_fail(-EBADMSG,
                           "walproto: truncated XLogData message (%zu bytes, header needs %d)", len,
                           XLOGDATA_HDR_LEN);
        out->xlog.start = load_be64(buf + 1);
        out->xlog.end = load_be64(buf + 9);
        out->xlog.send_time = (PgTime)load_be64(buf + 17);
        out->xlog.data = buf + XLOGDATA_HDR_LEN;
        out->xlog.len = len - XLOGDATA_HDR_LEN;
        return 0;
    case 'k':
        /* Exact length: a keepalive of any other size means we are out of
         * step with the server's framing, and guessing would be worse. */
        if (len != KEEPALIVE_LEN)
            return tm_fail(-EBADMSG,
                           "walproto: malformed keepalive message (%zu bytes, expected %d)", len,
                           KEEPALIVE_LEN);
        out->keepalive.wal_end = load_be64(buf + 1);
        out->keepalive.send_time = (PgTime)load_be64(buf + 9);
        out->keepalive.reply_requested = buf[17] != 0;
        return 0;
    default:
        if (buf[0] >= 0x20 && buf[0] < 0x7f)
            return tm_fail(-EBADMSG,
                           "walproto: unexpected CopyData message type '%c' (0x%02x) from server "
                           "(expected 'w' XLogData or 'k' keepalive)",
                           buf[0], buf[0]);
        return tm_fail(-EBADMSG,
                       "walproto: unexpected CopyData message type 0x%02x from server "
                       "(expected 'w' XLogData or 'k' keepalive)",
                       buf[0]);
    }
}

void walproto_status(Buf *out, Lsn write, Lsn flush, Lsn apply, PgTime now, bool reply)
{
    buf_put_u8(out, 'r');
    buf_put_be64(out, write);
    buf_put_be64(out, flush);
    buf_put_be64(out, apply);
    buf_put_be64(out, (uint64_t)now);
    buf_put_u8(out, reply ? 1 : 0);
}

PgTime walproto_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return ((PgTime)ts.tv_sec - PG_EPOCH_OFFSET_SECS) * 1000000 + (PgTime)(ts.tv_nsec / 1000);
}
