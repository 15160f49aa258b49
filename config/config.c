/*
 * Loads the pipeline YAML (see config.h). libyaml events become a jansson
 * tree plus a parallel tree of Nodes that remembers where every key and value
 * was written, so that validation against the one schema table below can say
 * "file:line:col: key: what is wrong". New settings are new schema rows; the
 * walk that checks types, ranges, enums, required keys and fills defaults
 * does not change.
 */
#include "config/config.h"

#include "core/buf.h"
#include "core/error.h"
#include "core/sqlname.h"
#include "core/transform/mapping.h"
#include "core/xmalloc.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* Deep enough for any sane config, shallow enough to never exhaust the stack. */
#define MAX_DEPTH 64

typedef struct Mark {
    int line, col; /* 1-based */
} Mark;

/*
 * Positions cannot live in a json_t* keyed side table: jansson shares one
 * instance of true, false and null. So the Nodes mirror the json tree.
 */
typedef struct Node Node;
struct Node {
    json_t *json;  /* borrowed: the parent container (or Loader.tree) owns it */
    Mark at;       /* where the value starts */
    Mark key_at;   /* where its key starts, for a mapping member */
    char *key;     /* mapping member key; NULL for list items and the root */
    size_t index;  /* list item index */
    bool overflow; /* a plain integer beyond json_int_t, kept as a string */
    Node *parent;
    Node **kids;
    size_t nkids;
};

typedef struct Loader {
    const char *name;
    const char *text;
    size_t len;
    yaml_parser_t parser;
    json_t *tree;
    Node *root;
} Loader;

typedef enum KeyType {
    KT_STRING,
    KT_INT,
    KT_BOOL,
    KT_STRLIST,
    KT_OBJECT,
    KT_STRMAP,   /* free-form mapping of names to scalars, kept as strings */
    KT_MAPTREE,  /* nested mapping whose shape the row's check validates */
    KT_LISTTREE, /* nested list whose shape the row's check validates */
} KeyType;

/* Semantic checks beyond the declarative fields; run after type checks. */
typedef int (*KeyCheck)(const Loader *ld, const Node *node, const char *path);

typedef struct KeyDesc KeyDesc;
struct KeyDesc {
    const char *name;
    KeyType type;
    bool required;
    /* Required only when sibling required_if_key has value required_if_value. */
    const char *required_if_key;
    const char *required_if_value;
    /* JSON text of the default; in strings "{key}" is that top-level string. */
    const char *def;
    json_int_t min, max;       /* KT_INT */
    const char *const *one_of; /* KT_STRING enum, NULL-terminated */
    const char *pattern;       /* POSIX ERE the whole string must match */
    const char *pattern_hint;  /* says in words what pattern accepts */
    KeyCheck check;
    const KeyDesc *children; /* KT_OBJECT, terminated by a row without name */
};

static int check_readable_file(const Loader *ld, const Node *node, const char *path);
static int check_tables(const Loader *ld, const Node *node, const char *path);
static int check_topic_template(const Loader *ld, const Node *node, const char *path);
static int check_source_type(const Loader *ld, const Node *node, const char *path);
static int node_fail(const Loader *ld, const Node *n, const char *fmt, ...) TM_PRINTF(3, 4);
static int check_topic_names(const Loader *ld, const Node *node, const char *path);
static int check_verify_rules(const Loader *ld, const Node *node, const char *path);
static int check_verify_fks(const Loader *ld, const Node *node, const char *path);
static int check_verify_spots(const Loader *ld, const Node *node, const char *path);
static int check_mapping(const Loader *ld, const Node *node, const char *path);

static const char *const target_types[] = {"postgres", "kafka", NULL};
static const char *const decimal_modes[] = {"precise", "double", "string", NULL};
static const char *const time_modes[] = {"adaptive", "adaptive_time_microseconds", "connect", NULL};
static const char *const binary_modes[] = {"bytes", "base64", "base64-url-safe", "hex", NULL};
static const char *const interval_modes[] = {"numeric", "string", NULL};
static const char *const hstore_modes[] = {"json", "map", NULL};
static const char *const undeliverable_modes[] = {"stop", "dead_letter", NULL};
static const char *const log_levels[] = {"error", "warning", "notice", "info", "debug", NULL};
static const char *const log_formats[] = {"auto", "text", "json", "journal", NULL};

static const char *const source_types[] = {"postgres", "kafka", NULL};

/* Keys of source that only a Kafka source (tidemark apply) reads. */
static const char *const kafka_source_only[] = {
    "brokers",
    "group",
    "topic_prefix",
    "topics",
    "properties",
    "decimal.handling.mode",
    "time.precision.mode",
    "binary.handling.mode",
    "interval.handling.mode",
    "hstore.handling.mode",
    "money.fraction.digits",
    "include.unknown.datatypes",
    NULL,
};

static const KeyDesc source_keys[] = {
    /* first: conninfo's required_if and the checks below read it */
    {.name = "type",
     .type = KT_STRING,
     .def = "\"postgres\"",
     .one_of = source_types,
     .check = check_source_type},
    {.name = "conninfo",
     .type = KT_STRING,
     .required_if_key = "type",
     .required_if_value = "postgres"},
    {.name = "password_file", .type = KT_STRING, .check = check_readable_file},
    {.name = "slot",
     .type = KT_STRING,
     .def = "\"tidemark_{pipeline}\"",
     .pattern = "^[a-z0-9_]{1,63}$",
     .pattern_hint = "use 1 to 63 lower-case letters, digits or underscores"},
    {.name = "publication", .type = KT_STRING, .def = "\"tidemark_{pipeline}\""},
    {.name = "tables", .type = KT_STRLIST, .def = "[]", .check = check_tables},
    /* type: kafka — tidemark's topics read by `tidemark apply` (docs/SCALE.md) */
    {.name = "brokers", .type = KT_STRING, .required_if_key = "type", .required_if_value = "kafka"},
    {.name = "group",
     .type = KT_STRING,
     .def = "\"tidemark-{pipeline}\"",
     .pattern = "^[A-Za-z0-9._-]{1,249}$",
     .pattern_hint = "use 1 to 249 letters, digits, '.', '_' or '-'"},
    {.name = "topic_prefix", .type = KT_STRING, .def = "\"{pipeline}\""},
    /* empty: every topic named <topic_prefix>.<schema>.<table> */
    {.name = "topics", .type = KT_STRLIST, .def = "[]", .check = check_topic_names},
    {.name = "properties", .type = KT_STRMAP, .def = "{}"},
    /* the converter settings the producing pipeline used (target.* there) */
    {.name = "decimal.handling.mode",
     .type = KT_STRING,
     .def = "\"precise\"",
     .one_of = decimal_modes},
    {.name = "time.precision.mode", .type = KT_STRING, .def = "\"adaptive\"", .one_of = time_modes},
    {.name = "binary.handling.mode", .type = KT_STRING, .def = "\"bytes\"", .one_of = binary_modes},
    {.name = "interval.handling.mode",
     .type = KT_STRING,
     .def = "\"numeric\"",
     .one_of = interval_modes},
    {.name = "hstore.handling.mode", .type = KT_STRING, .def = "\"json\"", .one_of = hstore_modes},
    {.name = "money.fraction.digits", .type = KT_INT, .def = "2", .min = 0, .max = 18},
    {.name = "include.unknown.datatypes", .type = KT_BOOL, .def = "false"},
    {.name = NULL},
};

static const KeyDesc target_keys[] = {
    {.name = "type", .type = KT_STRING, .def = "\"postgres\"", .one_of = target_types},
    {.name = "conninfo",
     .type = KT_STRING,
     .required_if_key = "type",
     .required_if_value = "postgres"},
    {.name = "password_file", .type = KT_STRING, .check = check_readable_file},
    /* kafka */
    {.name = "brokers", .type = KT_STRING, .required_if_key = "type", .required_if_value = "kafka"},
    {.name = "topic_prefix", .type = KT_STRING, .def = "\"{pipeline}\""},
    /* No default: "{...}" in a default would be expanded as a top-level key. */
    {.name = "topic", .type = KT_STRING, .check = check_topic_template},
    {.name = "tombstones", .type = KT_BOOL, .def = "true"},
    {.name = "state_dir", .type = KT_STRING, .def = "\"/var/lib/tidemark/{pipeline}\""},
    {.name = "properties", .type = KT_STRMAP, .def = "{}"},
    /* Debezium's converter settings, by Debezium's names (docs/KAFKA.md) */
    {.name = "decimal.handling.mode",
     .type = KT_STRING,
     .def = "\"precise\"",
     .one_of = decimal_modes},
    {.name = "time.precision.mode", .type = KT_STRING, .def = "\"adaptive\"", .one_of = time_modes},
    {.name = "binary.handling.mode", .type = KT_STRING, .def = "\"bytes\"", .one_of = binary_modes},
    {.name = "interval.handling.mode",
     .type = KT_STRING,
     .def = "\"numeric\"",
     .one_of = interval_modes},
    {.name = "hstore.handling.mode", .type = KT_STRING, .def = "\"json\"", .one_of = hstore_modes},
    {.name = "money.fraction.digits", .type = KT_INT, .def = "2", .min = 0, .max = 18},
    {.name = "include.unknown.datatypes", .type = KT_BOOL, .def = "false"},
    /* c, u, d, t (comma-separated) or none: operations not sent; Debezium skips truncates */
    {.name = "skipped.operations",
     .type = KT_STRING,
     .def = "\"t\"",
     .pattern = "^(none|[cudt](,[cudt])*)$",
     .pattern_hint = "use none, or some of c, u, d, t separated by commas (\"t\", \"c,d\")"},
    /* JsonConverter schemas.enable: each key and value as {"schema": ..., "payload": ...} */
    {.name = "schemas.enable", .type = KT_BOOL, .def = "false"},
    /* a message Kafka rejects for good: stop the pipeline, or write it to
     * state_dir/dead_letters.jsonl and go on */
    {.name = "undeliverable", .type = KT_STRING, .def = "\"stop\"", .one_of = undeliverable_modes},
    {.name = NULL},
};

static const char *const on_error_modes[] = {"stop", "dead_letter", NULL};

static const KeyDesc apply_keys[] = {
    {.name = "batch_max_changes", .type = KT_INT, .def = "10000", .min = 1, .max = 10000000},
    {.name = "status_interval_ms", .type = KT_INT, .def = "10000", .min = 100, .max = 600000},
    /* what a row a mapping cannot transform does, for mapped tables whose
     * mapping does not set its own on_error (docs/TRANSFORMS.md) */
    {.name = "on_error", .type = KT_STRING, .def = "\"stop\"", .one_of = on_error_modes},
    /* consecutive changes of a table as one statement (docs/ARCHITECTURE.md) */
    {.name = "set_statements", .type = KT_BOOL, .def = "true"},
    {.name = NULL},
};

static const char *const schema_modes[] = {"existing", "copy", NULL};

static const KeyDesc copy_keys[] = {
    /* 0: one job per core */
    {.name = "jobs", .type = KT_INT, .def = "0", .min = 0, .max = 64},
    {.name = "part_size_mb", .type = KT_INT, .def = "256", .min = 1, .max = 1048576},
    /* A worker copies its next tables in its previous table's snapshot for
     * this long (0: a new snapshot per table); a held snapshot holds back
     * the source's vacuum horizon. */
    {.name = "snapshot_reuse_s", .type = KT_INT, .def = "30", .min = 0, .max = 3600},
    /* Stop when more rows than this fail (dead letters) while less than 10% of
     * the initial load is done: something is wrong with the mapping or the
     * data, and it is cheaper to look now. -1: never. */
    {.name = "max_errors_early", .type = KT_INT, .def = "100", .min = -1, .max = 1000000000},
    {.name = NULL},
};

static const KeyDesc log_keys[] = {
    {.name = "level", .type = KT_STRING, .def = "\"info\"", .one_of = log_levels},
    {.name = "format", .type = KT_STRING, .def = "\"auto\"", .one_of = log_formats},
    {.name = NULL},
};

static const KeyDesc service_keys[] = {
    /* host:port of the HTTP endpoint (/metrics, /healthz, /readyz); "" (the
     * default) disables it: each instance on a host needs its own port. */
    {.name = "listen", .type = KT_STRING, .def = "\"\""},
    /* /healthz turns 503 when replication lag exceeds this */
    {.name = "max_lag_seconds", .type = KT_INT, .def = "300", .min = 1, .max = 86400 * 30},
    /* idle sources: emit a logical message this often so the slot keeps moving */
    {.name = "heartbeat_interval_s", .type = KT_INT, .def = "60", .min = 0, .max = 86400},
    /* warn when the slot retains more WAL than this */
    {.name = "warn_retained_wal_mb",
     .type = KT_INT,
     .def = "4096",
     .min = 1,
     .max = 1024 * 1024 * 1024},
    {.name = NULL},
};

/* tidemark profile (migration/profile.h); read from Config.tree */
static const KeyDesc profile_keys[] = {
    /* values that stand for "missing", compared trimmed and case-insensitively */
    {.name = "placeholders",
     .type = KT_STRLIST,
     .def = "[\"N/A\", \"n.a.\", \"-\", \"--\", \"?\", \"0000-00-00\", \"null\","
            " \"none\", \"unknown\", \"missing\", \"#N/A\"]"},
    /* tables profiled in parallel, one source connection each */
    {.name = "jobs", .type = KT_INT, .def = "2", .min = 1, .max = 64},
    /* most frequent values kept per column */
    {.name = "top_values", .type = KT_INT, .def = "10", .min = 1, .max = 1000},
    {.name = NULL},
};

/* tidemark verify (migration/verify.h); read from Config.tree */
static const KeyDesc verify_keys[] = {
    /* per table: not_null, unique, range, regex, allowed */
    {.name = "rules", .type = KT_MAPTREE, .def = "{}", .check = check_verify_rules},
    /* implicit foreign keys: [{table, columns, references, ref_columns}] */
    {.name = "foreign_keys", .type = KT_LISTTREE, .def = "[]", .check = check_verify_fks},
    /* {table: [key, ...]}: rows compared field by field */
    {.name = "spot_checks", .type = KT_MAPTREE, .def = "{}", .check = check_verify_spots},
    /* continuous verification while `run` streams; 0: off */
    {.name = "interval_s", .type = KT_INT, .def = "0", .min = 0, .max = 86400 * 30},
    /* rows read per second on each side, summed over jobs; 0: unthrottled */
    {.name = "max_rows_per_second", .type = KT_INT, .def = "0", .min = 0, .max = 1000000000},
    {.name = "jobs", .type = KT_INT, .def = "2", .min = 1, .max = 64},
    /* fresh-snapshot rechecks of differing rows before they are reported */
    {.name = "recheck_rounds", .type = KT_INT, .def = "3", .min = 0, .max = 100},
    /* how long to wait for the target's watermark to pass the snapshot */
    {.name = "catchup_timeout_s", .type = KT_INT, .def = "120", .min = 1, .max = 86400},
    {.name = NULL},
};

static const KeyDesc root_keys[] = {
    {.name = "pipeline",
     .type = KT_STRING,
     .required = true,
     .pattern = "^[a-z_][a-z0-9_]{0,40}$",
     .pattern_hint = "use a lower-case letter or underscore, then up to 40 lower-case letters, "
                     "digits or underscores (it is part of slot names)"},
    {.name = "source", .type = KT_OBJECT, .required = true, .children = source_keys},
    {.name = "target", .type = KT_OBJECT, .required = true, .children = target_keys},
    {.name = "schema", .type = KT_STRING, .def = "\"existing\"", .one_of = schema_modes},
    {.name = "apply", .type = KT_OBJECT, .children = apply_keys},
    {.name = "copy", .type = KT_OBJECT, .children = copy_keys},
    {.name = "log", .type = KT_OBJECT, .children = log_keys},
    {.name = "service", .type = KT_OBJECT, .children = service_keys},
    {.name = "profile", .type = KT_OBJECT, .children = profile_keys},
    {.name = "verify", .type = KT_OBJECT, .children = verify_keys},
    /* per source table: target, filter, columns, add (core/transform, docs/TRANSFORMS.md) */
    {.name = "mapping", .type = KT_MAPTREE, .def = "{}", .check = check_mapping},
    {.name = NULL},
};

/* ---- messages ---------------------------------------------------------- */

static int fail_at(const Loader *ld, Mark m, const char *path, const char *fmt, ...)
    TM_PRINTF(4, 5);

static int fail_at(const Loader *ld, Mark m, const char *path, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (path && *path)
        return tm_fail(-EINVAL, "%s:%d:%d: %s: %s", ld->name, m.line, m.col, path, msg);
    return tm_fail(-EINVAL, "%s:%d:%d: %s", ld->name, m.line, m.col, msg);
}

static Mark mark_of(yaml_mark_t m)
{
    return (Mark){(int)m.line + 1, (int)m.column + 1};
}

/* Reader errors carry only a byte offset; count lines and characters up to it. */
static Mark mark_at_offset(const Loader *ld, size_t off)
{
    Mark m = {1, 1};

    for (size_t i = 0; i < off && i < ld->len; i++) {
        unsigned char c = (unsigned char)ld->text[i];

        if (c == '\n') {
            m.line++;
            m.col = 1;
        } else if ((c & 0xc0) != 0x80) {
            m.col++;
        }
    }
    return m;
}

static int syntax_error(const Loader *ld)
{
    const yaml_parser_t *p = &ld->parser;
    const char *problem = p->problem ? p->problem : "unknown error";
    Mark m;

    if (p->error == YAML_MEMORY_ERROR)
        xalloc_die();
    m = p->error == YAML_READER_ERROR ? mark_at_offset(ld, p->problem_offset)
                                      : mark_of(p->problem_mark);
    if (p->context)
        return tm_fail(-EINVAL, "%s:%d:%d: YAML syntax error: %s (%s at line %d)", ld->name, m.line,
                       m.col, problem, p->context, (int)p->context_mark.line + 1);
    return tm_fail(-EINVAL, "%s:%d:%d: YAML syntax error: %s", ld->name, m.line, m.col, problem);
}

/* "source.tables[2]"; malloc'd. */
static char *node_path(const Node *n)
{
    char *pp, *s;

    if (!n || !n->parent)
        return xstrdup("");
    pp = node_path(n->parent);
    if (n->key)
        s = *pp ? xasprintf("%s.%s", pp, n->key) : xstrdup(n->key);
    else
        s = xasprintf("%s[%zu]", pp, n->index);
    free(pp);
    return s;
}

static char *path_join(const char *path, const char *key)
{
    return *path ? xasprintf("%s.%s", path, key) : xstrdup(key);
}

/* "string \"abc\"", "integer 5", "a list"... for "expected X, got Y". */
static void describe(const json_t *v, char *buf, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = strlen(s);

        if (n > 40)
            snprintf(buf, len, "string \"%.40s...\"", s);
        else
            snprintf(buf, len, "string \"%s\"", s);
        break;
    }
    case JSON_INTEGER:
        snprintf(buf, len, "integer %" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_TRUE:
        snprintf(buf, len, "boolean true");
        break;
    case JSON_FALSE:
        snprintf(buf, len, "boolean false");
        break;
    case JSON_NULL:
        snprintf(buf, len, "nothing (null)");
        break;
    case JSON_ARRAY:
        snprintf(buf, len, "a list");
        break;
    case JSON_OBJECT:
        snprintf(buf, len, "a mapping");
        break;
    case JSON_REAL:
        snprintf(buf, len, "a number");
        break;
    }
}

static const char *type_words(KeyType t)
{
    switch (t) {
    case KT_STRING:
        return "a string";
    case KT_INT:
        return "an integer";
    case KT_BOOL:
        return "a boolean (true or false)";
    case KT_STRLIST:
        return "a list of strings";
    case KT_OBJECT:
    case KT_STRMAP:
    case KT_MAPTREE:
        return "a mapping";
    case KT_LISTTREE:
        return "a list";
    }
    return "?";
}

/* Optimal string alignment distance, so a swapped pair ("tabels") costs 1. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t *prev2 = xcalloc(lb + 1, sizeof(size_t));
    size_t *prev = xcalloc(lb + 1, sizeof(size_t));
    size_t *cur = xcalloc(lb + 1, sizeof(size_t));
    size_t d;

    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t *t;

        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = prev[j] + 1;

            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (prev[j - 1] + cost < v)
                v = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1;
            cur[j] = v;
        }
        t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    d = prev[lb];
    free(prev2);
    free(prev);
    free(cur);
    return d;
}

/*
 * The closest of n names (each the first member of a stride-sized element,
 * which fits both KeyDesc rows and string arrays), or NULL when none is close
 * enough to be a plausible typo.
 */
static const char *suggest(const char *word, const void *base, size_t n, size_t stride)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;

    if (strlen(word) > 64)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *cand = *(const char *const *)((const char *)base + i * stride);
        size_t d = edit_distance(word, cand);

        if (d < best_d && d <= (strlen(cand) + 2) / 3 && d < strlen(word)) {
            best = cand;
            best_d = d;
        }
    }
    return best;
}

/* ---- YAML to json + Nodes --------------------------------------------- */

static void node_free(Node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->key);
    free(n);
}

static Node *node_add(Node *parent, Mark at)
{
    Node *n = xcalloc(1, sizeof(*n));

    n->at = at;
    n->key_at = at;
    n->parent = parent;
    if (parent) {
        parent->kids = xrealloc(parent->kids, (parent->nkids + 1) * sizeof(Node *));
        parent->kids[parent->nkids++] = n;
    }
    return n;
}

static Node *node_kid(const Node *obj, const char *key)
{
    for (size_t i = 0; i < obj->nkids; i++)
        if (obj->kids[i]->key && strcmp(obj->kids[i]->key, key) == 0)
            return obj->kids[i];
    return NULL;
}

/* Hands value to the parent container at once, so an error never leaks it. */
static void node_set(Loader *ld, Node *n, json_t *value)
{
    if (!value)
        xalloc_die();
    n->json = value;
    if (!n->parent) {
        json_decref(ld->tree);
        ld->tree = value;
    } else if (json_is_object(n->parent->json)) {
        if (json_object_set_new(n->parent->json, n->key, value) < 0)
            xalloc_die();
    } else if (json_array_append_new(n->parent->json, value) < 0) {
        xalloc_die();
    }
}

static int next_event(Loader *ld, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ld->parser, ev))
        return syntax_error(ld);
    return 0;
}

static bool is_word(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

static bool looks_integer(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* YAML 1.2 core schema, restricted to what a config needs (no floats). */
static json_t *plain_scalar(const char *s, size_t len, bool *overflow)
{
    static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};

    if (len == 0 || is_word(s, nulls))
        return json_null();
    if (is_word(s, trues))
        return json_true();
    if (is_word(s, falses))
        return json_false();
    if (looks_integer(s)) {
        char *end;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != ERANGE)
            return json_integer((json_int_t)v);
        *overflow = true;
    }
    return json_stringn(s, len);
}

/* Anchors, aliases and tags would make positions and types ambiguous. */
static int reject_extras(const Loader *ld, const Node *at, const yaml_event_t *ev)
{
    const yaml_char_t *anchor = NULL, *tag = NULL;
    char *path;
    int rc;

    if (ev->type == YAML_SCALAR_EVENT) {
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    }
    if (!anchor && !tag)
        return 0;
    path = node_path(at);
    if (anchor)
        rc = fail_at(ld, mark_of(ev->start_mark), path, "YAML anchors (&%s) are not supported",
                     (const char *)anchor);
    else
        rc = fail_at(ld, mark_of(ev->start_mark), path, "YAML tags (%s) are not supported",
                     (const char *)tag);
    free(path);
    return rc;
}

static int parse_node(Loader *ld, const yaml_event_t *ev, Node *n, int depth);

static int parse_sequence(Loader *ld, Node *n, int depth)
{
    node_set(ld, n, json_array());
    for (size_t i = 0;; i++) {
        yaml_event_t ev;
        Node *kid;
        int rc = next_event(ld, &ev);

        if (rc < 0)
            return rc;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        kid = node_add(n, mark_of(ev.start_mark));
        kid->index = i;
        rc = parse_node(ld, &ev, kid, depth + 1);
        yaml_event_delete(&ev);
        if (rc < 0)
            return rc;
    }
}

static int parse_mapping(Loader *ld, Node *n, int depth)
{
    node_set(ld, n, json_object());
    for (;;) {
        yaml_event_t kev, vev;
        Node *kid, *dup;
        const char *key;
        Mark key_at;
        int rc = next_event(ld, &kev);

        if (rc < 0)
            return rc;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return 0;
        }
        key_at = mark_of(kev.start_mark);
        rc = reject_extras(ld, n, &kev);
        if (rc == 0 && kev.type != YAML_SCALAR_EVENT) {
            char *path = node_path(n);

            rc = fail_at(ld, key_at, path, "mapping keys must be plain names");
            free(path);
        }
        if (rc == 0 && memchr(kev.data.scalar.value, '\0', kev.data.scalar.length)) {
            char *path = node_path(n);

            rc = fail_at(ld, key_at, path, "a key contains a NUL character");
            free(path);
        }
        if (rc < 0) {
            yaml_event_delete(&kev);
            return rc;
        }
        key = (const char *)kev.data.scalar.value;
        dup = node_kid(n, key);
        if (dup) {
            char *path = node_path(dup);

            rc = fail_at(ld, key_at, path, "duplicate key (first at line %d)", dup->key_at.line);
            free(path);
            yaml_event_delete(&kev);
            return rc;
        }
        rc = next_event(ld, &vev);
        if (rc < 0) {
            yaml_event_delete(&kev);
            return rc;
        }
        kid = node_add(n, mark_of(vev.start_mark));
        kid->key = xstrdup(key);
        kid->key_at = key_at;
        yaml_event_delete(&kev);
        rc = parse_node(ld, &vev, kid, depth + 1);
        yaml_event_delete(&vev);
        if (rc < 0)
            return rc;
    }
}

static int parse_node(Loader *ld, const yaml_event_t *ev, Node *n, int depth)
{
    int rc;

    if (depth > MAX_DEPTH) {
        char *path = node_path(n);

        rc = fail_at(ld, n->at, path, "nested deeper than %d levels", MAX_DEPTH);
        free(path);
        return rc;
    }
    rc = reject_extras(ld, n, ev);
    if (rc < 0)
        return rc;
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *s = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        json_t *v;

        if (memchr(s, '\0', len)) {
            char *path = node_path(n);

            rc = fail_at(ld, n->at, path, "the value contains a NUL character");
            free(path);
            return rc;
        }
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            v = plain_scalar(s, len, &n->overflow);
        else
            v = json_stringn(s, len);
        node_set(ld, n, v);
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
        return parse_sequence(ld, n, depth);
    case YAML_MAPPING_START_EVENT:
        return parse_mapping(ld, n, depth);
    case YAML_ALIAS_EVENT: {
        char *path = node_path(n);

        rc = fail_at(ld, n->at, path, "YAML aliases (*%s) are not supported",
                     (const char *)ev->data.alias.anchor);
        free(path);
        return rc;
    }
    default: {
        char *path = node_path(n);

        rc = fail_at(ld, n->at, path, "unexpected YAML event %d", (int)ev->type);
        free(path);
        return rc;
    }
    }
}

/* Stream of exactly one document whose root is a mapping. */
static int parse_stream(Loader *ld)
{
    yaml_event_t ev;
    int rc;

    if ((rc = next_event(ld, &ev)) < 0)
        return rc;
    yaml_event_delete(&ev); /* STREAM-START */
    if ((rc = next_event(ld, &ev)) < 0)
        return rc;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        return fail_at(ld, (Mark){1, 1}, NULL, "the configuration is empty");
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */

    if ((rc = next_event(ld, &ev)) < 0)
        return rc;
    ld->root = node_add(NULL, mark_of(ev.start_mark));
    rc = parse_node(ld, &ev, ld->root, 0);
    yaml_event_delete(&ev);
    if (rc < 0)
        return rc;

    if ((rc = next_event(ld, &ev)) < 0)
        return rc;
    yaml_event_delete(&ev); /* DOCUMENT-END */
    if ((rc = next_event(ld, &ev)) < 0)
        return rc;
    if (ev.type != YAML_STREAM_END_EVENT) {
        rc = fail_at(ld, mark_of(ev.start_mark), NULL,
                     "more than one YAML document; a config is a single document");
        yaml_event_delete(&ev);
        return rc;
    }
    yaml_event_delete(&ev);

    if (json_is_null(ld->root->json))
        return fail_at(ld, (Mark){1, 1}, NULL, "the configuration is empty");
    if (!json_is_object(ld->root->json)) {
        char got[96];

        describe(ld->root->json, got, sizeof(got));
        return fail_at(ld, ld->root->at, NULL,
                       "the top level must be a mapping of settings, got %s", got);
    }
    return 0;
}

/* ---- schema walk ------------------------------------------------------- */

/* Expands "{key}" with the top-level string value of key. */
static char *expand_template(const Loader *ld, const char *tmpl)
{
    size_t cap = strlen(tmpl) + 1, len = 0;
    char *out = xmalloc(cap);

    for (const char *p = tmpl; *p;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        const char *piece = p;
        size_t plen = 1;
        char *key = NULL;

        if (close) {
            const char *v;

            key = xstrndup(p + 1, (size_t)(close - p - 1));
            v = json_string_value(json_object_get(ld->tree, key));
            piece = v ? v : "";
            plen = strlen(piece);
            p = close + 1;
        } else {
            p++;
        }
        if (len + plen + 1 > cap) {
            cap = (len + plen + 1) * 2;
            out = xrealloc(out, cap);
        }
        memcpy(out + len, piece, plen);
        len += plen;
        free(key);
    }
    out[len] = '\0';
    return out;
}

static json_t *default_value(const Loader *ld, const KeyDesc *row)
{
    json_t *v;

    if (!row->def)
        return json_object(); /* only objects get here without a def */
    v = json_loads(row->def, JSON_DECODE_ANY, NULL);
    if (!v)
        abort(); /* a broken schema row, not a user error */
    if (json_is_string(v) && strchr(json_string_value(v), '{')) {
        char *s = expand_template(ld, json_string_value(v));

        json_decref(v);
        v = json_string(s);
        free(s);
    }
    return v;
}

static bool is_required(const KeyDesc *row, const json_t *obj)
{
    const char *v;

    if (row->required)
        return true;
    if (!row->required_if_key)
        return false;
    v = json_string_value(json_object_get(obj, row->required_if_key));
    return v && strcmp(v, row->required_if_value) == 0;
}

static int unknown_key(const Loader *ld, const Node *kid, const KeyDesc *rows)
{
    char *path = node_path(kid);
    size_t n = 0;
    const char *best;
    int rc;

    while (rows[n].name)
        n++;
    best = suggest(kid->key, rows, n, sizeof(*rows));
    if (best) {
        rc = fail_at(ld, kid->key_at, path, "unknown key (did you mean \"%s\"?)", best);
    } else {
        char known[512];
        size_t len = 0;

        known[0] = '\0';
        for (size_t i = 0; i < n && len < sizeof(known); i++)
            len += (size_t)snprintf(known + len, sizeof(known) - len, "%s%s", i ? ", " : "",
                                    rows[i].name);
        rc = fail_at(ld, kid->key_at, path, "unknown key (known keys here: %s)", known);
    }
    free(path);
    return rc;
}

static int validate_object(Loader *ld, Node *obj, const KeyDesc *rows, const char *path);

static int validate_string(const Loader *ld, const Node *n, const KeyDesc *row, const char *path)
{
    const char *s = json_string_value(n->json);

    if (row->one_of && !is_word(s, row->one_of)) {
        char allowed[256];
        size_t len = 0, count = 0;
        const char *best;

        allowed[0] = '\0';
        for (; row->one_of[count]; count++)
            if (len < sizeof(allowed))
                len += (size_t)snprintf(allowed + len, sizeof(allowed) - len, "%s%s",
                                        count ? ", " : "", row->one_of[count]);
        best = suggest(s, row->one_of, count, sizeof(*row->one_of));
        if (best)
            return fail_at(ld, n->at, path, "\"%s\" is not one of %s (did you mean \"%s\"?)", s,
                           allowed, best);
        return fail_at(ld, n->at, path, "\"%s\" is not one of %s", s, allowed);
    }
    if (row->pattern) {
        regex_t re;
        int m;

        if (regcomp(&re, row->pattern, REG_EXTENDED | REG_NOSUB) != 0)
            abort(); /* a broken schema row */
        m = regexec(&re, s, 0, NULL, 0);
        regfree(&re);
        if (m != 0)
            return fail_at(ld, n->at, path, "invalid value \"%s\": %s", s,
                           row->pattern_hint ? row->pattern_hint : row->pattern);
    }
    return 0;
}

static int validate_value(Loader *ld, Node *n, const KeyDesc *row, const char *path)
{
    char got[96];
    int rc = 0;

    describe(n->json, got, sizeof(got));
    switch (row->type) {
    case KT_STRING:
        if (!json_is_string(n->json))
            return fail_at(ld, n->at, path, "expected %s, got %s", type_words(row->type), got);
        rc = validate_string(ld, n, row, path);
        break;
    case KT_INT: {
        json_int_t v;

        if (n->overflow)
            return fail_at(ld, n->at, path,
                           "%s is out of range (%" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT
                           ")",
                           json_string_value(n->json), row->min, row->max);
        if (!json_is_integer(n->json))
            return fail_at(ld, n->at, path, "expected %s, got %s", type_words(row->type), got);
        v = json_integer_value(n->json);
        if (v < row->min || v > row->max)
            return fail_at(ld, n->at, path,
                           "%" JSON_INTEGER_FORMAT " is out of range (%" JSON_INTEGER_FORMAT
                           "..%" JSON_INTEGER_FORMAT ")",
                           v, row->min, row->max);
        break;
    }
    case KT_BOOL:
        if (!json_is_boolean(n->json))
            return fail_at(ld, n->at, path, "expected %s, got %s", type_words(row->type), got);
        break;
    case KT_STRLIST:
        if (!json_is_array(n->json))
            return fail_at(ld, n->at, path, "expected %s, got %s", type_words(row->type), got);
        for (size_t i = 0; i < n->nkids; i++) {
            Node *el = n->kids[i];

            if (!json_is_string(el->json)) {
                char *ep = node_path(el);

                describe(el->json, got, sizeof(got));
                rc = fail_at(ld, el->at, ep, "expected a string, got %s", got);
                free(ep);
                return rc;
            }
        }
        break;
    case KT_OBJECT:
        if (!json_is_object(n->json))
            return fail_at(ld, n->at, path, "expected %s, got %s", type_words(row->type), got);
        rc = validate_object(ld, n, row->children, path);
        break;
    case KT_STRMAP:
        if (!json_is_object(n->json))
            return fail_at(ld, n->at, path, "expected %s, got %s", type_words(row->type), got);
        for (size_t i = 0; i < n->nkids; i++) {
            Node *el = n->kids[i];

            if (!json_is_string(el->json) && !json_is_integer(el->json) &&
                !json_is_boolean(el->json)) {
                char *ep = node_path(el);

                describe(el->json, got, sizeof(got));
                rc = fail_at(ld, el->at, ep, "expected a string, number or boolean, got %s", got);
                free(ep);
                return rc;
            }
        }
        break;
    case KT_MAPTREE:
    case KT_LISTTREE:
        if (row->type == KT_MAPTREE ? !json_is_object(n->json) : !json_is_array(n->json))
            return fail_at(ld, n->at, path, "expected %s, got %s", type_words(row->type), got);
        break;
    }
    if (rc == 0 && row->check)
        rc = row->check(ld, n, path);
    return rc;
}

/*
 * Unknown keys first, in document order, so the first typo is the one
 * reported; then each schema row in order, which lets later rows depend on
 * earlier ones (defaults derived from pipeline, required_if on target.type).
 */
static int validate_object(Loader *ld, Node *obj, const KeyDesc *rows, const char *path)
{
    for (size_t i = 0; i < obj->nkids; i++) {
        const KeyDesc *row = rows;

        while (row->name && strcmp(row->name, obj->kids[i]->key) != 0)
            row++;
        if (!row->name)
            return unknown_key(ld, obj->kids[i], rows);
    }

    for (const KeyDesc *row = rows; row->name; row++) {
        Node *kid = node_kid(obj, row->name);
        char *kpath = path_join(path, row->name);
        int rc;

        if (!kid || json_is_null(kid->json)) {
            if (is_required(row, obj->json)) {
                if (kid)
                    rc = fail_at(ld, kid->at, kpath, "required key has no value");
                else
                    rc = fail_at(ld, obj->at, kpath, "required key is missing");
                free(kpath);
                return rc;
            }
            if (!row->def && row->type != KT_OBJECT) {
                free(kpath);
                continue;
            }
            if (!kid) {
                kid = node_add(obj, obj->at);
                kid->key = xstrdup(row->name);
            }
            node_set(ld, kid, default_value(ld, row));
        }
        rc = validate_value(ld, kid, row, kpath);
        free(kpath);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int check_readable_file(const Loader *ld, const Node *node, const char *path)
{
    const char *file = json_string_value(node->json);
    struct stat st;

    if (!*file)
        return fail_at(ld, node->at, path, "the file name is empty");
    if (stat(file, &st) < 0)
        return fail_at(ld, node->at, path, "cannot access \"%s\": %s", file, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail_at(ld, node->at, path, "\"%s\" is not a regular file", file);
    if (access(file, R_OK) < 0)
        return fail_at(ld, node->at, path, "cannot read \"%s\": %s", file, strerror(errno));
    /* libpq ignores a password file others may read (with only a warning on
     * stderr, then fails to authenticate): refuse it here, saying why. */
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return fail_at(ld, node->at, path,
                       "\"%s\" has group or world access (mode %04o), so libpq would ignore it:"
                       " chmod 0600 it, owned by the user tidemark runs as",
                       file, (unsigned)(st.st_mode & 07777));
    return 0;
}

static int check_tables(const Loader *ld, const Node *node, const char *path)
{
    TableName *seen = xcalloc(node->nkids, sizeof(*seen));
    size_t nseen = 0;
    int rc = 0;

    for (size_t i = 0; i < node->nkids && rc == 0; i++) {
        const Node *el = node->kids[i];
        char *ep = node_path(el);
        TableName t;

        if (sqlname_parse(json_string_value(el->json), &t.schema, &t.name) < 0) {
            char msg[512];

            snprintf(msg, sizeof(msg), "%s", tm_error());
            rc = fail_at(ld, el->at, ep, "%s", msg);
        } else {
            for (size_t j = 0; j < nseen; j++) {
                if (strcmp(seen[j].schema, t.schema) == 0 && strcmp(seen[j].name, t.name) == 0) {
                    char *disp = config_table_display(&t);

                    rc = fail_at(ld, el->at, ep, "table %s is listed twice (first at line %d)",
                                 disp, node->kids[j]->at.line);
                    free(disp);
                    break;
                }
            }
            seen[nseen++] = t;
        }
        free(ep);
    }
    for (size_t j = 0; j < nseen; j++) {
        free(seen[j].schema);
        free(seen[j].name);
    }
    free(seen);
    return rc;
}

/* A topic template may only use the placeholders the Kafka sink expands. */
static int check_topic_template(const Loader *ld, const Node *node, const char *path)
{
    static const char *const known[] = {"{prefix}", "{schema}", "{table}", NULL};
    const char *s = json_string_value(node->json);

    if (!*s)
        return fail_at(ld, node->at, path, "the topic template is empty");
    for (const char *p = strchr(s, '{'); p; p = strchr(p + 1, '{')) {
        const char *const *k = known;

        while (*k && strncmp(p, *k, strlen(*k)) != 0)
            k++;
        if (!*k)
            return fail_at(ld, node->at, path,
                           "unknown placeholder at \"%.20s\" (use {prefix}, {schema}, {table})", p);
    }
    return 0;
}

/*
 * source.type: a Kafka source is read by `tidemark apply` into a PostgreSQL
 * target; the Kafka-only keys mean nothing to a PostgreSQL source, so
 * writing them there is a mistake worth naming.
 */
static int check_source_type(const Loader *ld, const Node *node, const char *path)
{
    const Node *src = node->parent, *root = src ? src->parent : NULL;
    bool kafka = strcmp(json_string_value(node->json), "kafka") == 0;

    if (!kafka) {
        for (const char *const *k = kafka_source_only; *k; k++) {
            const Node *kid = node_kid(src, *k);

            if (kid) {
                char *kp = node_path(kid);
                int rc = fail_at(ld, kid->key_at, kp,
                                 "only a Kafka source has it (source.type:"
                                 " kafka, read by `tidemark apply`)");

                free(kp);
                return rc;
            }
        }
        return 0;
    }
    const Node *tgt = root ? node_kid(root, "target") : NULL;
    const Node *ttype = tgt ? node_kid(tgt, "type") : NULL;

    if (ttype && json_is_string(ttype->json) &&
        strcmp(json_string_value(ttype->json), "postgres") != 0) {
        char *tp = node_path(ttype);
        int rc = fail_at(ld, ttype->at, tp,
                         "a Kafka source (source.type: kafka) is applied to a PostgreSQL target"
                         " only");

        free(tp);
        return rc;
    }
    (void)path;
    return 0;
}

/* Topic names as Kafka allows them: 1 to 249 of a-z A-Z 0-9 . _ - */
static int check_topic_names(const Loader *ld, const Node *node, const char *path)
{
    (void)path;
    for (size_t i = 0; i < node->nkids; i++) {
        const char *t = json_string_value(node->kids[i]->json);
        size_t n = strlen(t);
        bool ok = n >= 1 && n <= 249 && strcmp(t, ".") != 0 && strcmp(t, "..") != 0;

        for (size_t k = 0; ok && k < n; k++)
            ok = (t[k] >= 'a' && t[k] <= 'z') || (t[k] >= 'A' && t[k] <= 'Z') ||
                 (t[k] >= '0' && t[k] <= '9') || t[k] == '.' || t[k] == '_' || t[k] == '-';
        if (!ok)
            return node_fail(ld, node->kids[i],
                             "\"%s\" is not a Kafka topic name (1 to 249 letters, digits, '.',"
                             " '_' or '-')",
                             t);
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_string_value(node->kids[j]->json), t) == 0)
                return node_fail(ld, node->kids[i], "topic %s is listed twice (first at line %d)",
                                 t, node->kids[j]->at.line);
    }
    return 0;
}

/* ---- verify: nested shapes ---------------------------------------------- */

static int node_fail(const Loader *ld, const Node *n, const char *fmt, ...) TM_PRINTF(3, 4);

static int node_fail(const Loader *ld, const Node *n, const char *fmt, ...)
{
    char msg[512];
    char *path = node_path(n);
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rc = fail_at(ld, n->at, path, "%s", msg);
    free(path);
    return rc;
}

static bool is_scalar(const json_t *v)
{
    return json_is_string(v) || json_is_integer(v) || json_is_boolean(v);
}

/* A [schema.]table name as the key of a mapping member. */
static int check_table_key(const Loader *ld, const Node *n)
{
    char *schema, *name;

    if (sqlname_parse(n->key, &schema, &name) < 0) {
        char msg[512];
        char *path = node_path(n);
        int rc;

        snprintf(msg, sizeof(msg), "%s", tm_error());
        rc = fail_at(ld, n->key_at, path, "%s", msg);
        free(path);
        return rc;
    }
    free(schema);
    free(name);
    return 0;
}

/* A column name, or (when list_ok) a non-empty list of them. */
static int check_columns(const Loader *ld, const Node *n, bool list_ok)
{
    if (json_is_string(n->json))
        return 0;
    if (!list_ok || !json_is_array(n->json) || n->nkids == 0)
        return node_fail(
            ld, n, list_ok ? "expected a column name or a list of them" : "expected a column name");
    for (size_t i = 0; i < n->nkids; i++)
        if (!json_is_string(n->kids[i]->json))
            return node_fail(ld, n->kids[i], "expected a column name");
    return 0;
}

static int check_rule(const Loader *ld, const Node *r)
{
    const char *kind = r->key;

    if (strcmp(kind, "not_null") == 0)
        return check_columns(ld, r, true);
    if (strcmp(kind, "unique") == 0) {
        if (!json_is_array(r->json))
            return node_fail(ld, r, "expected a list of column lists ([[a], [b, c]])");
        for (size_t i = 0; i < r->nkids; i++) {
            int rc = check_columns(ld, r->kids[i], true);

            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (strcmp(kind, "range") != 0 && strcmp(kind, "regex") != 0 && strcmp(kind, "allowed") != 0)
        return fail_at(ld, r->key_at, NULL,
                       "%s: unknown rule (not_null, unique, range, regex,"
                       " allowed)",
                       kind);
    if (!json_is_object(r->json))
        return node_fail(ld, r, "expected a mapping of columns");
    for (size_t i = 0; i < r->nkids; i++) {
        const Node *c = r->kids[i];

        if (kind[1] == 'a') { /* range */
            if (!json_is_array(c->json) || c->nkids != 2)
                return node_fail(ld, c, "expected [min, max] (null for an open end)");
            for (size_t k = 0; k < 2; k++)
                if (!is_scalar(c->kids[k]->json) && !json_is_null(c->kids[k]->json))
                    return node_fail(ld, c->kids[k], "expected a value or null");
            if (json_is_null(c->kids[0]->json) && json_is_null(c->kids[1]->json))
                return node_fail(ld, c, "min and max cannot both be open");
        } else if (kind[1] == 'e') { /* regex */
            if (!json_is_string(c->json) || !*json_string_value(c->json))
                return node_fail(ld, c, "expected a regular expression");
        } else { /* allowed */
            if (!json_is_array(c->json) || c->nkids == 0)
                return node_fail(ld, c, "expected a list of values");
            for (size_t k = 0; k < c->nkids; k++)
                if (!is_scalar(c->kids[k]->json))
                    return node_fail(ld, c->kids[k], "expected a value");
        }
    }
    return 0;
}

static int check_verify_rules(const Loader *ld, const Node *node, const char *path)
{
    (void)path;
    for (size_t i = 0; i < node->nkids; i++) {
        const Node *t = node->kids[i];
        int rc = check_table_key(ld, t);

        if (rc < 0)
            return rc;
        if (!json_is_object(t->json))
            return node_fail(ld, t,
                             "expected a mapping of rules (not_null, unique, range, regex,"
                             " allowed)");
        for (size_t k = 0; k < t->nkids; k++)
            if ((rc = check_rule(ld, t->kids[k])) < 0)
                return rc;
    }
    return 0;
}

static int check_verify_fks(const Loader *ld, const Node *node, const char *path)
{
    static const char *const keys[] = {"table", "columns", "references", "ref_columns", NULL};

    (void)path;
    for (size_t i = 0; i < node->nkids; i++) {
        const Node *fk = node->kids[i];
        const Node *cols, *refs;
        char *s, *n;
        int rc;

        if (!json_is_object(fk->json))
            return node_fail(ld, fk, "expected {table, columns, references, ref_columns}");
        for (size_t k = 0; k < fk->nkids; k++)
            if (!is_word(fk->kids[k]->key, keys))
                return fail_at(ld, fk->kids[k]->key_at, NULL,
                               "%s: unknown key (table, columns, references, ref_columns)",
                               fk->kids[k]->key);
        for (size_t k = 0; k < 3; k++) {
            const Node *v = node_kid(fk, k == 0 ? "table" : k == 1 ? "columns" : "references");

            if (!v)
                return node_fail(ld, fk, "%s is required",
                                 k == 0   ? "table"
                                 : k == 1 ? "columns"
                                          : "references");
            if (k != 1) {
                if (!json_is_string(v->json) ||
                    sqlname_parse(json_string_value(v->json), &s, &n) < 0)
                    return node_fail(ld, v, "expected a table name");
                free(s);
                free(n);
            }
        }
        cols = node_kid(fk, "columns");
        refs = node_kid(fk, "ref_columns");
        if ((rc = check_columns(ld, cols, true)) < 0 ||
            (refs && (rc = check_columns(ld, refs, true)) < 0))
            return rc;
        if (refs && (json_is_array(cols->json) ? json_array_size(cols->json) : 1) !=
                        (json_is_array(refs->json) ? json_array_size(refs->json) : 1))
            return node_fail(ld, refs, "must name as many columns as columns");
    }
    return 0;
}

static int check_verify_spots(const Loader *ld, const Node *node, const char *path)
{
    (void)path;
    for (size_t i = 0; i < node->nkids; i++) {
        const Node *t = node->kids[i];
        int rc = check_table_key(ld, t);

        if (rc < 0)
            return rc;
        if (!json_is_array(t->json))
            return node_fail(ld, t, "expected a list of keys");
        for (size_t k = 0; k < t->nkids; k++) {
            const Node *key = t->kids[k];

            if (is_scalar(key->json))
                continue;
            if (!json_is_array(key->json) || key->nkids == 0)
                return node_fail(ld, key,
                                 "expected a key value, or a list of values for a"
                                 " composite key");
            for (size_t c = 0; c < key->nkids; c++)
                if (!is_scalar(key->kids[c]->json))
                    return node_fail(ld, key->kids[c], "expected a value");
        }
    }
    return 0;
}

/* ---- mapping: checked by core/transform --------------------------------- */

/* The Node holding json (a container, so never a shared jansson singleton). */
static const Node *node_of(const Node *n, const json_t *json)
{
    if (n->json == json)
        return n;
    for (size_t i = 0; i < n->nkids; i++) {
        const Node *hit = node_of(n->kids[i], json);

        if (hit)
            return hit;
    }
    return NULL;
}

/* Directory of the config file, absolute, for relative lookup files. */
static char *config_dir(const char *name)
{
    const char *slash = strrchr(name, '/');
    char *dir, *abs;
    char cwd[4096];

    if (slash == name)
        return xstrdup("/");
    dir = slash ? xstrndup(name, (size_t)(slash - name)) : xstrdup(".");
    if (dir[0] == '/' || !getcwd(cwd, sizeof(cwd)))
        return dir;
    abs = strcmp(dir, ".") == 0 ? xstrdup(cwd) : xasprintf("%s/%s", cwd, dir);
    free(dir);
    return abs;
}

/*
 * mapping: each key a source table, each value validated by mapping_check(),
 * which locates a bad value as (container, key or index); the Node tree
 * turns that into file:line:col.
 */
static int check_mapping(const Loader *ld, const Node *node, const char *path)
{
    char *dir = config_dir(ld->name);
    int rc = 0;

    (void)path;
    for (size_t i = 0; i < node->nkids && rc == 0; i++) {
        const Node *kid = node->kids[i], *at;
        char *schema, *name;
        XfWhere where = {0};
        char msg[768];

        if ((rc = check_table_key(ld, kid)) < 0)
            break;
        if (sqlname_parse(kid->key, &schema, &name) < 0)
            abort(); /* check_table_key accepted it */
        for (size_t j = 0; j < i && rc == 0; j++) {
            char *s2, *n2;

            if (sqlname_parse(node->kids[j]->key, &s2, &n2) < 0)
                continue;
            if (strcmp(s2, schema) == 0 && strcmp(n2, name) == 0)
                rc = node_fail(ld, kid, "table is mapped twice (first at line %d)",
                               node->kids[j]->key_at.line);
            free(s2);
            free(n2);
        }
        free(schema);
        free(name);
        if (rc < 0 || mapping_check(kid->json, dir, &where) == 0)
            continue;
        snprintf(msg, sizeof(msg), "%s", tm_error());
        at = where.container ? node_of(kid, where.container) : NULL;
        if (at && where.key && node_kid(at, where.key))
            at = node_kid(at, where.key);
        else if (at && !where.key && where.index >= 0 && (size_t)where.index < at->nkids)
            at = at->kids[where.index];
        at = at ? at : kid;
        if (where.at_key) {
            char *kp = node_path(at);

            rc = fail_at(ld, at->key_at, kp, "%s", msg);
            free(kp);
        } else {
            rc = node_fail(ld, at, "%s", msg);
        }
    }
    free(dir);
    return rc;
}

/* ---- Config ------------------------------------------------------------ */

static char *opt_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? xstrdup(s) : NULL;
}

/* Scalars of a KT_STRMAP as strings: YAML's 5 and true read as "5" and "true". */
static char *scalar_str(const json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return xstrdup(json_is_true(v) ? "true" : "false");
}

static void fill_kafka(Config *cfg, const json_t *tgt)
{
    const json_t *props = json_object_get(tgt, "properties");
    const char *key;
    const json_t *v;
    size_t i = 0;

    cfg->target.kafka.brokers = opt_str(tgt, "brokers");
    cfg->target.kafka.topic_prefix = opt_str(tgt, "topic_prefix");
    cfg->target.kafka.topic = opt_str(tgt, "topic");
    cfg->target.kafka.tombstones = json_is_true(json_object_get(tgt, "tombstones"));
    cfg->target.kafka.state_dir = opt_str(tgt, "state_dir");
    cfg->target.kafka.decimal_mode = opt_str(tgt, "decimal.handling.mode");
    cfg->target.kafka.time_mode = opt_str(tgt, "time.precision.mode");
    cfg->target.kafka.binary_mode = opt_str(tgt, "binary.handling.mode");
    cfg->target.kafka.interval_mode = opt_str(tgt, "interval.handling.mode");
    cfg->target.kafka.hstore_mode = opt_str(tgt, "hstore.handling.mode");
    cfg->target.kafka.money_digits =
        (int)json_integer_value(json_object_get(tgt, "money.fraction.digits"));
    cfg->target.kafka.include_unknown =
        json_is_true(json_object_get(tgt, "include.unknown.datatypes"));
    cfg->target.kafka.skipped_ops = opt_str(tgt, "skipped.operations");
    cfg->target.kafka.schemas = json_is_true(json_object_get(tgt, "schemas.enable"));
    cfg->target.kafka.dead_letter =
        strcmp(json_string_value(json_object_get(tgt, "undeliverable")), "dead_letter") == 0;
    cfg->target.kafka.nproperties = json_object_size(props);
    cfg->target.kafka.prop_keys = xcalloc(cfg->target.kafka.nproperties + 1, sizeof(char *));
    cfg->target.kafka.prop_values = xcalloc(cfg->target.kafka.nproperties + 1, sizeof(char *));
    json_object_foreach((json_t *)props, key, v)
    {
        cfg->target.kafka.prop_keys[i] = xstrdup(key);
        cfg->target.kafka.prop_values[i++] = scalar_str(v);
    }
}

/* The keys and values of a KT_STRMAP (properties), as strings. */
static void fill_props(const json_t *props, size_t *n, char ***keys, char ***values)
{
    const char *key;
    const json_t *v;
    size_t i = 0;

    *n = json_object_size(props);
    *keys = xcalloc(*n + 1, sizeof(char *));
    *values = xcalloc(*n + 1, sizeof(char *));
    json_object_foreach((json_t *)props, key, v)
    {
        (*keys)[i] = xstrdup(key);
        (*values)[i++] = scalar_str(v);
    }
}

static void fill_kafka_source(Config *cfg, const json_t *src)
{
    const json_t *topics = json_object_get(src, "topics");

    cfg->source.kafka.brokers = opt_str(src, "brokers");
    cfg->source.kafka.group = opt_str(src, "group");
    cfg->source.kafka.topic_prefix = opt_str(src, "topic_prefix");
    cfg->source.kafka.ntopics = json_array_size(topics);
    cfg->source.kafka.topics = xcalloc(cfg->source.kafka.ntopics + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->source.kafka.ntopics; i++)
        cfg->source.kafka.topics[i] = xstrdup(json_string_value(json_array_get(topics, i)));
    fill_props(json_object_get(src, "properties"), &cfg->source.kafka.nproperties,
               &cfg->source.kafka.prop_keys, &cfg->source.kafka.prop_values);
}

static void fill_endpoint(ConfigEndpoint *ep, const json_t *obj)
{
    ep->conninfo = opt_str(obj, "conninfo");
    ep->password_file = opt_str(obj, "password_file");
}

/* The tree is valid here, so every lookup succeeds. */
static Config *config_from_tree(const char *name, json_t *tree)
{
    Config *cfg = xcalloc(1, sizeof(*cfg));
    const json_t *src = json_object_get(tree, "source");
    const json_t *tgt = json_object_get(tree, "target");
    const json_t *apply = json_object_get(tree, "apply");
    const json_t *log = json_object_get(tree, "log");
    const json_t *tables = json_object_get(src, "tables");

    cfg->path = xstrdup(name);
    cfg->pipeline = opt_str(tree, "pipeline");
    cfg->source.type = opt_str(src, "type");
    fill_endpoint(&cfg->source.conn, src);
    fill_kafka_source(cfg, src);
    cfg->source.slot = opt_str(src, "slot");
    cfg->source.publication = opt_str(src, "publication");
    cfg->source.ntables = json_array_size(tables);
    cfg->source.tables = xcalloc(cfg->source.ntables, sizeof(TableName));
    for (size_t i = 0; i < cfg->source.ntables; i++) {
        TableName *t = &cfg->source.tables[i];

        if (sqlname_parse(json_string_value(json_array_get(tables, i)), &t->schema, &t->name) < 0)
            abort(); /* check_tables accepted it */
    }
    cfg->target.type = opt_str(tgt, "type");
    fill_endpoint(&cfg->target.conn, tgt);
    fill_kafka(cfg, tgt);
    cfg->apply.batch_max_changes =
        (long)json_integer_value(json_object_get(apply, "batch_max_changes"));
    cfg->apply.status_interval_ms =
        (long)json_integer_value(json_object_get(apply, "status_interval_ms"));
    cfg->apply.on_error_dead_letter =
        strcmp(json_string_value(json_object_get(apply, "on_error")), "dead_letter") == 0;
    cfg->apply.set_statements = json_is_true(json_object_get(apply, "set_statements"));
    json_t *copy = json_object_get(tree, "copy");
    cfg->copy.jobs = (long)json_integer_value(json_object_get(copy, "jobs"));
    cfg->copy.part_size_mb = (long)json_integer_value(json_object_get(copy, "part_size_mb"));
    cfg->copy.snapshot_reuse_s =
        (long)json_integer_value(json_object_get(copy, "snapshot_reuse_s"));
    cfg->copy.max_errors_early =
        (long)json_integer_value(json_object_get(copy, "max_errors_early"));
    cfg->schema_copy = strcmp(json_string_value(json_object_get(tree, "schema")), "copy") == 0;
    cfg->log.level = opt_str(log, "level");
    cfg->log.format = opt_str(log, "format");
    json_t *svc = json_object_get(tree, "service");
    cfg->service.listen = opt_str(svc, "listen");
    cfg->service.max_lag_seconds =
        (long)json_integer_value(json_object_get(svc, "max_lag_seconds"));
    cfg->service.heartbeat_interval_s =
        (long)json_integer_value(json_object_get(svc, "heartbeat_interval_s"));
    cfg->service.warn_retained_wal_mb =
        (long)json_integer_value(json_object_get(svc, "warn_retained_wal_mb"));
    cfg->tree = tree;
    return cfg;
}

static int load_buffer(const char *name, const char *text, size_t len, Config **out)
{
    Loader ld = {.name = name, .text = text, .len = len};
    int rc;

    *out = NULL;
    if (!yaml_parser_initialize(&ld.parser))
        xalloc_die();
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
    rc = parse_stream(&ld);
    if (rc == 0)
        rc = validate_object(&ld, ld.root, root_keys, "");
    yaml_parser_delete(&ld.parser);
    node_free(ld.root);
    if (rc < 0) {
        json_decref(ld.tree);
        return rc;
    }
    *out = config_from_tree(name, ld.tree);
    return 0;
}

int config_load_string(const char *name, const char *yaml, Config **out)
{
    return load_buffer(name, yaml, strlen(yaml), out);
}

int config_load(const char *path, Config **out)
{
    Buf text = BUF_INIT;
    int rc;

    *out = NULL;
    rc = buf_read_file(&text, path);
    if (rc < 0) {
        buf_release(&text);
        return tm_fail_ctx(rc, "%s", path);
    }
    rc = load_buffer(path, text.data, text.len, out);
    buf_release(&text);
    return rc;
}

void config_free(Config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->pipeline);
    free(cfg->source.type);
    free(cfg->source.kafka.brokers);
    free(cfg->source.kafka.group);
    free(cfg->source.kafka.topic_prefix);
    for (size_t i = 0; i < cfg->source.kafka.ntopics; i++)
        free(cfg->source.kafka.topics[i]);
    free(cfg->source.kafka.topics);
    for (size_t i = 0; i < cfg->source.kafka.nproperties; i++) {
        free(cfg->source.kafka.prop_keys[i]);
        free(cfg->source.kafka.prop_values[i]);
    }
    free(cfg->source.kafka.prop_keys);
    free(cfg->source.kafka.prop_values);
    free(cfg->source.conn.conninfo);
    free(cfg->source.conn.password_file);
    free(cfg->source.slot);
    free(cfg->source.publication);
    for (size_t i = 0; i < cfg->source.ntables; i++) {
        free(cfg->source.tables[i].schema);
        free(cfg->source.tables[i].name);
    }
    free(cfg->source.tables);
    free(cfg->target.type);
    free(cfg->target.conn.conninfo);
    free(cfg->target.conn.password_file);
    free(cfg->target.kafka.brokers);
    free(cfg->target.kafka.topic_prefix);
    free(cfg->target.kafka.topic);
    free(cfg->target.kafka.state_dir);
    free(cfg->target.kafka.decimal_mode);
    free(cfg->target.kafka.time_mode);
    free(cfg->target.kafka.binary_mode);
    free(cfg->target.kafka.interval_mode);
    free(cfg->target.kafka.hstore_mode);
    free(cfg->target.kafka.skipped_ops);
    for (size_t i = 0; i < cfg->target.kafka.nproperties; i++) {
        free(cfg->target.kafka.prop_keys[i]);
        free(cfg->target.kafka.prop_values[i]);
    }
    free(cfg->target.kafka.prop_keys);
    free(cfg->target.kafka.prop_values);
    free(cfg->log.level);
    free(cfg->log.format);
    free(cfg->service.listen);
    json_decref(cfg->tree);
    free(cfg);
}

int config_connect_params(const ConfigEndpoint *ep, const char **keys, const char **vals, int max)
{
    int need = ep->password_file ? 3 : 2;
    int n = 0;

    if (!ep->conninfo)
        return tm_fail(-EINVAL, "no PostgreSQL conninfo is configured for this connection (a Kafka"
                                " source or target has none; for `tidemark verify` of a Kafka"
                                " source, set source.conninfo to the database the topics come"
                                " from)");
    if (max < need)
        return tm_fail(-ENOSPC, "connection parameters need %d slots, only %d given", need, max);
    keys[n] = "dbname";
    vals[n++] = ep->conninfo;
    if (ep->password_file) {
        keys[n] = "passfile";
        vals[n++] = ep->password_file;
    }
    keys[n] = NULL;
    vals[n] = NULL;
    return n;
}

static bool plain_ident(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '$'))
            return false;
    return true;
}

static void append_ident(char **p, const char *s)
{
    char *o = *p;

    if (plain_ident(s)) {
        size_t n = strlen(s);

        memcpy(o, s, n);
        *p = o + n;
        return;
    }
    *o++ = '"';
    for (; *s; s++) {
        if (*s == '"')
            *o++ = '"';
        *o++ = *s;
    }
    *o++ = '"';
    *p = o;
}

char *config_table_display(const TableName *t)
{
    /* Worst case every character is a doubled quote, plus quotes, dot, NUL. */
    char *out = xmalloc(2 * (strlen(t->schema) + strlen(t->name)) + 6);
    char *p = out;

    append_ident(&p, t->schema);
    *p++ = '.';
    append_ident(&p, t->name);
    *p = '\0';
    return out;
}
