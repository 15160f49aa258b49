/*
 * Transform-aware comparison of a table that has a mapping (docs/VERIFY.md,
 * "Transformed tables"). The target holds what the compiled mapping made of
 * the source rows, so checksums over the source cannot match it. Instead
 * both sides stream in key order, each inside its verification snapshot:
 * the source rows (COPY, source key order) pass through the same compiled
 * mapping the copy path uses (filtered rows skipped), the target rows (COPY
 * of the target columns, target key order, scoped by the mapping's constant
 * columns in a fan-in target) come as they are, and the two streams are
 * merged in C: a key on one side only is missing or extra, a key on both
 * with different columns differs. The mapped source must arrive in the
 * target key's order, which holds for key transforms that preserve order
 * (id_offset, a renamed key); a mapping that reorders keys is an error that
 * says so. Rechecks run the whole merge again at the new snapshots and keep
 * the keys that still differ.
 */
#include "connectors/pg/pgconn.h"
#include "core/arena.h"
#include "core/copytext.h"
#include "core/error.h"
#include "core/transform/mapping.h"
#include "core/xmalloc.h"
#include "migration/verify_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct VMap {
    MappingPlan *plan;
    char *tdisplay;
    size_t ntcols;
    const char *const *tcols; /* owned by the plan */
    int *tkeyidx;             /* target key columns, indexes into tcols */
    bool *tkeyint;            /* per target key column: int2/int4/int8 */
    size_t ntkey;
    char *src_sql, *dst_sql; /* the two COPY statements */
    char **ttypes;           /* per target column: format_type(), NULL for text-like */
    PGconn *dst;             /* the run's target session (busy streaming during merges) */
    PGconn *canon;           /* a second target session for typed comparisons */
};

/* The primary key (else the replica identity index) of schema.name: names, int?, collatable? */
static const char *const MKEY_SQL =
    "SELECT a.attname, a.atttypid IN (20, 21, 23), t.typcollation <> 0, i.indexrelid"
    " FROM pg_index i JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) ON true"
    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n"
    " JOIN pg_type t ON t.oid = a.atttypid"
    " WHERE i.indrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n"
    " ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)"
    " AND (i.indisprimary OR i.indisreplident)"
    " ORDER BY i.indisprimary DESC, i.indexrelid, k.o";

/* " ORDER BY t.k1 [COLLATE "C"], ..." of the key of schema.name (first index only). */
static int order_by(PGconn *c, const char *schema, const char *name, Buf *out, PGresult **keys)
{
    const char *p[2] = {schema, name};
    PGresult *res;
    int rc = pgconn_query(c, MKEY_SQL, 2, p, &res);

    if (rc < 0)
        return rc;
    for (int r = 0; r < PQntuples(res); r++) {
        char *q;

        if (strcmp(PQgetvalue(res, r, 3), PQgetvalue(res, 0, 3)) != 0)
            break;
        q = pgconn_ident(c, PQgetvalue(res, r, 0));
        buf_printf(out, "%st.%s%s", r ? ", " : " ORDER BY ", q,
                   PQgetvalue(res, r, 2)[0] == 't' ? " COLLATE \"C\"" : "");
        free(q);
    }
    *keys = res;
    return 0;
}

int verify_map_attach(const json_t *tree, VTable *t)
{
    MappingPlan *plan = NULL;
    int rc;

    if (!mapping_find(tree, t->def->schema, t->def->name))
        return 0;
    t->map = xcalloc(1, sizeof(VMap));
    rc = mapping_compile_for_table(tree, t->def, &plan);
    if (rc == 0 && plan && mapping_uses_id_lookup(plan))
        rc = tm_fail(-ENOTSUP,
                     "the mapping of %s uses id_map, which verify cannot evaluate yet (the"
                     " lookups live in tidemark.id_map on the target)",
                     t->def->display);
    if (rc < 0) {
        mapping_free(plan);
        t->map->tdisplay = xstrdup(t->def->display);
        t->t_problem = xasprintf("%s", tm_error());
        return 0;
    }
    t->map->plan = plan;
    t->map->tdisplay = xasprintf("%s.%s", mapping_target_schema(plan), mapping_target_table(plan));
    t->map->ntcols = mapping_target_ncols(plan);
    t->map->tcols = mapping_target_columns(plan);
    return 0;
}

const char *verify_map_target(const VTable *t)
{
    return t->map ? t->map->tdisplay : NULL;
}

void verify_map_release(VTable *t)
{
    VMap *m = t->map;

    if (!m)
        return;
    mapping_free(m->plan);
    free(m->tdisplay);
    free(m->tkeyidx);
    free(m->tkeyint);
    free(m->src_sql);
    free(m->dst_sql);
    for (size_t c = 0; m->ttypes && c < m->ntcols; c++)
        free(m->ttypes[c]);
    free(m->ttypes);
    if (m->canon)
        PQfinish(m->canon);
    free(m);
    t->map = NULL;
}

/* Checks the target table and columns and builds both COPY statements. */
int verify_map_prepare(PGconn *src, PGconn *dst, VTable *t)
{
    VMap *m = t->map;

    m->dst = dst;
    const char *ts, *tn;
    Buf s = BUF_INIT, d = BUF_INIT, w = BUF_INIT;
    PGresult *res = NULL, *keys = NULL;
    const char *p[2];
    int rc;

    t->t_found = false;
    if (t->t_problem || !m->plan)
        return 0; /* the mapping did not compile: reported as the table's error */
    ts = mapping_target_schema(m->plan);
    tn = mapping_target_table(m->plan);
    free(t->qdst);
    t->qdst = pgconn_qualified(dst, ts, tn);
    if (t->nkey == 0) {
        t->t_problem = xasprintf("%s has a mapping and no key: transform-aware verification"
                                 " needs a primary key or replica identity index on the source",
                                 t->def->display);
        return 0;
    }
    p[0] = ts;
    p[1] = tn;
    rc = pgconn_query(dst,
                      "SELECT a.attname, CASE WHEN t.typcategory = 'S' THEN NULL ELSE"
                      " format_type(a.atttypid, a.atttypmod) END FROM pg_attribute a"
                      " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n"
                      " ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid"
                      " WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0"
                      " AND NOT a.attisdropped",
                      2, p, &res);
    if (rc < 0)
        return tm_fail_ctx(rc, "target: reading the columns of %s", m->tdisplay);
    if (PQntuples(res) == 0)
        t->t_problem = xasprintf("table %s (the mapping target of %s) does not exist on the target",
                                 m->tdisplay, t->def->display);
    for (size_t c = 0; c < m->ntcols && !t->t_problem; c++) {
        bool found = false;

        for (int r = 0; r < PQntuples(res) && !found; r++) {
            found = strcmp(PQgetvalue(res, r, 0), m->tcols[c]) == 0;
            if (found && !PQgetisnull(res, r, 1)) {
                if (!m->ttypes)
                    m->ttypes = xcalloc(m->ntcols, sizeof(char *));
                m->ttypes[c] = xstrdup(PQgetvalue(res, r, 1));
            }
        }
        if (!found)
            t->t_problem =
                xasprintf("column %s of %s (mapped from %s) does not exist on the target",
                          m->tcols[c], m->tdisplay, t->def->display);
    }
    PQclear(res);
    if (t->t_problem)
        return 0;

    /* target: the mapped columns, in key order, scoped by constant columns */
    buf_puts(&d, "COPY (SELECT ");
    for (size_t c = 0; c < m->ntcols; c++) {
        char *q = pgconn_ident(dst, m->tcols[c]);
        const char *val;
        size_t len;

        buf_printf(&d, "%st.%s", c ? ", " : "", q);
        if (mapping_target_const(m->plan, c, &val, &len)) {
            if (val) {
                char *lit = PQescapeLiteral(dst, val, len);

                if (!lit)
                    xalloc_die();
                buf_printf(&w, "%st.%s::text = %s", w.len ? " AND " : " WHERE ", q, lit);
                PQfreemem(lit);
            } else {
                buf_printf(&w, "%st.%s IS NULL", w.len ? " AND " : " WHERE ", q);
            }
        }
        free(q);
    }
    buf_printf(&d, " FROM %s AS t%s", t->qdst, w.len ? buf_cstr(&w) : "");
    if ((rc = order_by(dst, ts, tn, &d, &keys)) < 0)
        goto out;
    m->tkeyidx = xcalloc(m->ntcols + 1, sizeof(int));
    m->tkeyint = xcalloc(m->ntcols + 1, sizeof(bool));
    for (int r = 0; r < PQntuples(keys); r++) {
        if (strcmp(PQgetvalue(keys, r, 3), PQgetvalue(keys, 0, 3)) != 0)
            break;
        for (size_t c = 0; c < m->ntcols; c++)
            if (strcmp(m->tcols[c], PQgetvalue(keys, r, 0)) == 0) {
                m->tkeyidx[m->ntkey] = (int)c;
                m->tkeyint[m->ntkey++] = PQgetvalue(keys, r, 1)[0] == 't';
            }
    }
    {
        size_t nfirst = 0;

        for (int r = 0; r < PQntuples(keys); r++)
            nfirst += strcmp(PQgetvalue(keys, r, 3), PQgetvalue(keys, 0, 3)) == 0;
        /* a target key column the mapping does not fill cannot be matched */
        if (m->ntkey == 0 || m->ntkey != nfirst)
            t->t_problem =
                xasprintf("%s (the mapping target of %s) has no primary key or replica identity"
                          " index made of mapped columns: transform-aware verification matches"
                          " rows by it",
                          m->tdisplay, t->def->display);
    }
    buf_puts(&d, ") TO STDOUT");

    /* source: every source column (the plan's input), in source key order */
    buf_puts(&s, "COPY (SELECT ");
    for (size_t c = 0; c < t->def->ncols; c++) {
        char *q = pgconn_ident(src, t->def->cols[c].name);

        buf_printf(&s, "%st.%s", c ? ", " : "", q);
        free(q);
    }
    buf_printf(&s, " FROM %s AS t", t->qsrc);
    PQclear(keys);
    keys = NULL;
    if ((rc = order_by(src, t->def->schema, t->def->name, &s, &keys)) < 0)
        goto out;
    buf_puts(&s, ") TO STDOUT");
    m->src_sql = xstrdup(buf_cstr(&s));
    m->dst_sql = xstrdup(buf_cstr(&d));
    t->t_found = t->t_problem == NULL;
out:
    PQclear(keys);
    buf_release(&s);
    buf_release(&d);
    buf_release(&w);
    return rc;
}

/* ---- streaming ----------------------------------------------------------------- */

typedef struct MRow {
    char **vals; /* ntcols, NULL for SQL NULL */
} MRow;

typedef struct Stream {
    PGconn *c;
    const char *side;
    bool open, done;
} Stream;

static int stream_start(Stream *st, PGconn *c, const char *side, const char *sql, const char *disp)
{
    PGresult *res;

    st->c = c;
    st->side = side;
    st->open = st->done = false;
    if (!PQsendQuery(c, sql))
        return tm_fail(-EIO, "%s: COPY of %s: %s", side, disp, pgconn_errmsg(c, NULL));
    res = PQgetResult(c);
    if (!res || PQresultStatus(res) != PGRES_COPY_OUT) {
        int rc = tm_fail(-EIO, "%s: COPY of %s: %s", side, disp, pgconn_errmsg(c, res));

        PQclear(res);
        while ((res = PQgetResult(c)) != NULL)
            PQclear(res);
        return rc;
    }
    PQclear(res);
    st->open = true;
    return 0;
}

/* The next COPY row (malloc'd by libpq: PQfreemem), or *row NULL at the end. */
static int stream_next(Stream *st, const char *disp, char **row, int *len)
{
    PGresult *res;
    int rc = 0;

    *row = NULL;
    if (st->done)
        return 0;
    *len = PQgetCopyData(st->c, row, 0);
    if (*len > 0)
        return 0;
    *row = NULL;
    if (*len == -2)
        rc = tm_fail(-EIO, "%s: COPY of %s: %s", st->side, disp, pgconn_errmsg(st->c, NULL));
    while ((res = PQgetResult(st->c)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0)
            rc = tm_fail(-EIO, "%s: COPY of %s: %s", st->side, disp, pgconn_errmsg(st->c, res));
        PQclear(res);
    }
    st->done = true;
    st->open = false;
    return rc;
}

/* After an error: cancels a COPY still running and drains the connection. */
static void stream_abort(Stream *st)
{
    PGcancel *cn;
    char err[256];
    char *row;
    PGresult *res;

    if (!st->open)
        return;
    if ((cn = PQgetCancel(st->c)) != NULL) {
        PQcancel(cn, err, sizeof(err));
        PQfreeCancel(cn);
    }
    while (PQgetCopyData(st->c, &row, 0) > 0)
        PQfreemem(row);
    while ((res = PQgetResult(st->c)) != NULL)
        PQclear(res);
    st->open = false;
    st->done = true;
}

static void mrow_free(MRow *r, size_t n)
{
    for (size_t i = 0; r->vals && i < n; i++)
        free(r->vals[i]);
    free(r->vals);
    r->vals = NULL;
}

static int tuple_to_row(const Tuple *tp, size_t n, MRow *out)
{
    out->vals = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n && i < tp->ncols; i++)
        if (tp->cols[i].state == COL_TEXT)
            out->vals[i] = xstrndup(tp->cols[i].data ? tp->cols[i].data : "", tp->cols[i].len);
    return 0;
}

static int key_cmp(const VMap *m, const MRow *a, const MRow *b)
{
    for (size_t k = 0; k < m->ntkey; k++) {
        const char *x = a->vals[m->tkeyidx[k]], *y = b->vals[m->tkeyidx[k]];
        int c;

        if (!x || !y)
            c = (x != NULL) - (y != NULL);
        else if (m->tkeyint[k]) {
            long long i = strtoll(x, NULL, 10), j = strtoll(y, NULL, 10);

            c = i < j ? -1 : i > j ? 1 : 0;
        } else {
            c = strcmp(x, y);
        }
        if (c)
            return c;
    }
    return 0;
}

static char *key_text(const VMap *m, const MRow *r)
{
    Buf b = BUF_INIT;

    if (m->ntkey == 1) {
        const char *v = r->vals[m->tkeyidx[0]];

        buf_puts(&b, v ? v : "");
    } else {
        buf_putc(&b, '(');
        for (size_t k = 0; k < m->ntkey; k++) {
            const char *v = r->vals[m->tkeyidx[k]];

            buf_printf(&b, "%s%s", k ? "," : "", v ? v : "");
        }
        buf_putc(&b, ')');
    }
    buf_cstr(&b);
    return b.data;
}

static char **dup_vals(const MRow *r, size_t n)
{
    char **v = xcalloc(n + 1, sizeof(char *));

    for (size_t i = 0; i < n; i++)
        v[i] = r->vals[i] ? xstrdup(r->vals[i]) : NULL;
    return v;
}

/*
 * Whether two texts denote the same value of the target column's type: the
 * mapping's output ("12.5") and the target's print of it ("12.50" in a
 * numeric(12,2)) may differ in form only. Asked of the target itself, on a
 * second session (the first is streaming), only for pairs that differ as
 * text in a column that is not a string type.
 */
static bool same_typed(VMap *m, size_t c, const char *x, const char *y)
{
    const char *params[2] = {x, y};
    PGresult *res;
    char *sql;
    bool same = false;

    if (!m->canon) {
        PQconninfoOption *opts = PQconninfo(m->dst);
        const char *keys[64], *vals[64];
        int n = 0;

        for (PQconninfoOption *o = opts; o && o->keyword && n < 63; o++)
            if (o->val && *o->val) {
                keys[n] = o->keyword;
                vals[n++] = o->val;
            }
        keys[n] = vals[n] = NULL;
        m->canon = PQconnectdbParams(keys, vals, 0);
        PQconninfoFree(opts);
        if (PQstatus(m->canon) != CONNECTION_OK)
            return false;
    }
    /* The type name is the catalog's own format_type() text, not user input. */
    sql = xasprintf("SELECT $1::%s IS NOT DISTINCT FROM $2::%s", m->ttypes[c], m->ttypes[c]);
    res = PQexecParams(m->canon, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        same = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    free(sql);
    return same;
}

static void canonicalize(VMap *m, MRow *a, const MRow *b)
{
    for (size_t c = 0; m->ttypes && c < m->ntcols; c++) {
        if (!m->ttypes[c] || !a->vals[c] || !b->vals[c] || strcmp(a->vals[c], b->vals[c]) == 0)
            continue;
        if (same_typed(m, c, a->vals[c], b->vals[c])) {
            free(a->vals[c]);
            a->vals[c] = xstrdup(b->vals[c]);
        }
    }
}

/* One merge step's difference (a is the mapped source row, b the target row; either NULL). */
static void diff_pair(VMap *m, MRow *a, const MRow *b, json_t *out, size_t *total)
{
    VShape sh = {m->tcols, m->ntcols, m->tkeyidx, m->ntkey};
    VRowSet x, y;
    json_t *found = json_array();
    size_t i;
    json_t *d;

    vrowset_init(&x, m->ntcols);
    vrowset_init(&y, m->ntcols);
    if (a && b)
        canonicalize(m, a, b);
    if (a)
        vrowset_add(&x, key_text(m, a), dup_vals(a, m->ntcols), 1);
    if (b)
        vrowset_add(&y, key_text(m, b), dup_vals(b, m->ntcols), 1);
    verify_diff_rows(&sh, &x, &y, found);
    json_array_foreach(found, i, d)
    {
        if (json_array_size(out) < VERIFY_MAX_DIFFS)
            json_array_append(out, d);
    }
    *total += json_array_size(found);
    json_decref(found);
    vrowset_release(&x);
    vrowset_release(&y);
}

typedef struct Merge {
    VTable *t;
    Stream ss, ds;
    CopyText ct_in, ct_out;
    Arena *arena;
    Buf mapped;
    long long nsrc, ndst;
} Merge;

/* The next mapped, unfiltered source row into *r (vals NULL at the end). */
static int next_src(Merge *g, MRow *r)
{
    VMap *m = g->t->map;
    char *row;
    int len, rc;

    for (;;) {
        bool filtered = false;
        Tuple tp;

        r->vals = NULL;
        if ((rc = stream_next(&g->ss, g->t->def->display, &row, &len)) < 0 || !row)
            return rc;
        g->t->rows_fetched++;
        arena_reset(g->arena);
        g->mapped.len = 0;
        rc = mapping_apply_copy_row(m->plan, &g->ct_in, row, (size_t)len, g->arena, &g->mapped,
                                    &filtered);
        PQfreemem(row);
        if (rc < 0)
            return tm_fail_ctx(rc, "applying the mapping of %s to a source row",
                               g->t->def->display);
        if (filtered)
            continue;
        if ((rc = copytext_parse(&g->ct_out, g->mapped.data, g->mapped.len, (uint16_t)m->ntcols,
                                 &tp)) < 0)
            return rc;
        g->nsrc++;
        return tuple_to_row(&tp, m->ntcols, r);
    }
}

static int next_dst(Merge *g, MRow *r)
{
    VMap *m = g->t->map;
    char *row;
    int len, rc;
    Tuple tp;

    r->vals = NULL;
    if ((rc = stream_next(&g->ds, m->tdisplay, &row, &len)) < 0 || !row)
        return rc;
    g->t->rows_fetched++;
    rc = copytext_parse(&g->ct_out, row, (size_t)len, (uint16_t)m->ntcols, &tp);
    if (rc == 0)
        tuple_to_row(&tp, m->ntcols, r);
    PQfreemem(row);
    g->ndst++;
    return rc;
}

static int order_error(VTable *t, const char *side, const MRow *prev, const MRow *cur)
{
    char *a = key_text(t->map, prev), *b = key_text(t->map, cur);
    int rc = tm_fail(-ENOTSUP,
                     "%s: the %s rows of %s do not arrive in the target key's order (key %s after"
                     " %s): transform-aware verification merges both sides in key order, so the"
                     " mapping must keep the key's order (id_offset and renames do; a transform"
                     " that reorders keys cannot be verified this way)",
                     t->def->display, side, t->map->tdisplay, b, a);

    free(a);
    free(b);
    return rc;
}

/* The merge at the workers' current snapshots; diffs into out (capped), all counted in *total. */
static int merge(PGconn *src, PGconn *dst, VTable *t, VThrottle *th, json_t *out, size_t *total,
                 long long *nsrc, long long *ndst)
{
    VMap *m = t->map;
    Merge g = {.t = t, .ct_in = COPYTEXT_INIT, .ct_out = COPYTEXT_INIT, .mapped = BUF_INIT};
    MRow a = {0}, b = {0}, pa = {0}, pb = {0};
    long long since = 0;
    int rc;

    g.arena = arena_new(64 * 1024);
    rc = stream_start(&g.ss, src, "source", m->src_sql, t->def->display);
    if (rc == 0)
        rc = stream_start(&g.ds, dst, "target", m->dst_sql, m->tdisplay);
    t->queries += 2;
    if (rc == 0)
        rc = next_src(&g, &a);
    if (rc == 0)
        rc = next_dst(&g, &b);
    while (rc == 0 && (a.vals || b.vals)) {
        int c = !a.vals ? 1 : !b.vals ? -1 : key_cmp(m, &a, &b);

        if (c <= 0 && pa.vals && key_cmp(m, &pa, &a) >= 0) {
            rc = order_error(t, "mapped source", &pa, &a);
            break;
        }
        if (c >= 0 && pb.vals && key_cmp(m, &pb, &b) >= 0) {
            rc = order_error(t, "target", &pb, &b);
            break;
        }
        if (c < 0)
            diff_pair(m, &a, NULL, out, total);
        else if (c > 0)
            diff_pair(m, NULL, &b, out, total);
        else
            diff_pair(m, &a, &b, out, total);
        if (c <= 0) {
            mrow_free(&pa, m->ntcols);
            pa = a;
            a.vals = NULL;
            rc = next_src(&g, &a);
        }
        if (c >= 0 && rc == 0) {
            mrow_free(&pb, m->ntcols);
            pb = b;
            b.vals = NULL;
            rc = next_dst(&g, &b);
        }
        if (++since >= 1024) {
            verify_throttle(th, since);
            since = 0;
        }
    }
    verify_throttle(th, since);
    if (rc < 0) {
        stream_abort(&g.ss);
        stream_abort(&g.ds);
    }
    mrow_free(&a, m->ntcols);
    mrow_free(&b, m->ntcols);
    mrow_free(&pa, m->ntcols);
    mrow_free(&pb, m->ntcols);
    copytext_release(&g.ct_in);
    copytext_release(&g.ct_out);
    buf_release(&g.mapped);
    arena_free(g.arena);
    *nsrc = g.nsrc;
    *ndst = g.ndst;
    return rc;
}

int verify_map_compare(PGconn *src, PGconn *dst, VTable *t, VThrottle *th)
{
    size_t total = 0;
    int rc = merge(src, dst, t, th, t->diffs, &total, &t->src_rows, &t->dst_rows);

    t->ndiffs_total += total;
    return rc;
}

int verify_map_recheck(PGconn *src, PGconn *dst, VTable *t, const json_t *diffs, json_t **out)
{
    json_t *all = json_array(), *d;
    size_t total = 0, i, k;
    long long ns, nd;
    const json_t *o;
    int rc = merge(src, dst, t, NULL, all, &total, &ns, &nd);

    *out = json_array();
    if (rc < 0) {
        json_decref(all);
        return rc;
    }
    /* only the keys that differed before and still differ remain */
    json_array_foreach(all, i, d)
    {
        json_array_foreach(diffs, k, o)
        {
            if (strcmp(json_string_value(json_object_get(o, "key_text")),
                       json_string_value(json_object_get(d, "key_text"))) == 0) {
                json_array_append(*out, d);
                break;
            }
        }
    }
    json_decref(all);
    return 0;
}
