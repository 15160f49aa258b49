/*
 * Streaming-replication framing tests: XLogData and keepalive parsing from
 * hand-built frames, rejection of short, long and unknown frames, and the
 * exact 34 bytes of a standby status update.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "connectors/pg/walproto.h"
#include "core/buf.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LSN_START 0x0000001600000028ull
#define LSN_END   0x00000016B374D848ull
#define SEND_TIME 0x0002B8F2A1C3D4E5ll

static void build_xlogdata(Buf *b, const char *payload)
{
    buf_put_u8(b, 'w');
    buf_put_be64(b, LSN_START);
    buf_put_be64(b, LSN_END);
    buf_put_be64(b, (uint64_t)SEND_TIME);
    buf_append(b, payload, strlen(payload));
}

static void build_keepalive(Buf *b, uint8_t reply)
{
    buf_put_u8(b, 'k');
    buf_put_be64(b, LSN_END);
    buf_put_be64(b, (uint64_t)SEND_TIME);
    buf_put_u8(b, reply);
}

static int parse(const Buf *b, WalFrame *f)
{
    return walproto_parse((const uint8_t *)b->data, b->len, f);
}

static void test_xlogdata(void **state)
{
    Buf b = BUF_INIT;
    WalFrame f;

    (void)state;
    build_xlogdata(&b, "Bpayload");
    assert_int_equal(parse(&b, &f), 0);
    assert_int_equal(f.kind, 'w');
    assert_true(f.xlog.start == LSN_START);
    assert_true(f.xlog.end == LSN_END);
    assert_true(f.xlog.send_time == SEND_TIME);
    assert_int_equal(f.xlog.len, 8);
    /* The payload is not copied: it points just past the 25-byte header. */
    assert_ptr_equal(f.xlog.data, (const uint8_t *)b.data + 25);
    assert_memory_equal(f.xlog.data, "Bpayload", 8);
    buf_release(&b);
}

static void test_xlogdata_empty_payload(void **state)
{
    Buf b = BUF_INIT;
    WalFrame f;

    (void)state;
    build_xlogdata(&b, "");
    assert_int_equal(b.len, 25);
    assert_int_equal(parse(&b, &f), 0);
    assert_int_equal(f.kind, 'w');
    assert_int_equal(f.xlog.len, 0);
    buf_release(&b);
}

static void test_keepalive(void **state)
{
    Buf b = BUF_INIT;
    WalFrame f;

    (void)state;
    build_keepalive(&b, 0);
    assert_int_equal(b.len, 18);
    assert_int_equal(parse(&b, &f), 0);
    assert_int_equal(f.kind, 'k');
    assert_true(f.keepalive.wal_end == LSN_END);
    assert_true(f.keepalive.send_time == SEND_TIME);
    assert_false(f.keepalive.reply_requested);
    buf_release(&b);

    build_keepalive(&b, 1);
    assert_int_equal(parse(&b, &f), 0);
    assert_true(f.keepalive.reply_requested);
    buf_release(&b);
}

/* Every prefix of a frame's fixed part must fail; copies are exact-size so
 * ASan catches an over-read. */
static void check_prefixes_fail(const Buf *b, size_t upto)
{
    for (size_t n = 0; n < upto; n++) {
        uint8_t *copy = malloc(n);
        WalFrame f;

        if (n)
            memcpy(copy, b->data, n);
        tm_error_clear();
        int rc = walproto_parse(copy, n, &f);
        if (rc != -EBADMSG)
            fail_msg("prefix of %zu bytes returned %d", n, rc);
        assert_true(strlen(tm_error()) > 0);
        free(copy);
    }
}

static void test_truncated(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    build_xlogdata(&b, "");
    check_prefixes_fail(&b, 25);
    buf_release(&b);

    build_keepalive(&b, 1);
    check_prefixes_fail(&b, 18);
    buf_release(&b);
}

static void test_keepalive_too_long(void **state)
{
    Buf b = BUF_INIT;
    WalFrame f;

    (void)state;
    build_keepalive(&b, 0);
    buf_put_u8(&b, 0);
    tm_error_clear();
    assert_int_equal(parse(&b, &f), -EBADMSG);
    assert_non_null(strstr(tm_error(), "keepalive"));
    buf_release(&b);
}

static void test_unknown_kind(void **state)
{
    Buf b = BUF_INIT;
    WalFrame f;

    (void)state;
    build_keepalive(&b, 0);
    b.data[0] = 'r';
    tm_error_clear();
    assert_int_equal(parse(&b, &f), -EBADMSG);
    assert_non_null(strstr(tm_error(), "'r'"));
    buf_release(&b);

    buf_put_u8(&b, 0x00);
    tm_error_clear();
    assert_int_equal(parse(&b, &f), -EBADMSG);
    assert_non_null(strstr(tm_error(), "0x00"));
    buf_release(&b);
}

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void test_status(void **state)
{
    static const uint8_t expect[34] = {
        'r',                                            /* kind */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* write */
        0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8, 0x48, /* flush */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* apply */
        0x00, 0x02, 0xB8, 0xF2, 0xA1, 0xC3, 0xD4, 0xE5, /* clock */
        0x01,                                           /* reply */
    };
    Buf b = BUF_INIT;

    (void)state;
    walproto_status(&b, 0x0102030405060708ull, LSN_END, 0, SEND_TIME, true);
    assert_int_equal(b.len, 34);
    assert_memory_equal(b.data, expect, 34);
    buf_release(&b);

    walproto_status(&b, 1, 2, 3, 4, false);
    assert_int_equal(b.len, 34);
    assert_int_equal((uint8_t)b.data[0], 'r');
    assert_true(be64_at((const uint8_t *)b.data + 1) == 1);
    assert_true(be64_at((const uint8_t *)b.data + 9) == 2);
    assert_true(be64_at((const uint8_t *)b.data + 17) == 3);
    assert_true(be64_at((const uint8_t *)b.data + 25) == 4);
    assert_int_equal((uint8_t)b.data[33], 0);
    buf_release(&b);
}

static void test_status_appends(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    buf_puts(&b, "xy");
    walproto_status(&b, 0, 0, 0, 0, false);
    assert_int_equal(b.len, 36);
    assert_memory_equal(b.data, "xyr", 3);
    buf_release(&b);
}

static void test_now(void **state)
{
    (void)state;
    PgTime before = ((PgTime)time(NULL) - PG_EPOCH_OFFSET_SECS) * 1000000;
    PgTime now = walproto_now();
    PgTime after = ((PgTime)time(NULL) + 1 - PG_EPOCH_OFFSET_SECS) * 1000000;

    assert_true(now >= before);
    assert_true(now <= after);
    /* 2020-01-01 in PostgreSQL's epoch: catches a missing epoch shift or unit slip. */
    assert_true(now > 631152000LL * 1000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xlogdata),
        cmocka_unit_test(test_xlogdata_empty_payload),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_keepalive_too_long),
        cmocka_unit_test(test_unknown_kind),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_status_appends),
        cmocka_unit_test(test_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
