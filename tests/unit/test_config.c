/*
 * Unit tests for the config loader: a complete file, the defaults, and for
 * each kind of mistake the exact "file:line:col: key:" that points the user
 * at it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config/config.h"
#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Lines 1-5; tests append sections from line 6 on. */
#define BASE                                                                                       \
    "pipeline: orders\n"                                                                           \
    "source:\n"                                                                                    \
    "  conninfo: host=src dbname=app\n"                                                            \
    "target:\n"                                                                                    \
    "  conninfo: host=dst dbname=app\n"

static Config *load_ok(const char *yaml)
{
    Config *cfg = NULL;

    if (config_load_string("test.yaml", yaml, &cfg) != 0)
        fail_msg("config rejected: %s", tm_error());
    assert_non_null(cfg);
    return cfg;
}

/* Loading must fail and tm_error() must start with prefix. */
static void expect_error(const char *yaml, const char *prefix)
{
    Config *cfg = (Config *)&cfg;
    int rc = config_load_string("test.yaml", yaml, &cfg);

    if (rc == 0)
        fail_msg("config accepted, expected \"%s\"", prefix);
    assert_int_equal(rc, -EINVAL);
    assert_null(cfg);
    if (strncmp(tm_error(), prefix, strlen(prefix)) != 0)
        fail_msg("expected prefix \"%s\"\n  got \"%s\"", prefix, tm_error());
}

static void expect_error_has(const char *yaml, const char *prefix, const char *part)
{
    expect_error(yaml, prefix);
    if (!strstr(tm_error(), part))
        fail_msg("expected \"%s\" in \"%s\"", part, tm_error());
}

static char *temp_file(const char *content)
{
    char *path = strdup("/tmp/tidemark-test-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

static void test_full_config(void **state)
{
    char *pw_src = temp_file("*:*:*:*:secret\n");
    char *pw_dst = temp_file("*:*:*:*:secret\n");
    char yaml[2048];
    char *disp;
    Config *cfg;

    (void)state;
    snprintf(yaml, sizeof(yaml),
             "# every key\n"
             "pipeline: billing_2\n"
             "source:\n"
             "  conninfo: postgresql://repl@old-db/app\n"
             "  password_file: %s\n"
             "  slot: billing_slot\n"
             "  publication: billing_pub\n"
             "  tables:\n"
             "    - customers\n"
             "    - Sales.Invoices\n"
             "    - '\"Sales Dept\".\"Order Lines\"'\n"
             "target:\n"
             "  type: postgres\n"
             "  conninfo: 'host=new-db dbname=app user=writer'\n"
             "  password_file: \"%s\"\n"
             "apply:\n"
             "  batch_max_changes: 500\n"
             "  status_interval_ms: 2500\n"
             "log:\n"
             "  level: debug\n"
             "  format: json\n",
             pw_src, pw_dst);
    cfg = load_ok(yaml);

    assert_string_equal(cfg->path, "test.yaml");
    assert_string_equal(cfg->pipeline, "billing_2");
    assert_string_equal(cfg->source.conn.conninfo, "postgresql://repl@old-db/app");
    assert_string_equal(cfg->source.conn.password_file, pw_src);
    assert_string_equal(cfg->source.slot, "billing_slot");
    assert_string_equal(cfg->source.publication, "billing_pub");
    assert_int_equal(cfg->source.ntables, 3);
    assert_string_equal(cfg->source.tables[0].schema, "public");
    assert_string_equal(cfg->source.tables[0].name, "customers");
    assert_string_equal(cfg->source.tables[1].schema, "sales");
    assert_string_equal(cfg->source.tables[1].name, "invoices");
    assert_string_equal(cfg->source.tables[2].schema, "Sales Dept");
    assert_string_equal(cfg->source.tables[2].name, "Order Lines");
    disp = config_table_display(&cfg->source.tables[2]);
    assert_string_equal(disp, "\"Sales Dept\".\"Order Lines\"");
    free(disp);
    assert_string_equal(cfg->target.type, "postgres");
    assert_string_equal(cfg->target.conn.conninfo, "host=new-db dbname=app user=writer");
    assert_string_equal(cfg->target.conn.password_file, pw_dst);
    assert_int_equal(cfg->apply.batch_max_changes, 500);
    assert_int_equal(cfg->apply.status_interval_ms, 2500);
    assert_string_equal(cfg->log.level, "debug");
    assert_string_equal(cfg->log.format, "json");

    /* The tree keeps the user's values as written. */
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(cfg->tree, "apply"), "batch_max_changes")),
                     500);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(cfg->tree, "source"), "tables"), 1)),
                        "Sales.Invoices");

    config_free(cfg);
    unlink(pw_src);
    unlink(pw_dst);
    free(pw_src);
    free(pw_dst);
}

static void test_defaults(void **state)
{
    Config *cfg = load_ok(BASE);
    json_t *t;

    (void)state;
    assert_string_equal(cfg->source.slot, "tidemark_orders");
    assert_string_equal(cfg->source.publication, "tidemark_orders");
    assert_null(cfg->source.conn.password_file);
    assert_int_equal(cfg->source.ntables, 0);
    assert_string_equal(cfg->target.type, "postgres");
    assert_null(cfg->target.conn.password_file);
    assert_int_equal(cfg->apply.batch_max_changes, 10000);
    assert_int_equal(cfg->apply.status_interval_ms, 10000);
    assert_string_equal(cfg->log.level, "info");
    assert_string_equal(cfg->log.format, "auto");

    /* Defaults are in the tree too, so later features read one place. */
    t = cfg->tree;
    assert_string_equal(json_string_value(json_object_get(json_object_get(t, "source"), "slot")),
                        "tidemark_orders");
    assert_true(json_is_array(json_object_get(json_object_get(t, "source"), "tables")));
    assert_int_equal(json_array_size(json_object_get(json_object_get(t, "source"), "tables")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(t, "apply"), "batch_max_changes")),
        10000);
    assert_string_equal(json_string_value(json_object_get(json_object_get(t, "log"), "format")),
                        "auto");
    assert_null(json_object_get(json_object_get(t, "source"), "password_file"));
    config_free(cfg);
}

/* An optional section left empty (all its keys commented out) means defaults. */
static void test_empty_sections_take_defaults(void **state)
{
    Config *cfg = load_ok(BASE "apply:\n"
                               "  # batch_max_changes: 5\n"
                               "log: ~\n");

    (void)state;
    assert_int_equal(cfg->apply.batch_max_changes, 10000);
    assert_string_equal(cfg->log.level, "info");
    config_free(cfg);
}

static void test_every_log_value_parses(void **state)
{
    static const char *const levels[] = {"error", "warning", "notice", "info", "debug"};
    static const char *const formats[] = {"auto", "text", "json", "journal"};
    char yaml[512];

    (void)state;
    for (size_t i = 0; i < 5; i++) {
        Config *cfg;
        LogLevel lvl;
        LogFormat fmt;

        snprintf(yaml, sizeof(yaml), BASE "log:\n  level: %s\n  format: %s\n", levels[i],
                 formats[i % 4]);
        cfg = load_ok(yaml);
        assert_int_equal(log_level_parse(cfg->log.level, &lvl), 0);
        assert_int_equal(log_format_parse(cfg->log.format, &fmt), 0);
        config_free(cfg);
    }
}

static void test_unknown_top_level_key(void **state)
{
    (void)state;
    expect_error(BASE "pipline: x\n",
                 "test.yaml:6:1: pipline: unknown key (did you mean \"pipeline\"?)");
    expect_error_has(
        BASE "retries: 3\n", "test.yaml:6:1: retries: unknown key",
        "known keys here: pipeline, source, target, schema, apply, copy, log, service");
}

static void test_unknown_nested_key_suggests(void **state)
{
    (void)state;
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "  tabels: [orders]\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:4:3: source.tabels: unknown key (did you mean \"tables\"?)");
    expect_error(BASE "apply:\n  batch_max_change: 5\n",
                 "test.yaml:7:3: apply.batch_max_change: unknown key (did you mean "
                 "\"batch_max_changes\"?)");
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_error(BASE "apply:\n  batch_max_changes: abc\n",
                 "test.yaml:7:22: apply.batch_max_changes: expected an integer, got string "
                 "\"abc\"");
    /* Quoted scalars are strings, whatever they look like. */
    expect_error(BASE "apply:\n  batch_max_changes: \"5\"\n",
                 "test.yaml:7:22: apply.batch_max_changes: expected an integer, got string \"5\"");
    expect_error(BASE "apply:\n  status_interval_ms: 1.5\n",
                 "test.yaml:7:23: apply.status_interval_ms: expected an integer, got string "
                 "\"1.5\"");
    expect_error("pipeline: true\n",
                 "test.yaml:1:11: pipeline: expected a string, got boolean true");
    expect_error(BASE "apply: 5\n", "test.yaml:6:8: apply: expected a mapping, got integer 5");
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "  tables: orders\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:4:11: source.tables: expected a list of strings, got string "
                 "\"orders\"");
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "  publication: 123\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:4:16: source.publication: expected a string, got integer 123");
}

static void test_int_range(void **state)
{
    (void)state;
    expect_error(BASE "apply:\n  batch_max_changes: 0\n",
                 "test.yaml:7:22: apply.batch_max_changes: 0 is out of range (1..10000000)");
    expect_error(BASE "apply:\n  status_interval_ms: 600001\n",
                 "test.yaml:7:23: apply.status_interval_ms: 600001 is out of range (100..600000)");
    expect_error(BASE "apply:\n  batch_max_changes: 99999999999999999999\n",
                 "test.yaml:7:22: apply.batch_max_changes: 99999999999999999999 is out of range");

    Config *cfg = load_ok(BASE "apply:\n  batch_max_changes: +10000000\n");

    assert_int_equal(cfg->apply.batch_max_changes, 10000000);
    config_free(cfg);
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "target:\n"
                 "  type: postgres\n",
                 "test.yaml:5:3: target.conninfo: required key is missing");
    expect_error("source:\n"
                 "  conninfo: host=src\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:1:1: pipeline: required key is missing");
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n",
                 "test.yaml:1:1: target: required key is missing");
    expect_error("pipeline: orders\n"
                 "source: {}\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:2:9: source.conninfo: required key is missing");
    expect_error("pipeline:\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:1:10: pipeline: required key has no value");
}

static void test_bad_pipeline_name(void **state)
{
    (void)state;
    expect_error_has("pipeline: Orders-1\n", "test.yaml:1:11: pipeline: invalid value \"Orders-1\"",
                     "slot names");
    expect_error("pipeline: 1orders\n", "test.yaml:1:11: pipeline: invalid value \"1orders\"");
    expect_error("pipeline: a234567890123456789012345678901234567890xy\n",
                 "test.yaml:1:11: pipeline: invalid value");
    /* 41 characters is the longest allowed. */
    Config *cfg = load_ok("pipeline: a2345678901234567890123456789012345678901\n"
                          "source:\n"
                          "  conninfo: x\n"
                          "target:\n"
                          "  conninfo: y\n");
    assert_string_equal(cfg->source.slot, "tidemark_a2345678901234567890123456789012345678901");
    config_free(cfg);
}

static void test_bad_slot_and_enums(void **state)
{
    (void)state;
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "  slot: My-Slot\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:4:9: source.slot: invalid value \"My-Slot\"");
    expect_error(BASE "log:\n  level: debg\n",
                 "test.yaml:7:10: log.level: \"debg\" is not one of error, warning, notice, info, "
                 "debug (did you mean \"debug\"?)");
    expect_error(BASE "log:\n  format: xml\n",
                 "test.yaml:7:11: log.format: \"xml\" is not one of auto, text, json, journal");
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "target:\n"
                 "  type: rabbitmq\n",
                 "test.yaml:5:9: target.type: \"rabbitmq\" is not one of postgres, kafka");
}

static void test_kafka_target(void **state)
{
    const char *head = "pipeline: orders\n"
                       "source:\n"
                       "  conninfo: host=src\n"
                       "target:\n"
                       "  type: kafka\n";
    char yaml[1024];
    Config *cfg;

    (void)state;
    /* Defaults: prefix is the pipeline, tombstones on, no template, no properties. */
    snprintf(yaml, sizeof(yaml), "%s  brokers: k1:9092,k2:9092\n", head);
    cfg = load_ok(yaml);
    assert_string_equal(cfg->target.type, "kafka");
    assert_null(cfg->target.conn.conninfo);
    assert_string_equal(cfg->target.kafka.brokers, "k1:9092,k2:9092");
    assert_string_equal(cfg->target.kafka.topic_prefix, "orders");
    assert_null(cfg->target.kafka.topic);
    assert_true(cfg->target.kafka.tombstones);
    assert_string_equal(cfg->target.kafka.state_dir, "/var/lib/tidemark/orders");
    assert_int_equal(cfg->target.kafka.nproperties, 0);
    config_free(cfg);

    /* Everything set; properties keep YAML numbers and booleans as strings. */
    snprintf(yaml, sizeof(yaml),
             "%s  brokers: k1:9092\n"
             "  topic_prefix: cdc\n"
             "  topic: \"{prefix}-{schema}_{table}\"\n"
             "  tombstones: false\n"
             "  state_dir: /tmp/x\n"
             "  properties:\n"
             "    linger.ms: 20\n"
             "    compression.type: lz4\n"
             "    socket.nagle.disable: true\n",
             head);
    cfg = load_ok(yaml);
    assert_string_equal(cfg->target.kafka.topic_prefix, "cdc");
    assert_string_equal(cfg->target.kafka.topic, "{prefix}-{schema}_{table}");
    assert_false(cfg->target.kafka.tombstones);
    assert_string_equal(cfg->target.kafka.state_dir, "/tmp/x");
    assert_int_equal(cfg->target.kafka.nproperties, 3);
    assert_string_equal(cfg->target.kafka.prop_keys[0], "linger.ms");
    assert_string_equal(cfg->target.kafka.prop_values[0], "20");
    assert_string_equal(cfg->target.kafka.prop_keys[1], "compression.type");
    assert_string_equal(cfg->target.kafka.prop_values[1], "lz4");
    assert_string_equal(cfg->target.kafka.prop_values[2], "true");
    config_free(cfg);

    /* brokers is required for kafka; conninfo is not. */
    expect_error(head, "test.yaml:5:3: target.brokers: required key is missing");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  properties:\n    acks: [1]\n", head);
    expect_error(yaml, "test.yaml:8:11: target.properties.acks: expected a string, number or"
                       " boolean, got a list");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  properties: 5\n", head);
    expect_error(yaml, "test.yaml:7:15: target.properties: expected a mapping, got integer 5");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  topic: \"{prefix}.{db}\"\n", head);
    expect_error(yaml, "test.yaml:7:10: target.topic: unknown placeholder at \"{db}\"");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  tombstones: maybe\n", head);
    expect_error(yaml, "test.yaml:7:15: target.tombstones: expected a boolean");
    /* Debezium's converter settings: Debezium's defaults, its names, its values. */
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n", head);
    cfg = load_ok(yaml);
    assert_string_equal(cfg->target.kafka.decimal_mode, "precise");
    assert_string_equal(cfg->target.kafka.time_mode, "adaptive");
    assert_string_equal(cfg->target.kafka.binary_mode, "bytes");
    assert_string_equal(cfg->target.kafka.interval_mode, "numeric");
    assert_string_equal(cfg->target.kafka.hstore_mode, "json");
    assert_int_equal(cfg->target.kafka.money_digits, 2);
    assert_false(cfg->target.kafka.include_unknown);
    assert_string_equal(cfg->target.kafka.skipped_ops, "t");
    assert_false(cfg->target.kafka.schemas);
    assert_false(cfg->target.kafka.dead_letter);
    config_free(cfg);
    snprintf(yaml, sizeof(yaml),
             "%s  brokers: k\n  decimal.handling.mode: string\n"
             "  time.precision.mode: adaptive_time_microseconds\n"
             "  binary.handling.mode: base64-url-safe\n  skipped.operations: \"c,u\"\n"
             "  schemas.enable: true\n  undeliverable: dead_letter\n",
             head);
    cfg = load_ok(yaml);
    assert_string_equal(cfg->target.kafka.decimal_mode, "string");
    assert_string_equal(cfg->target.kafka.time_mode, "adaptive_time_microseconds");
    assert_string_equal(cfg->target.kafka.skipped_ops, "c,u");
    assert_true(cfg->target.kafka.schemas);
    assert_true(cfg->target.kafka.dead_letter);
    config_free(cfg);
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  decimal.handling.mode: exact\n", head);
    expect_error(yaml, "test.yaml:7:26: target.decimal.handling.mode: \"exact\" is not one of"
                       " precise, double, string");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  time.precision.mode: micro\n", head);
    expect_error(yaml, "test.yaml:7:24: target.time.precision.mode: \"micro\" is not one of");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  skipped.operations: \"c,x\"\n", head);
    expect_error(yaml, "test.yaml:7:23: target.skipped.operations:");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  money.fraction.digits: 40\n", head);
    expect_error(yaml, "test.yaml:7:26: target.money.fraction.digits:");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  decimal.handling: string\n", head);
    expect_error(yaml, "test.yaml:7:3: target.decimal.handling:");
}

static void test_bad_table_name_position(void **state)
{
    (void)state;
    expect_error_has("pipeline: orders\n"
                     "source:\n"
                     "  conninfo: host=src\n"
                     "  tables:\n"
                     "    - customers\n"
                     "    - public. orders\n"
                     "target:\n"
                     "  conninfo: host=dst\n",
                     "test.yaml:6:7: source.tables[1]: invalid table name \"public. orders\"",
                     "whitespace");
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "  tables: [customers, a.b.c]\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:4:23: source.tables[1]: invalid table name \"a.b.c\"");
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "  tables:\n"
                 "    - customers\n"
                 "    - 42\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:6:7: source.tables[1]: expected a string, got integer 42");
}

static void test_duplicate_table(void **state)
{
    (void)state;
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "  tables:\n"
                 "    - Orders\n"
                 "    - customers\n"
                 "    - public.orders\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:7:7: source.tables[2]: table public.orders is listed twice (first at "
                 "line 5)");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "  slot: a\n"
                 "  slot: b\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:5:3: source.slot: duplicate key (first at line 4)");
    expect_error(BASE "pipeline: again\n",
                 "test.yaml:6:1: pipeline: duplicate key (first at line 1)");
}

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 " bad indent: x\n",
                 "test.yaml:4:2: YAML syntax error: ");
    expect_error("pipeline: [orders\n", "test.yaml:2:1: YAML syntax error: ");
    expect_error("pipeline: \"orders\n", "test.yaml:2:1: YAML syntax error: ");
}

static void test_empty_and_non_mapping(void **state)
{
    (void)state;
    expect_error("", "test.yaml:1:1: the configuration is empty");
    expect_error("# nothing yet\n\n", "test.yaml:1:1: the configuration is empty");
    expect_error("---\n", "test.yaml:1:1: the configuration is empty");
    expect_error("- a\n- b\n",
                 "test.yaml:1:1: the top level must be a mapping of settings, got a list");
    expect_error("just a string\n",
                 "test.yaml:1:1: the top level must be a mapping of settings, got string");
    expect_error(BASE "---\npipeline: two\n", "test.yaml:6:1: more than one YAML document");
}

static void test_anchors_aliases_tags_rejected(void **state)
{
    (void)state;
    expect_error("pipeline: orders\n"
                 "source: &src\n"
                 "  conninfo: host=src\n"
                 "target: *src\n",
                 "test.yaml:2:9: source: YAML anchors (&src) are not supported");
    expect_error("pipeline: !!str orders\n", "test.yaml:1:11: pipeline: YAML tags");
}

static void test_missing_password_file(void **state)
{
    (void)state;
    expect_error_has("pipeline: orders\n"
                     "source:\n"
                     "  conninfo: host=src\n"
                     "  password_file: /nonexistent/tidemark/pgpass\n"
                     "target:\n"
                     "  conninfo: host=dst\n",
                     "test.yaml:4:18: source.password_file: cannot access "
                     "\"/nonexistent/tidemark/pgpass\"",
                     "No such file or directory");
    expect_error(BASE "  password_file: /tmp\n",
                 "test.yaml:6:18: target.password_file: \"/tmp\" is not a regular file");
}

static void test_password_file_mode(void **state)
{
    char *pw = temp_file("*:*:*:*:secret\n");
    const char *path = pw ? pw : ""; /* (temp_file asserts it) */
    char yaml[512], want[512];

    (void)state;
    /* The documented 0640 root:tidemark: libpq would ignore it. */
    assert_int_equal(chmod(pw, 0640), 0);
    snprintf(yaml, sizeof(yaml), BASE "  password_file: %s\n", path);
    snprintf(want, sizeof(want),
             "test.yaml:6:18: target.password_file: \"%s\" has group or world access (mode"
             " 0640), so libpq would ignore it: chmod 0600 it",
             path);
    expect_error_has(yaml, want, "owned by the user tidemark runs as");
    assert_int_equal(chmod(pw, 0600), 0);
    Config *cfg = load_ok(yaml);

    assert_string_equal(cfg->target.conn.password_file, pw);
    config_free(cfg);
    unlink(pw);
    free(pw);
}

static void test_load_file(void **state)
{
    char *path = temp_file(BASE "log:\n  level: warning\n");
    char *bad = temp_file("pipeline: orders\nsorce: {}\n");
    char prefix[256];
    Config *cfg = NULL;

    (void)state;
    if (config_load(path, &cfg) != 0)
        fail_msg("%s", tm_error());
    assert_string_equal(cfg->path, path);
    assert_string_equal(cfg->pipeline, "orders");
    assert_string_equal(cfg->log.level, "warning");
    config_free(cfg);

    /* Errors from a file are named by its path. */
    assert_int_equal(config_load(bad, &cfg), -EINVAL);
    assert_null(cfg);
    snprintf(prefix, sizeof(prefix), "%s:2:1: sorce: unknown key (did you mean \"source\"?)", bad);
    assert_string_equal(tm_error(), prefix);

    unlink(path);
    assert_int_equal(config_load(path, &cfg), -ENOENT);
    assert_null(cfg);
    snprintf(prefix, sizeof(prefix), "%s: cannot open: ", path);
    assert_int_equal(strncmp(tm_error(), prefix, strlen(prefix)), 0);

    unlink(bad);
    free(path);
    free(bad);
}

/* The shipped example must stay loadable; found next to this file's source. */
static void test_example_loads(void **state)
{
    char path[1024];
    const char *slash = strrchr(__FILE__, '/');
    Config *cfg = NULL;

    (void)state;
    snprintf(path, sizeof(path), "%.*s/../../config/examples/minimal.yaml",
             slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
    if (access(path, R_OK) != 0)
        skip();
    if (config_load(path, &cfg) != 0)
        fail_msg("%s", tm_error());
    assert_string_equal(cfg->pipeline, "orders");
    config_free(cfg);
}

static void test_free_null(void **state)
{
    (void)state;
    config_free(NULL);
}

static void test_connect_params(void **state)
{
    ConfigEndpoint ep = {.conninfo = "host=db", .password_file = NULL};
    const char *keys[3], *vals[3];

    (void)state;
    assert_int_equal(config_connect_params(&ep, keys, vals, 3), 1);
    assert_string_equal(keys[0], "dbname");
    assert_string_equal(vals[0], "host=db");
    assert_null(keys[1]);
    assert_null(vals[1]);

    ep.password_file = "/etc/tidemark/pgpass";
    assert_int_equal(config_connect_params(&ep, keys, vals, 3), 2);
    assert_string_equal(keys[1], "passfile");
    assert_string_equal(vals[1], "/etc/tidemark/pgpass");
    assert_null(keys[2]);
    assert_null(vals[2]);

    assert_int_equal(config_connect_params(&ep, keys, vals, 2), -ENOSPC);
}

static void expect_display(const char *schema, const char *name, const char *want)
{
    TableName t = {(char *)schema, (char *)name};
    char *got = config_table_display(&t);

    assert_string_equal(got, want);
    free(got);
}

static void test_table_display(void **state)
{
    (void)state;
    expect_display("public", "orders", "public.orders");
    expect_display("public", "t$1_x", "public.t$1_x");
    expect_display("Sales Dept", "Order Lines", "\"Sales Dept\".\"Order Lines\"");
    expect_display("public", "Orders", "public.\"Orders\"");
    expect_display("public", "a\"b", "public.\"a\"\"b\"");
    expect_display("public", "1x", "public.\"1x\"");
    expect_display("a.b", "c", "\"a.b\".c");
}

/* source.type: kafka, read by `tidemark apply`: its keys, defaults and mistakes. */
static void test_kafka_source(void **state)
{
    const char *head = "pipeline: orders\n"
                       "source:\n"
                       "  type: kafka\n";
    char yaml[1024];
    Config *cfg;
    const char *keys[4], *vals[4];

    (void)state;
    snprintf(yaml, sizeof(yaml), "%s  brokers: k1:9092\ntarget:\n  conninfo: host=dst\n", head);
    cfg = load_ok(yaml);
    assert_string_equal(cfg->source.type, "kafka");
    assert_null(cfg->source.conn.conninfo);
    assert_string_equal(cfg->source.kafka.brokers, "k1:9092");
    assert_string_equal(cfg->source.kafka.group, "tidemark-orders");
    assert_string_equal(cfg->source.kafka.topic_prefix, "orders");
    assert_int_equal(cfg->source.kafka.ntopics, 0);
    assert_string_equal(cfg->source.slot, "tidemark_orders");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cfg->tree, "source"),
                                                          "decimal.handling.mode")),
                        "precise");
    /* no PostgreSQL source: connecting to it says so instead of trying libpq's defaults */
    assert_int_equal(config_connect_params(&cfg->source.conn, keys, vals, 4), -EINVAL);
    assert_non_null(strstr(tm_error(), "source.conninfo"));
    config_free(cfg);

    snprintf(yaml, sizeof(yaml),
             "%s  brokers: k1:9092\n"
             "  conninfo: host=src\n"
             "  group: apply.orders-1\n"
             "  topics: [cdc.public.a, cdc.public.b]\n"
             "  properties: {session.timeout.ms: 6000}\n"
             "  decimal.handling.mode: string\n"
             "target:\n  conninfo: host=dst\n",
             head);
    cfg = load_ok(yaml);
    assert_string_equal(cfg->source.conn.conninfo, "host=src");
    assert_string_equal(cfg->source.kafka.group, "apply.orders-1");
    assert_int_equal(cfg->source.kafka.ntopics, 2);
    assert_string_equal(cfg->source.kafka.topics[1], "cdc.public.b");
    assert_int_equal(cfg->source.kafka.nproperties, 1);
    assert_string_equal(cfg->source.kafka.prop_values[0], "6000");
    config_free(cfg);

    /* mistakes, each at its place */
    snprintf(yaml, sizeof(yaml), "%starget:\n  conninfo: host=dst\n", head);
    expect_error(yaml, "test.yaml:3:3: source.brokers: required key is missing");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  grup: x\ntarget:\n  conninfo: d\n", head);
    expect_error(yaml, "test.yaml:5:3: source.grup: unknown key (did you mean \"group\"?)");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  group: \"a b\"\ntarget:\n  conninfo: d\n",
             head);
    expect_error(yaml, "test.yaml:5:10: source.group: invalid value \"a b\"");
    snprintf(yaml, sizeof(yaml),
             "%s  brokers: k\n  topics: [ok.topic, \"bad topic\"]\ntarget:\n  conninfo: d\n", head);
    expect_error(yaml, "test.yaml:5:22: source.topics[1]: \"bad topic\" is not a Kafka topic name");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\n  topics: [a.b, a.b]\ntarget:\n  conninfo: d\n",
             head);
    expect_error(yaml, "test.yaml:5:17: source.topics[1]: topic a.b is listed twice");
    snprintf(yaml, sizeof(yaml),
             "%s  brokers: k\n  time.precision.mode: micro\ntarget:\n  conninfo: d\n", head);
    expect_error(yaml, "test.yaml:5:24: source.time.precision.mode: \"micro\" is not one of");
    snprintf(yaml, sizeof(yaml), "%s  brokers: k\ntarget:\n  type: kafka\n  brokers: k\n", head);
    expect_error(yaml, "test.yaml:6:9: target.type: a Kafka source (source.type: kafka) is"
                       " applied to a PostgreSQL target only");
    /* Kafka-only keys on a PostgreSQL source */
    expect_error("pipeline: orders\n"
                 "source:\n"
                 "  conninfo: host=src\n"
                 "  group: g\n"
                 "target:\n"
                 "  conninfo: host=dst\n",
                 "test.yaml:4:3: source.group: only a Kafka source has it");
    /* a PostgreSQL source still needs its conninfo */
    expect_error("pipeline: orders\nsource:\n  type: postgres\ntarget:\n  conninfo: d\n",
                 "test.yaml:3:3: source.conninfo: required key is missing");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_empty_sections_take_defaults),
        cmocka_unit_test(test_every_log_value_parses),
        cmocka_unit_test(test_unknown_top_level_key),
        cmocka_unit_test(test_unknown_nested_key_suggests),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_int_range),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_bad_pipeline_name),
        cmocka_unit_test(test_bad_slot_and_enums),
        cmocka_unit_test(test_kafka_target),
        cmocka_unit_test(test_bad_table_name_position),
        cmocka_unit_test(test_duplicate_table),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_empty_and_non_mapping),
        cmocka_unit_test(test_anchors_aliases_tags_rejected),
        cmocka_unit_test(test_missing_password_file),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_connect_params),
        cmocka_unit_test(test_table_display),
        cmocka_unit_test(test_password_file_mode),
        cmocka_unit_test(test_kafka_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
