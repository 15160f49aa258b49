/*
 * Unit tests for the fallback pipeline's configuration: source and target
 * swapped, the forward tables by name (quoted ones survive), apply, service,
 * log and verify settings carried over, the derived names, and the refusals
 * (a mapping, a Kafka target, a name too long).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config/config.h"
#include "core/error.h"
#include "core/xmalloc.h"
#include "migration/reverse.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FWD                                                                                        \
    "pipeline: crm\n"                                                                              \
    "source:\n"                                                                                    \
    "  conninfo: \"host=old dbname=app options='-c x=\\\"y\\\"'\"\n"                               \
    "  password_file: %s\n"                                                                        \
    "target:\n"                                                                                    \
    "  conninfo: host=new dbname=app_new\n"                                                        \
    "apply: {batch_max_changes: 77}\n"                                                             \
    "service: {listen: \"127.0.0.1:9999\"}\n"                                                      \
    "verify: {rules: {public.customers: {not_null: [email]}}}\n"

static char pgpass[] = "/tmp/tm_test_reverse_XXXXXX";

/* yaml may name the password file with one %s (a mode 0600 file of ours). */
static Config *load(const char *yaml)
{
    Config *cfg = NULL;
    char *text = xasprintf(yaml, pgpass);
    int rc = config_load_string("fwd.yaml", text, &cfg);

    free(text);
    if (rc != 0)
        fail_msg("config rejected: %s", tm_error());
    return cfg;
}

static void test_swapped(void **state)
{
    Config *fwd = load(FWD), *rev = NULL;
    TableDef t[2] = {{.schema = "public", .name = "customers"},
                     {.schema = "Sales Dept", .name = "Order \"Lines\""}};
    TableSet tabs = {2, t};
    char *yaml = NULL;

    (void)state;
    assert_int_equal(reverse_build(fwd, &tabs, "/etc/tidemark/crm_reverse.yaml", &yaml, &rev), 0);
    assert_string_equal(rev->pipeline, "crm_reverse");
    assert_string_equal(rev->source.slot, "tidemark_crm_reverse");
    assert_string_equal(rev->source.publication, "tidemark_crm_reverse");
    assert_string_equal(rev->source.conn.conninfo, "host=new dbname=app_new");
    assert_string_equal(rev->target.conn.conninfo, "host=old dbname=app options='-c x=\"y\"'");
    assert_string_equal(rev->target.conn.password_file, pgpass);
    assert_null(rev->source.conn.password_file);
    assert_int_equal(rev->source.ntables, 2);
    assert_string_equal(rev->source.tables[1].schema, "Sales Dept");
    assert_string_equal(rev->source.tables[1].name, "Order \"Lines\"");
    assert_int_equal(rev->apply.batch_max_changes, 77);
    assert_string_equal(rev->service.listen, "127.0.0.1:9999");
    assert_false(rev->schema_copy);
    assert_non_null(json_object_get(json_object_get(json_object_get(rev->tree, "verify"), "rules"),
                                    "public.customers"));
    assert_non_null(strstr(yaml, "tidemark run --config /etc/tidemark/crm_reverse.yaml"));
    free(yaml);
    config_free(rev);
    config_free(fwd);
}

static void test_refusals(void **state)
{
    Config *mapped = load(FWD "mapping:\n  public.customers: {target: crm.clients}\n");
    Config *kafka =
        load("pipeline: crm\nsource: {conninfo: x}\ntarget: {type: kafka, brokers: b}\n");
    Config *longname = load("pipeline: a_pipeline_name_of_forty_characters_xx\nsource: {conninfo:"
                            " x}\ntarget: {conninfo: y}\n");
    char *why;

    (void)state;
    assert_non_null(why = reverse_refusal(mapped));
    assert_non_null(strstr(why, "no inverse"));
    free(why);
    assert_non_null(why = reverse_refusal(kafka));
    free(why);
    assert_non_null(why = reverse_refusal(longname));
    assert_non_null(strstr(why, "too long"));
    free(why);
    config_free(mapped);
    config_free(kafka);
    config_free(longname);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swapped),
        cmocka_unit_test(test_refusals),
    };

    int fd = mkstemp(pgpass), rc;

    if (fd < 0)
        return 1;
    close(fd);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(pgpass);
    return rc;
}
