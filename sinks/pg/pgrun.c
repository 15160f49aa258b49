/*
 * Set statements: the consecutive changes of one relation within a batch,
 * gathered into one INSERT ... SELECT FROM unnest(...), UPDATE ... FROM
 * unnest(...) or DELETE ... USING unnest(...) whose parameters are text
 * arrays cast to the target's column types. The target then plans and starts
 * one statement per run instead of one per row, which is where the per-row
 * apply spent its time.
 *
 * Why the result equals applying the changes one by one: a batch is one
 * target transaction, so only its end state is ever visible. Within a
 * relation the order is kept (a change that does not fit the current run
 * first sends the run); across relations it is not needed, since the apply
 * session runs with session_replication_role = replica (no foreign-key or
 * trigger sees an intermediate state) and every constraint left is within
 * one table. Two UPDATEs of the same key in a run are merged into the later
 * values, which is what applying both leaves. Each statement must report as
 * many rows as the run has (one per key): a row missing on the target is a
 * divergence, found before the batch commits (pgapply.c's gate).
 *
 * Runs take relations whose target columns the session's catalog knows:
 * INSERTs, and for keyed relations UPDATEs that keep the key and DELETEs;
 * the rest goes row by row (pgrow.c) after the relation's run is sent.
 */
#include "sinks/pg/pgsink_int.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define RUN_MAX_ROWS   5000
#define RUN_MAX_BYTES  (4u * 1024 * 1024)
#define RUNS_MAX_BYTES (16u * 1024 * 1024)
#define RUN_MAX_STMTS  16
#define VALUE_NULL     UINT32_MAX

typedef struct Run {
    char kind;     /* 'I', 'U', 'D'; 0 while empty */
    char *shape;   /* UPDATE: "S-..|W-.." as in pgrow.c; DELETE: "W-.."; INSERT: NULL */
    uint16_t np;   /* values per row: the array parameters */
    uint16_t nkey; /* the last nkey of them locate the row (UPDATE, DELETE) */
    size_t nrows, cap;
    size_t *off;   /* nrows * np offsets into data */
    uint32_t *len; /* VALUE_NULL for NULL */
    Buf data;
    uint32_t *slots; /* key hash table: row index + 1, 0 free */
    size_t nslots;
    Lsn lsn; /* the first change's source commit LSN, for errors */
    char table[96];
} Run;

typedef struct RunStmt {
    struct RunStmt *next;
    char kind;
    char *shape;
    char name[24];
} RunStmt;

typedef struct RunStmts {
    RunStmt *list; /* most recently used first */
    int n;
} RunStmts;

/* ---- deciding what a relation can take ------------------------------------ */

static bool decide(PgSink *s, RelEntry *rel, SinkRel *r)
{
    const TargetTable *tt;

    if (r->set_ok)
        return r->set_ok > 0;
    r->set_ok = -1;
    if (!s->cfg->apply.set_statements || r->ncols == 0)
        return false;
    tt = pgtarget_find(&s->tcat, rel->info.schema, rel->info.name);
    if (!tt)
        return false;
    const char **keys = xcalloc(r->ncols, sizeof(char *));
    size_t nkeys = 0;

    for (uint16_t i = 0; i < r->ncols; i++)
        if (rel->info.cols[i].is_key)
            keys[nkeys++] = rel->info.cols[i].name;
    r->qtypes = xcalloc(r->ncols, sizeof(char *));
    r->unique_checked = xcalloc(r->ncols, sizeof(bool));
    for (uint16_t i = 0; i < r->ncols; i++) {
        const char *t = pgtarget_column_type(tt, rel->info.cols[i].name);

        if (!t) {
            free(keys);
            return false; /* a column the target lacks: the row path says so */
        }
        r->qtypes[i] = xstrdup(t);
        r->unique_checked[i] = pgtarget_column_checked(tt, rel->info.cols[i].name, keys, nkeys);
    }
    free(keys);
    r->run = xcalloc(1, sizeof(Run));
    r->stmts = xcalloc(1, sizeof(RunStmts));
    r->set_ok = 1;
    return true;
}

/* ---- gathering ------------------------------------------------------------- */

static uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static uint64_t row_key_hash(const Run *run, size_t row)
{
    uint64_t h = 14695981039346656037ull;

    for (uint16_t k = run->np - run->nkey; k < run->np; k++) {
        size_t i = row * run->np + k;

        if (run->len[i] == VALUE_NULL)
            h = hash_bytes(h, "\0N", 2);
        else
            h = hash_bytes(h, run->data.data + run->off[i], run->len[i]);
        h = hash_bytes(h, "\0", 1);
    }
    return h;
}

static bool same_key(const Run *run, size_t a, size_t b)
{
    for (uint16_t k = run->np - run->nkey; k < run->np; k++) {
        size_t i = a * run->np + k, j = b * run->np + k;

        if (run->len[i] != run->len[j])
            return false;
        if (run->len[i] != VALUE_NULL &&
            memcmp(run->data.data + run->off[i], run->data.data + run->off[j], run->len[i]) != 0)
            return false;
    }
    return true;
}

static void rehash(Run *run)
{
    free(run->slots);
    run->nslots = 64;
    while (run->nslots < 2 * run->cap)
        run->nslots *= 2;
    run->slots = xcalloc(run->nslots, sizeof(uint32_t));
    for (size_t r = 0; r < run->nrows; r++) {
        size_t i = row_key_hash(run, r) & (run->nslots - 1);

        while (run->slots[i])
            i = (i + 1) & (run->nslots - 1);
        run->slots[i] = (uint32_t)r + 1;
    }
}

/*
 * The row already in the run with the key of the row just appended at
 * index row (then that one is dropped again), or row itself, filed.
 */
static size_t file_key(Run *run, size_t row)
{
    size_t i = row_key_hash(run, row) & (run->nslots - 1);

    for (; run->slots[i]; i = (i + 1) & (run->nslots - 1))
        if (same_key(run, run->slots[i] - 1, row))
            return run->slots[i] - 1;
    run->slots[i] = (uint32_t)row + 1;
    return row;
}

static void grow(Run *run)
{
    if (run->nrows < run->cap)
        return;
    run->cap = run->cap ? 2 * run->cap : 64;
    run->off = xrealloc(run->off, run->cap * run->np * sizeof(size_t));
    run->len = xrealloc(run->len, run->cap * run->np * sizeof(uint32_t));
    if (run->nkey)
        rehash(run);
}

static int put_value(Run *run, size_t i, const ColValue *v, const RelEntry *rel, uint16_t col)
{
    if (v->state == COL_NULL) {
        run->len[i] = VALUE_NULL;
        return 0;
    }
    if (v->state != COL_TEXT)
        return tm_fail(-EPROTO, "%s.%s: unexpected %s value in the stream", rel->display,
                       rel->info.cols[col].name,
                       v->state == COL_BINARY ? "binary" : "unchanged-TOAST");
    if (memchr(v->data, '\0', v->len))
        return tm_fail(-EINVAL, "%s.%s: value contains a NUL byte", rel->display,
                       rel->info.cols[col].name);
    run->off[i] = run->data.len;
    run->len[i] = v->len;
    buf_append(&run->data, v->data, v->len);
    return 0;
}

static void run_reset(Run *run)
{
    run->kind = 0;
    free(run->shape);
    run->shape = NULL;
    run->nrows = 0;
    /* Keep what a typical run needs; give back what a huge one took. */
    if (run->data.cap > RUN_MAX_BYTES) {
        buf_release(&run->data);
    } else {
        buf_clear(&run->data);
    }
    if (run->slots)
        memset(run->slots, 0, run->nslots * sizeof(uint32_t));
}

/* ---- sending ---------------------------------------------------------------- */

static RunStmt *find_stmt(PgSink *s, SinkRel *r, char kind, const char *shape, bool *fresh)
{
    RunStmts *st = r->stmts;
    RunStmt **link = &st->list, *u;

    *fresh = false;
    for (u = st->list; u; link = &u->next, u = u->next)
        if (u->kind == kind && strcmp(u->shape, shape) == 0)
            break;
    if (u) {
        *link = u->next;
        u->next = st->list;
        st->list = u;
        return u;
    }
    if (st->n >= RUN_MAX_STMTS) {
        RunStmt **last = &st->list;

        while ((*last)->next)
            last = &(*last)->next;
        pgapply_dealloc_later(s, r->session, (*last)->name);
        free((*last)->shape);
        free(*last);
        *last = NULL;
        st->n--;
    }
    u = xcalloc(1, sizeof(*u));
    u->kind = kind;
    u->shape = xstrdup(shape);
    pgapply_stmt_name(s, u->name, sizeof(u->name));
    u->next = st->list;
    st->list = u;
    st->n++;
    *fresh = true;
    return u;
}

static void append_unnest(Buf *sql, const Run *run)
{
    buf_puts(sql, "unnest(");
    for (uint16_t j = 0; j < run->np; j++)
        buf_printf(sql, "%s$%u::text[]", j ? ", " : "", j + 1);
    buf_puts(sql, ") AS tm_u(");
    for (uint16_t j = 0; j < run->np; j++)
        buf_printf(sql, "%sp%u", j ? ", " : "", j + 1);
    buf_puts(sql, ")");
}

/* "tm_t.k1 = tm_u.p7::integer AND ...": the key columns, parameters from first. */
static void append_key_match(Buf *sql, const SinkRel *r, const char *wshape, uint16_t first)
{
    uint16_t p = first;
    bool any = false;

    for (uint16_t i = 0; i < r->ncols; i++) {
        if (wshape[i] != 'W')
            continue;
        buf_printf(sql, "%stm_t.%s = tm_u.p%u::%s", any ? " AND " : "", r->qcols[i], p++,
                   r->qtypes[i]);
        any = true;
    }
}

static char *statement_sql(const SinkRel *r, const Run *run)
{
    Buf sql = BUF_INIT;
    uint16_t p = 1;

    switch (run->kind) {
    case 'I':
        buf_printf(&sql, "INSERT INTO %s (", r->qname);
        for (uint16_t i = 0; i < r->ncols; i++)
            buf_printf(&sql, "%s%s", i ? ", " : "", r->qcols[i]);
        /* The source generated identity values; keep them. */
        buf_puts(&sql, ") OVERRIDING SYSTEM VALUE SELECT ");
        for (uint16_t i = 0; i < r->ncols; i++)
            buf_printf(&sql, "%stm_u.p%u::%s", i ? ", " : "", i + 1, r->qtypes[i]);
        buf_puts(&sql, " FROM ");
        append_unnest(&sql, run);
        break;
    case 'U':
        buf_printf(&sql, "UPDATE %s%s AS tm_t SET ", r->only ? "ONLY " : "", r->qname);
        for (uint16_t i = 0; i < r->ncols; i++)
            if (run->shape[i] == 'S') {
                buf_printf(&sql, "%s%s = tm_u.p%u::%s", p > 1 ? ", " : "", r->qcols[i], p,
                           r->qtypes[i]);
                p++;
            }
        buf_puts(&sql, " FROM ");
        append_unnest(&sql, run);
        buf_puts(&sql, " WHERE ");
        append_key_match(&sql, r, run->shape + r->ncols + 1, p);
        break;
    default:
        buf_printf(&sql, "DELETE FROM %s%s AS tm_t USING ", r->only ? "ONLY " : "", r->qname);
        append_unnest(&sql, run);
        buf_puts(&sql, " WHERE ");
        append_key_match(&sql, r, run->shape, 1);
        break;
    }
    char *out = xstrdup(buf_cstr(&sql));

    buf_release(&sql);
    return out;
}

/* One array literal: {"v1","v\"2",NULL}. */
static void array_literal(Buf *out, const Run *run, uint16_t j)
{
    buf_putc(out, '{');
    for (size_t row = 0; row < run->nrows; row++) {
        size_t i = row * run->np + j;

        if (row)
            buf_putc(out, ',');
        if (run->len[i] == VALUE_NULL) {
            buf_puts(out, "NULL");
            continue;
        }
        const char *v = run->data.data + run->off[i], *end = v + run->len[i];

        buf_putc(out, '"');
        while (v < end) {
            const char *q = v;

            while (q < end && *q != '"' && *q != '\\')
                q++;
            buf_append(out, v, (size_t)(q - v));
            if (q < end) {
                buf_putc(out, '\\');
                buf_putc(out, *q++);
            }
            v = q;
        }
        buf_putc(out, '"');
    }
    buf_putc(out, '}');
}

/* "id=4 ... id=977 (120 rows)": which rows a failed run was about. */
static void describe_run(const SinkRel *r, const Run *run, const RelEntry *rel, char *out,
                         size_t len)
{
    const char *wshape = run->kind == 'U' ? run->shape + r->ncols + 1 : run->shape;
    char first[40] = "", last[40] = "";

    for (int which = 0; which < 2 && wshape; which++) {
        size_t row = which ? run->nrows - 1 : 0;
        char *dst = which ? last : first;
        size_t n = 0;
        uint16_t k = (uint16_t)(run->np - run->nkey);

        for (uint16_t i = 0; i < r->ncols && n + 2 < sizeof(first); i++) {
            if (wshape[i] != 'W')
                continue;
            size_t v = row * run->np + k++;
            int w = run->len[v] == VALUE_NULL ? snprintf(dst + n, sizeof(first) - n, "%s%s=NULL",
                                                         n ? "," : "", rel->info.cols[i].name)
                                              : snprintf(dst + n, sizeof(first) - n, "%s%s=%.*s",
                                                         n ? "," : "", rel->info.cols[i].name,
                                                         (int)(run->len[v] > 20 ? 20 : run->len[v]),
                                                         run->data.data + run->off[v]);
            if (w < 0)
                break;
            n += (size_t)w;
        }
    }
    if (run->kind == 'I')
        snprintf(out, len, "(%zu new rows)", run->nrows);
    else if (run->nrows == 1)
        snprintf(out, len, "%s", first);
    else
        snprintf(out, len, "%s ... %s (%zu rows, one statement)", first, last, run->nrows);
}

static void unlink_run(PgSink *s, SinkRel *r)
{
    for (SinkRel **l = &s->runs; *l; l = &(*l)->run_next)
        if (*l == r) {
            *l = r->run_next;
            break;
        }
    r->run_next = NULL;
}

static int flush_run(PgSink *s, SinkRel *r, const RelEntry *rel)
{
    Run *run = r->run;
    bool fresh;
    char key[80];
    int rc = 0;

    if (!run || run->nrows == 0)
        return 0;
    rc = pgapply_ready(s);
    if (rc < 0)
        return rc; /* -EBUSY: the previous batch is being checked */
    RunStmt *st = find_stmt(s, r, run->kind, run->shape ? run->shape : "", &fresh);

    if (fresh) {
        char *sql = statement_sql(r, run);

        rc = pgapply_send_prepare(s, st->name, sql, run->table);
        free(sql);
    }
    if (rc == 0) {
        Buf lit = BUF_INIT;

        pgapply_params_reset(s, run->np);
        for (uint16_t j = 0; j < run->np; j++) {
            buf_clear(&lit);
            array_literal(&lit, run, j);
            pgapply_param_text(s, j, lit.data, lit.len);
        }
        buf_release(&lit);
        describe_run(r, run, rel, key, sizeof(key));
        rc = pgapply_send_stmt(s, st->name, run->np, run->kind, (long)run->nrows, run->table,
                               run->lsn, key, 0);
    }
    s->run_bytes -= run->data.len < s->run_bytes ? run->data.len : s->run_bytes;
    run_reset(run);
    unlink_run(s, r);
    return rc;
}

int pgrun_flush_all(PgSink *s)
{
    int rc = 0;

    while (s->runs && rc == 0) {
        SinkRel *r = s->runs;

        rc = flush_run(s, r, r->run_rel);
    }
    return rc;
}

void pgrun_discard_all(PgSink *s)
{
    while (s->runs) {
        SinkRel *r = s->runs;

        run_reset(r->run);
        unlink_run(s, r);
    }
    s->run_bytes = 0;
}

/* Sets the run's kind, shape and parameter count for chg's kind. */
static void run_start(Run *run, char kind, const char *shape, uint16_t np, uint16_t nkey,
                      const RelEntry *rel, const TxnInfo *txn)
{
    run->kind = kind;
    run->shape = shape ? xstrdup(shape) : NULL;
    if (run->np != np || run->nkey != nkey) {
        free(run->off);
        free(run->len);
        free(run->slots);
        run->off = NULL;
        run->len = NULL;
        run->slots = NULL;
        run->cap = run->nslots = 0;
    }
    run->np = np;
    run->nkey = nkey;
    run->lsn = txn ? txn->final_lsn : LSN_INVALID;
    snprintf(run->table, sizeof(run->table), "%s", rel->display);
}

int pgrun_add(PgSink *s, RelEntry *rel, SinkRel *r, const Change *chg, const TxnInfo *txn,
              bool *taken)
{
    const Tuple *t;
    char kind, *shape = NULL;
    uint16_t np = 0, nkey = 0;
    int rc = 0;

    *taken = false;
    if (!decide(s, rel, r))
        return 0;
    r->run_rel = rel;
    switch (chg->kind) {
    case CHG_INSERT:
        kind = 'I';
        t = &chg->insert.newtup;
        np = r->ncols;
        break;
    case CHG_UPDATE:
        /* The key changes, or (REPLICA IDENTITY FULL) there is none to
         * locate rows by: row by row, in order. */
        if (chg->update.old_kind || r->full)
            return flush_run(s, r, rel);
        kind = 'U';
        t = &chg->update.newtup;
        shape = xmalloc(2u * r->ncols + 2);
        for (uint16_t i = 0; i < r->ncols; i++) {
            bool set =
                i < t->ncols && t->cols[i].state != COL_UNCHANGED && !rel->info.cols[i].is_key;

            /* A unique value may move between rows: one row at a time. */
            if (set && r->unique_checked[i]) {
                free(shape);
                return flush_run(s, r, rel);
            }
            shape[i] = set ? 'S' : '-';
            np += set;
            shape[r->ncols + 1 + i] = rel->info.cols[i].is_key ? 'W' : '-';
            nkey += rel->info.cols[i].is_key;
        }
        shape[r->ncols] = '|';
        shape[2u * r->ncols + 1] = '\0';
        if (np == 0) { /* every column unchanged TOAST: nothing to write */
            free(shape);
            *taken = true;
            return 0;
        }
        np += nkey;
        break;
    case CHG_DELETE:
        if (r->full)
            return flush_run(s, r, rel);
        kind = 'D';
        t = &chg->del.oldtup;
        shape = xmalloc(r->ncols + 1u);
        for (uint16_t i = 0; i < r->ncols; i++) {
            shape[i] = rel->info.cols[i].is_key ? 'W' : '-';
            nkey += rel->info.cols[i].is_key;
        }
        shape[r->ncols] = '\0';
        np = nkey;
        break;
    default:
        return 0;
    }
    if (t->ncols != r->ncols || (kind != 'I' && nkey == 0)) {
        free(shape);
        return flush_run(s, r, rel); /* the row path reports what is wrong */
    }

    Run *run = r->run;

    /* Every send happens before anything is taken: a -EBUSY leaves no trace
     * and the same change comes again. */
    if (run->nrows &&
        (run->kind != kind || strcmp(run->shape ? run->shape : "", shape ? shape : "") != 0))
        rc = flush_run(s, r, rel);
    else if (run->nrows >= RUN_MAX_ROWS || run->data.len >= RUN_MAX_BYTES)
        rc = flush_run(s, r, rel);
    else if (s->run_bytes >= RUNS_MAX_BYTES)
        rc = pgrun_flush_all(s);
    if (rc == 0 && run->nrows == 0) {
        run_start(run, kind, shape, np, kind == 'I' ? 0 : nkey, rel, txn);
        r->run_next = s->runs;
        s->runs = r;
    }
    free(shape);
    if (rc < 0)
        return rc;

    grow(run);
    size_t row = run->nrows, before = run->data.len;
    uint16_t j = 0;
    const char *rshape = kind == 'U' ? run->shape : NULL;

    for (uint16_t i = 0; i < r->ncols && rc == 0; i++)
        if (kind == 'I' || (rshape && rshape[i] == 'S'))
            rc = put_value(run, row * np + j++, &t->cols[i], rel, i);
    for (uint16_t i = 0; i < r->ncols && rc == 0 && kind != 'I'; i++)
        if (rel->info.cols[i].is_key)
            rc = put_value(run, row * np + j++, &t->cols[i], rel, i);
    if (rc < 0)
        return rc;
    if (kind == 'I') {
        run->nrows++;
    } else {
        size_t at = file_key(run, row);

        if (at == row) {
            run->nrows++;
        } else if (kind == 'U') {
            /* The same row again: its later values are what both leave. */
            memcpy(&run->off[at * np], &run->off[row * np], (size_t)(np - nkey) * sizeof(size_t));
            memcpy(&run->len[at * np], &run->len[row * np], (size_t)(np - nkey) * sizeof(uint32_t));
        } else {
            /* A second DELETE of one key without an INSERT between: send the
             * first, the second then fails its count like the row path would. */
            run->data.len = before;
            rc = flush_run(s, r, rel);
            if (rc == 0)
                rc = pgrun_add(s, rel, r, chg, txn, taken);
            return rc;
        }
    }
    s->run_bytes += run->data.len - before;
    s->batch_changes++;
    *taken = true;
    if (!pgapply_can_send(s))
        return 0; /* full runs go out with the next change, once it may */
    if (run->nrows >= RUN_MAX_ROWS || run->data.len >= RUN_MAX_BYTES)
        return flush_run(s, r, rel);
    if (s->run_bytes >= RUNS_MAX_BYTES)
        return pgrun_flush_all(s);
    return 0;
}

void pgrun_release(PgSink *s, SinkRel *r)
{
    /* The pipeline sends runs before it drops a shape (the sink's barrier);
     * should one still hold changes, the batch must not commit without them. */
    if (r->run && r->run->nrows > 0 && r->session == s->session && s->batch_open)
        s->run_lost = true;
    if (r->run) {
        unlink_run(s, r);
        free(r->run->shape);
        free(r->run->off);
        free(r->run->len);
        free(r->run->slots);
        buf_release(&r->run->data);
        free(r->run);
        r->run = NULL;
    }
    if (r->stmts) {
        for (RunStmt *u = r->stmts->list, *n; u; u = n) {
            n = u->next;
            pgapply_dealloc_later(s, r->session, u->name);
            free(u->shape);
            free(u);
        }
        free(r->stmts);
        r->stmts = NULL;
    }
    if (r->qtypes) {
        for (uint16_t i = 0; i < r->ncols; i++)
            free(r->qtypes[i]);
        free(r->qtypes);
        r->qtypes = NULL;
    }
    free(r->unique_checked);
    r->unique_checked = NULL;
}
