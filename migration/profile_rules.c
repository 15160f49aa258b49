/*
 * The anomaly rules: each reads the statistics of the report (nothing else)
 * and, when it fires, appends a finding with its severity, a code a script
 * can match, the table and column, a sentence, the count it is about and
 * example values as evidence. Thresholds live here, named, so that a clean
 * dataset stays quiet: a rule fires on what a migration would trip over,
 * not on ordinary variety.
 */
#include "core/buf.h"
#include "core/xmalloc.h"
#include "migration/profile_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FORMAT_MIN_SHARE   0.05 /* a format counts as competing from 5% of the values */
#define MOSTLY             0.80 /* "mostly dates / numbers" */
#define VALUESET_MIN_SHARE 0.50 /* set values must be at least half the column */
#define KEY_MIN_DISTINCT   0.50 /* a key-named column with fewer distinct values is a category */
#define UNIQUEISH          0.95 /* distinct / non-null from which any column counts as a key */
#define UNIQUEISH_MIN_ROWS 20
#define CONTENT_MIN        5 /* below this many values, shares say nothing */
#define MASK_FAMILIES_MAX  16

static json_t *finding(json_t *findings, const char *sev, const char *code, const json_t *table,
                       const char *column, long long count, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static json_t *finding(json_t *findings, const char *sev, const char *code, const json_t *table,
                       const char *column, long long count, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *f;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    f = json_pack("{s:s, s:s, s:s, s:I, s:s, s:[]}", "severity", sev, "code", code, "table",
                  table ? profile_jstr(table, "display") : "", "count", (json_int_t)count,
                  "message", msg, "examples");
    json_object_set_new(f, "column", column ? json_string(column) : json_null());
    json_array_append_new(findings, f);
    return f;
}

static void example(json_t *f, json_t *v)
{
    if (v && !json_is_null(v))
        json_array_append(json_object_get(f, "examples"), v);
}

static double share(long long part, long long whole)
{
    return whole > 0 ? (double)part / (double)whole : 0.0;
}

/* 'value' for messages, shortened. */
static void quoted(const json_t *v, char *buf, size_t n)
{
    char tmp[96];

    profile_fmt_value(v, tmp, sizeof(tmp));
    snprintf(buf, n, "'%s'", tmp);
}

typedef struct Family {
    char *name;
    long long count;
    json_t *example;
} Family;

static void rule_formats(json_t *out, const json_t *t, const json_t *c, const json_t *tx,
                         long long content)
{
    Family fam[MASK_FAMILIES_MAX];
    size_t nf = 0, nbig = 0, i;
    json_t *m, *f, *ev;
    long long top = 0, rest = 0;
    Buf msg = BUF_INIT;

    if (content < CONTENT_MIN)
        return;
    json_array_foreach(json_object_get(tx, "masks"), i, m)
    {
        char *name = profile_format_family(profile_jstr(m, "mask"));
        size_t j;

        if (!name)
            continue;
        for (j = 0; j < nf && strcmp(fam[j].name, name) != 0; j++)
            ;
        if (j == nf && nf < MASK_FAMILIES_MAX) {
            fam[nf].name = name;
            fam[nf].count = 0;
            fam[nf].example = json_object_get(m, "example");
            nf++;
        } else {
            free(name);
        }
        if (j < nf)
            fam[j].count += profile_jint(m, "count");
    }
    /* biggest first (insertion order is by mask count, families may merge) */
    for (size_t a = 0; a < nf; a++)
        for (size_t b = a + 1; b < nf; b++)
            if (fam[b].count > fam[a].count) {
                Family tmp = fam[a];

                fam[a] = fam[b];
                fam[b] = tmp;
            }
    for (i = 0; i < nf; i++)
        if (share(fam[i].count, content) >= FORMAT_MIN_SHARE && fam[i].count >= 2)
            nbig++;
    if (nbig >= 2) {
        ev = json_array();
        for (i = 0; i < nbig; i++) {
            buf_printf(&msg, "%s%s (%lld)", i ? ", " : "", fam[i].name, fam[i].count);
            json_array_append_new(ev,
                                  json_pack("{s:s, s:I, s:O?}", "format", fam[i].name, "count",
                                            (json_int_t)fam[i].count, "example", fam[i].example));
            if (i == 0)
                top = fam[i].count;
            else
                rest += fam[i].count;
        }
        f = finding(out, "warning", "competing_formats", t, profile_jstr(c, "name"), rest,
                    "values come in %zu competing formats: %s", nbig, buf_cstr(&msg));
        for (i = 0; i < nbig; i++)
            example(f, fam[i].example);
        json_object_set_new(f, "evidence",
                            json_pack("{s:o, s:I}", "formats", ev, "dominant", (json_int_t)top));
    }
    for (i = 0; i < nf; i++)
        free(fam[i].name);
    buf_release(&msg);
}

static void rule_text(json_t *out, const json_t *t, const json_t *c, const json_t *tx,
                      const char *enc)
{
    const char *col = profile_jstr(c, "name");
    long long rows = profile_jint(c, "rows");
    long long nonnull = rows - profile_jint(c, "nulls");
    long long content = nonnull - profile_jint(tx, "empty") - profile_jint(tx, "blank") -
                        profile_jint(tx, "placeholders");
    long long n;
    json_t *f, *v, *vs, *e;
    size_t i;
    char q1[128], q2[128];
    bool dates = false;

    if ((n = profile_jint(tx, "placeholders")) > 0) {
        Buf list = BUF_INIT;

        json_array_foreach(json_object_get(tx, "placeholder_values"), i, v)
        {
            quoted(json_object_get(v, "value"), q1, sizeof(q1));
            buf_printf(&list, "%s%s x%lld", i ? ", " : "", q1, profile_jint(v, "count"));
        }
        f = finding(out, "warning", "placeholder_values", t, col, n,
                    "%lld values (%.1f%%) are placeholders for a missing value: %s", n,
                    100.0 * share(n, rows), buf_cstr(&list));
        json_array_foreach(json_object_get(tx, "placeholder_values"), i, v)
        {
            example(f, json_object_get(v, "value"));
        }
        buf_release(&list);
    }
    if ((n = profile_jint(tx, "padded")) > 0) {
        quoted(json_object_get(tx, "padded_example"), q1, sizeof(q1));
        f = finding(out, "warning", "whitespace", t, col, n,
                    "%lld values have leading or trailing whitespace, e.g. %s", n, q1);
        example(f, json_object_get(tx, "padded_example"));
    }
    vs = json_object_get(tx, "case_variants");
    if ((n = profile_jint(vs, "groups")) > 0) {
        Buf list = BUF_INIT;
        json_t *grp = json_array_get(json_object_get(vs, "examples"), 0);

        json_array_foreach(grp, i, v)
        {
            quoted(json_object_get(v, "value"), q1, sizeof(q1));
            buf_printf(&list, "%s%s", i ? " / " : "", q1);
        }
        f = finding(out, "warning", "case_variants", t, col, profile_jint(vs, "rows"),
                    "%lld values in %lld groups differ only by letter case, e.g. %s",
                    profile_jint(vs, "rows"), n, buf_cstr(&list));
        json_array_foreach(grp, i, v)
        {
            example(f, json_object_get(v, "value"));
        }
        json_object_set_new(f, "evidence", json_pack("{s:I}", "groups", (json_int_t)n));
        buf_release(&list);
    }
    rule_formats(out, t, c, tx, content);
    if (content >= CONTENT_MIN && share(n = profile_jint(tx, "date_like"), content) >= MOSTLY) {
        dates = true;
        quoted(json_object_get(tx, "date_example"), q1, sizeof(q1));
        f = finding(out, "warning", "dates_in_text", t, col, n,
                    "%lld of %lld values (%.1f%%) are dates stored as text, e.g. %s", n, content,
                    100.0 * share(n, content), q1);
        example(f, json_object_get(tx, "date_example"));
        example(f, json_object_get(tx, "non_date_example"));
    }
    if (!dates && content >= CONTENT_MIN && profile_jint(tx, "leading_zero") == 0 &&
        share(n = profile_jint(tx, "number_like"), content) >= MOSTLY) {
        quoted(json_object_get(tx, "number_example"), q1, sizeof(q1));
        f = finding(out, "warning", "numbers_in_text", t, col, n,
                    "%lld of %lld values (%.1f%%) are numbers stored as text, e.g. %s", n, content,
                    100.0 * share(n, content), q1);
        example(f, json_object_get(tx, "number_example"));
        example(f, json_object_get(tx, "non_number_example"));
    }
    vs = json_object_get(tx, "value_set");
    {
        long long codes = profile_jint(vs, "codes"), names = profile_jint(vs, "names");

        if (codes > 0 && names > 0 && share(codes + names, content) >= VALUESET_MIN_SHARE) {
            quoted(json_object_get(vs, "name_example"), q1, sizeof(q1));
            quoted(json_object_get(vs, "code_example"), q2, sizeof(q2));
            f = finding(out, "warning", "abbreviation_mix", t, col, codes < names ? codes : names,
                        "mixes %s written out (%lld, e.g. %s) and abbreviated (%lld, e.g. %s)",
                        profile_jstr(vs, "set"), names, q1, codes, q2);
            example(f, json_object_get(vs, "name_example"));
            example(f, json_object_get(vs, "code_example"));
            json_object_set_new(
                f, "evidence",
                json_pack("{s:I, s:I}", "names", (json_int_t)names, "codes", (json_int_t)codes));
        }
    }
    e = json_object_get(tx, "encoding");
    if ((n = profile_jint(e, "invalid_utf8")) > 0) {
        quoted(json_object_get(e, "invalid_utf8_example"), q1, sizeof(q1));
        f = finding(out, "error", "invalid_encoding", t, col, n,
                    "%lld values hold bytes that are not valid UTF-8 (the %s database accepts "
                    "any bytes; a UTF8 target will not), e.g. %s",
                    n, enc, q1);
        example(f, json_object_get(e, "invalid_utf8_example"));
    }
    if ((n = profile_jint(e, "non_ascii") - profile_jint(e, "invalid_utf8")) > 0) {
        f = finding(out, "info", "non_ascii_bytes", t, col, n,
                    "%lld values hold non-ASCII bytes that are valid UTF-8 (declare the source "
                    "encoding as UTF8 when converting)",
                    n);
        example(f, json_object_get(e, "non_ascii_example"));
    }
    if ((n = profile_jint(e, "mojibake")) > 0) {
        quoted(json_object_get(e, "mojibake_example"), q1, sizeof(q1));
        f = finding(out, "warning", "mojibake", t, col, n,
                    "%lld values look double-encoded (UTF-8 read as Latin-1), e.g. %s", n, q1);
        example(f, json_object_get(e, "mojibake_example"));
    }
    if ((n = profile_jint(e, "c1_controls")) > 0) {
        quoted(json_object_get(e, "c1_controls_example"), q1, sizeof(q1));
        f = finding(out, "warning", "c1_control_chars", t, col, n,
                    "%lld values contain C1 control characters (U+0080-U+009F), usually "
                    "Windows-1252 text stored as Latin-1, e.g. %s",
                    n, q1);
        example(f, json_object_get(e, "c1_controls_example"));
    }
}

static void rule_dates(json_t *out, const json_t *t, const json_t *c)
{
    const char *col = profile_jstr(c, "name");
    const json_t *fu = json_object_get(c, "future");
    const json_t *im = json_object_get(c, "implausible");
    long long n;
    json_t *f;

    if ((n = profile_jint(fu, "count")) > 0 && !profile_name_future_ok(col)) {
        f = finding(out, "warning", "future_dates", t, col, n,
                    "%lld values lie in the future (latest %s)", n, profile_jstr(fu, "max"));
        example(f, json_object_get(fu, "max"));
    }
    if ((n = profile_jint(im, "too_old") + profile_jint(im, "too_new")) > 0) {
        f = finding(out, "warning", "implausible_dates", t, col, n,
                    "%lld values are before 1900 (%lld) or from 2100 on (%lld), e.g. %s%s%s", n,
                    profile_jint(im, "too_old"), profile_jint(im, "too_new"),
                    profile_jstr(im, "min"),
                    profile_jint(im, "too_old") && profile_jint(im, "too_new") ? ", " : "",
                    profile_jstr(im, "max"));
        example(f, json_object_get(im, "min"));
        example(f, json_object_get(im, "max"));
    }
}

static bool integer_type(const char *type)
{
    return strcmp(type, "integer") == 0 || strcmp(type, "bigint") == 0 ||
           strcmp(type, "smallint") == 0;
}

static void rule_duplicates(json_t *out, const json_t *t, const json_t *c, const json_t *names)
{
    const char *col = profile_jstr(c, "name");
    const char *cat = profile_jstr(c, "category");
    long long nonnull = profile_jint(c, "rows") - profile_jint(c, "nulls");
    long long distinct = profile_jint(c, "distinct");
    long long dups = profile_jint(c, "dup_values");
    bool named, uniqueish;
    json_t *f, *v;
    size_t i;

    if (json_is_true(json_object_get(c, "unique")) || dups == 0 || nonnull == 0)
        return;
    named = profile_name_key_like(col, profile_jstr(t, "name"), names) &&
            !json_is_true(json_object_get(c, "in_foreign_key")) &&
            share(distinct, nonnull) >= KEY_MIN_DISTINCT;
    uniqueish = nonnull >= UNIQUEISH_MIN_ROWS && share(distinct, nonnull) >= UNIQUEISH &&
                (strcmp(cat, "text") == 0 || strcmp(cat, "other") == 0 ||
                 integer_type(profile_jstr(c, "type")));
    if (!named && !uniqueish)
        return;
    f = finding(out, "warning", "duplicate_key_values", t, col, profile_jint(c, "dup_rows"),
                "%lld values occur more than once (%lld extra rows) in a column that %s", dups,
                profile_jint(c, "dup_rows"),
                named ? "looks like a key by its name" : "is otherwise almost unique");
    json_array_foreach(json_object_get(c, "top_values"), i, v)
    {
        if (profile_jint(v, "count") > 1 && json_array_size(json_object_get(f, "examples")) < 5)
            example(f, json_object_get(v, "value"));
    }
    json_object_set_new(f, "evidence",
                        json_pack("{s:I, s:I, s:I}", "duplicate_values", (json_int_t)dups,
                                  "distinct", (json_int_t)distinct, "non_null",
                                  (json_int_t)nonnull));
}

static void rule_target(json_t *out, const json_t *t, const json_t *c)
{
    const char *col = profile_jstr(c, "name");
    const json_t *tg = json_object_get(c, "target");
    long long rows = profile_jint(c, "rows"), n;
    char q1[128];
    json_t *f;

    if (!json_is_true(json_object_get(t, "target_found")))
        return;
    if (!tg) {
        finding(out, "warning", "target_column_missing", t, col, 0,
                "the target table has no column %s", col);
        return;
    }
    if ((n = profile_jint(c, "nulls")) > 0 && json_is_true(json_object_get(tg, "not_null")))
        finding(out, "error", "null_in_not_null_target", t, col, n,
                "%lld rows (%.1f%%) are NULL but the target column is NOT NULL", n,
                100.0 * share(n, rows));
    if ((n = profile_jint(tg, "too_long")) > 0) {
        quoted(json_object_get(tg, "too_long_example"), q1, sizeof(q1));
        f = finding(out, "error", "too_long_for_target", t, col, n,
                    "%lld values are longer than the target's %s allows (%lld), e.g. %s", n,
                    profile_jstr(tg, "type"), profile_jint(tg, "max_length"), q1);
        example(f, json_object_get(tg, "too_long_example"));
    }
    if ((n = profile_jint(tg, "outside")) > 0) {
        char *allowed = json_dumps(json_object_get(tg, "allowed"), JSON_COMPACT);

        quoted(json_object_get(tg, "outside_example"), q1, sizeof(q1));
        f = finding(out, "error", "outside_target_values", t, col, n,
                    "%lld values are not among the target's allowed values %.300s, e.g. %s", n,
                    allowed ? allowed : "", q1);
        example(f, json_object_get(tg, "outside_example"));
        free(allowed);
    }
}

void profile_rules_table(const json_t *t, const json_t *names, json_t *out)
{
    const json_t *dr = json_object_get(t, "duplicate_rows");
    const char *ri = profile_jstr(t, "replica_identity");
    const char *enc = profile_jstr(t, "encoding");
    json_t *c, *f, *v;
    size_t i;

    if (json_object_get(t, "error")) {
        finding(out, "error", "profile_failed", t, NULL, 0, "could not be profiled: %s",
                profile_jstr(t, "error"));
        return;
    }
    if (json_is_null(json_object_get(t, "primary_key"))) {
        if (strcmp(ri, "default") == 0 || strcmp(ri, "nothing") == 0)
            finding(out, "error", "no_replica_identity", t, NULL, 0,
                    "no primary key and replica identity %s: once published, the source rejects "
                    "its UPDATE and DELETE (add a key or REPLICA IDENTITY FULL)",
                    ri);
        else
            finding(out, "warning", "no_primary_key", t, NULL, 0,
                    "no primary key (replica identity %s): rows are located by %s on the target",
                    ri, strcmp(ri, "full") == 0 ? "all their values" : "the identity index");
    }
    if (dr && profile_jint(dr, "extra_rows") > 0) {
        f = finding(out, "warning", "duplicate_rows", t, NULL, profile_jint(dr, "extra_rows"),
                    "%lld rows are exact copies of another row (%lld distinct rows repeated)",
                    profile_jint(dr, "extra_rows"), profile_jint(dr, "groups"));
        json_array_foreach(json_object_get(dr, "examples"), i, v)
        {
            example(f, json_object_get(v, "row"));
        }
    }
    if (json_is_false(json_object_get(t, "target_found")))
        finding(out, "warning", "target_table_missing", t, NULL, 0,
                "the target has no table of this name");
    json_array_foreach(json_object_get(t, "columns"), i, c)
    {
        const json_t *tx = json_object_get(c, "text");

        if (tx)
            rule_text(out, t, c, tx, *enc ? enc : "source");
        if (strcmp(profile_jstr(c, "category"), "temporal") == 0)
            rule_dates(out, t, c);
        rule_duplicates(out, t, c, names);
        rule_target(out, t, c);
    }
}

void profile_rules_relationships(const json_t *rels, json_t *out)
{
    json_t *r, *f;
    size_t i;
    char cols[256], pcols[256];

    json_array_foreach(json_object_get(rels, "foreign_keys"), i, r)
    {
        long long n = profile_jint(r, "orphans");
        char *a, *b;

        if (n <= 0)
            continue;
        a = json_dumps(json_object_get(r, "columns"), JSON_COMPACT);
        b = json_dumps(json_object_get(r, "parent_columns"), JSON_COMPACT);
        snprintf(cols, sizeof(cols), "%s", a ? a : "");
        snprintf(pcols, sizeof(pcols), "%s", b ? b : "");
        free(a);
        free(b);
        f = finding(out, "error", "fk_orphans", NULL, NULL, n,
                    "%lld rows of %s %s reference no row of %s %s (foreign key %s%s)", n,
                    profile_jstr(r, "table"), cols, profile_jstr(r, "parent"), pcols,
                    profile_jstr(r, "name"),
                    json_is_false(json_object_get(r, "validated")) ? ", NOT VALID" : "");
        json_object_set_new(f, "table", json_string(profile_jstr(r, "table")));
        {
            size_t j;
            json_t *v;

            json_array_foreach(json_object_get(r, "examples"), j, v)
            {
                example(f, v);
            }
        }
    }
    json_array_foreach(json_object_get(rels, "candidates"), i, r)
    {
        double c = json_number_value(json_object_get(r, "containment_pct"));

        if (c < 90.0)
            continue;
        f = finding(out, "info", "implicit_reference", NULL, profile_jstr(r, "column"),
                    profile_jint(r, "missing"),
                    "%s.%s looks like a reference to %s.%s: %.2f%% of %lld values are found there "
                    "(no foreign key declared)",
                    profile_jstr(r, "table"), profile_jstr(r, "column"), profile_jstr(r, "parent"),
                    profile_jstr(r, "parent_column"), c, profile_jint(r, "checked"));
        json_object_set_new(f, "table", json_string(profile_jstr(r, "table")));
        {
            size_t j;
            json_t *v;

            json_array_foreach(json_object_get(r, "missing_examples"), j, v)
            {
                example(f, v);
            }
        }
    }
}

static int sev_rank(const char *s)
{
    return strcmp(s, "error") == 0 ? 0 : strcmp(s, "warning") == 0 ? 1 : 2;
}

static int cmp_findings(const void *pa, const void *pb)
{
    const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    int d = sev_rank(profile_jstr(a, "severity")) - sev_rank(profile_jstr(b, "severity"));
    long long ca = profile_jint(a, "count"), cb = profile_jint(b, "count");

    if (d)
        return d;
    if (ca != cb)
        return ca > cb ? -1 : 1;
    if ((d = strcmp(profile_jstr(a, "table"), profile_jstr(b, "table"))) != 0)
        return d;
    if ((d = strcmp(profile_jstr(a, "column"), profile_jstr(b, "column"))) != 0)
        return d;
    return strcmp(profile_jstr(a, "code"), profile_jstr(b, "code"));
}

void profile_findings_sort(json_t *findings)
{
    size_t n = json_array_size(findings);
    json_t **v = xcalloc(n + 1, sizeof(json_t *));

    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(findings, i));
    qsort(v, n, sizeof(json_t *), cmp_findings);
    json_array_clear(findings);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(findings, v[i]);
    free(v);
}

json_t *profile_findings_count(const json_t *findings)
{
    long long n[3] = {0, 0, 0};
    size_t i;
    json_t *f;

    json_array_foreach(findings, i, f)
    {
        n[sev_rank(profile_jstr(f, "severity"))]++;
    }
    return json_pack("{s:I, s:I, s:I}", "error", (json_int_t)n[0], "warning", (json_int_t)n[1],
                     "info", (json_int_t)n[2]);
}
