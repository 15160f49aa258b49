/*
 * Unit tests for the Kafka sink's state file: a first start finds nothing,
 * init and per-table sync survive a reload, the write is atomic (no
 * temporary file left), and a foreign or corrupt file stops the daemon.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/xmalloc.h"
#include "sinks/kafka/kstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *make_dir(void)
{
    char *d = strdup("/tmp/tidemark-kstate-XXXXXX");

    assert_non_null(mkdtemp(d));
    return d;
}

static void remove_dir(const char *d)
{
    char *cmd = xasprintf("rm -rf '%s'", d);

    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static TableSet two_tables(void)
{
    TableSet set = {2, xcalloc(2, sizeof(TableDef))};

    set.t[0].schema = xstrdup("public");
    set.t[0].name = xstrdup("a");
    set.t[1].schema = xstrdup("app");
    set.t[1].name = xstrdup("b\"q");
    return set;
}

static void test_round_trip(void **state)
{
    char *base = make_dir();
    char *dir = xasprintf("%s/nested/dir", base); /* created on load */
    TableSet tabs = two_tables();
    KState st;
    bool synced;
    Lsn lsn;

    (void)state;
    assert_int_equal(kstate_load(&st, dir, "p1"), 0);
    assert_false(st.initialized);
    assert_int_equal(kstate_init(&st, 0x1000, &tabs), 0);
    kstate_table(&st, "public", "a", &synced, &lsn);
    assert_false(synced);
    assert_int_equal(kstate_set_synced(&st, "app", "b\"q", 0x2000), 0);
    kstate_release(&st);

    assert_int_equal(kstate_load(&st, dir, "p1"), 0);
    assert_true(st.initialized);
    assert_int_equal(st.start_lsn, 0x1000);
    kstate_table(&st, "public", "a", &synced, &lsn);
    assert_false(synced);
    assert_int_equal(lsn, LSN_INVALID);
    kstate_table(&st, "app", "b\"q", &synced, &lsn);
    assert_true(synced);
    assert_int_equal(lsn, 0x2000);
    kstate_table(&st, "public", "unknown", &synced, &lsn);
    assert_false(synced);
    /* A table added later is recorded on its first sync. */
    assert_int_equal(kstate_set_synced(&st, "public", "c", 0x3000), 0);
    kstate_release(&st);
    assert_int_equal(kstate_load(&st, dir, "p1"), 0);
    kstate_table(&st, "public", "c", &synced, &lsn);
    assert_true(synced);
    assert_int_equal(lsn, 0x3000);

    char *tmp = xasprintf("%s/state.json.tmp", dir);
    assert_int_equal(access(tmp, F_OK), -1);
    free(tmp);

    /* Another pipeline's directory is refused. */
    kstate_release(&st);
    assert_int_equal(kstate_load(&st, dir, "p2"), -EINVAL);
    assert_non_null(strstr(tm_error(), "belongs to pipeline \"p1\""));
    kstate_release(&st);

    tableset_release(&tabs);
    remove_dir(base);
    free(dir);
    free(base);
}

static void test_corrupt_file(void **state)
{
    char *dir = make_dir();
    char *path = xasprintf("%s/state.json", dir);
    FILE *f = fopen(path, "w");
    KState st;

    (void)state;
    fputs("{\"format\": 1, \"pipeline\": \"p\", \"start_lsn\": \"0/1\", \"tables\": [", f);
    fclose(f);
    assert_int_equal(kstate_load(&st, dir, "p"), -EINVAL);
    assert_non_null(strstr(tm_error(), "Fix or remove it"));
    kstate_release(&st);

    f = fopen(path, "w");
    fputs("{\"format\": 1, \"pipeline\": \"p\", \"start_lsn\": \"0/1\", \"tables\":"
          " [{\"schema\": \"s\", \"table\": \"t\", \"state\": \"synced\"}]}",
          f);
    fclose(f);
    assert_int_equal(kstate_load(&st, dir, "p"), -EINVAL);
    assert_non_null(strstr(tm_error(), "no valid sync_lsn"));
    kstate_release(&st);

    remove_dir(dir);
    free(path);
    free(dir);
}

static void test_unwritable_dir(void **state)
{
    KState st;

    (void)state;
    /* /proc refuses new directories even to root. */
    assert_true(kstate_load(&st, "/proc/tidemark-no/such", "p") < 0);
    assert_non_null(strstr(tm_error(), "cannot create the Kafka state directory"));
    kstate_release(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_corrupt_file),
        cmocka_unit_test(test_unwritable_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
