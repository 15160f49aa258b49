/*
 * The comparison of one table inside both databases, in the snapshots the
 * caller opened. Nothing is downloaded but aggregates until a difference is
 * narrowed down: one grouped pass per side yields the counts and hash sums
 * of the first ranges (the floor: a full scan), ranges that differ are split
 * again (index range scans on the key), and ranges or buckets of at most
 * VERIFY_LEAF_ROWS rows are fetched whole and diffed in C.
 *
 * A table with one orderable key column is cut into key ranges: equal-width
 * buckets computed by arithmetic for integer keys, percentiles (sampled at
 * the top) for any other type, with COLLATE "C" for text so both sides order
 * alike. A
 * composite key or no key at all uses buckets of a hash instead (of the key,
 * or of the whole row, compared as a multiset); each level narrows the
 * differing buckets by another factor of VERIFY_FANOUT.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"
#include "migration/verify_int.h"
#include "core/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Range {
    char *lo, *hi; /* NULL: open end */
    long long srows, drows;
} Range;

static void range_free(Range *r)
{
    free(r->lo);
    free(r->hi);
}

static void range_where(const VTable *t, const Range *r, Buf *sql, SqlParams *p)
{
    buf_puts(sql, " WHERE true");
    if (r->lo)
        buf_printf(sql, " AND %s >= $%d::%s", t->keycol, sqlp_add(p, r->lo), t->key_type);
    if (r->hi)
        buf_printf(sql, " AND %s < $%d::%s", t->keycol, sqlp_add(p, r->hi), t->key_type);
}

/* Reads (bucket, count, sum) rows. */
static VBucket *read_buckets(PGresult *res, size_t *n)
{
    VBucket *b = xcalloc((size_t)PQntuples(res) + 1, sizeof(VBucket));

    *n = (size_t)PQntuples(res);
    for (size_t i = 0; i < *n; i++) {
        b[i].id = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        b[i].count = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
        b[i].sum = PQgetisnull(res, (int)i, 2) ? NULL : xstrdup(PQgetvalue(res, (int)i, 2));
    }
    return b;
}

static long long bucket_rows(const VBucket *b, size_t n, long long id)
{
    for (size_t i = 0; i < n; i++)
        if (b[i].id == id)
            return b[i].count;
    return 0;
}

static long long total_rows(const VBucket *b, size_t n)
{
    long long s = 0;

    for (size_t i = 0; i < n; i++)
        s += b[i].count;
    return s;
}

/*
 * The planner estimates the groups of a bucket expression (width_bucket(key,
 * ...), (key - base) / width, hash % 64) as the distinct values of the
 * columns inside it: 5 million for a unique key of 5 million rows, where
 * there are at most 65. It then sorts the whole table (an external merge of
 * whole rows) for a GroupAggregate instead of hashing 65 groups, does not
 * aggregate in the parallel workers, and the inflated cost switches on JIT
 * inlining and optimisation in every process. On pgbench_accounts (5 M rows)
 * that made the top-level pass 4.7-5.0 s per side instead of 2.2 s, the
 * floor being 1.9 s. So, for these queries only (reset after them, so the
 * rule checks plan as usual): no sort when a hash aggregate is possible; a
 * Gather that carries at most 65 rows per worker costs nothing; no JIT
 * inlining or optimisation, like the same scan without the grouping gets.
 */
static const char BUCKET_PLAN[] =
    "SET enable_sort = off; SET parallel_tuple_cost = 0;"
    " SET jit_inline_above_cost = -1; SET jit_optimize_above_cost = -1";
static const char BUCKET_PLAN_RESET[] =
    "RESET enable_sort; RESET parallel_tuple_cost;"
    " RESET jit_inline_above_cost; RESET jit_optimize_above_cost";

/* Runs the pair of aggregate queries; *a is the source's buckets, *b the target's. */
static int run_buckets(PGconn *src, PGconn *dst, VTable *t, const char *qs, const char *qd,
                       const SqlParams *p, VBucket **a, size_t *na, VBucket **b, size_t *nb)
{
    PGresult *rs, *rd;
    int rc = pgconn_exec(src, BUCKET_PLAN);

    if (rc == 0)
        rc = pgconn_exec(dst, BUCKET_PLAN);
    if (rc == 0)
        rc = verify_query2(src, qs, dst, qd, p->n, (const char *const *)p->v, &rs, &rd);
    /* after an error the transaction is aborted: the task's rollback to its savepoint undoes the
     * SETs */
    if (rc < 0)
        return rc;
    if ((rc = pgconn_exec(src, BUCKET_PLAN_RESET)) < 0 ||
        (rc = pgconn_exec(dst, BUCKET_PLAN_RESET)) < 0) {
        PQclear(rs);
        PQclear(rd);
        return rc;
    }
    t->queries++;
    *a = read_buckets(rs, na);
    *b = read_buckets(rd, nb);
    PQclear(rs);
    PQclear(rd);
    return 0;
}

/* Rows of a result (key text, then one column per compared column, then an optional count). */
static void read_rows(PGresult *res, VRowSet *s, bool with_count)
{
    for (int r = 0; r < PQntuples(res); r++) {
        char **vals = xcalloc(s->ncols + 1, sizeof(char *));

        for (size_t c = 0; c < s->ncols; c++)
            vals[c] =
                PQgetisnull(res, r, (int)c + 1) ? NULL : xstrdup(PQgetvalue(res, r, (int)c + 1));
        vrowset_add(s, xstrdup(PQgetvalue(res, r, 0)), vals,
                    with_count ? strtoll(PQgetvalue(res, r, (int)s->ncols + 1), NULL, 10) : 1);
    }
}

/* Fetches rows with the same WHERE on both sides and appends their differences to out. */
static int fetch_diff(PGconn *src, PGconn *dst, VTable *t, const char *where, const SqlParams *p,
                      json_t *out, size_t *ndiff)
{
    bool multiset = t->strategy == VS_HASH_ROW;
    Buf qs = BUF_INIT, qd = BUF_INIT;
    PGresult *rs = NULL, *rd = NULL;
    VRowSet a, b;
    VShape sh = {t->colnames, t->ncols, t->keyidx, t->nkey};
    int rc;

    if (multiset) {
        /* identical rows collapse into one with their count */
        buf_printf(&qs, "SELECT %s, %s, count(*) FROM %s AS t%s GROUP BY 1", t->rowtext_src,
                   t->cols_src, t->qsrc, where);
        buf_printf(&qd, "SELECT %s, %s, count(*) FROM %s AS t%s GROUP BY 1", t->rowtext_dst,
                   t->cols_dst, t->qdst, where);
        for (size_t c = 0; c < t->ncols; c++) {
            buf_printf(&qs, ", %zu", c + 2);
            buf_printf(&qd, ", %zu", c + 2);
        }
    } else {
        buf_printf(&qs, "SELECT %s, %s FROM %s AS t%s", t->keytext, t->cols_src, t->qsrc, where);
        buf_printf(&qd, "SELECT %s, %s FROM %s AS t%s", t->keytext, t->cols_dst, t->qdst, where);
    }
    rc = verify_query2(src, buf_cstr(&qs), dst, buf_cstr(&qd), p ? p->n : 0,
                       p ? (const char *const *)p->v : NULL, &rs, &rd);
    buf_release(&qs);
    buf_release(&qd);
    if (rc < 0)
        return rc;
    t->queries++;
    vrowset_init(&a, t->ncols);
    vrowset_init(&b, t->ncols);
    read_rows(rs, &a, multiset);
    read_rows(rd, &b, multiset);
    t->rows_fetched += (long long)(a.n + b.n);
    PQclear(rs);
    PQclear(rd);
    *ndiff += verify_diff_rows(&sh, &a, &b, out);
    vrowset_release(&a);
    vrowset_release(&b);
    return 0;
}

/* Appends diffs found in a leaf to the table, keeping at most VERIFY_MAX_DIFFS of them. */
static void keep_diffs(VTable *t, json_t *found)
{
    size_t i;
    json_t *d;

    json_array_foreach(found, i, d)
    {
        if (json_array_size(t->diffs) < VERIFY_MAX_DIFFS)
            json_array_append(t->diffs, d);
    }
    t->ndiffs_total += json_array_size(found);
}

/* ---- key ranges -------------------------------------------------------------- */

static int int_minmax(PGconn *src, PGconn *dst, VTable *t)
{
    char *q = xasprintf("SELECT min(%s)::text, max(%s)::text FROM %%s AS t", t->keycol, t->keycol);
    char *qs = xasprintf(q, t->qsrc), *qd = xasprintf(q, t->qdst);
    PGresult *rs, *rd;
    int rc = verify_query2(src, qs, dst, qd, 0, NULL, &rs, &rd);

    free(q);
    free(qs);
    free(qd);
    if (rc < 0)
        return rc;
    t->kempty = true;
    for (int side = 0; side < 2; side++) {
        PGresult *r = side ? rd : rs;

        if (PQgetisnull(r, 0, 0))
            continue;
        int64_t lo = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        int64_t hi = strtoll(PQgetvalue(r, 0, 1), NULL, 10);

        if (t->kempty || lo < t->kmin)
            t->kmin = lo;
        if (t->kempty || hi > t->kmax)
            t->kmax = hi;
        t->kempty = false;
    }
    PQclear(rs);
    PQclear(rd);
    return 0;
}

/*
 * How one grouped pass cuts a range. An integer key whose range fits in an
 * int64 gets equal-width buckets, (key - base) / width with literal
 * constants (integers tidemark computed, so nothing from the data is spliced
 * into the SQL): a subtraction and a division per row where width_bucket()
 * over 63 split points runs a binary search of function calls. Any other key
 * gets split points (percentiles of the fuller side) and width_bucket().
 */
typedef struct Cuts {
    int64_t width; /* > 0: bucket (key - base) / width over [base, end) */
    int64_t base, end;
    char **pts; /* width_bucket() split points */
    int npts;
} Cuts;

static void cuts_release(Cuts *c)
{
    for (int i = 0; i < c->npts; i++)
        free(c->pts[i]);
    free(c->pts);
}

/* Whether the range cannot be cut any further (its rows are then fetched whole). */
static bool cuts_none(const Cuts *c)
{
    return c->width == 0 && c->npts == 0;
}

/* The bounds of bucket id of c inside r (NULL: r's open end). */
static void cuts_bounds(const Cuts *c, const Range *r, long long id, char **lo, char **hi)
{
    if (c->width > 0) {
        /* ids are >= 0 for keys in [base, end); the first and last buckets keep r's own ends */
        __int128 a = (__int128)c->base + (__int128)c->width * (id < 0 ? 0 : id);
        __int128 b = a + c->width;

        *lo = id <= 0 ? (r->lo ? xstrdup(r->lo) : NULL) : xasprintf("%lld", (long long)a);
        *hi = b >= c->end ? (r->hi ? xstrdup(r->hi) : NULL) : xasprintf("%lld", (long long)b);
        return;
    }
    *lo = id == 0 ? (r->lo ? xstrdup(r->lo) : NULL) : xstrdup(c->pts[id - 1]);
    *hi = id == c->npts ? (r->hi ? xstrdup(r->hi) : NULL) : xstrdup(c->pts[id]);
}

/* How to cut r: arithmetic for integers, percentiles of the fuller side otherwise. */
static int split_points(PGconn *src, PGconn *dst, VTable *t, const Range *r, Cuts *cuts)
{
    memset(cuts, 0, sizeof(*cuts));
    cuts->pts = xcalloc(VERIFY_FANOUT, sizeof(char *));
    if (t->key_int) {
        int64_t b[VERIFY_FANOUT];
        int64_t lo = r->lo ? strtoll(r->lo, NULL, 10) : t->kmin;
        int64_t hi =
            r->hi ? strtoll(r->hi, NULL, 10) : (t->kmax < INT64_MAX ? t->kmax + 1 : t->kmax);
        int k;

        cuts->width = verify_int_width(lo, hi, VERIFY_FANOUT);
        cuts->base = lo;
        cuts->end = hi;
        if (cuts->width > 0)
            return 0;
        /* too wide for key - base in an int64 (or too narrow to cut: no points) */
        k = verify_int_bounds(lo, hi, VERIFY_FANOUT, b);
        for (int i = 0; i < k; i++)
            cuts->pts[cuts->npts++] = xasprintf("%lld", (long long)b[i]);
        return 0;
    }
    Buf sql = BUF_INIT, fr = BUF_INIT;
    SqlParams p = {0};
    PGconn *c = r->drows > r->srows ? dst : src;
    PGresult *res;
    bool root = !r->lo && !r->hi;
    int rc;

    buf_putc(&fr, '{');
    for (int i = 1; i < VERIFY_FANOUT; i++)
        buf_printf(&fr, "%s%.8f", i > 1 ? "," : "", (double)i / VERIFY_FANOUT);
    buf_putc(&fr, '}');
    buf_printf(&sql,
               "SELECT b::text FROM unnest((SELECT percentile_disc($%d::float8[]) WITHIN GROUP"
               " (ORDER BY %s) FROM %s AS t",
               sqlp_add(&p, buf_cstr(&fr)), t->keycol, c == src ? t->qsrc : t->qdst);
    if (root && t->est_rows > 200000) {
        char pct[32];

        /* about 50,000 sampled rows place the first split points well enough */
        snprintf(pct, sizeof(pct), "%.6f", 100.0 * 50000.0 / t->est_rows);
        buf_printf(&sql, " TABLESAMPLE SYSTEM ($%d::float8)", sqlp_add(&p, pct));
    }
    range_where(t, r, &sql, &p);
    buf_puts(&sql, ")) WITH ORDINALITY u(b, i) ORDER BY i");
    rc = pgconn_query(c, buf_cstr(&sql), p.n, (const char *const *)p.v, &res);
    buf_release(&sql);
    buf_release(&fr);
    sqlp_release(&p);
    if (rc < 0)
        return tm_fail_ctx(rc, "%s: split points of %s", c == src ? "source" : "target",
                           t->def->display);
    t->queries++;
    for (int i = 0; i < PQntuples(res) && cuts->npts < VERIFY_FANOUT; i++) {
        const char *v = PQgetvalue(res, i, 0);

        if (PQgetisnull(res, i, 0) || (cuts->npts && strcmp(cuts->pts[cuts->npts - 1], v) == 0))
            continue;
        cuts->pts[cuts->npts++] = xstrdup(v);
    }
    PQclear(res);
    return 0;
}

static int leaf_range(PGconn *src, PGconn *dst, VTable *t, const Range *r)
{
    Buf where = BUF_INIT;
    SqlParams p = {0};
    json_t *found = json_array();
    size_t n = 0;
    int rc;

    range_where(t, r, &where, &p);
    rc = fetch_diff(src, dst, t, buf_cstr(&where), &p, found, &n);
    keep_diffs(t, found);
    json_decref(found);
    buf_release(&where);
    sqlp_release(&p);
    return rc;
}

/*
 * Splits r, compares its sub-ranges and pushes the ones that differ onto the
 * stack (or diffs them right away when small). The root's totals are the
 * table's row counts.
 */
static int split_range(PGconn *src, PGconn *dst, VTable *t, Range *r, Range **stack, size_t *nst,
                       VThrottle *th, bool root)
{
    Cuts cuts;
    int rc;
    Buf qs = BUF_INIT, qd = BUF_INIT, where = BUF_INIT, bucket = BUF_INIT;
    SqlParams p = {0};
    VBucket *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, ndiff;
    long long *ids = NULL, *rows = NULL;
    double t0 = clock_mono_secs();

    if ((rc = split_points(src, dst, t, r, &cuts)) < 0) {
        cuts_release(&cuts);
        return rc;
    }
    if (cuts_none(&cuts) && !root) {
        cuts_release(&cuts);
        return leaf_range(src, dst, t, r);
    }
    if (cuts.width > 0) {
        /* (-9223372036854775808)::int8 parses, a bare negative literal of that size would not */
        buf_printf(&bucket, "(%s::int8 - (%lld)::int8) / %lld", t->keycol, (long long)cuts.base,
                   (long long)cuts.width);
    } else {
        char *arr = profile_sql_text_array((const char **)cuts.pts, (size_t)cuts.npts);

        buf_printf(&bucket, "width_bucket(%s, $%d::text[]::%s[])", t->keycol, sqlp_add(&p, arr),
                   t->key_type);
        free(arr);
    }
    range_where(t, r, &where, &p);
    buf_printf(&qs, "SELECT %s, count(*), sum(%s)::text FROM %s AS t%s GROUP BY 1",
               buf_cstr(&bucket), t->hash_src, t->qsrc, buf_cstr(&where));
    buf_printf(&qd, "SELECT %s, count(*), sum(%s)::text FROM %s AS t%s GROUP BY 1",
               buf_cstr(&bucket), t->hash_dst, t->qdst, buf_cstr(&where));
    rc = run_buckets(src, dst, t, buf_cstr(&qs), buf_cstr(&qd), &p, &a, &na, &b, &nb);
    buf_release(&qs);
    buf_release(&qd);
    buf_release(&where);
    buf_release(&bucket);
    sqlp_release(&p);
    if (rc < 0) {
        cuts_release(&cuts);
        return rc;
    }
    if (root) {
        t->src_rows = total_rows(a, na);
        t->dst_rows = total_rows(b, nb);
    }
    verify_throttle(th, total_rows(a, na) + total_rows(b, nb));
    ndiff = verify_buckets_diff(a, na, b, nb, &ids, &rows);
    log_debug("verify %s: range [%s, %s): %lld / %lld rows in %zu / %zu buckets, %zu differ"
              " (%.3f s)",
              t->def->display, r->lo ? r->lo : "-inf", r->hi ? r->hi : "+inf", total_rows(a, na),
              total_rows(b, nb), na, nb, ndiff, clock_mono_secs() - t0);
    for (size_t i = 0; i < ndiff && rc == 0; i++) {
        long long id = ids[i];
        Range sub = {
            .srows = bucket_rows(a, na, id),
            .drows = bucket_rows(b, nb, id),
        };

        cuts_bounds(&cuts, r, id, &sub.lo, &sub.hi);
        if (rows[i] <= VERIFY_LEAF_ROWS) {
            rc = leaf_range(src, dst, t, &sub);
            range_free(&sub);
        } else {
            *stack = xrealloc(*stack, (*nst + 1) * sizeof(Range));
            (*stack)[(*nst)++] = sub;
        }
    }
    free(ids);
    free(rows);
    verify_buckets_release(a, na);
    verify_buckets_release(b, nb);
    cuts_release(&cuts);
    return rc;
}

static int compare_ranges(PGconn *src, PGconn *dst, VTable *t, VThrottle *th)
{
    Range root = {0};
    Range *stack = NULL;
    size_t nst = 0;
    int rc;

    if (t->key_int) {
        if ((rc = int_minmax(src, dst, t)) < 0)
            return rc;
        if (t->kempty)
            return 0;
    }
    rc = split_range(src, dst, t, &root, &stack, &nst, th, true);
    while (rc == 0 && nst > 0) {
        Range r = stack[--nst];

        rc = split_range(src, dst, t, &r, &stack, &nst, th, false);
        range_free(&r);
    }
    while (nst > 0)
        range_free(&stack[--nst]);
    free(stack);
    return rc;
}

/* ---- hash buckets --------------------------------------------------------------- */

static char *id_array(const long long *ids, size_t n)
{
    Buf b = BUF_INIT;

    buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s%lld", i ? "," : "", ids[i]);
    buf_putc(&b, '}');
    buf_cstr(&b);
    return b.data;
}

static int leaf_buckets(PGconn *src, PGconn *dst, VTable *t, long long mod, const long long *ids,
                        size_t n)
{
    /* the bucket hash differs per side only in a transformed row text; keyed ones share it */
    char *arr = id_array(ids, n);
    SqlParams p = {0};
    json_t *found = json_array();
    size_t nd = 0;
    int rc;
    char *ws, *wd;
    int i = sqlp_add(&p, arr);

    ws = xasprintf(" WHERE %s %% %lld = ANY($%d::bigint[])", t->bhash_src, mod, i);
    wd = xasprintf(" WHERE %s %% %lld = ANY($%d::bigint[])", t->bhash_dst, mod, i);
    if (strcmp(ws, wd) == 0) {
        rc = fetch_diff(src, dst, t, ws, &p, found, &nd);
    } else {
        rc = tm_fail(-ENOTSUP, "%s: transformed rows without a key", t->def->display);
    }
    keep_diffs(t, found);
    json_decref(found);
    free(ws);
    free(wd);
    free(arr);
    sqlp_release(&p);
    return rc;
}

static int compare_hashed(PGconn *src, PGconn *dst, VTable *t, VThrottle *th)
{
    long long mod = VERIFY_FANOUT, prev = 0;
    long long *filter = NULL;
    size_t nfilter = 0;
    int rc = 0;

    for (int level = 0; rc == 0; level++) {
        Buf qs = BUF_INIT, qd = BUF_INIT, where_s = BUF_INIT, where_d = BUF_INIT;
        SqlParams p = {0};
        VBucket *a = NULL, *b = NULL;
        size_t na = 0, nb = 0, nd;
        long long *ids = NULL, *rows = NULL, *leaves = NULL, *next = NULL;
        size_t nleaves = 0, nnext = 0;

        if (filter) {
            char *arr = id_array(filter, nfilter);
            int i = sqlp_add(&p, arr);

            free(arr);
            buf_printf(&where_s, " WHERE %s %% %lld = ANY($%d::bigint[])", t->bhash_src, prev, i);
            buf_printf(&where_d, " WHERE %s %% %lld = ANY($%d::bigint[])", t->bhash_dst, prev, i);
        }
        /* (buf_cstr of a buffer never written to is not a string yet: test len) */
        buf_printf(&qs, "SELECT %s %% %lld, count(*), sum(%s)::text FROM %s AS t%s GROUP BY 1",
                   t->bhash_src, mod, t->hash_src, t->qsrc, where_s.len ? where_s.data : "");
        buf_printf(&qd, "SELECT %s %% %lld, count(*), sum(%s)::text FROM %s AS t%s GROUP BY 1",
                   t->bhash_dst, mod, t->hash_dst, t->qdst, where_d.len ? where_d.data : "");
        rc = run_buckets(src, dst, t, buf_cstr(&qs), buf_cstr(&qd), &p, &a, &na, &b, &nb);
        buf_release(&qs);
        buf_release(&qd);
        buf_release(&where_s);
        buf_release(&where_d);
        sqlp_release(&p);
        if (rc < 0)
            break;
        if (level == 0) {
            t->src_rows = total_rows(a, na);
            t->dst_rows = total_rows(b, nb);
        }
        verify_throttle(th, total_rows(a, na) + total_rows(b, nb));
        nd = verify_buckets_diff(a, na, b, nb, &ids, &rows);
        for (size_t i = 0; i < nd; i++) {
            /* past 2^50 buckets a bucket holds identical hashes: fetch it */
            bool leaf = rows[i] <= VERIFY_LEAF_ROWS || mod > (1LL << 50);
            long long **dstv = leaf ? &leaves : &next;
            size_t *dn = leaf ? &nleaves : &nnext;

            *dstv = xrealloc(*dstv, (*dn + 1) * sizeof(long long));
            (*dstv)[(*dn)++] = ids[i];
        }
        if (nleaves)
            rc = leaf_buckets(src, dst, t, mod, leaves, nleaves);
        free(ids);
        free(rows);
        free(leaves);
        verify_buckets_release(a, na);
        verify_buckets_release(b, nb);
        free(filter);
        filter = next;
        nfilter = nnext;
        prev = mod;
        mod *= VERIFY_FANOUT;
        if (!nfilter)
            break;
    }
    free(filter);
    return rc;
}

int verify_compare_table(PGconn *src, PGconn *dst, VTable *t, VThrottle *th)
{
    if (t->strategy == VS_RANGE)
        return compare_ranges(src, dst, t, th);
    return compare_hashed(src, dst, t, th);
}

/* ---- rechecks and spot checks ------------------------------------------------------ */

int verify_recheck(PGconn *src, PGconn *dst, VTable *t, const json_t *diffs, json_t **out)
{
    size_t n = json_array_size(diffs), i, nd = 0;
    const char **keys = xcalloc(n + 1, sizeof(char *));
    const json_t *d;
    SqlParams p = {0};
    char *arr, *where;
    int rc, k;

    if (t->map) {
        free(keys);
        return verify_map_recheck(src, dst, t, diffs, out);
    }

    json_array_foreach(diffs, i, d) keys[i] = json_string_value(json_object_get(d, "key_text"));
    arr = profile_sql_text_array(keys, n);
    k = sqlp_add(&p, arr);
    free(arr);
    free(keys);
    if (t->strategy == VS_RANGE)
        /* equality needs no collation: the bare key column, so its index serves */
        where = xasprintf(" WHERE t.%s = ANY($%d::text[]::%s[])", t->keyq, k, t->key_type);
    else if (t->strategy == VS_HASH_KEY)
        where = xasprintf(" WHERE %s = ANY($%d::text[])", t->keytext, k);
    else
        where = xasprintf(" WHERE %s = ANY($%d::text[])", t->rowtext_src, k);
    *out = json_array();
    rc = fetch_diff(src, dst, t, where, &p, *out, &nd);
    free(where);
    sqlp_release(&p);
    return rc;
}

int verify_spot_check(PGconn *src, PGconn *dst, VTable *t, const VSpot *spot, json_t *out)
{
    int rc = 0;

    if (t->nkey == 0)
        return tm_fail(-EINVAL, "spot checks of %s need a key, and it has none", t->def->display);
    for (size_t i = 0; i < spot->nkeys && rc == 0; i++) {
        const json_t *key = spot->keys[i];
        size_t nk = json_is_array(key) ? json_array_size(key) : 1;
        Buf where = BUF_INIT;
        SqlParams p = {0};
        json_t *found = json_array();
        size_t nd = 0, j;
        json_t *d;

        if (nk != t->nkey) {
            rc = tm_fail(-EINVAL, "spot_checks.%s[%zu]: %s has %zu key columns", t->def->name, i,
                         t->def->display, t->nkey);
            json_decref(found);
            break;
        }
        buf_puts(&where, " WHERE true");
        for (size_t c = 0; c < nk; c++) {
            const json_t *v = json_is_array(key) ? json_array_get(key, c) : key;
            char *txt = json_is_string(v) ? xstrdup(json_string_value(v))
                        : json_is_integer(v)
                            ? xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v))
                            : xstrdup(json_is_true(v) ? "true" : "false");
            char *q = pgconn_ident(src, t->cols[t->keyidx[c]].name);

            /* an untyped parameter takes the column's type */
            buf_printf(&where, " AND t.%s = $%d", q, sqlp_add(&p, txt));
            free(q);
            free(txt);
        }
        rc = fetch_diff(src, dst, t, buf_cstr(&where), &p, found, &nd);
        json_array_foreach(found, j, d) json_object_set_new(d, "check", json_string("spot"));
        json_array_extend(out, found);
        json_decref(found);
        buf_release(&where);
        sqlp_release(&p);
    }
    return rc;
}
