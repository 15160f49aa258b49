/*
 * Unit tests for currency conversion, encoding repair (LATIN1, the full
 * WIN1252 0x80-0x9F table, mojibake), ID remapping (offset, namespace,
 * lookup callback with a test double), SHA-256 against the FIPS vectors,
 * and masking.
 */
#include "xf_test.h"

#include "core/transform/sha256.h"

static XfCurrency cur(const char *rate, int scale, XfRound mode)
{
    XfCurrency c = {.scale = scale, .mode = mode};

    assert_int_equal(xf_dec_parse(rate, strlen(rate), &c.rate), 0);
    return c;
}

static void test_currency(void **state)
{
    XfCurrency eur = cur("1.0837", 2, XF_ROUND_HALF_EVEN);
    XfCurrency up = cur("1.0837", 2, XF_ROUND_HALF_UP);
    XfCurrency down = cur("0.5", 0, XF_ROUND_DOWN);
    XfCurrency away = cur("0.5", 0, XF_ROUND_UP);
    XfCurrency big = cur("1", 4, XF_ROUND_HALF_UP);
    Arena *a = xt_a();

    (void)state;
    XT_OK("108.37", xf_currency(&eur, S("100"), a, &out));
    XT_OK("0.11", xf_currency(&eur, S("0.1"), a, &out));
    /* 12.5 × 1.0837 = 13.54625: half-even and half-up differ only on exact ties. */
    XT_OK("13.55", xf_currency(&eur, S("12.5"), a, &out));
    XT_OK("13.55", xf_currency(&up, S("12.5"), a, &out));
    XT_OK("5.42", xf_currency(&eur, S("5"), a, &out)); /* 5.4185 */
    /* 4.69 × 0.5 = 2.345, an exact tie: half-even goes to 2.34, half-up to 2.35. */
    XfCurrency half_even = cur("0.5", 2, XF_ROUND_HALF_EVEN),
               half_up = cur("0.5", 2, XF_ROUND_HALF_UP);
    XT_OK("2.34", xf_currency(&half_even, S("4.69"), a, &out));
    XT_OK("2.35", xf_currency(&half_up, S("4.69"), a, &out));
    XT_OK("-5.42", xf_currency(&up, S("-5"), a, &out));
    XT_OK("2", xf_currency(&down, S("5"), a, &out));
    XT_OK("3", xf_currency(&away, S("5"), a, &out));
    XT_OK("-3", xf_currency(&away, S("-5"), a, &out));
    XT_OK("12345678901234567890123456789012.3457",
          xf_currency(&big, S("12345678901234567890123456789012.34567"), a, &out));
    XT_OK(NULL, xf_currency(&eur, XF_NULL, a, &out));
    XT_ERR("not a decimal amount", xf_currency(&eur, S("$100"), a, &out));
    XT_ERR("not a decimal amount", xf_currency(&eur, S("1,000"), a, &out));
}

static void test_half_even_ties(void **state)
{
    XfCurrency one = cur("1", 0, XF_ROUND_HALF_EVEN);
    Arena *a = xt_a();

    (void)state;
    XT_OK("2", xf_currency(&one, S("2.5"), a, &out));
    XT_OK("4", xf_currency(&one, S("3.5"), a, &out));
    XT_OK("-2", xf_currency(&one, S("-2.5"), a, &out));
    XT_OK("3", xf_currency(&one, S("2.5000001"), a, &out));
}

static void test_decode(void **state)
{
    static const uint16_t table[32] = {
        0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
        0x2039, 0x0152, 0,      0x017d, 0,      0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
        0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178,
    };
    Arena *a = xt_a();

    (void)state;
    XT_OK("Müller", xf_decode(XF_LATIN1, false, S("M\xfcller"), a, &out));
    XT_OK("Ünïcödé", xf_decode(XF_LATIN1, false,
                               S("\xdc"
                                 "n\xef"
                                 "c\xf6"
                                 "d\xe9"),
                               a, &out));
    XT_OK("“quoted” – €5", xf_decode(XF_WIN1252, false,
                                     S("\x93quoted\x94 \x96 \x80"
                                       "5"),
                                     a, &out));
    /* LATIN1 maps 0x80 to the C1 control U+0080, WIN1252 to the euro sign. */
    XT_OK("\xc2\x80", xf_decode(XF_LATIN1, false, S("\x80"), a, &out));
    /* Already UTF-8: left alone unless always is set. */
    XT_OK("Müller", xf_decode(XF_WIN1252, false, S("Müller"), a, &out));
    XT_OK("MÃ¼ller", xf_decode(XF_WIN1252, true, S("Müller"), a, &out));
    XT_ERR("0x81", xf_decode(XF_WIN1252, false, S("a\x81"), a, &out));
    XT_OK(NULL, xf_decode(XF_LATIN1, false, XF_NULL, a, &out));
    /* Every defined WIN1252 byte in 0x80..0x9F. */
    for (int b = 0x80; b <= 0x9f; b++) {
        char in[2] = {'x', (char)b}, want[8] = "x";
        XfStr got;
        int rc = xf_decode(XF_WIN1252, true, (XfStr){in, 2}, a, &got);

        if (!table[b - 0x80]) {
            assert_int_equal(rc, -EINVAL);
            continue;
        }
        assert_int_equal(rc, 0);
        want[1 + xf_utf8_encode(table[b - 0x80], want + 1)] = '\0';
        xt_eq(got, want, "win1252 byte");
    }
    /* Latin-1 upper half is the identity on code points. */
    for (int b = 0xa0; b <= 0xff; b++) {
        char in[1] = {(char)b}, want[4];
        XfStr got;

        assert_int_equal(xf_decode(XF_LATIN1, true, (XfStr){in, 1}, a, &got), 0);
        want[xf_utf8_encode((uint32_t)b, want)] = '\0';
        xt_eq(got, want, "latin1 byte");
    }
}

static void test_mojibake(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XT_OK("é", xf_fix_mojibake(false, S("Ã©"), a, &out));
    XT_OK("Müller café", xf_fix_mojibake(false, S("MÃ¼ller cafÃ©"), a, &out));
    XT_OK("“hi”", xf_fix_mojibake(false, S("â€œhiâ€\xc2\x9d"), a, &out));
    XT_OK("€", xf_fix_mojibake(false, S("â‚¬"), a, &out));
    /* Clean text, genuine Latin characters, and mixtures are left alone. */
    XT_OK("plain", xf_fix_mojibake(false, S("plain"), a, &out));
    XT_OK("café", xf_fix_mojibake(false, S("café"), a, &out));
    XT_OK("café Ã©", xf_fix_mojibake(false, S("café Ã©"), a, &out));
    XT_OK("日本", xf_fix_mojibake(false, S("日本"), a, &out));
    XT_OK("M\xfcller", xf_fix_mojibake(false, S("M\xfcller"), a, &out)); /* not UTF-8 at all */
    XT_ERR("double-encoded", xf_fix_mojibake(true, S("Ã©"), a, &out));
    XT_OK("café", xf_fix_mojibake(true, S("café"), a, &out));
    assert_true(xf_is_mojibake(S("Ã©")));
    assert_false(xf_is_mojibake(S("é")));
}

static void test_id_remap(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XT_OK("1000042", xf_id_remap(1, 1000000, S("42"), a, &out));
    XT_OK("423", xf_id_remap(10, 3, S(" 42 "), a, &out));
    XT_OK("-999999958", xf_id_remap(1, 42, S("-1000000000"), a, &out));
    XT_OK(NULL, xf_id_remap(1, 5, XF_NULL, a, &out));
    XT_ERR("not an integer id", xf_id_remap(1, 5, S("4a"), a, &out));
    XT_ERR("overflows bigint", xf_id_remap(1, 1, S("9223372036854775807"), a, &out));
    XT_ERR("overflows bigint", xf_id_remap(10, 0, S("922337203685477581"), a, &out));
    XT_ERR("out of bigint range", xf_id_remap(1, 0, S("9223372036854775808"), a, &out));
}

/* Test double for tidemark.id_map: customers 7 → 70007, anything else unknown. */
static int fake_lookup(void *ctx, const char *ns, const char *old, const char **new_out)
{
    int *calls = ctx;

    (*calls)++;
    if (strcmp(ns, "customers") == 0 && strcmp(old, "7") == 0) {
        *new_out = "70007";
        return 0;
    }
    if (strcmp(old, "boom") == 0)
        return tm_fail(-EIO, "target connection lost");
    return -ENOENT;
}

static void test_id_lookup(void **state)
{
    int calls = 0;
    XfIdLookup l = {fake_lookup, &calls};
    XfIdLookup none = {NULL, NULL};
    Arena *a = xt_a();

    (void)state;
    XT_OK("70007", xf_id_lookup(&l, "customers", S("7"), a, &out));
    XT_ERR("no new id", xf_id_lookup(&l, "customers", S("8"), a, &out));
    XT_ERR("target connection lost", xf_id_lookup(&l, "customers", S("boom"), a, &out));
    XT_OK(NULL, xf_id_lookup(&l, "customers", XF_NULL, a, &out));
    assert_int_equal(calls, 3);
    XT_ERR("no id map is connected", xf_id_lookup(&none, "customers", S("7"), a, &out));
}

static void test_sha256(void **state)
{
    char hex[65];
    char *million = malloc(1000000);
    Sha256 c;
    uint8_t d[32];

    (void)state;
    sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    memset(million, 'a', 1000000);
    sha256_init(&c);
    for (size_t off = 0; off < 1000000; off += 999) /* odd chunks cross block edges */
        sha256_update(&c, million + off, off + 999 > 1000000 ? 1000000 - off : 999);
    sha256_final(&c, d);
    assert_int_equal(d[0], 0xcd);
    assert_int_equal(d[31], 0xd0); /* cdc76e5c...046d39ccc7112cd0 */
    free(million);
}

static void test_masking(void **state)
{
    Arena *a = xt_a();

    (void)state;
    XfStr h1, h2, h3;
    assert_int_equal(xf_hash_sha256(S("s"), S("v"), a, &h1), 0);
    assert_int_equal(xf_hash_sha256(S("s"), S("v"), a, &h2), 0);
    assert_int_equal(xf_hash_sha256(S("t"), S("v"), a, &h3), 0);
    assert_int_equal(h1.len, 64);
    assert_memory_equal(h1.s, h2.s, 64);
    assert_memory_not_equal(h1.s, h3.s, 64);
    char want[65];
    sha256_hex("sv", 2, want);
    xt_eq(h1, want, "salt || value");
    XT_OK(NULL, xf_hash_sha256(S("s"), XF_NULL, a, &out));
    XT_OK("************1234", xf_mask_keep_last(4, '*', S("4111111111111234"), a, &out));
    XT_OK("••é", xf_mask_keep_last(1, 0x2022, S("çàé"), a, &out));
    XT_OK("***", xf_mask_keep_last(4, '*', S("123"), a, &out)); /* short: all of it */
    XT_OK("", xf_mask_keep_last(4, '*', S(""), a, &out));
    XT_OK("a***@example.com", xf_mask_email(S("alice@example.com"), a, &out));
    XT_OK("é***@b.org", xf_mask_email(S("élodie@b.org"), a, &out));
    XT_OK("q***@b", xf_mask_email(S("q\"@x\"@b"), a, &out));
    XT_ERR("not an email", xf_mask_email(S("alice"), a, &out));
    XT_ERR("not an email", xf_mask_email(S("@example.com"), a, &out));
    XT_ERR("not an email", xf_mask_email(S("alice@"), a, &out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_currency), cmocka_unit_test(test_half_even_ties),
        cmocka_unit_test(test_decode),   cmocka_unit_test(test_mojibake),
        cmocka_unit_test(test_id_remap), cmocka_unit_test(test_id_lookup),
        cmocka_unit_test(test_sha256),   cmocka_unit_test(test_masking),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    arena_free(xt_arena);
    return rc;
}
