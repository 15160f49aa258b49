/*
 * Verifying a stopped pipeline (see verify_slot_peek in verify_int.h). The
 * verification snapshot comes from a new temporary slot, so it is always a
 * little past a stopped pipeline's watermark. Whether anything in between
 * concerns the verified tables is read from the pipeline's own slot: it
 * still holds every change after the watermark, and peeking (not
 * consuming) them with pgoutput and the pipeline's publication gives
 * exactly what the pipeline would apply, decoded by tidemark's own decoder.
 * A slot in use means the pipeline runs: the caller simply keeps waiting.
 * Rows are read one at a time (single-row mode): memory does not grow with
 * the backlog.
 */
#include "connectors/pg/pgconn.h"
#include "connectors/pg/pgoutput.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/verify_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct RelMap {
    uint32_t relid;
    int table; /* index into the verified tables, -1: not verified */
} RelMap;

typedef struct Peek {
    const VTable *tabs;
    size_t ntabs;
    RelMap *rels;
    size_t nrels, caprels;
    Lsn from;
    Lsn commit;                       /* of the transaction being read */
    long long *txn_changes, *changes; /* per table: this transaction, counted */
    Lsn *first;                       /* per table: first commit position found */
} Peek;

static int rel_table(const Peek *pk, uint32_t relid)
{
    for (size_t i = 0; i < pk->nrels; i++)
        if (pk->rels[i].relid == relid)
            return pk->rels[i].table;
    return -1;
}

static void rel_learn(Peek *pk, const RelInfo *ri)
{
    int t = -1;

    for (size_t i = 0; i < pk->ntabs && t < 0; i++)
        if (strcmp(pk->tabs[i].def->schema, ri->schema) == 0 &&
            strcmp(pk->tabs[i].def->name, ri->name) == 0)
            t = (int)i;
    for (size_t i = 0; i < pk->nrels; i++)
        if (pk->rels[i].relid == ri->oid) {
            pk->rels[i].table = t;
            return;
        }
    if (pk->nrels == pk->caprels) {
        pk->caprels = pk->caprels ? 2 * pk->caprels : 16;
        pk->rels = xrealloc(pk->rels, pk->caprels * sizeof(*pk->rels));
    }
    pk->rels[pk->nrels++] = (RelMap){ri->oid, t};
}

static void count(Peek *pk, uint32_t relid)
{
    int t = rel_table(pk, relid);

    if (t >= 0)
        pk->txn_changes[t]++;
}

static int feed(Peek *pk, const uint8_t *data, size_t len, Arena *arena)
{
    Change c;
    int rc = pgoutput_decode(data, len, arena, &c);

    if (rc < 0)
        return rc;
    switch (c.kind) {
    case CHG_BEGIN:
        memset(pk->txn_changes, 0, pk->ntabs * sizeof(long long));
        break;
    case CHG_RELATION:
        rel_learn(pk, &c.relation);
        break;
    case CHG_INSERT:
        count(pk, c.insert.relid);
        break;
    case CHG_UPDATE:
        count(pk, c.update.relid);
        break;
    case CHG_DELETE:
        count(pk, c.del.relid);
        break;
    case CHG_TRUNCATE:
        for (uint32_t i = 0; i < c.truncate.nrels; i++)
            count(pk, c.truncate.relids[i]);
        break;
    case CHG_COMMIT:
        /* At or before the watermark: the target has it already. */
        if (c.commit.end_lsn <= pk->from)
            break;
        for (size_t t = 0; t < pk->ntabs; t++) {
            if (!pk->txn_changes[t])
                continue;
            if (!pk->changes[t])
                pk->first[t] = c.commit.commit_lsn;
            pk->changes[t] += pk->txn_changes[t];
        }
        break;
    default:
        break;
    }
    return 0;
}

static char *quoted_pub(const char *name)
{
    Buf b = BUF_INIT;

    /* publication_names is a list of identifiers: quote this one */
    buf_putc(&b, '"');
    for (const char *c = name; *c; c++) {
        if (*c == '"')
            buf_putc(&b, '"');
        buf_putc(&b, *c);
    }
    buf_putc(&b, '"');
    return b.data;
}

static int peek(PGconn *c, const Config *cfg, Peek *pk, Lsn upto, int *verdict)
{
    char ubuf[32];
    char *pub = quoted_pub(cfg->source.publication);
    const char *params[3] = {cfg->source.slot, ubuf, pub};
    Arena *arena = arena_new(64 * 1024);
    PGresult *res;
    int rc = 0;

    snprintf(ubuf, sizeof(ubuf), LSN_FMT, LSN_ARGS(upto));
    /* Binary results: data is the pgoutput message itself. */
    if (!PQsendQueryParams(c,
                           "SELECT data FROM pg_logical_slot_peek_binary_changes($1, $2::pg_lsn,"
                           " NULL, 'proto_version', '1', 'publication_names', $3)",
                           3, NULL, params, NULL, NULL, 1) ||
        !PQsetSingleRowMode(c)) {
        rc = tm_fail(-EIO, "source: peeking slot %s: %s", cfg->source.slot, pgconn_errmsg(c, NULL));
        goto out;
    }
    *verdict = VSLOT_CLEAN;
    while ((res = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(res);

        if (st == PGRES_SINGLE_TUPLE && rc == 0) {
            rc = feed(pk, (const uint8_t *)PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0),
                      arena);
            arena_reset(arena);
        } else if (st == PGRES_FATAL_ERROR && rc == 0) {
            const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            /* object_in_use: a walsender has the slot, the pipeline runs */
            if (code && strcmp(code, "55006") == 0)
                *verdict = VSLOT_ACTIVE;
            else
                rc = tm_fail(-EIO, "source: peeking slot %s: %s", cfg->source.slot,
                             pgconn_errmsg(c, res));
        }
        PQclear(res);
    }
out:
    arena_free(arena);
    free(pub);
    return rc;
}

int verify_slot_peek(const Config *cfg, const VTable *tabs, size_t ntabs, Lsn from, Lsn upto,
                     int *verdict, char **detail)
{
    PGconn *c = NULL;
    PGresult *res;
    const char *params[1] = {cfg->source.slot};
    char ubuf[32];
    const char *up[1] = {ubuf};
    Peek pk = {.tabs = tabs, .ntabs = ntabs, .from = from};
    int rc;

    *verdict = VSLOT_UNKNOWN;
    *detail = NULL;
    snprintf(ubuf, sizeof(ubuf), LSN_FMT, LSN_ARGS(upto));
    rc = pgconn_open(&cfg->source.conn, PGCONN_NORMAL, "source", &c);
    if (rc == 0)
        rc = pgconn_query(c, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", 1,
                          params, &res);
    if (rc < 0)
        goto out;
    bool exists = PQntuples(res) == 1, active = exists && PQgetvalue(res, 0, 0)[0] == 't';

    PQclear(res);
    if (!exists)
        goto out;
    if (active) {
        *verdict = VSLOT_ACTIVE;
        goto out;
    }
    /* Decoding stops at the flushed end of WAL: a later upto would miss commits. */
    rc = pgconn_query(c, "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", 1, up, &res);
    if (rc < 0)
        goto out;
    bool flushed = PQgetvalue(res, 0, 0)[0] == 't';

    PQclear(res);
    if (!flushed)
        goto out;
    pk.txn_changes = xcalloc(ntabs + 1, sizeof(long long));
    pk.changes = xcalloc(ntabs + 1, sizeof(long long));
    pk.first = xcalloc(ntabs + 1, sizeof(Lsn));
    rc = peek(c, cfg, &pk, upto, verdict);
    if (rc == 0 && *verdict == VSLOT_CLEAN) {
        Buf b = BUF_INIT;
        int n = 0;

        for (size_t t = 0; t < ntabs; t++)
            if (pk.changes[t])
                buf_printf(&b, "%s%s (%lld change%s, the first committed at " LSN_FMT ")",
                           n++ ? ", " : "", tabs[t].def->display, pk.changes[t],
                           pk.changes[t] == 1 ? "" : "s", LSN_ARGS(pk.first[t]));
        if (n) {
            *verdict = VSLOT_PENDING;
            *detail = b.data;
        } else {
            buf_release(&b);
        }
    }
out:
    if (rc < 0)
        *verdict = VSLOT_UNKNOWN;
    free(pk.rels);
    free(pk.txn_changes);
    free(pk.changes);
    free(pk.first);
    if (c)
        PQfinish(c);
    return rc;
}
