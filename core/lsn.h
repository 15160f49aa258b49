/*
 * Log sequence numbers: PostgreSQL's 64-bit WAL positions, printed and parsed
 * in the server's "X/X" form so logs and the tidemark.* tables read the same
 * as pg_current_wal_lsn().
 */
#ifndef TM_LSN_H
#define TM_LSN_H

#include <stdint.h>

typedef uint64_t Lsn;

#define LSN_INVALID ((Lsn)0)
#define LSN_FMT     "%X/%X"
#define LSN_ARGS(l) (unsigned)((uint64_t)(l) >> 32), (unsigned)((uint64_t)(l)&0xffffffffu)

/* Parses "16/B374D848"; returns 0 or -EINVAL. */
int lsn_parse(const char *s, Lsn *out);

/* Formats into buf (at least 20 bytes); returns buf. */
char *lsn_format(Lsn lsn, char *buf, unsigned long len);

#endif
