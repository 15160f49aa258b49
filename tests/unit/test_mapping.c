/*
 * Unit tests for the mapping engine: compiling table mappings against a
 * source shape, renames, drops, splits and concatenations, filters that are
 * reported, unchanged-TOAST pass-through and its errors, key tuples, error
 * messages that name the row, column, function and value, config errors
 * with file:line:col, identical results on the COPY and stream paths, and
 * the legacy CRM example config run end to end on sample rows.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config/config.h"
#include "core/error.h"
#include "core/transform/mapping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Arena *arena;

/* ---- fixtures ------------------------------------------------------------ */

static RelInfo rel(const char *schema, const char *name, const char *const *cols, int key_cols)
{
    RelInfo r = {.oid = 16384, .schema = (char *)schema, .name = (char *)name, .replident = 'd'};

    while (cols[r.ncols])
        r.ncols++;
    r.cols = calloc(r.ncols, sizeof(RelColumn));
    for (int i = 0; i < r.ncols; i++) {
        r.cols[i].name = (char *)cols[i];
        r.cols[i].type_oid = 25;
        r.cols[i].typmod = -1;
        r.cols[i].is_key = i < key_cols;
    }
    return r;
}

/* A Tuple from strings; "\\N" is NULL and "\\u" unchanged TOAST. */
static Tuple tup(const char *const *vals, int n)
{
    Tuple t = {.ncols = (uint16_t)n, .cols = arena_calloc(arena, (size_t)n, sizeof(ColValue))};

    for (int i = 0; i < n; i++) {
        if (strcmp(vals[i], "\\N") == 0)
            t.cols[i].state = COL_NULL;
        else if (strcmp(vals[i], "\\u") == 0)
            t.cols[i].state = COL_UNCHANGED;
        else
            t.cols[i] = (ColValue){COL_TEXT, (uint32_t)strlen(vals[i]), vals[i]};
    }
    return t;
}

static void assert_col(const Tuple *t, int i, const char *want)
{
    const ColValue *c = &t->cols[i];

    if (!want) {
        if (c->state != COL_NULL)
            fail_msg("column %d: expected NULL, got state %c '%.*s'", i, c->state, (int)c->len,
                     c->data ? c->data : "");
        return;
    }
    if (c->state != COL_TEXT || c->len != strlen(want) || memcmp(c->data, want, c->len) != 0)
        fail_msg("column %d: expected '%s', got state %c '%.*s'", i, want, c->state, (int)c->len,
                 c->data ? c->data : "");
}

static Config *load(const char *yaml)
{
    Config *cfg;

    if (config_load_string("test.yaml", yaml, &cfg) != 0)
        fail_msg("config rejected: %s", tm_error());
    return cfg;
}

static void load_fails(const char *yaml, const char *needle)
{
    Config *cfg = NULL;

    if (config_load_string("test.yaml", yaml, &cfg) == 0) {
        config_free(cfg);
        fail_msg("config accepted, expected \"%s\"", needle);
    }
    if (!strstr(tm_error(), needle))
        fail_msg("error \"%s\" lacks \"%s\"", tm_error(), needle);
}

#define HEAD "pipeline: t\nsource: {conninfo: x}\ntarget: {conninfo: y}\n"

static MappingPlan *compile_from(const char *yaml, const RelInfo *src)
{
    Config *cfg = load(yaml);
    MappingPlan *plan;
    const json_t *m = mapping_find(cfg->tree, src->schema, src->name);

    if (mapping_compile(m, src, &plan) != 0)
        fail_msg("compile: %s", tm_error());
    config_free(cfg); /* the plan must not depend on the tree */
    return plan;
}

/* ---- tests --------------------------------------------------------------- */

static void test_identity(void **state)
{
    static const char *const cols[] = {"id", "name", "body", NULL};
    static const char *const v[] = {"1", "\\N", "\\u"};
    RelInfo r = rel("public", "t", cols, 1);
    MappingPlan *plan;
    Tuple in = tup(v, 3), out;
    bool filtered = true;

    (void)state;
    assert_int_equal(mapping_compile(NULL, &r, &plan), 0);
    assert_true(mapping_is_identity(plan));
    assert_string_equal(mapping_target_table(plan), "t");
    assert_int_equal(mapping_target_ncols(plan), 3);
    assert_string_equal(mapping_target_columns(plan)[2], "body");
    assert_true(mapping_target_rel(plan)->cols[0].is_key);
    assert_int_equal(mapping_target_rel(plan)->cols[1].type_oid, 25);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), 0);
    assert_false(filtered);
    assert_col(&out, 0, "1");
    assert_col(&out, 1, NULL);
    assert_int_equal(out.cols[2].state, COL_UNCHANGED); /* unchanged TOAST stays unchanged */
    mapping_free(plan);
    free(r.cols);
}

static const char *const crm_yaml =
    HEAD "mapping:\n"
         "  public.customers:\n"
         "    target: crm.clients\n"
         "    filter: {column: status, not_in: [deleted, test]}\n"
         "    columns:\n"
         "      id: {to: client_id, transform: [{id_offset: 1000000}]}\n"
         "      full_name: {to: [first_name, last_name], transform: [{parse_name: {}}]}\n"
         "      signup: {to: signed_up_on, transform: [{parse_date: {formats: [\"MM/DD/YYYY\", "
         "\"YYYY-MM-DD\"], prefer: mdy}}]}\n"
         "      state: {transform: [trim, {state_code: {}}]}\n"
         "      notes: drop\n"
         "    add:\n"
         "      source_system: {const: legacy_crm}\n"
         "      full_address: {concat: [street, \", \", city]}\n";

static const char *const crm_cols[] = {"id",     "full_name", "signup", "state", "notes",
                                       "street", "city",      "status", "body",  NULL};

static void test_brief_example(void **state)
{
    static const char *const v[] = {"42",         "Ludwig van Beethoven",
                                    "12/17/2020", " California ",
                                    "note",       "Main St 1",
                                    "Bonn",       "active",
                                    "\\u"};
    static const char *const dropped[] = {"43",  "X Y", "\\N",  "\\N", "\\N",
                                          "\\N", "\\N", "test", "b"};
    static const char *const want_cols[] = {
        "client_id", "first_name", "last_name", "signed_up_on",  "state",       "street",
        "city",      "status",     "body",      "source_system", "full_address"};
    RelInfo r = rel("public", "customers", crm_cols, 1);
    MappingPlan *plan = compile_from(crm_yaml, &r);
    Tuple in = tup(v, 9), out;
    bool filtered;

    (void)state;
    assert_false(mapping_is_identity(plan));
    assert_string_equal(mapping_target_schema(plan), "crm");
    assert_string_equal(mapping_target_table(plan), "clients");
    assert_int_equal(mapping_target_ncols(plan), 11);
    for (int i = 0; i < 11; i++)
        assert_string_equal(mapping_target_columns(plan)[i], want_cols[i]);
    assert_true(mapping_target_rel(plan)->cols[0].is_key);
    assert_false(mapping_target_rel(plan)->cols[1].is_key);
    assert_int_equal(mapping_target_rel(plan)->cols[0].type_oid, 0); /* transformed */
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), 0);
    assert_false(filtered);
    assert_int_equal(out.ncols, 11);
    assert_col(&out, 0, "1000042");
    assert_col(&out, 1, "Ludwig");
    assert_col(&out, 2, "van Beethoven");
    assert_col(&out, 3, "2020-12-17");
    assert_col(&out, 4, "CA");
    assert_col(&out, 5, "Main St 1");
    assert_col(&out, 7, "active");
    assert_int_equal(out.cols[8].state, COL_UNCHANGED); /* identity: passes through */
    assert_col(&out, 9, "legacy_crm");
    assert_col(&out, 10, "Main St 1, Bonn");
    /* A test row is filtered: reported, no output. */
    in = tup(dropped, 9);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), 0);
    assert_true(filtered);
    assert_int_equal(out.ncols, 0);
    mapping_free(plan);
    free(r.cols);
}

static void test_toast_and_errors(void **state)
{
    static const char *const toast_name[] = {"7",   "\\u", "\\N",    "\\N", "\\N",
                                             "\\N", "\\N", "active", "b"};
    static const char *const toast_status[] = {"7",   "A B", "\\N", "\\N", "\\N",
                                               "\\N", "\\N", "\\u", "b"};
    static const char *const toast_concat[] = {"7",   "A B", "\\N",    "\\N", "\\N",
                                               "\\u", "x",   "active", "b"};
    static const char *const ambiguous[] = {"7",   "A B", "3/4/2020 x", "\\N", "\\N",
                                            "\\N", "\\N", "active",     "b"};
    static const char *const bad_state[] = {"7",   "A B", "\\N",    "Ontario", "\\N",
                                            "\\N", "\\N", "active", "b"};
    RelInfo r = rel("public", "customers", crm_cols, 1);
    MappingPlan *plan = compile_from(crm_yaml, &r);
    Tuple in, out;
    bool filtered;

    (void)state;
    in = tup(toast_name, 9);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), -EINVAL);
    assert_non_null(strstr(tm_error(), "unchanged TOAST"));
    assert_non_null(strstr(tm_error(), "column full_name"));
    assert_non_null(strstr(tm_error(), "id='7'"));
    in = tup(toast_status, 9);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), -EINVAL);
    assert_non_null(strstr(tm_error(), "filter on column status"));
    in = tup(toast_concat, 9);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), -EINVAL);
    assert_non_null(strstr(tm_error(), "added column full_address"));
    in = tup(ambiguous, 9);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), -EINVAL);
    /* table, row key, column, function and value in one line */
    assert_non_null(strstr(tm_error(), "public.customers, row with key id='7': column signup -> "
                                       "signed_up_on: parse_date: '3/4/2020 x': not a valid date"));
    in = tup(bad_state, 9);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), -EINVAL);
    assert_non_null(strstr(tm_error(), "column state: state_code: 'Ontario'"));
    /* A tuple of another shape: the plan must be recompiled. */
    in = tup(bad_state, 8);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), -EPROTO);
    assert_non_null(strstr(tm_error(), "recompile"));
    mapping_free(plan);
    free(r.cols);
}

static void test_key_tuple(void **state)
{
    static const char *const key[] = {"42", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N"};
    RelInfo r = rel("public", "customers", crm_cols, 1);
    MappingPlan *plan = compile_from(crm_yaml, &r);
    Tuple in = tup(key, 9), out;

    (void)state;
    assert_true(mapping_has_filter(plan));
    assert_int_equal(mapping_apply_key(plan, &in, arena, &out), 0);
    assert_int_equal(out.ncols, 11);
    assert_col(&out, 0, "1000042"); /* the key is remapped exactly as in the row */
    for (int i = 1; i < 11; i++)
        assert_col(&out, i, NULL);
    mapping_free(plan);
    free(r.cols);
}

static void test_copy_matches_stream(void **state)
{
    static const char *const v[] = {"42",      "Smith, John", "2020-01-31", "ny", "n",
                                    "a\tb\\c", "new\nline",   "active",     "\\N"};
    const char *row = "42\tSmith, John\t2020-01-31\tny\tn\ta\\tb\\\\c\tnew\\nline\tactive\t\\N\n";
    RelInfo r = rel("public", "customers", crm_cols, 1);
    MappingPlan *plan = compile_from(crm_yaml, &r);
    CopyText ct = COPYTEXT_INIT;
    Buf copy = BUF_INIT, stream = BUF_INIT;
    Tuple in = tup(v, 9), out;
    bool filtered;

    (void)state;
    assert_int_equal(mapping_apply_copy_row(plan, &ct, row, strlen(row), arena, &copy, &filtered),
                     0);
    assert_false(filtered);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), 0);
    assert_int_equal(mapping_copy_render(&out, &stream), 0);
    assert_string_equal(buf_cstr(&copy), buf_cstr(&stream));
    assert_string_equal(buf_cstr(&copy), "1000042\tJohn\tSmith\t2020-01-31\tNY\ta\\tb\\\\c\t"
                                         "new\\nline\tactive\t\\N\tlegacy_crm\t"
                                         "a\\tb\\\\c, new\\nline\n");
    /* A filtered COPY row appends nothing. */
    buf_clear(&copy);
    row = "43\tX\t\\N\t\\N\t\\N\t\\N\t\\N\tdeleted\t\\N\n";
    assert_int_equal(mapping_apply_copy_row(plan, &ct, row, strlen(row), arena, &copy, &filtered),
                     0);
    assert_true(filtered);
    assert_int_equal(copy.len, 0);
    /* A malformed row names the table. */
    row = "1\t2\n";
    assert_int_equal(mapping_apply_copy_row(plan, &ct, row, strlen(row), arena, &copy, &filtered),
                     -EPROTO);
    assert_non_null(strstr(tm_error(), "public.customers: COPY row"));
    copytext_release(&ct);
    buf_release(&copy);
    buf_release(&stream);
    mapping_free(plan);
    free(r.cols);
}

static void test_config_errors(void **state)
{
    (void)state;
    load_fails(HEAD "mapping:\n  public.c:\n    columns:\n      a: {transform: [trimm]}\n",
               "test.yaml:7:23: mapping.public.c.columns.a.transform[0]: unknown transform "
               "\"trimm\"");
    load_fails(HEAD "mapping:\n  public.c:\n    columns:\n      a:\n        transform:\n"
                    "          - parse_date: {formats: [\"MM/DD/YYYY\"], prefer: ymd}\n",
               "test.yaml:9:59: mapping.public.c.columns.a.transform[0].parse_date.prefer: "
               "parse_date: prefer: \"ymd\" is not one of none, mdy, dmy");
    load_fails(HEAD "mapping:\n  public.c:\n    columns:\n      a: {transform: [{parse_date: "
                    "{formats: [\"MM/DD/YY\"]}}]}\n",
               "need a pivot");
    load_fails(HEAD "mapping:\n  public.c:\n    columns:\n      a: {transform: [parse_date]}\n",
               "test.yaml:7:23: mapping.public.c.columns.a.transform[0]: parse_date: parameter "
               "\"formats\" is required");
    load_fails(HEAD "mapping:\n  public.c:\n    colums: {}\n",
               "test.yaml:6:5: mapping.public.c.colums: unknown key in a table mapping");
    load_fails(HEAD "mapping:\n  public.c:\n    on_error: skip\n", "expected stop or dead_letter");
    load_fails(HEAD "mapping:\n  c: {}\n  public.c: {}\n", "table is mapped twice");
    load_fails(HEAD "mapping:\n  public.c:\n    columns: {a: remove}\n",
               "expected drop, keep or a mapping");
    load_fails(HEAD "mapping:\n  public.c:\n    columns: {a: {transform: [{map: {values: {A: x}, "
                    "default: y, unmapped: keep}}]}}\n",
               "give either default or unmapped");
    load_fails(HEAD "mapping:\n  public.c:\n    columns: {a: {transform: [{currency: {rate: \"1.1\""
                    "}}]}}\n",
               "\"rounding\" is required");
    load_fails(HEAD "mapping:\n  public.c:\n    columns: {a: {transform: [{hash: {}}]}}\n",
               "a salt is required");
    load_fails(HEAD "mapping:\n  public.c:\n    columns: {a: {to: [x, y], transform: [trim]}}\n",
               "only parse_name can feed several columns");
    load_fails(HEAD "mapping:\n  public.c:\n    columns: {a: {transform: [{lookup: {file: "
                    "no_such.csv}}]}}\n",
               "cannot open");
    load_fails(HEAD "mapping:\n  public.c:\n    filter: {column: s, in: [a], not_in: [b]}\n",
               "exactly one of in, not_in or is_null");
    load_fails(HEAD "mapping:\n  public.c:\n    add: {x: {const: 1, from: a}}\n",
               "exactly one of const, concat or from");
    load_fails(HEAD "mapping:\n  public.c:\n    columns: {a: {transform: [{regex_replace: "
                    "{pattern: \"(\"}}]}}\n",
               "regex_replace: pattern: regex \"(\"");
    load_fails(HEAD "mapping:\n  public.c:\n    columns: {a: {transform: [{id_namespace: "
                    "{multiply: 10, tag: 10}}]}}\n",
               "must be below multiply");
    load_fails(HEAD "mapping: [a]\n", "mapping: expected a mapping");
}

static void test_compile_errors(void **state)
{
    static const char *const cols[] = {"id", "a", "b", NULL};
    RelInfo r = rel("public", "c", cols, 1);
    MappingPlan *plan = NULL;
    Config *cfg;

    (void)state;
    cfg = load(HEAD "mapping:\n  public.c:\n    columns: {nope: drop}\n");
    assert_int_equal(mapping_compile(mapping_find(cfg->tree, "public", "c"), &r, &plan), -EINVAL);
    assert_non_null(strstr(tm_error(), "column \"nope\" is not in source table public.c (its "
                                       "columns: id, a, b)"));
    config_free(cfg);
    cfg = load(HEAD "mapping:\n  public.c:\n    columns: {a: {to: b}}\n");
    assert_int_equal(mapping_compile(mapping_find(cfg->tree, "public", "c"), &r, &plan), -EINVAL);
    assert_non_null(strstr(tm_error(), "target column \"b\" is produced twice"));
    config_free(cfg);
    cfg = load(HEAD "mapping:\n  public.c:\n    columns: {id: drop}\n");
    assert_int_equal(mapping_compile(mapping_find(cfg->tree, "public", "c"), &r, &plan), -EINVAL);
    assert_non_null(strstr(tm_error(), "key column \"id\" must map to one target column"));
    config_free(cfg);
    cfg =
        load(HEAD "mapping:\n  public.c:\n    unlisted: error\n    columns: {id: keep, a: keep}\n");
    assert_int_equal(mapping_compile(mapping_find(cfg->tree, "public", "c"), &r, &plan), -EINVAL);
    assert_non_null(strstr(tm_error(), "source column \"b\" of public.c is not listed"));
    config_free(cfg);
    cfg = load(HEAD "mapping:\n  public.c:\n    add: {x: {concat: [a, missing]}}\n");
    assert_int_equal(mapping_compile(mapping_find(cfg->tree, "public", "c"), &r, &plan), -EINVAL);
    assert_non_null(strstr(tm_error(), "column \"missing\""));
    config_free(cfg);
    /* unlisted: drop keeps only what is listed; {lit: word} is text, not a column. */
    cfg = load(HEAD "mapping:\n  public.c:\n    unlisted: drop\n    columns: {id: keep}\n"
                    "    add: {x: {concat: [{lit: a}, \"-\", a]}, n: {const: null}}\n");
    assert_int_equal(mapping_compile(mapping_find(cfg->tree, "public", "c"), &r, &plan), 0);
    assert_int_equal(mapping_target_ncols(plan), 3);
    {
        static const char *const v[] = {"1", "A", "B"};
        Tuple in = tup(v, 3), out;
        bool filtered;

        assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), 0);
        assert_col(&out, 1, "a-A");
        assert_col(&out, 2, NULL);
    }
    mapping_free(plan);
    config_free(cfg);
    free(r.cols);
}

static int calls;

static int id_double(void *ctx, const char *ns, const char *old, const char **new_out)
{
    (void)ctx;
    calls++;
    if (strcmp(ns, "customers") != 0)
        return -ENOENT;
    *new_out = strcmp(old, "1") == 0 ? "501" : strcmp(old, "2") == 0 ? "502" : NULL;
    return *new_out ? 0 : -ENOENT;
}

static void test_id_map_and_fk(void **state)
{
    static const char *const cols[] = {"id", "customer_id", "amount", NULL};
    static const char *const v[] = {"9", "2", "10.005"};
    static const char *const unknown[] = {"10", "3", "1"};
    RelInfo r = rel("public", "orders", cols, 1);
    MappingPlan *plan = compile_from(
        HEAD
        "mapping:\n  public.orders:\n    on_error: dead_letter\n    columns:\n"
        "      id: {transform: [{id_namespace: {multiply: 10, tag: 2}}]}\n"
        "      customer_id: {transform: [{id_map: customers}]}\n"
        "      amount: {transform: [{cast: {type: numeric, scale: 2, rounding: half_even}}]}\n",
        &r);
    Tuple in = tup(v, 3), out;
    bool filtered;

    (void)state;
    assert_int_equal(mapping_on_error(plan), MAPPING_ON_ERROR_DEAD_LETTER);
    assert_true(mapping_uses_id_lookup(plan));
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), -ENOTCONN);
    mapping_set_id_lookup(plan, id_double, NULL);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), 0);
    assert_col(&out, 0, "92");
    assert_col(&out, 1, "502");
    assert_col(&out, 2, "10.00");
    in = tup(unknown, 3);
    assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), -ENOENT);
    assert_non_null(strstr(tm_error(), "column customer_id: id_map: '3': no new id"));
    assert_int_equal(calls, 2);
    mapping_free(plan);
    free(r.cols);
}

/* A lookup whose answer depends on the id: found, missing, or the target failing. */
static int id_flaky(void *ctx, const char *ns, const char *old, const char **new_out)
{
    (void)ctx;
    (void)ns;
    if (strcmp(old, "1") == 0) {
        *new_out = "501";
        return 0;
    }
    if (strcmp(old, "2") == 0)
        return -ENOENT;
    if (strcmp(old, "3") == 0)
        return tm_fail(-ENOTCONN, "reading tidemark.id_map failed (the target, not the row):"
                                  " terminating connection due to administrator command");
    return tm_fail(-EIO, "reading tidemark.id_map failed (the target, not the row):"
                         " permission denied for table id_map");
}

/*
 * Only the row's own data may be dead-lettered: a missing id or a value a
 * transform rejects is data; the lookup's connection or the target failing
 * is not, and keeps its code through the engine so the pipeline can tell
 * an outage (reconnect) from a failure (stop).
 */
static void test_error_classification(void **state)
{
    static const char *const cols[] = {"id", "customer_id", NULL};
    RelInfo r = rel("public", "orders", cols, 1);
    MappingPlan *plan = compile_from(HEAD "mapping:\n  public.orders:\n    on_error: dead_letter\n"
                                          "    columns:\n"
                                          "      id: {transform: [{id_offset: 1000}]}\n"
                                          "      customer_id: {transform: [{id_map: customers}]}\n",
                                     &r);
    static const char *const rows[][2] = {
        {"7", "1"}, {"7", "2"}, {"x", "1"}, {"7", "3"}, {"7", "4"}};
    const int want[] = {0, -ENOENT, -EINVAL, -ENOTCONN, -EIO};
    const bool data[] = {true, true, true, false, false};
    Tuple in, out;
    bool filtered;

    (void)state;
    mapping_set_id_lookup(plan, id_flaky, NULL);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        in = tup(rows[i], 2);
        assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), want[i]);
        if (want[i] < 0)
            assert_int_equal(mapping_error_is_data(want[i]), data[i]);
    }
    assert_non_null(strstr(tm_error(), "permission denied"));
    assert_false(mapping_error_is_data(-EPROTO)); /* a stale plan or a malformed COPY row */
    assert_false(mapping_error_is_data(-ENOMEM));
    assert_false(mapping_error_is_data(-ECONNREFUSED));
    assert_true(mapping_error_is_data(-ERANGE));
    mapping_free(plan);
    free(r.cols);
}

/* ---- the example config -------------------------------------------------- */

static char *example_path(void)
{
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    char *dir = strndup(file, slash ? (size_t)(slash - file) : 0);
    char *path = NULL;

    if (asprintf(&path, "%s%s../../config/examples/legacy_crm.yaml", dir, *dir ? "/" : "") < 0)
        abort();
    free(dir);
    return path;
}

static void test_legacy_crm_example(void **state)
{
    static const char *const cols[] = {"id",     "full_name",   "signup",  "state",
                                       "status", "lead_source", "balance", "email",
                                       "street", "city",        "notes",   NULL};
    /* Messy source rows, as a SQL_ASCII database hands them over. */
    static const char *const rows[][11] = {
        {"17", "SMITH, John", "03/04/2020", "california ", "A", "web", "100", " Alice@Example.COM ",
         "12  main st", "springfield", "vip"},
        {"18", "Dr. Ludwig van der Berg", "4 Mar 2020", "N/A", "i", "TradeShow", "12.5", "N/A",
         "1 Elm St", "Boston", "\\N"},
        {"19", "M\xfcller, J\xfcrgen", "Mar 4, 2020", "District of Columbia", "A", "\\N", "N/A",
         "j@x.de", "\\N", "\\N", ""},
        {"20",
         "Ren\xe9"
         "e O'Neil",
         "1583280000", "NY", "A", "ref", "5", "", "\\N", "Albany", ""},
        {"21", "N/A", "N/A", "", "A", "", "0.004", "b@c.io", "x", "y", ""},
        {"22", "Test User", "01/01/2020", "CA", "T", "web", "1", "t@t.t", "a", "b", ""},
    };
    /* client_id first_name last_name signed_up_on state status lead_source balance_usd
     * email_masked email_hash address_line source_system */
    static const char *const want[][12] = {
        {"1000017", "John", "SMITH", "2020-03-04", "CA", "active", "website", "108.37",
         "a***@example.com", "h", "12 Main St, Springfield", "legacy_crm"},
        {"1000018", "Ludwig", "van der Berg", "2020-03-04", NULL, "inactive", "event", "13.55",
         NULL, NULL, "1 Elm St, Boston", "legacy_crm"},
        {"1000019", "Jürgen", "Müller", "2020-03-04", "DC", "active", NULL, "0.00", "j***@x.de",
         "h", NULL, "legacy_crm"},
        {"1000020", "Renée", "O'Neil", "2020-03-04", "NY", "active", "referral", "5.42", NULL, NULL,
         "Albany", "legacy_crm"},
        {"1000021", NULL, NULL, NULL, NULL, "active", NULL, "0.00", "b***@c.io", "h", "X, Y",
         "legacy_crm"},
    };
    static const char *const want_cols[] = {"client_id",    "first_name",   "last_name",
                                            "signed_up_on", "state",        "status",
                                            "lead_source",  "balance_usd",  "email_masked",
                                            "email_hash",   "address_line", "source_system"};
    RelInfo r = rel("public", "customers", cols, 1);
    char *path = example_path();
    Config *cfg;
    MappingPlan *plan;
    CopyText ct = COPYTEXT_INIT;
    int filtered_rows = 0;

    (void)state;
    if (config_load(path, &cfg) != 0)
        fail_msg("%s: %s", path, tm_error());
    assert_int_equal(mapping_compile(mapping_find(cfg->tree, "public", "customers"), &r, &plan), 0);
    assert_int_equal(mapping_on_error(plan), MAPPING_ON_ERROR_DEAD_LETTER);
    assert_string_equal(mapping_target_schema(plan), "crm");
    assert_int_equal(mapping_target_ncols(plan), 12);
    for (int i = 0; i < 12; i++)
        assert_string_equal(mapping_target_columns(plan)[i], want_cols[i]);
    for (size_t k = 0; k < sizeof(rows) / sizeof(*rows); k++) {
        Tuple in = tup(rows[k], 11), out;
        bool filtered;
        Buf copy = BUF_INIT, stream = BUF_INIT, line = BUF_INIT;

        if (mapping_apply(plan, &in, arena, &out, &filtered) != 0)
            fail_msg("row %zu: %s", k, tm_error());
        if (filtered) {
            filtered_rows++;
            continue;
        }
        for (int i = 0; i < 12; i++) {
            if (want[k][i] && strcmp(want[k][i], "h") == 0) {
                assert_int_equal(out.cols[i].state, COL_TEXT);
                assert_int_equal(out.cols[i].len, 64);
                continue;
            }
            assert_col(&out, i, want[k][i]);
        }
        /* The same row through the COPY path gives the same target row. */
        assert_int_equal(mapping_copy_render(&in, &line), 0);
        assert_int_equal(
            mapping_apply_copy_row(plan, &ct, line.data, line.len, arena, &copy, &filtered), 0);
        assert_int_equal(mapping_copy_render(&out, &stream), 0);
        assert_string_equal(buf_cstr(&copy), buf_cstr(&stream));
        buf_release(&copy);
        buf_release(&stream);
        buf_release(&line);
    }
    assert_int_equal(filtered_rows, 1);
    /* An unknown status goes to the error policy with a clear message. */
    {
        static const char *const bad[] = {"23",  "A B", "\\N", "\\N", "X",  "\\N",
                                          "\\N", "\\N", "\\N", "\\N", "\\N"};
        Tuple in = tup(bad, 11), out;
        bool filtered;

        assert_int_equal(mapping_apply(plan, &in, arena, &out, &filtered), -EINVAL);
        assert_non_null(strstr(tm_error(), "row with key id='23': column status: map: 'X': not "
                                           "in the map"));
    }
    copytext_release(&ct);
    mapping_free(plan);
    config_free(cfg);
    free(path);
    free(r.cols);
}

/* apply.on_error is the default of mappings without on_error; the table's own wins. */
static void test_on_error_default(void **state)
{
    static const char *const cols[] = {"id", "a", NULL};
    RelInfo r = rel("public", "t", cols, 1);
    Config *cfg = load(HEAD "apply: {on_error: dead_letter}\n"
                            "mapping:\n  public.t:\n    columns: {a: {transform: [trim]}}\n"
                            "  public.u:\n    on_error: stop\n    columns: {a: drop}\n");
    MappingPlan *plan;

    (void)state;
    assert_int_equal(mapping_tree_on_error(cfg->tree), MAPPING_ON_ERROR_DEAD_LETTER);
    assert_true(cfg->apply.on_error_dead_letter);
    assert_int_equal(mapping_compile(mapping_find(cfg->tree, "public", "t"), &r, &plan), 0);
    assert_int_equal(mapping_on_error(plan), MAPPING_ON_ERROR_STOP);
    mapping_default_on_error(plan, MAPPING_ON_ERROR_DEAD_LETTER);
    assert_int_equal(mapping_on_error(plan), MAPPING_ON_ERROR_DEAD_LETTER);
    mapping_free(plan);
    r.name = "u";
    assert_int_equal(mapping_compile(mapping_find(cfg->tree, "public", "u"), &r, &plan), 0);
    mapping_default_on_error(plan, MAPPING_ON_ERROR_DEAD_LETTER);
    assert_int_equal(mapping_on_error(plan), MAPPING_ON_ERROR_STOP);
    mapping_free(plan);
    config_free(cfg);
    cfg = load(HEAD);
    assert_int_equal(mapping_tree_on_error(cfg->tree), MAPPING_ON_ERROR_STOP);
    assert_false(cfg->apply.on_error_dead_letter);
    config_free(cfg);
    load_fails(HEAD "apply: {on_error: skip}\n", "on_error");
    free(r.cols);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_brief_example),
        cmocka_unit_test(test_toast_and_errors),
        cmocka_unit_test(test_key_tuple),
        cmocka_unit_test(test_copy_matches_stream),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_id_map_and_fk),
        cmocka_unit_test(test_error_classification),
        cmocka_unit_test(test_legacy_crm_example),
        cmocka_unit_test(test_on_error_default),
    };
    int rc;

    arena = arena_new(0);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    arena_free(arena);
    return rc;
}
