/*
 * The PostgreSQL sink's row-by-row statements: one prepared statement per
 * relation shape (INSERT; DELETE per set of key columns; UPDATE per set of
 * columns carried, since unchanged TOAST is never written, invariant 4),
 * values always as parameters (invariant 7). Used for what set statements
 * (pgrun.c) do not take: REPLICA IDENTITY FULL, key changes, tables the
 * session's catalog does not know.
 */
#include "sinks/pg/pgsink_int.h"
#include "connectors/pg/pgconn.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <stdio.h>
#include <string.h>

/* OIDs of built-in types without a btree equality operator. */
static bool type_needs_text_eq(uint32_t oid)
{
    switch (oid) {
    case 114:  /* json */
    case 199:  /* json[] */
    case 142:  /* xml */
    case 143:  /* xml[] */
    case 600:  /* point */
    case 601:  /* lseg */
    case 602:  /* path */
    case 603:  /* box */
    case 604:  /* polygon */
    case 628:  /* line */
    case 718:  /* circle */
    case 1017: /* point[] */
        return true;
    default:
        return false;
    }
}

static void sinkrel_free(void *state)
{
    SinkRel *r = state;

    if (!r)
        return;
    pgrun_release(r->sink, r);
    pgapply_dealloc_later(r->sink, r->session, r->ins_name);
    pgapply_dealloc_later(r->sink, r->session, r->del_name);
    for (UpdStmt *u = r->upds; u; u = u->next)
        pgapply_dealloc_later(r->sink, r->session, u->name);
    free(r->qname);
    for (uint16_t i = 0; i < r->ncols; i++)
        free(r->qcols[i]);
    free(r->qcols);
    free(r->del_shape);
    for (UpdStmt *u = r->upds, *n; u; u = n) {
        n = u->next;
        free(u->shape);
        free(u);
    }
    free(r);
}

SinkRel *pgrow_rel(PgSink *s, RelEntry *rel)
{
    if (rel->sink_state)
        return rel->sink_state;
    SinkRel *r = xcalloc(1, sizeof(*r));

    r->sink = s;
    r->session = s->session;
    r->qname = pgconn_qualified(s->conn, rel->info.schema, rel->info.name);
    const TargetTable *tt = pgtarget_find(&s->tcat, rel->info.schema, rel->info.name);

    r->only = !tt || tt->relkind != 'p';
    r->ncols = rel->info.ncols;
    r->qcols = xcalloc(r->ncols ? r->ncols : 1, sizeof(char *));
    for (uint16_t i = 0; i < r->ncols; i++)
        r->qcols[i] = pgconn_ident(s->conn, rel->info.cols[i].name);
    r->full = rel->info.replident == 'f';
    rel->sink_state = r;
    rel->sink_state_free = sinkrel_free;
    return r;
}

/* Appends "WHERE ..." locating the row described by the shape's W columns. */
static void append_where(Buf *sql, const RelEntry *rel, const SinkRel *r, const char *wshape,
                         int firstparam)
{
    int p = firstparam;
    bool first = true;

    /* ctid alone names one row per partition (or inheritance child): the
     * row is the one at that ctid in that relation. */
    if (r->full)
        buf_printf(sql, " WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM %s%s WHERE ",
                   r->only ? "ONLY " : "", r->qname);
    else
        buf_puts(sql, " WHERE ");
    for (uint16_t i = 0; i < r->ncols; i++) {
        if (wshape[i] != 'W')
            continue;
        if (!first)
            buf_puts(sql, " AND ");
        first = false;
        if (!r->full)
            buf_printf(sql, "%s = $%d", r->qcols[i], p++);
        else if (type_needs_text_eq(rel->info.cols[i].type_oid))
            buf_printf(sql, "%s::text IS NOT DISTINCT FROM $%d::text", r->qcols[i], p++);
        else
            buf_printf(sql, "%s IS NOT DISTINCT FROM $%d", r->qcols[i], p++);
    }
    /* No column to compare (FULL identity of a table without published
     * columns): its rows are indistinguishable, any one is the row. */
    if (first)
        buf_puts(sql, r->full ? "true" : "false");
    if (r->full)
        buf_puts(sql, " LIMIT 1)");
}

/* Which columns identify the row: key columns, or (FULL) every old value we have. */
static void where_shape(const RelEntry *rel, const SinkRel *r, const Tuple *old, char *shape)
{
    for (uint16_t i = 0; i < r->ncols; i++) {
        bool use = r->full ? (i < old->ncols && old->cols[i].state != COL_UNCHANGED)
                           : rel->info.cols[i].is_key;
        shape[i] = use ? 'W' : '-';
    }
    shape[r->ncols] = '\0';
}

static int check_tuple(const RelEntry *rel, const Tuple *t, const char *what)
{
    if (t->ncols != rel->info.ncols)
        return tm_fail(-EPROTO,
                       "%s on %s carries %u columns, the relation has %u (stale Relation?)", what,
                       rel->display, t->ncols, rel->info.ncols);
    return 0;
}

/*
 * "id=42" (or every old value of a FULL-identity row), cut to fit: the
 * divergence error names the row so the operator can look at it.
 */
void pgrow_describe(const RelEntry *rel, const char *wshape, const Tuple *t, char *out, size_t len)
{
    size_t n = 0;

    out[0] = '\0';
    for (uint16_t i = 0; i < rel->info.ncols && i < t->ncols && n + 4 < len; i++) {
        const ColValue *v = &t->cols[i];
        int w;

        if (wshape[i] != 'W')
            continue;
        if (v->state == COL_NULL)
            w = snprintf(out + n, len - n, "%s%s=NULL", n ? ", " : "", rel->info.cols[i].name);
        else
            w = snprintf(out + n, len - n, "%s%s=%.*s", n ? ", " : "", rel->info.cols[i].name,
                         (int)(v->len > 40 ? 40 : v->len), v->data ? v->data : "");
        if (w < 0 || (size_t)w >= len - n) {
            memcpy(out + len - 4, "...", 4);
            return;
        }
        n += (size_t)w;
    }
}

static int apply_insert(PgSink *s, RelEntry *rel, SinkRel *r, const Tuple *t, const TxnInfo *txn)
{
    int rc = check_tuple(rel, t, "INSERT");

    if (rc < 0)
        return rc;
    if (!r->ins_name[0]) {
        Buf sql = BUF_INIT;

        buf_printf(&sql, "INSERT INTO %s (", r->qname);
        for (uint16_t i = 0; i < r->ncols; i++)
            buf_printf(&sql, "%s%s", i ? ", " : "", r->qcols[i]);
        /* The source generated identity values; keep them. */
        buf_puts(&sql, ") OVERRIDING SYSTEM VALUE VALUES (");
        for (uint16_t i = 0; i < r->ncols; i++)
            buf_printf(&sql, "%s$%u", i ? ", " : "", i + 1);
        buf_puts(&sql, ")");
        if (r->ncols == 0) { /* only generated columns, or none */
            buf_clear(&sql);
            buf_printf(&sql, "INSERT INTO %s DEFAULT VALUES", r->qname);
        }
        pgapply_stmt_name(s, r->ins_name, sizeof(r->ins_name));
        rc = pgapply_send_prepare(s, r->ins_name, buf_cstr(&sql), rel->display);
        buf_release(&sql);
        if (rc < 0)
            return rc;
    }
    pgapply_params_reset(s, r->ncols);
    for (uint16_t i = 0; i < r->ncols; i++) {
        rc = pgapply_param_set(s, i, &t->cols[i], rel->display, rel->info.cols[i].name);
        if (rc < 0)
            return rc;
    }
    return pgapply_send_stmt(s, r->ins_name, r->ncols, 'I', -1, rel->display,
                             txn ? txn->final_lsn : LSN_INVALID, NULL, 1);
}

static bool same_value(const ColValue *a, const ColValue *b)
{
    if (a->state != b->state)
        return false;
    if (a->state == COL_NULL)
        return true;
    return a->state == COL_TEXT && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void evict_oldest_update(PgSink *s, SinkRel *r)
{
    UpdStmt **link = &r->upds;

    while (*link && (*link)->next)
        link = &(*link)->next;
    if (!*link)
        return;
    pgapply_dealloc_later(s, r->session, (*link)->name);
    free((*link)->shape);
    free(*link);
    *link = NULL;
    r->nupds--;
}

static int apply_update(PgSink *s, RelEntry *rel, SinkRel *r, const Change *chg, const TxnInfo *txn)
{
    const Tuple *nt = &chg->update.newtup;
    const Tuple *ot = chg->update.old_kind ? &chg->update.oldtup : nt;
    char *shape = xmalloc(2u * r->ncols + 2);
    UpdStmt *u;
    size_t np = 0;
    int rc = check_tuple(rel, nt, "UPDATE");

    if (rc == 0 && chg->update.old_kind)
        rc = check_tuple(rel, ot, "UPDATE (old row)");
    if (rc < 0)
        goto out;
    /* SET only what may have changed: not unchanged TOAST (invariant 4), not an
     * unchanged key (no old key sent), not a value equal to the full old row's.
     * Besides saving work, this keeps GENERATED ALWAYS identity keys out of SET,
     * which PostgreSQL refuses. */
    for (uint16_t i = 0; i < r->ncols; i++) {
        const ColValue *nv = &nt->cols[i];
        bool set = nv->state != COL_UNCHANGED;

        if (set && !chg->update.old_kind && rel->info.cols[i].is_key)
            set = false;
        if (set && chg->update.old_kind == 'O' && same_value(nv, &ot->cols[i]))
            set = false;
        shape[i] = set ? 'S' : '-';
    }
    shape[r->ncols] = '|';
    where_shape(rel, r, ot, shape + r->ncols + 1);
    if (!strchr(shape, 'S'))
        goto out; /* every column unchanged TOAST: nothing to write */

    UpdStmt **link = &r->upds;

    for (u = r->upds; u && strcmp(u->shape, shape) != 0; link = &u->next, u = u->next)
        ;
    if (u && u != r->upds) { /* most recently used first */
        *link = u->next;
        u->next = r->upds;
        r->upds = u;
    }
    if (!u) {
        Buf sql = BUF_INIT;
        int p = 1;

        if (r->nupds >= PGSINK_MAX_UPDATE_SHAPES)
            evict_oldest_update(s, r);
        u = xcalloc(1, sizeof(*u));
        u->shape = xstrdup(shape);
        pgapply_stmt_name(s, u->name, sizeof(u->name));
        u->next = r->upds;
        r->upds = u;
        r->nupds++;
        buf_printf(&sql, "UPDATE %s%s SET ", r->only ? "ONLY " : "", r->qname);
        for (uint16_t i = 0; i < r->ncols; i++)
            if (shape[i] == 'S') {
                buf_printf(&sql, "%s%s = $%d", p > 1 ? ", " : "", r->qcols[i], p);
                p++;
            }
        append_where(&sql, rel, r, shape + r->ncols + 1, p);
        rc = pgapply_send_prepare(s, u->name, buf_cstr(&sql), rel->display);
        buf_release(&sql);
        if (rc < 0)
            goto out;
    }
    pgapply_params_reset(s, 2u * r->ncols);
    for (uint16_t i = 0; i < r->ncols && rc == 0; i++)
        if (shape[i] == 'S')
            rc = pgapply_param_set(s, np++, &nt->cols[i], rel->display, rel->info.cols[i].name);
    for (uint16_t i = 0; i < r->ncols && rc == 0; i++)
        if (shape[r->ncols + 1 + i] == 'W')
            rc = pgapply_param_set(s, np++, &ot->cols[i], rel->display, rel->info.cols[i].name);
    if (rc == 0) {
        char key[80];

        pgrow_describe(rel, shape + r->ncols + 1, ot, key, sizeof(key));
        rc = pgapply_send_stmt(s, u->name, np, 'U', 1, rel->display,
                               txn ? txn->final_lsn : LSN_INVALID, key, 1);
    }
out:
    free(shape);
    return rc;
}

static int apply_delete(PgSink *s, RelEntry *rel, SinkRel *r, const Change *chg, const TxnInfo *txn)
{
    const Tuple *ot = &chg->del.oldtup;
    char *shape = xmalloc(r->ncols + 1u);
    size_t np = 0;
    int rc = check_tuple(rel, ot, "DELETE");

    if (rc < 0)
        goto out;
    where_shape(rel, r, ot, shape);
    if (!r->del_name[0] || strcmp(r->del_shape, shape) != 0) {
        Buf sql = BUF_INIT;

        pgapply_dealloc_later(s, r->session, r->del_name);
        free(r->del_shape);
        r->del_shape = xstrdup(shape);
        pgapply_stmt_name(s, r->del_name, sizeof(r->del_name));
        buf_printf(&sql, "DELETE FROM %s%s", r->only ? "ONLY " : "", r->qname);
        append_where(&sql, rel, r, shape, 1);
        rc = pgapply_send_prepare(s, r->del_name, buf_cstr(&sql), rel->display);
        buf_release(&sql);
        if (rc < 0)
            goto out;
    }
    pgapply_params_reset(s, r->ncols);
    for (uint16_t i = 0; i < r->ncols && rc == 0; i++)
        if (shape[i] == 'W')
            rc = pgapply_param_set(s, np++, &ot->cols[i], rel->display, rel->info.cols[i].name);
    if (rc == 0) {
        char key[80];

        pgrow_describe(rel, shape, ot, key, sizeof(key));
        rc = pgapply_send_stmt(s, r->del_name, np, 'D', 1, rel->display,
                               txn ? txn->final_lsn : LSN_INVALID, key, 1);
    }
out:
    free(shape);
    return rc;
}

int pgrow_apply(PgSink *s, RelEntry *rel, SinkRel *r, const Change *chg, const TxnInfo *txn)
{
    int rc = pgapply_ready(s);

    if (rc < 0)
        return rc;
    switch (chg->kind) {
    case CHG_INSERT:
        return apply_insert(s, rel, r, &chg->insert.newtup, txn);
    case CHG_UPDATE:
        return apply_update(s, rel, r, chg, txn);
    case CHG_DELETE:
        return apply_delete(s, rel, r, chg, txn);
    default:
        return tm_fail(-EINVAL, "pgsink: change kind '%c' is not a row change", chg->kind);
    }
}
