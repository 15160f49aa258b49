/*
 * The pipeline configuration: a YAML file parsed by libyaml into a jansson
 * tree, validated against one schema (types, required keys, defaults,
 * unknown keys rejected), then exposed as a typed struct. The raw tree stays
 * available (Config.tree, defaults filled in) for later features, and every
 * error names file:line:column and the key, so nothing connects on a bad
 * config.
 */
#ifndef TM_CONFIG_H
#define TM_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct TableName {
    char *schema; /* unquoted, case as in the catalog */
    char *name;
} TableName;

typedef struct ConfigEndpoint {
    char *conninfo;      /* libpq conninfo string or URI */
    char *password_file; /* optional: passed to libpq as passfile */
} ConfigEndpoint;

typedef struct Config {
    char *path;
    char *pipeline;
    struct {
        char *type; /* "postgres", or "kafka": tidemark's topics, read by `tidemark apply` */
        ConfigEndpoint conn; /* kafka: optional, the database the topics come from (verify) */
        char *slot;          /* default tidemark_<pipeline> */
        char *publication;   /* default tidemark_<pipeline> */
        size_t ntables;      /* 0: all tables of schema public */
        TableName *tables;
        struct {
            char *brokers;      /* bootstrap.servers */
            char *group;        /* consumer group; default tidemark-<pipeline> */
            char *topic_prefix; /* default: the pipeline name */
            size_t ntopics;     /* 0: every topic named <topic_prefix>.* */
            char **topics;
            size_t nproperties; /* extra librdkafka consumer settings */
            char **prop_keys;
            char **prop_values;
        } kafka;
    } source;
    struct {
        char *type; /* "postgres" or "kafka" */
        ConfigEndpoint conn;
        struct {
            char *brokers;      /* bootstrap.servers */
            char *topic_prefix; /* default: the pipeline name */
            char *topic;        /* template; NULL: "{prefix}.{schema}.{table}" */
            bool tombstones;    /* a null-value message after each delete */
            char *state_dir;    /* the sink's state file lives here */
            /* Debezium converter settings (docs/KAFKA.md), as configured */
            char *decimal_mode;  /* precise | double | string */
            char *time_mode;     /* adaptive | adaptive_time_microseconds | connect */
            char *binary_mode;   /* bytes | base64 | base64-url-safe | hex */
            char *interval_mode; /* numeric | string */
            char *hstore_mode;   /* json | map */
            int money_digits;    /* money.fraction.digits */
            bool include_unknown;
            char *skipped_ops;  /* "t", "c,u", "none", ... */
            bool schemas;       /* schemas.enable */
            bool dead_letter;   /* undeliverable: dead_letter */
            size_t nproperties; /* extra librdkafka settings */
            char **prop_keys;
            char **prop_values;
        } kafka;
    } target;
    struct {
        long batch_max_changes;    /* close a target txn after this many changes */
        long status_interval_ms;   /* standby status update interval */
        bool on_error_dead_letter; /* apply.on_error: default of mappings without on_error */
        bool set_statements;       /* apply.set_statements: gather changes per table */
    } apply;
    struct {
        long jobs;             /* parallel copy jobs; 0: number of cores */
        long part_size_mb;     /* tables larger than this are split into parts */
        long snapshot_reuse_s; /* a worker's snapshot serves its next tables this long */
        long max_errors_early; /* dead letters tolerated in the first 10% of the load; -1 off */
    } copy;
    bool schema_copy; /* schema: copy — create target tables from the source */
    struct {
        char *level;  /* error|warning|notice|info|debug */
        char *format; /* auto|text|json|journal */
    } log;
    struct {
        char *listen; /* host:port for /metrics, /healthz, /readyz; "" disables */
        long max_lag_seconds;
        long heartbeat_interval_s; /* 0 disables heartbeats */
        long warn_retained_wal_mb;
    } service;
    json_t *tree; /* the validated tree with defaults filled in */
} Config;

/*
 * Loads and validates path. Returns 0 and *out, or a negative errno-style
 * code with tm_error() set to "FILE:LINE:COL: KEY: what is wrong".
 */
int config_load(const char *path, Config **out);

/* Same, from a string (name is used in messages); for tests. */
int config_load_string(const char *name, const char *yaml, Config **out);

/* Frees everything cfg owns; NULL is fine. */
void config_free(Config *cfg);

/*
 * Fills PQconnectdbParams arrays (call it with expand_dbname = 1): "dbname"
 * carries the conninfo string or URI, "passfile" the password_file when set,
 * then a NULL terminator. max is the capacity of each array, terminator
 * included. Returns the number of pairs, or -ENOSPC when max is too small.
 * The values point into ep.
 */
int config_connect_params(const ConfigEndpoint *ep, const char **keys, const char **vals, int max);

/*
 * Returns malloc'd "schema.name" for messages, each part double-quoted (with
 * "" for a quote) only when it is not a plain lower-case identifier.
 */
char *config_table_display(const TableName *t);

#endif
