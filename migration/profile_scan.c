/*
 * The passes over one table. Pass 1 is one aggregate query over every
 * column at once (non-null counts, typed min/max/avg, the finite bounds the
 * histograms need, future and implausible dates). Pass 2 is one grouping
 * query: each row is unfolded (LATERAL VALUES) into (column, value) pairs,
 * plus a histogram bucket per numeric/date column and the whole row when
 * duplicate rows are possible, and grouped once; everything that depends on
 * the values themselves (distinct counts, duplicates, top values, format
 * masks, blanks, placeholders, whitespace, dates or numbers in text, value
 * set mixes, encoding damage, case variants, target length and allowed-value
 * violations) is then computed from that grouped set, which is as small as
 * the number of distinct values rather than the number of rows. Columns that
 * a one-column unique index already makes distinct (typically integer keys)
 * are not grouped at all. When sampling, an extra count(*) keeps the
 * baseline row count exact. Both passes return their results as one jsonb.
 */
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HIST_BUCKETS 20
#define HIST_K       100000 /* group key of column i's histogram: HIST_K + i */
#define ROW_K        -1     /* group key of whole rows */
#define MASK_TOP     12
#define WS           "E' \\t\\r\\n'"

/* Dates as people type them: ISO, N/N/YYYY, D Mon YYYY, Mon D, YYYY; optional time. */
static const char DATE_RE[] =
    "^\\s*([0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{1,2}[-/.][0-9]{1,2}[-/.]([0-9]{4}|[0-9]{2})"
    "|[0-9]{1,2}[ -][A-Za-z]{3,9}[ -]([0-9]{4}|[0-9]{2})"
    "|[A-Za-z]{3,9}[.]? [0-9]{1,2}(st|nd|rd|th)?,? [0-9]{4})"
    "([ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?(Z|[-+][0-9]{2}(:?[0-9]{2})?)?)?\\s*$";
static const char NUM_RE[] =
    "^\\s*[-+]?([0-9]+([.,][0-9]+)?|[0-9]{1,3}(,[0-9]{3})+([.][0-9]+)?|[.][0-9]+)\\s*$";
static const char LEADING_ZERO_RE[] = "^\\s*[-+]?0[0-9]";

/*
 * Encoding damage, per source encoding. In UTF8 and single-byte databases
 * the regex sees characters; in SQL_ASCII it sees bytes (each byte one
 * character), so the checks look for byte sequences instead.
 */
typedef struct EncCheck {
    const char *key;
    const char *re;
    const char *not_re; /* and not matching this */
} EncCheck;

static const EncCheck enc_utf8[] = {
    {"mojibake", "[\\u00c2\\u00c3][\\u0080-\\u00bf]|\\u00e2\\u20ac", NULL},
    {"c1_controls", "[\\u0080-\\u009f]", NULL},
    {NULL, NULL, NULL},
};
static const EncCheck enc_latin1[] = {
    {"mojibake", "[\\u00c2\\u00c3][\\u0080-\\u00bf]", NULL},
    {"c1_controls", "[\\u0080-\\u009f]", NULL},
    {NULL, NULL, NULL},
};
static const EncCheck enc_single_byte[] = {
    {"mojibake", "[\\u00c2\\u00c3][\\u0080-\\u00bf]", NULL},
    {NULL, NULL, NULL},
};
static const EncCheck enc_sql_ascii[] = {
    {"non_ascii", "[\\x80-\\xff]", NULL},
    {"invalid_utf8", "[\\x80-\\xff]",
     "^([\\x01-\\x7f]|[\\xc2-\\xdf][\\x80-\\xbf]|\\xe0[\\xa0-\\xbf][\\x80-\\xbf]"
     "|[\\xe1-\\xec\\xee\\xef][\\x80-\\xbf]{2}|\\xed[\\x80-\\x9f][\\x80-\\xbf]"
     "|\\xf0[\\x90-\\xbf][\\x80-\\xbf]{2}|[\\xf1-\\xf3][\\x80-\\xbf]{3}"
     "|\\xf4[\\x80-\\x8f][\\x80-\\xbf]{2})*$"},
    {"mojibake", "\\xc3[\\x82\\x83]\\xc2[\\x80-\\xbf]", NULL},
    {"c1_controls", "\\xc2[\\x80-\\x9f]", NULL},
    {NULL, NULL, NULL},
};

static const EncCheck *enc_checks(const char *enc)
{
    if (strcmp(enc, "UTF8") == 0)
        return enc_utf8;
    if (strcmp(enc, "SQL_ASCII") == 0)
        return enc_sql_ascii;
    if (strcmp(enc, "LATIN1") == 0)
        return enc_latin1;
    if (strncmp(enc, "LATIN", 5) == 0 || strncmp(enc, "WIN", 3) == 0 ||
        strncmp(enc, "ISO_8859", 8) == 0 || strncmp(enc, "KOI8", 4) == 0)
        return enc_single_byte;
    return NULL; /* multi-byte legacy encodings: code points are not Unicode */
}

static char *col_ref(PGconn *conn, const ProfCol *c)
{
    char *id = pgconn_ident(conn, c->name);
    char *r = xasprintf("t.%s", id);

    free(id);
    return r;
}

static bool grouped(const ProfCol *c)
{
    return !(c->unique && c->cat != PROF_CAT_TEXT);
}

/* ---- pass 1: one aggregate query ---------------------------------------- */

static bool integer_base(const ProfCol *col)
{
    return strcmp(col->base, "int2") == 0 || strcmp(col->base, "int4") == 0 ||
           strcmp(col->base, "int8") == 0;
}

static void agg_column(Buf *sql, const char *c, const ProfCol *col)
{
    buf_printf(sql, "jsonb_build_object('nonnull', count(%s)", c);
    switch (col->cat) {
    case PROF_CAT_NUMBER:
        if (integer_base(col)) { /* the bounds are min and max themselves (shared aggregates) */
            buf_printf(sql,
                       ", 'min', min(%s)::text, 'max', max(%s)::text, 'avg', avg(%s)::float8"
                       ", 'lo', min(%s)::float8, 'hi', max(%s)::float8",
                       c, c, c, c, c);
            break;
        }
        buf_printf(sql,
                   ", 'min', min(%s)::text, 'max', max(%s)::text, 'avg', avg(%s)::float8"
                   ", 'lo', min(%s::float8) FILTER (WHERE %s::float8 > '-Infinity'"
                   " AND %s::float8 < 'Infinity')"
                   ", 'hi', max(%s::float8) FILTER (WHERE %s::float8 > '-Infinity'"
                   " AND %s::float8 < 'Infinity')",
                   c, c, c, c, c, c, c, c, c);
        break;
    case PROF_CAT_TEMPORAL: {
        const char *cast = strcmp(col->base, "date") == 0 ? "::timestamp" : "";

        buf_printf(sql,
                   ", 'min', min(%s)::text, 'max', max(%s)::text"
                   ", 'lo', min(date_part('epoch', %s%s)) FILTER (WHERE isfinite(%s))"
                   ", 'hi', max(date_part('epoch', %s%s)) FILTER (WHERE isfinite(%s))",
                   c, c, c, cast, c, c, cast, c);
        buf_printf(sql,
                   ", 'future', count(*) FILTER (WHERE %s > now() AND %s < '2100-01-01')"
                   ", 'future_max', (max(%s) FILTER (WHERE %s > now() AND %s < '2100-01-01'))::text"
                   ", 'too_old', count(*) FILTER (WHERE %s < '1900-01-01')"
                   ", 'too_old_min', (min(%s) FILTER (WHERE %s < '1900-01-01'))::text"
                   ", 'too_new', count(*) FILTER (WHERE %s >= '2100-01-01')"
                   ", 'too_new_max', (max(%s) FILTER (WHERE %s >= '2100-01-01'))::text",
                   c, c, c, c, c, c, c, c, c, c, c);
        break;
    }
    case PROF_CAT_TEXT:
        if (strcmp(col->base, "text") == 0 || strcmp(col->base, "varchar") == 0 ||
            strcmp(col->base, "bpchar") == 0) /* no per-row cast: char(n) would be trimmed */
            buf_printf(
                sql, ", 'min', (min(%s COLLATE \"C\"))::text, 'max', (max(%s COLLATE \"C\"))::text",
                c, c);
        else
            buf_printf(sql,
                       ", 'min', min(%s::text COLLATE \"C\"), 'max', max(%s::text COLLATE \"C\")",
                       c, c);
        break;
    case PROF_CAT_OTHER:
        break;
    }
    buf_putc(sql, ')');
}

/* jsonb_build_array takes at most 100 arguments: chain chunks with ||. */
static void json_array_of(Buf *sql, Buf *items, size_t n)
{
    if (n == 0) {
        buf_puts(sql, "'[]'::jsonb");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (i % 50 == 0)
            buf_puts(sql, i ? ") || jsonb_build_array(" : "jsonb_build_array(");
        else
            buf_puts(sql, ", ");
        buf_append(sql, items[i].data, items[i].len);
    }
    buf_putc(sql, ')');
}

static int pass_aggregate(PGconn *conn, const ProfCtx *ctx, ProfTable *t, json_t **out)
{
    Buf sql = BUF_INIT;
    Buf *items = xcalloc(t->def->ncols + 1, sizeof(Buf));
    SqlParams p = {0};
    int rc;

    for (size_t i = 0; i < t->def->ncols; i++) {
        char *c = col_ref(conn, &t->cols[i]);

        agg_column(&items[i], c, &t->cols[i]);
        free(c);
    }
    buf_puts(&sql, "SELECT jsonb_build_object('rows', count(*), 'cols', ");
    json_array_of(&sql, items, t->def->ncols);
    buf_puts(&sql, ")::text");
    profile_sql_from(conn, ctx, t->def->schema, t->def->name, &sql, &p);
    rc = profile_query_json(conn, buf_cstr(&sql), &p, out);
    for (size_t i = 0; i < t->def->ncols; i++)
        buf_release(&items[i]);
    free(items);
    buf_release(&sql);
    sqlp_release(&p);
    return rc;
}

/* ---- pass 2: one grouping query ----------------------------------------- */

typedef struct Pass2 {
    Buf sql;
    SqlParams p;
    int ph, date_re, num_re, lz_re, codes, names, mfrom, mto;
} Pass2;

static void content_text(Pass2 *q, const ProfCtx *ctx)
{
    Buf *s = &q->sql;
    const EncCheck *enc = enc_checks(ctx->encoding);
    const char *blank = "btrim(v, " WS ")";

    buf_printf(s,
               " || jsonb_build_object("
               "'empty', coalesce(sum(n) FILTER (WHERE is_text AND v = ''), 0)"
               ", 'blank', coalesce(sum(n) FILTER (WHERE is_text AND v <> '' AND %s = ''), 0)"
               ", 'placeholders', coalesce(sum(n) FILTER (WHERE is_text"
               " AND lower(%s) = ANY ($%d::text[])), 0)"
               ", 'padded', coalesce(sum(n) FILTER (WHERE is_text AND %s <> v AND %s <> ''), 0)"
               ", 'padded_example', min(v COLLATE \"C\") FILTER (WHERE is_text AND %s <> v"
               " AND %s <> '')"
               ", 'len_min', min(length(v)) FILTER (WHERE is_text)"
               ", 'len_max', max(length(v)) FILTER (WHERE is_text)"
               ", 'len_avg', sum(length(v)::float8 * n) FILTER (WHERE is_text)"
               " / nullif(sum(n) FILTER (WHERE is_text AND v IS NOT NULL), 0))",
               blank, blank, q->ph, blank, blank, blank, blank);
    /* "content": non-blank values that are not placeholders */
    buf_printf(s,
               " || jsonb_build_object("
               "'date_like', coalesce(sum(n) FILTER (WHERE is_text AND v ~ $%d), 0)"
               ", 'date_example', min(v COLLATE \"C\") FILTER (WHERE is_text AND v ~ $%d)"
               ", 'non_date_example', min(v COLLATE \"C\") FILTER (WHERE is_text AND v !~ $%d"
               " AND %s <> '' AND NOT lower(%s) = ANY ($%d::text[]))"
               ", 'number_like', coalesce(sum(n) FILTER (WHERE is_text AND v ~ $%d), 0)"
               ", 'number_example', min(v COLLATE \"C\") FILTER (WHERE is_text AND v ~ $%d)"
               ", 'non_number_example', min(v COLLATE \"C\") FILTER (WHERE is_text AND v !~ $%d"
               " AND %s <> '' AND NOT lower(%s) = ANY ($%d::text[]))"
               ", 'leading_zero', coalesce(sum(n) FILTER (WHERE is_text AND v ~ $%d), 0)"
               ", 'state_codes', coalesce(sum(n) FILTER (WHERE is_text"
               " AND upper(%s) = ANY ($%d::text[])), 0)"
               ", 'state_names', coalesce(sum(n) FILTER (WHERE is_text"
               " AND lower(%s) = ANY ($%d::text[])), 0)"
               ", 'state_code_example', min(v COLLATE \"C\") FILTER (WHERE is_text"
               " AND upper(%s) = ANY ($%d::text[]))"
               ", 'state_name_example', min(v COLLATE \"C\") FILTER (WHERE is_text"
               " AND lower(%s) = ANY ($%d::text[])))",
               q->date_re, q->date_re, q->date_re, blank, blank, q->ph, q->num_re, q->num_re,
               q->num_re, blank, blank, q->ph, q->lz_re, blank, q->codes, blank, q->names, blank,
               q->codes, blank, q->names);
    if (enc && enc->key) {
        buf_puts(s, " || jsonb_build_object(");
        for (size_t i = 0; enc[i].key; i++) {
            int re = sqlp_add(&q->p, enc[i].re);
            char *cond = enc[i].not_re ? xasprintf("is_text AND v ~ $%d AND v !~ $%d", re,
                                                   sqlp_add(&q->p, enc[i].not_re))
                                       : xasprintf("is_text AND v ~ $%d", re);

            buf_printf(s,
                       "%s'%s', coalesce(sum(n) FILTER (WHERE %s), 0)"
                       ", '%s_example', min(v COLLATE \"C\") FILTER (WHERE %s)",
                       i ? ", " : "", enc[i].key, cond, enc[i].key, cond);
            free(cond);
        }
        buf_putc(s, ')');
    }
}

/* Per grouped column: distinct values, duplicates, text checks, target checks. */
static void content_section(Pass2 *q, const ProfCtx *ctx)
{
    Buf *s = &q->sql;

    buf_puts(s, "'content', (SELECT jsonb_object_agg(k, o) FROM (SELECT k, jsonb_build_object("
                "'distinct', count(v)"
                ", 'dup_values', count(*) FILTER (WHERE v IS NOT NULL AND n > 1)"
                ", 'dup_rows', coalesce(sum(n - 1) FILTER (WHERE v IS NOT NULL AND n > 1), 0)"
                ", 'too_long', coalesce(sum(n) FILTER (WHERE maxlen > 0 AND length(v) > maxlen), 0)"
                ", 'too_long_example', min(v COLLATE \"C\") FILTER (WHERE maxlen > 0"
                " AND length(v) > maxlen)"
                ", 'outside', coalesce(sum(n) FILTER (WHERE allowed IS NOT NULL"
                " AND v <> ALL (allowed)), 0)"
                ", 'outside_example', min(v COLLATE \"C\") FILTER (WHERE allowed IS NOT NULL"
                " AND v <> ALL (allowed)))");
    content_text(q, ctx);
    buf_puts(s, " AS o FROM gp GROUP BY k) s)");
}

static void other_sections(Pass2 *q, const ProfCtx *ctx)
{
    Buf *s = &q->sql;
    const char *blank = "btrim(v, " WS ")";

    buf_printf(
        s,
        ", 'top', (SELECT jsonb_object_agg(k, a) FROM (SELECT k, jsonb_agg("
        "jsonb_build_array(v, n) ORDER BY n DESC, v COLLATE \"C\") AS a FROM (SELECT k, v, n,"
        " row_number() OVER (PARTITION BY k ORDER BY n DESC, v COLLATE \"C\") AS r"
        " FROM g WHERE k >= 0 AND k < %d AND v IS NOT NULL) s WHERE r <= %ld GROUP BY k) s2)",
        HIST_K, ctx->top_values);
    buf_printf(
        s,
        ", 'masks', (SELECT jsonb_object_agg(k, jsonb_build_object('count', nm, 'top', a))"
        " FROM (SELECT k, max(nm) AS nm, jsonb_agg(jsonb_build_array(m, c, ex)"
        " ORDER BY c DESC, m COLLATE \"C\") AS a FROM (SELECT k, m, c, ex, row_number() OVER"
        " (PARTITION BY k ORDER BY c DESC, m COLLATE \"C\") AS r, count(*) OVER (PARTITION BY k)"
        " AS nm FROM (SELECT k, translate(v, $%d, $%d) AS m, sum(n) AS c,"
        " min(v COLLATE \"C\") AS ex FROM gp WHERE is_text AND v IS NOT NULL AND %s <> ''"
        " AND NOT lower(%s) = ANY ($%d::text[]) GROUP BY k, 2) s0) s WHERE r <= %d"
        " GROUP BY k) s2)",
        q->mfrom, q->mto, blank, blank, q->ph, MASK_TOP);
    buf_puts(s,
             ", 'case', (SELECT jsonb_object_agg(k, o) FROM (SELECT k, jsonb_build_object("
             "'groups', count(*), 'rows', sum(rows), 'examples', jsonb_agg(vs ORDER BY rows DESC,"
             " lv COLLATE \"C\") FILTER (WHERE r <= 5)) AS o FROM (SELECT k, lv, vs, rows,"
             " row_number() OVER (PARTITION BY k ORDER BY rows DESC, lv COLLATE \"C\") AS r"
             " FROM (SELECT k, lower(v) AS lv, jsonb_agg(jsonb_build_array(v, n) ORDER BY n DESC,"
             " v COLLATE \"C\") AS vs, sum(n) AS rows FROM gp WHERE is_text AND v IS NOT NULL"
             " GROUP BY k, lower(v) HAVING count(*) > 1) s0) s GROUP BY k) s2)");
    buf_printf(
        s,
        ", 'ph', (SELECT jsonb_object_agg(k, a) FROM (SELECT k, jsonb_agg("
        "jsonb_build_array(v, n) ORDER BY n DESC, v COLLATE \"C\") AS a FROM gp WHERE is_text"
        " AND lower(%s) = ANY ($%d::text[]) GROUP BY k) s)",
        blank, q->ph);
    /* buckets counted per row (ungrouped columns) plus buckets of the grouped values */
    buf_printf(
        s,
        ", 'hist', (SELECT jsonb_object_agg(k, a) FROM (SELECT k, jsonb_object_agg(b, c) AS a"
        " FROM (SELECT k, v::int AS b, n AS c FROM g WHERE k >= %d AND v IS NOT NULL"
        " UNION ALL SELECT %d + k, least(width_bucket(x, hlo, hhi, %d), %d), sum(n)"
        " FROM (SELECT k, n, hlo, hhi, CASE hkind WHEN 'n' THEN v::float8"
        " WHEN 'd' THEN date_part('epoch', v::timestamp)"
        " WHEN 'z' THEN date_part('epoch', v::timestamptz) END AS x FROM gp"
        " WHERE hkind IS NOT NULL AND v IS NOT NULL) s0"
        " WHERE x > '-Infinity' AND x < 'Infinity' GROUP BY 1, 2) u GROUP BY k) s)",
        HIST_K, HIST_K, HIST_BUCKETS, HIST_BUCKETS);
    buf_printf(s,
               ", 'duprows', (SELECT jsonb_build_object('groups', count(*), 'extra',"
               " coalesce(sum(n - 1), 0), 'examples', coalesce(jsonb_agg(jsonb_build_array(v, n)"
               " ORDER BY n DESC, v COLLATE \"C\") FILTER (WHERE r <= 3), '[]')) FROM (SELECT v, n,"
               " row_number() OVER (ORDER BY n DESC, v COLLATE \"C\") AS r FROM g WHERE k = %d"
               " AND n > 1) s)",
               ROW_K);
}

/* The bucket of an ungrouped column's value, computed per row. */
static void hist_expr(Buf *s, SqlParams *p, const char *c, const ProfCol *col)
{
    char lo[40], hi[40];
    char *x, *finite;
    int plo, phi;

    snprintf(lo, sizeof(lo), "%.17g", col->lo);
    snprintf(hi, sizeof(hi), "%.17g", col->hi);
    plo = sqlp_add(p, lo);
    phi = sqlp_add(p, hi);
    if (integer_base(col)) { /* no NaN or infinity to step around */
        buf_printf(s, "least(width_bucket(%s::float8, $%d::float8, $%d::float8, %d), %d)::text", c,
                   plo, phi, HIST_BUCKETS, HIST_BUCKETS);
        return;
    }
    if (col->cat == PROF_CAT_NUMBER) {
        x = xasprintf("%s::float8", c);
        finite = xasprintf("%s > '-Infinity' AND %s < 'Infinity'", x, x);
    } else {
        x = xasprintf("date_part('epoch', %s%s)", c,
                      strcmp(col->base, "date") == 0 ? "::timestamp" : "");
        finite = xasprintf("isfinite(%s)", c);
    }
    buf_printf(s,
               "CASE WHEN %s THEN least(width_bucket(%s, $%d::float8, $%d::float8, %d), %d)::text"
               " END",
               finite, x, plo, phi, HIST_BUCKETS, HIST_BUCKETS);
    free(x);
    free(finite);
}

/* 'n' number, 'd' date or timestamp, 'z' timestamptz: how a grouped value turns back into an axis.
 */
static char hist_kind(const ProfCol *col)
{
    if (col->cat == PROF_CAT_NUMBER)
        return 'n';
    return strcmp(col->base, "timestamptz") == 0 ? 'z' : 'd';
}

/* One row of p: what the grouping pass needs to know about grouped column i. */
static void p_row(Buf *pv, SqlParams *p, size_t i, const ProfCol *col)
{
    int allowed = -1;

    if (col->t_allowed) {
        size_t n = json_array_size(col->t_allowed);
        const char **v = xcalloc(n + 1, sizeof(char *));
        char *lit;

        for (size_t j = 0; j < n; j++)
            v[j] = json_string_value(json_array_get(col->t_allowed, j));
        lit = profile_sql_text_array(v, n);
        allowed = sqlp_add(p, lit);
        free(lit);
        free(v);
    }
    buf_printf(pv, "%s(%zu, %s, %d, ", pv->len ? ", " : "", i,
               col->cat == PROF_CAT_TEXT ? "true" : "false", col->t_maxlen);
    if (allowed > 0)
        buf_printf(pv, "$%d::text[], ", allowed);
    else
        buf_puts(pv, "NULL::text[], ");
    if (col->hist) {
        char lo[40], hi[40];

        snprintf(lo, sizeof(lo), "%.17g", col->lo);
        snprintf(hi, sizeof(hi), "%.17g", col->hi);
        buf_printf(pv, "'%c', $%d::float8, $%d::float8)", hist_kind(col), sqlp_add(p, lo),
                   sqlp_add(p, hi));
    } else {
        buf_puts(pv, "NULL, NULL::float8, NULL::float8)");
    }
}

/*
 * Returns 1 when there is nothing to group (no query was built). Each row
 * becomes (k, v) pairs through two unnest() calls in the select list (a
 * ProjectSet, cheaper per row than LATERAL VALUES): the text of every
 * grouped column, the histogram bucket of ungrouped numeric/date columns,
 * and the whole row when duplicate rows are possible.
 */
static int build_pass2(PGconn *conn, const ProfCtx *ctx, const ProfTable *t, Pass2 *q)
{
    Buf ks = BUF_INIT, vs = BUF_INIT, pv = BUF_INIT;
    size_t nv = 0;

    for (size_t i = 0; i < t->def->ncols; i++) {
        const ProfCol *col = &t->cols[i];
        char *c = col_ref(conn, col);

        if (grouped(col)) {
            buf_printf(&ks, "%s%zu", nv ? ", " : "", i);
            buf_printf(&vs, "%s%s::text", nv++ ? ", " : "", c);
            p_row(&pv, &q->p, i, col);
        } else if (col->hist) {
            buf_printf(&ks, "%s%d", nv ? ", " : "", HIST_K + (int)i);
            if (nv++)
                buf_puts(&vs, ", ");
            hist_expr(&vs, &q->p, c, col);
        }
        free(c);
    }
    if (!t->rows_unique && t->def->ncols > 0) {
        buf_printf(&ks, "%s%d", nv ? ", " : "", ROW_K);
        buf_printf(&vs, "%st::text", nv++ ? ", " : "");
    }
    if (nv == 0) {
        buf_release(&ks);
        buf_release(&vs);
        buf_release(&pv);
        return 1;
    }
    if (pv.len == 0) /* keeps gp well-formed: a key no group has */
        buf_puts(&pv, "(-2, false, 0, NULL::text[], NULL, NULL::float8, NULL::float8)");

    buf_printf(&q->sql,
               "WITH g AS MATERIALIZED (SELECT k, v, count(*) AS n FROM (SELECT"
               " unnest(ARRAY[%s]) AS k, unnest(ARRAY[%s]::text[]) AS v",
               buf_cstr(&ks), buf_cstr(&vs));
    profile_sql_from(conn, ctx, t->def->schema, t->def->name, &q->sql, &q->p);
    buf_printf(&q->sql,
               ") x GROUP BY k, v), p(k, is_text, maxlen, allowed, hkind, hlo, hhi) AS (VALUES %s)"
               ", gp AS (SELECT g.k, g.v, g.n, p.is_text, p.maxlen, p.allowed, p.hkind, p.hlo,"
               " p.hhi FROM g JOIN p ON p.k = g.k)"
               " SELECT jsonb_build_object(",
               buf_cstr(&pv));
    q->ph = sqlp_add(&q->p, ctx->placeholders);
    q->date_re = sqlp_add(&q->p, DATE_RE);
    q->num_re = sqlp_add(&q->p, NUM_RE);
    q->lz_re = sqlp_add(&q->p, LEADING_ZERO_RE);
    q->codes = sqlp_add(&q->p, ctx->state_codes);
    q->names = sqlp_add(&q->p, ctx->state_names);
    q->mfrom = sqlp_add(&q->p, PROFILE_MASK_FROM);
    q->mto = sqlp_add(&q->p, PROFILE_MASK_TO);
    content_section(q, ctx);
    other_sections(q, ctx);
    buf_puts(&q->sql, ")::text");
    buf_release(&ks);
    buf_release(&vs);
    buf_release(&pv);
    return 0;
}

static int pass_group(PGconn *conn, const ProfCtx *ctx, ProfTable *t, json_t **out)
{
    Pass2 q = {BUF_INIT, {0}, 0, 0, 0, 0, 0, 0, 0, 0};
    int rc = build_pass2(conn, ctx, t, &q);

    *out = NULL;
    if (rc == 0)
        rc = profile_query_json(conn, buf_cstr(&q.sql), &q.p, out);
    else
        rc = 0;
    buf_release(&q.sql);
    sqlp_release(&q.p);
    return rc;
}

/* ---- the column and table reports --------------------------------------- */

static json_t *by_k(const json_t *section, int k)
{
    char key[16];

    snprintf(key, sizeof(key), "%d", k);
    return json_object_get(section, key);
}

static double pct(long long part, long long whole)
{
    return whole > 0 ? round(10000.0 * (double)part / (double)whole) / 100.0 : 0.0;
}

static void set_count(json_t *o, const char *key, long long n, long long whole)
{
    char pk[64];

    snprintf(pk, sizeof(pk), "%s_pct", key);
    json_object_set_new(o, key, json_integer(n));
    json_object_set_new(o, pk, json_real(pct(n, whole)));
}

static void copy_keys(json_t *dst, const json_t *src, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(src, keys[i]);

        if (v)
            json_object_set(dst, keys[i], v);
    }
}

static const char *cat_name(ProfCat c)
{
    switch (c) {
    case PROF_CAT_TEXT:
        return "text";
    case PROF_CAT_NUMBER:
        return "number";
    case PROF_CAT_TEMPORAL:
        return "temporal";
    case PROF_CAT_OTHER:
        break;
    }
    return "other";
}

static void fmt_edge(const ProfCol *col, double v, double span, char *buf, size_t n)
{
    if (col->cat == PROF_CAT_TEMPORAL) {
        time_t tt = (time_t)floor(v);
        struct tm tm;

        gmtime_r(&tt, &tm);
        strftime(buf, n, span >= 2 * 86400.0 ? "%Y-%m-%d" : "%Y-%m-%d %H:%M", &tm);
    } else {
        snprintf(buf, n, "%.6g", v);
    }
}

static json_t *histogram(const ProfCol *col, const json_t *h)
{
    json_t *buckets = json_array();
    double w = (col->hi - col->lo) / HIST_BUCKETS;

    for (int b = 1; b <= HIST_BUCKETS; b++) {
        char key[8], lo[40], hi[40];
        json_t *n;

        snprintf(key, sizeof(key), "%d", b);
        n = json_object_get(h, key);
        fmt_edge(col, col->lo + (b - 1) * w, col->hi - col->lo, lo, sizeof(lo));
        fmt_edge(col, b == HIST_BUCKETS ? col->hi : col->lo + b * w, col->hi - col->lo, hi,
                 sizeof(hi));
        json_array_append_new(buckets, json_pack("{s:s, s:s, s:I}", "lo", lo, "hi", hi, "count",
                                                 (json_int_t)(n ? json_integer_value(n) : 0)));
    }
    return json_pack("{s:s, s:o}", "kind", col->cat == PROF_CAT_TEMPORAL ? "date" : "number",
                     "buckets", buckets);
}

static json_t *pairs_to_objects(const json_t *pairs, const char *k1, const char *k2)
{
    json_t *out = json_array();
    size_t i;
    json_t *pr;

    json_array_foreach(pairs, i, pr)
    {
        json_array_append_new(
            out, json_pack("{s:O, s:O}", k1, json_array_get(pr, 0), k2, json_array_get(pr, 1)));
    }
    return out;
}

static json_t *text_stats(const json_t *ct, const json_t *g2, int k, long long rows)
{
    static const char *const enc_keys[] = {
        "mojibake",  "mojibake_example",  "c1_controls",  "c1_controls_example",
        "non_ascii", "non_ascii_example", "invalid_utf8", "invalid_utf8_example",
        NULL};
    static const char *const keep[] = {"padded_example", "date_example",       "non_date_example",
                                       "number_example", "non_number_example", NULL};
    json_t *o = json_object();
    json_t *enc = json_object();
    json_t *masks = by_k(json_object_get(g2, "masks"), k);
    json_t *ph = by_k(json_object_get(g2, "ph"), k);
    json_t *cv = by_k(json_object_get(g2, "case"), k);
    json_t *mtop = json_array();
    size_t i;
    json_t *m;

    set_count(o, "empty", profile_jint(ct, "empty"), rows);
    set_count(o, "blank", profile_jint(ct, "blank"), rows);
    set_count(o, "placeholders", profile_jint(ct, "placeholders"), rows);
    json_object_set_new(o, "placeholder_values",
                        ph ? pairs_to_objects(ph, "value", "count") : json_array());
    json_object_set_new(o, "length",
                        json_pack("{s:O?, s:O?, s:O?}", "min", json_object_get(ct, "len_min"),
                                  "max", json_object_get(ct, "len_max"), "avg",
                                  json_object_get(ct, "len_avg")));
    json_object_set_new(o, "padded", json_integer(profile_jint(ct, "padded")));
    json_object_set_new(o, "date_like", json_integer(profile_jint(ct, "date_like")));
    json_object_set_new(o, "number_like", json_integer(profile_jint(ct, "number_like")));
    json_object_set_new(o, "leading_zero", json_integer(profile_jint(ct, "leading_zero")));
    copy_keys(o, ct, keep);
    json_object_set_new(o, "value_set",
                        json_pack("{s:s, s:I, s:I, s:O?, s:O?}", "set",
                                  profile_valueset_states()->label, "codes",
                                  (json_int_t)profile_jint(ct, "state_codes"), "names",
                                  (json_int_t)profile_jint(ct, "state_names"), "code_example",
                                  json_object_get(ct, "state_code_example"), "name_example",
                                  json_object_get(ct, "state_name_example")));
    copy_keys(enc, ct, enc_keys);
    json_object_set_new(o, "encoding", enc);
    json_array_foreach(json_object_get(masks, "top"), i, m)
    {
        json_array_append_new(mtop,
                              json_pack("{s:O, s:O, s:O}", "mask", json_array_get(m, 0), "count",
                                        json_array_get(m, 1), "example", json_array_get(m, 2)));
    }
    json_object_set_new(o, "mask_count", json_integer(profile_jint(masks, "count")));
    json_object_set_new(o, "masks", mtop);
    if (cv) {
        json_t *ex = json_array();
        json_t *grp;

        json_array_foreach(json_object_get(cv, "examples"), i, grp)
        {
            json_array_append_new(ex, pairs_to_objects(grp, "value", "count"));
        }
        json_object_set_new(o, "case_variants",
                            json_pack("{s:I, s:I, s:o}", "groups",
                                      (json_int_t)profile_jint(cv, "groups"), "rows",
                                      (json_int_t)profile_jint(cv, "rows"), "examples", ex));
    } else {
        json_object_set_new(o, "case_variants",
                            json_pack("{s:i, s:i, s:[]}", "groups", 0, "rows", 0, "examples"));
    }
    return o;
}

static json_t *column_report(const ProfTable *t, size_t i, const json_t *a1, const json_t *g2,
                             long long rows)
{
    const ProfCol *col = &t->cols[i];
    json_t *agg = json_array_get(json_object_get(a1, "cols"), i);
    json_t *ct = by_k(json_object_get(g2, "content"), (int)i);
    json_t *o = json_object();
    long long nonnull = profile_jint(agg, "nonnull");
    static const char *const minmax[] = {"min", "max", "avg", NULL};

    json_object_set_new(o, "name", json_string(col->name));
    json_object_set_new(o, "type", json_string(col->type));
    json_object_set_new(o, "category", json_string(cat_name(col->cat)));
    json_object_set_new(o, "not_null", json_boolean(col->not_null));
    json_object_set_new(o, "unique", json_boolean(col->unique));
    json_object_set_new(o, "in_foreign_key", json_boolean(col->in_fk));
    json_object_set_new(o, "rows", json_integer(rows));
    set_count(o, "nulls", rows - nonnull, rows);
    copy_keys(o, agg, minmax);
    if (!grouped(col)) {
        json_object_set_new(o, "distinct", json_integer(nonnull));
        json_object_set_new(o, "dup_values", json_integer(0));
        json_object_set_new(o, "dup_rows", json_integer(0));
    } else {
        json_object_set_new(o, "distinct", json_integer(profile_jint(ct, "distinct")));
        json_object_set_new(o, "dup_values", json_integer(profile_jint(ct, "dup_values")));
        json_object_set_new(o, "dup_rows", json_integer(profile_jint(ct, "dup_rows")));
        json_object_set_new(
            o, "top_values",
            pairs_to_objects(by_k(json_object_get(g2, "top"), (int)i), "value", "count"));
    }
    if (col->cat == PROF_CAT_TEXT)
        json_object_set_new(o, "text", text_stats(ct, g2, (int)i, rows));
    if (col->hist)
        json_object_set_new(o, "histogram",
                            histogram(col, by_k(json_object_get(g2, "hist"), HIST_K + (int)i)));
    if (col->cat == PROF_CAT_TEMPORAL) {
        json_object_set_new(o, "future",
                            json_pack("{s:I, s:O?}", "count",
                                      (json_int_t)profile_jint(agg, "future"), "max",
                                      json_object_get(agg, "future_max")));
        json_object_set_new(o, "implausible",
                            json_pack("{s:I, s:I, s:O?, s:O?}", "too_old",
                                      (json_int_t)profile_jint(agg, "too_old"), "too_new",
                                      (json_int_t)profile_jint(agg, "too_new"), "min",
                                      json_object_get(agg, "too_old_min"), "max",
                                      json_object_get(agg, "too_new_max")));
    }
    if (col->t_found) {
        json_t *tg = json_pack("{s:s, s:b, s:i}", "type", col->t_type, "not_null", col->t_not_null,
                               "max_length", col->t_maxlen);

        if (col->t_allowed)
            json_object_set(tg, "allowed", col->t_allowed);
        json_object_set_new(tg, "too_long", json_integer(profile_jint(ct, "too_long")));
        json_object_set(tg, "too_long_example",
                        json_object_get(ct, "too_long_example")
                            ? json_object_get(ct, "too_long_example")
                            : json_null());
        json_object_set_new(tg, "outside", json_integer(profile_jint(ct, "outside")));
        json_object_set(tg, "outside_example",
                        json_object_get(ct, "outside_example")
                            ? json_object_get(ct, "outside_example")
                            : json_null());
        json_object_set_new(o, "target", tg);
    }
    return o;
}

static const char *replident_name(char r)
{
    switch (r) {
    case 'd':
        return "default";
    case 'f':
        return "full";
    case 'i':
        return "index";
    case 'n':
        return "nothing";
    }
    return "unknown";
}

static int exact_count(PGconn *conn, const TableDef *def, long long *out)
{
    char *q = pgconn_qualified(conn, def->schema, def->name);
    char *sql = xasprintf("SELECT count(*) FROM %s", q);
    PGresult *res;
    int rc = pgconn_query(conn, sql, 0, NULL, &res);

    free(q);
    free(sql);
    if (rc < 0)
        return rc;
    *out = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* Bounds for the histograms, from pass 1. */
static void plan_histograms(ProfTable *t, const json_t *a1)
{
    for (size_t i = 0; i < t->def->ncols; i++) {
        ProfCol *col = &t->cols[i];
        json_t *agg = json_array_get(json_object_get(a1, "cols"), i);
        json_t *lo = json_object_get(agg, "lo"), *hi = json_object_get(agg, "hi");

        col->hist = false;
        if ((col->cat != PROF_CAT_NUMBER && col->cat != PROF_CAT_TEMPORAL) || !json_is_number(lo) ||
            !json_is_number(hi))
            continue;
        col->lo = json_number_value(lo);
        col->hi = json_number_value(hi);
        col->hist = col->hi > col->lo && isfinite(col->lo) && isfinite(col->hi);
    }
}

static int scan(PGconn *conn, const ProfCtx *ctx, ProfTable *t)
{
    json_t *a1 = NULL, *g2 = NULL, *cols, *dr;
    long long rows, exact;
    int rc = pass_aggregate(conn, ctx, t, &a1);

    if (rc < 0)
        return rc;
    rows = profile_jint(a1, "rows");
    exact = rows;
    if (ctx->sample_pct > 0 && (rc = exact_count(conn, t->def, &exact)) < 0)
        goto out;
    plan_histograms(t, a1);
    if ((rc = pass_group(conn, ctx, t, &g2)) < 0)
        goto out;
    json_object_set_new(t->out, "row_count", json_integer(exact));
    json_object_set_new(t->out, "profiled_rows", json_integer(rows));
    cols = json_array();
    for (size_t i = 0; i < t->def->ncols; i++)
        json_array_append_new(cols, column_report(t, i, a1, g2, rows));
    json_object_set_new(t->out, "columns", cols);
    dr = json_object_get(g2, "duprows");
    if (!t->rows_unique && dr) {
        json_t *ex = pairs_to_objects(json_object_get(dr, "examples"), "row", "count");

        json_object_set_new(t->out, "duplicate_rows",
                            json_pack("{s:I, s:I, s:o}", "groups",
                                      (json_int_t)profile_jint(dr, "groups"), "extra_rows",
                                      (json_int_t)profile_jint(dr, "extra"), "examples", ex));
    }
out:
    json_decref(a1);
    json_decref(g2);
    return rc;
}

int profile_scan_table(PGconn *conn, const ProfCtx *ctx, ProfTable *t)
{
    int rc;

    t->out = json_pack("{s:s, s:s, s:s, s:I, s:I, s:O, s:s, s:b, s:b}", "schema", t->def->schema,
                       "name", t->def->name, "display", t->def->display, "size_bytes",
                       (json_int_t)t->size, "total_size_bytes", (json_int_t)t->total_size,
                       "primary_key", t->pk, "replica_identity", replident_name(t->def->replident),
                       "rows_unique", t->rows_unique, "sampled", ctx->sample_pct > 0);
    json_object_set_new(t->out, "encoding", json_string(ctx->encoding));
    if (ctx->has_target)
        json_object_set_new(t->out, "target_found", json_boolean(t->t_found));
    rc = pgconn_exec(conn, "SAVEPOINT tidemark_profile");
    if (rc == 0)
        rc = scan(conn, ctx, t);
    if (rc < 0) {
        t->error = xstrdup(tm_error());
        json_object_set_new(t->out, "error", json_string(t->error));
        if (pgconn_exec(conn, "ROLLBACK TO SAVEPOINT tidemark_profile") < 0)
            return tm_fail(rc, "%s", t->error);
        return rc;
    }
    return pgconn_exec(conn, "RELEASE SAVEPOINT tidemark_profile");
}
