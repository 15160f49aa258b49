/*
 * Unit tests for name parsing: plain names, middle names, particles,
 * "Last, First" order, titles and suffixes in both orders, single words,
 * and inputs that cannot be read.
 */
#include "xf_test.h"

typedef struct Want {
    const char *in, *title, *first, *middle, *last, *suffix;
} Want;

static void check(const Want *w, bool single_is_last)
{
    XfName n;
    Arena *a = xt_a();

    if (xf_parse_name(XF_CSTR(w->in), single_is_last, a, &n) != 0)
        fail_msg("parse_name(%s): %s", w->in, tm_error());
    xt_eq(n.title, w->title, w->in);
    xt_eq(n.first, w->first, w->in);
    xt_eq(n.middle, w->middle, w->in);
    xt_eq(n.last, w->last, w->in);
    xt_eq(n.suffix, w->suffix, w->in);
}

static void test_names(void **state)
{
    static const Want cases[] = {
        {"John Smith", NULL, "John", NULL, "Smith", NULL},
        {"  John   Smith ", NULL, "John", NULL, "Smith", NULL},
        {"John Paul Jones", NULL, "John", "Paul", "Jones", NULL},
        {"J. R. R. Tolkien", NULL, "J.", "R. R.", "Tolkien", NULL},
        {"Ludwig van Beethoven", NULL, "Ludwig", NULL, "van Beethoven", NULL},
        {"Johannes van der Berg", NULL, "Johannes", NULL, "van der Berg", NULL},
        {"Maria de la Cruz", NULL, "Maria", NULL, "de la Cruz", NULL},
        {"Maria Del Carmen Lopez", NULL, "Maria", "Del Carmen", "Lopez", NULL},
        {"Jean-Claude Van Damme", NULL, "Jean-Claude", NULL, "Van Damme", NULL},
        {"Wernher von Braun", NULL, "Wernher", NULL, "von Braun", NULL},
        {"Martin Luther King Jr.", NULL, "Martin", "Luther", "King", "Jr."},
        {"John Smith III", NULL, "John", NULL, "Smith", "III"},
        {"Jane Doe, PhD", NULL, "Jane", NULL, "Doe", "PhD"},
        {"John Smith Jr., MD", NULL, "John", NULL, "Smith", "Jr., MD"},
        {"Dr. Jane Doe", "Dr.", "Jane", NULL, "Doe", NULL},
        {"Mrs Emma Peel", "Mrs", "Emma", NULL, "Peel", NULL},
        {"Smith, John", NULL, "John", NULL, "Smith", NULL},
        {"Smith, John Paul", NULL, "John", "Paul", "Smith", NULL},
        {"van der Berg, Johannes", NULL, "Johannes", NULL, "van der Berg", NULL},
        {"Smith, John, Jr.", NULL, "John", NULL, "Smith", "Jr."},
        {"Smith, Dr. John", "Dr.", "John", NULL, "Smith", NULL},
        {"José Álvarez Núñez", NULL, "José", "Álvarez", "Núñez", NULL},
        {"John V", NULL, "John", NULL, "V", NULL}, /* an initial, not a suffix */
        {"Dr.", NULL, NULL, NULL, "Dr.", NULL},    /* a title alone is the name */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
        check(&cases[i], true);
}

static void test_single_and_empty(void **state)
{
    static const Want last = {"Cher", NULL, NULL, NULL, "Cher", NULL};
    static const Want first = {"Cher", NULL, "Cher", NULL, NULL, NULL};
    static const Want empty = {"   ", NULL, NULL, NULL, NULL, NULL};
    XfName n;

    (void)state;
    check(&last, true);
    check(&first, false);
    check(&empty, true);
    assert_int_equal(xf_parse_name(XF_NULL, true, xt_a(), &n), 0);
    assert_null(n.first.s);
    assert_null(n.last.s);
}

static void test_unreadable(void **state)
{
    XfName n;

    (void)state;
    assert_int_equal(xf_parse_name(S("a, b, c"), true, xt_a(), &n), -EINVAL);
    assert_non_null(strstr(tm_error(), "more than one comma"));
}

static void test_parts(void **state)
{
    XfName n;
    Arena *a = xt_a();

    (void)state;
    assert_int_equal(xf_parse_name(S("Dr. John Paul Jones Jr."), true, a, &n), 0);
    xt_eq(xf_name_part(&n, XF_NAME_GIVEN, a), "John Paul", "given");
    xt_eq(xf_name_part(&n, XF_NAME_TITLE, a), "Dr.", "title");
    xt_eq(xf_name_part(&n, XF_NAME_SUFFIX, a), "Jr.", "suffix");
    assert_int_equal(xf_parse_name(S("Jones"), true, a, &n), 0);
    xt_eq(xf_name_part(&n, XF_NAME_GIVEN, a), NULL, "given of a single name");
    assert_int_equal(xf_name_part_from_name("middle"), XF_NAME_MIDDLE);
    assert_int_equal(xf_name_part_from_name("nickname"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_single_and_empty),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_parts),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    arena_free(xt_arena);
    return rc;
}
