/*
 * pgoutput decoder tests: every message type decoded field by field from
 * bytes built by a small encoder, then every truncation and a set of corrupt
 * messages, each of which must fail cleanly. Truncated copies are malloc'd at
 * their exact length so that ASan turns any over-read into a failure.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "connectors/pg/pgoutput.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

#define RELID          16384u
#define LSN_A          0x00000016B374D848ull
#define LSN_B          0x00000016B374D9A0ull
#define LSN_C          0xFEDCBA9876543210ull
#define TS_A           0x0002B8F2A1C3D4E5ll
#define XID_A          0xDEADBEEFu
#define NUMERIC_TYPMOD ((10 << 16 | 2) + 4)

static Arena *arena;

/* ---- encoder ------------------------------------------------------------ */

static void put_u16(Buf *b, uint16_t v)
{
    buf_put_u8(b, (uint8_t)(v >> 8));
    buf_put_u8(b, (uint8_t)v);
}

static void put_str(Buf *b, const char *s)
{
    buf_append(b, s, strlen(s) + 1);
}

static void put_text(Buf *b, const char *s)
{
    buf_put_u8(b, 't');
    buf_put_be32(b, (uint32_t)strlen(s));
    buf_append(b, s, strlen(s));
}

static void put_bin(Buf *b, const void *data, uint32_t len)
{
    buf_put_u8(b, 'b');
    buf_put_be32(b, len);
    buf_append(b, data, len);
}

static void put_null(Buf *b)
{
    buf_put_u8(b, 'n');
}

static void put_unchanged(Buf *b)
{
    buf_put_u8(b, 'u');
}

static const uint8_t BIN_VALUE[] = {0x00, 0x01, 0xff, 0x00};

/* id=42, note=NULL, title='', blob=\x0001ff00, big='u' (unchanged toast). */
static void put_tuple_a(Buf *b)
{
    put_u16(b, 5);
    put_text(b, "42");
    put_null(b);
    put_text(b, "");
    put_bin(b, BIN_VALUE, sizeof(BIN_VALUE));
    put_unchanged(b);
}

/* Replica-identity key only: id=42, the rest null. */
static void put_tuple_key(Buf *b)
{
    put_u16(b, 2);
    put_text(b, "42");
    put_null(b);
}

/* A full old row. */
static void put_tuple_old(Buf *b)
{
    put_u16(b, 3);
    put_text(b, "41");
    put_text(b, "old note");
    put_null(b);
}

static void build_begin(Buf *b)
{
    buf_put_u8(b, 'B');
    buf_put_be64(b, LSN_A);
    buf_put_be64(b, (uint64_t)TS_A);
    buf_put_be32(b, XID_A);
}

static void build_commit(Buf *b)
{
    buf_put_u8(b, 'C');
    buf_put_u8(b, 0);
    buf_put_be64(b, LSN_A);
    buf_put_be64(b, LSN_B);
    buf_put_be64(b, (uint64_t)TS_A);
}

static void build_origin(Buf *b)
{
    buf_put_u8(b, 'O');
    buf_put_be64(b, LSN_C);
    put_str(b, "node_a");
}

static void build_relation(Buf *b)
{
    buf_put_u8(b, 'R');
    buf_put_be32(b, RELID);
    put_str(b, "public");
    put_str(b, "orders");
    buf_put_u8(b, 'd');
    put_u16(b, 3);
    buf_put_u8(b, 1);
    put_str(b, "id");
    buf_put_be32(b, 23);
    buf_put_be32(b, 0xffffffffu); /* typmod -1 */
    buf_put_u8(b, 0);
    put_str(b, "note");
    buf_put_be32(b, 25);
    buf_put_be32(b, 0xffffffffu);
    buf_put_u8(b, 0);
    put_str(b, "amount");
    buf_put_be32(b, 1700);
    buf_put_be32(b, NUMERIC_TYPMOD);
}

static void build_relation_catalog(Buf *b)
{
    buf_put_u8(b, 'R');
    buf_put_be32(b, 1259);
    put_str(b, "");
    put_str(b, "pg_class");
    buf_put_u8(b, 'f');
    put_u16(b, 0);
}

static void build_type(Buf *b)
{
    buf_put_u8(b, 'Y');
    buf_put_be32(b, 90000);
    put_str(b, "public");
    put_str(b, "mood");
}

static void build_type_catalog(Buf *b)
{
    buf_put_u8(b, 'Y');
    buf_put_be32(b, 3614);
    put_str(b, "");
    put_str(b, "tsvector");
}

static void build_insert(Buf *b)
{
    buf_put_u8(b, 'I');
    buf_put_be32(b, RELID);
    buf_put_u8(b, 'N');
    put_tuple_a(b);
}

static void build_update(Buf *b)
{
    buf_put_u8(b, 'U');
    buf_put_be32(b, RELID);
    buf_put_u8(b, 'N');
    put_tuple_a(b);
}

static void build_update_key(Buf *b)
{
    buf_put_u8(b, 'U');
    buf_put_be32(b, RELID);
    buf_put_u8(b, 'K');
    put_tuple_key(b);
    buf_put_u8(b, 'N');
    put_tuple_a(b);
}

static void build_update_old(Buf *b)
{
    buf_put_u8(b, 'U');
    buf_put_be32(b, RELID);
    buf_put_u8(b, 'O');
    put_tuple_old(b);
    buf_put_u8(b, 'N');
    put_tuple_a(b);
}

static void build_delete_key(Buf *b)
{
    buf_put_u8(b, 'D');
    buf_put_be32(b, RELID);
    buf_put_u8(b, 'K');
    put_tuple_key(b);
}

static void build_delete_old(Buf *b)
{
    buf_put_u8(b, 'D');
    buf_put_be32(b, RELID);
    buf_put_u8(b, 'O');
    put_tuple_old(b);
}

static void build_truncate(Buf *b)
{
    buf_put_u8(b, 'T');
    buf_put_be32(b, 3);
    buf_put_u8(b, TRUNCATE_CASCADE | TRUNCATE_RESTART_IDENTITY);
    buf_put_be32(b, RELID);
    buf_put_be32(b, RELID + 1);
    buf_put_be32(b, 0xfffffff0u);
}

static void build_truncate_plain(Buf *b)
{
    buf_put_u8(b, 'T');
    buf_put_be32(b, 1);
    buf_put_u8(b, 0);
    buf_put_be32(b, RELID);
}

static void build_message_tx(Buf *b)
{
    buf_put_u8(b, 'M');
    buf_put_u8(b, 1);
    buf_put_be64(b, LSN_B);
    put_str(b, "tidemark");
    buf_put_be32(b, 5);
    buf_append(b, "hello", 5);
}

static void build_message_notx(Buf *b)
{
    buf_put_u8(b, 'M');
    buf_put_u8(b, 0);
    buf_put_be64(b, LSN_C);
    put_str(b, "");
    buf_put_be32(b, sizeof(BIN_VALUE));
    buf_append(b, BIN_VALUE, sizeof(BIN_VALUE));
}

static void build_message_empty(Buf *b)
{
    buf_put_u8(b, 'M');
    buf_put_u8(b, 1);
    buf_put_be64(b, LSN_A);
    put_str(b, "p");
    buf_put_be32(b, 0);
}

typedef void (*Builder)(Buf *b);

static const Builder ALL_BUILDERS[] = {
    build_begin,        build_commit,           build_origin,
    build_relation,     build_relation_catalog, build_type,
    build_type_catalog, build_insert,           build_update,
    build_update_key,   build_update_old,       build_delete_key,
    build_delete_old,   build_truncate,         build_truncate_plain,
    build_message_tx,   build_message_notx,     build_message_empty,
};
#define NBUILDERS (sizeof(ALL_BUILDERS) / sizeof(ALL_BUILDERS[0]))

/* ---- helpers ------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    arena = arena_new(4096);
    tm_error_clear();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    arena_free(arena);
    arena = NULL;
    return 0;
}

static int decode(const Buf *b, Change *c)
{
    return pgoutput_decode((const uint8_t *)b->data, b->len, arena, c);
}

/* Decodes a message expected to be rejected with code; checks a message was set. */
static void expect_fail(const Buf *b, int code, const char *needle)
{
    Change c;

    tm_error_clear();
    int rc = decode(b, &c);
    assert_int_equal(rc, code);
    assert_true(strlen(tm_error()) > 0);
    if (needle && !strstr(tm_error(), needle))
        fail_msg("error \"%s\" does not mention \"%s\"", tm_error(), needle);
}

static void assert_in(const Buf *b, const char *p)
{
    assert_true(p >= b->data && p <= b->data + b->len);
}

static void check_text(const Buf *b, const ColValue *v, const char *s)
{
    assert_int_equal(v->state, COL_TEXT);
    assert_int_equal(v->len, strlen(s));
    assert_non_null(v->data);
    assert_in(b, v->data);
    if (strlen(s))
        assert_memory_equal(v->data, s, strlen(s));
}

static void check_null(const ColValue *v)
{
    assert_int_equal(v->state, COL_NULL);
    assert_int_equal(v->len, 0);
    assert_null(v->data);
}

static void check_tuple_a(const Buf *b, const Tuple *t)
{
    assert_int_equal(t->ncols, 5);
    check_text(b, &t->cols[0], "42");
    check_null(&t->cols[1]);
    /* Empty text is a value, distinct from NULL. */
    check_text(b, &t->cols[2], "");
    assert_int_equal(t->cols[3].state, COL_BINARY);
    assert_int_equal(t->cols[3].len, sizeof(BIN_VALUE));
    assert_in(b, t->cols[3].data);
    assert_memory_equal(t->cols[3].data, BIN_VALUE, sizeof(BIN_VALUE));
    assert_int_equal(t->cols[4].state, COL_UNCHANGED);
    assert_int_equal(t->cols[4].len, 0);
    assert_null(t->cols[4].data);
}

static void check_tuple_key(const Buf *b, const Tuple *t)
{
    assert_int_equal(t->ncols, 2);
    check_text(b, &t->cols[0], "42");
    check_null(&t->cols[1]);
}

static void check_tuple_old(const Buf *b, const Tuple *t)
{
    assert_int_equal(t->ncols, 3);
    check_text(b, &t->cols[0], "41");
    check_text(b, &t->cols[1], "old note");
    check_null(&t->cols[2]);
}

/* ---- valid messages ----------------------------------------------------- */

static void test_begin(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_begin(&b);
    assert_int_equal(b.len, 21);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_BEGIN);
    assert_true(c.begin.final_lsn == LSN_A);
    assert_true(c.begin.commit_time == TS_A);
    assert_true(c.begin.xid == XID_A);
    buf_release(&b);
}

static void test_commit(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_commit(&b);
    assert_int_equal(b.len, 26);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_COMMIT);
    assert_int_equal(c.commit.flags, 0);
    assert_true(c.commit.commit_lsn == LSN_A);
    assert_true(c.commit.end_lsn == LSN_B);
    assert_true(c.commit.commit_time == TS_A);
    buf_release(&b);
}

static void test_origin(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_origin(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_ORIGIN);
    assert_true(c.origin.commit_lsn == LSN_C);
    assert_string_equal(c.origin.name, "node_a");
    /* Names are copied to the arena, not left pointing at the wire bytes. */
    assert_false(c.origin.name >= b.data && c.origin.name < b.data + b.len);
    buf_release(&b);
}

static void test_relation(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_relation(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_RELATION);
    assert_int_equal(c.relation.oid, RELID);
    assert_string_equal(c.relation.schema, "public");
    assert_string_equal(c.relation.name, "orders");
    assert_int_equal(c.relation.replident, 'd');
    assert_int_equal(c.relation.ncols, 3);
    assert_string_equal(c.relation.cols[0].name, "id");
    assert_int_equal(c.relation.cols[0].type_oid, 23);
    assert_int_equal(c.relation.cols[0].typmod, -1);
    assert_true(c.relation.cols[0].is_key);
    assert_string_equal(c.relation.cols[1].name, "note");
    assert_int_equal(c.relation.cols[1].type_oid, 25);
    assert_int_equal(c.relation.cols[1].typmod, -1);
    assert_false(c.relation.cols[1].is_key);
    assert_string_equal(c.relation.cols[2].name, "amount");
    assert_int_equal(c.relation.cols[2].type_oid, 1700);
    assert_int_equal(c.relation.cols[2].typmod, NUMERIC_TYPMOD);
    assert_false(c.relation.cols[2].is_key);
    buf_release(&b);
}

static void test_relation_catalog(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_relation_catalog(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_RELATION);
    assert_int_equal(c.relation.oid, 1259);
    /* pgoutput abbreviates pg_catalog to the empty string. */
    assert_string_equal(c.relation.schema, "pg_catalog");
    assert_string_equal(c.relation.name, "pg_class");
    assert_int_equal(c.relation.replident, 'f');
    assert_int_equal(c.relation.ncols, 0);
    buf_release(&b);
}

static void test_relation_replident(void **state)
{
    const char idents[] = {'d', 'n', 'f', 'i'};

    (void)state;
    for (size_t i = 0; i < sizeof(idents); i++) {
        Buf b = BUF_INIT;
        Change c;

        build_relation_catalog(&b);
        b.data[1 + 4 + 1 + 9] = idents[i];
        assert_int_equal(decode(&b, &c), 0);
        assert_int_equal(c.relation.replident, idents[i]);
        buf_release(&b);
    }
}

static void test_type(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_type(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_TYPE);
    assert_int_equal(c.type.oid, 90000);
    assert_string_equal(c.type.schema, "public");
    assert_string_equal(c.type.name, "mood");
    buf_release(&b);

    build_type_catalog(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.type.oid, 3614);
    assert_string_equal(c.type.schema, "pg_catalog");
    assert_string_equal(c.type.name, "tsvector");
    buf_release(&b);
}

static void test_insert(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_insert(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_INSERT);
    assert_int_equal(c.insert.relid, RELID);
    check_tuple_a(&b, &c.insert.newtup);
    buf_release(&b);
}

static void test_insert_zero_cols(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    buf_put_u8(&b, 'I');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'N');
    put_u16(&b, 0);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.insert.newtup.ncols, 0);
    buf_release(&b);
}

static void test_insert_max_cols(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    buf_put_u8(&b, 'I');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'N');
    put_u16(&b, 1664);
    for (int i = 0; i < 1664; i++)
        put_null(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.insert.newtup.ncols, 1664);
    check_null(&c.insert.newtup.cols[1663]);
    buf_release(&b);
}

static void test_update_no_old(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_update(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_UPDATE);
    assert_int_equal(c.update.relid, RELID);
    assert_int_equal(c.update.old_kind, 0);
    assert_int_equal(c.update.oldtup.ncols, 0);
    assert_null(c.update.oldtup.cols);
    check_tuple_a(&b, &c.update.newtup);
    buf_release(&b);
}

static void test_update_key(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_update_key(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_UPDATE);
    assert_int_equal(c.update.relid, RELID);
    assert_int_equal(c.update.old_kind, 'K');
    check_tuple_key(&b, &c.update.oldtup);
    check_tuple_a(&b, &c.update.newtup);
    buf_release(&b);
}

static void test_update_old(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_update_old(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_UPDATE);
    assert_int_equal(c.update.relid, RELID);
    assert_int_equal(c.update.old_kind, 'O');
    check_tuple_old(&b, &c.update.oldtup);
    check_tuple_a(&b, &c.update.newtup);
    buf_release(&b);
}

static void test_delete(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_delete_key(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_DELETE);
    assert_int_equal(c.del.relid, RELID);
    assert_int_equal(c.del.old_kind, 'K');
    check_tuple_key(&b, &c.del.oldtup);
    buf_release(&b);

    build_delete_old(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_DELETE);
    assert_int_equal(c.del.relid, RELID);
    assert_int_equal(c.del.old_kind, 'O');
    check_tuple_old(&b, &c.del.oldtup);
    buf_release(&b);
}

static void test_truncate(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_truncate(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_TRUNCATE);
    assert_int_equal(c.truncate.flags, TRUNCATE_CASCADE | TRUNCATE_RESTART_IDENTITY);
    assert_int_equal(c.truncate.nrels, 3);
    assert_int_equal(c.truncate.relids[0], RELID);
    assert_int_equal(c.truncate.relids[1], RELID + 1);
    assert_int_equal(c.truncate.relids[2], 0xfffffff0u);
    buf_release(&b);

    build_truncate_plain(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.truncate.flags, 0);
    assert_int_equal(c.truncate.nrels, 1);
    assert_int_equal(c.truncate.relids[0], RELID);
    buf_release(&b);
}

static void test_message(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_message_tx(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_MESSAGE);
    assert_int_equal(c.message.flags, 1);
    assert_true(c.message.lsn == LSN_B);
    assert_string_equal(c.message.prefix, "tidemark");
    assert_int_equal(c.message.len, 5);
    assert_in(&b, c.message.content);
    assert_memory_equal(c.message.content, "hello", 5);
    buf_release(&b);

    build_message_notx(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.kind, CHG_MESSAGE);
    assert_int_equal(c.message.flags, 0);
    assert_true(c.message.lsn == LSN_C);
    assert_string_equal(c.message.prefix, "");
    assert_int_equal(c.message.len, sizeof(BIN_VALUE));
    assert_memory_equal(c.message.content, BIN_VALUE, sizeof(BIN_VALUE));
    buf_release(&b);

    build_message_empty(&b);
    assert_int_equal(decode(&b, &c), 0);
    assert_int_equal(c.message.flags, 1);
    assert_true(c.message.lsn == LSN_A);
    assert_string_equal(c.message.prefix, "p");
    assert_int_equal(c.message.len, 0);
    buf_release(&b);
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(pgoutput_kind_name(CHG_BEGIN), "Begin");
    assert_string_equal(pgoutput_kind_name(CHG_COMMIT), "Commit");
    assert_string_equal(pgoutput_kind_name(CHG_ORIGIN), "Origin");
    assert_string_equal(pgoutput_kind_name(CHG_RELATION), "Relation");
    assert_string_equal(pgoutput_kind_name(CHG_TYPE), "Type");
    assert_string_equal(pgoutput_kind_name(CHG_INSERT), "Insert");
    assert_string_equal(pgoutput_kind_name(CHG_UPDATE), "Update");
    assert_string_equal(pgoutput_kind_name(CHG_DELETE), "Delete");
    assert_string_equal(pgoutput_kind_name(CHG_TRUNCATE), "Truncate");
    assert_string_equal(pgoutput_kind_name(CHG_MESSAGE), "Message");
    assert_non_null(pgoutput_kind_name((ChangeKind)'?'));
}

/* ---- truncation and corruption ------------------------------------------ */

/* Every proper prefix of every valid message must be rejected, without reading
 * past its end. */
static void test_every_truncation(void **state)
{
    (void)state;
    for (size_t k = 0; k < NBUILDERS; k++) {
        Buf b = BUF_INIT;

        ALL_BUILDERS[k](&b);
        for (size_t n = 0; n < b.len; n++) {
            uint8_t *copy = malloc(n);
            Change c;

            assert_true(n == 0 || copy != NULL);
            if (n)
                memcpy(copy, b.data, n);
            tm_error_clear();
            int rc = pgoutput_decode(copy, n, arena, &c);
            if (rc != -EBADMSG)
                fail_msg("message '%c': prefix of %zu/%zu bytes returned %d", b.data[0], n, b.len,
                         rc);
            assert_true(strlen(tm_error()) > 0);
            if (n > 0 && !strstr(tm_error(), pgoutput_kind_name((ChangeKind)b.data[0])))
                fail_msg("error \"%s\" does not name the message kind", tm_error());
            free(copy);
            arena_reset(arena);
        }
        buf_release(&b);
    }
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    for (size_t k = 0; k < NBUILDERS; k++) {
        Buf b = BUF_INIT;

        ALL_BUILDERS[k](&b);
        buf_put_u8(&b, 0);
        expect_fail(&b, -EBADMSG, "trailing");
        buf_release(&b);
    }
}

/* Single-byte corruptions anywhere: the decoder may accept or reject, but must
 * never read out of bounds (ASan) and must always explain a rejection. */
static void test_byte_corruption(void **state)
{
    static const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 'N', 'K', 'O', 't', 'b'};

    (void)state;
    for (size_t k = 0; k < NBUILDERS; k++) {
        Buf b = BUF_INIT;

        ALL_BUILDERS[k](&b);
        for (size_t pos = 1; pos < b.len; pos++) {
            for (size_t v = 0; v < sizeof(values); v++) {
                uint8_t *copy = malloc(b.len);
                Change c;

                memcpy(copy, b.data, b.len);
                copy[pos] = values[v];
                tm_error_clear();
                int rc = pgoutput_decode(copy, b.len, arena, &c);
                assert_true(rc == 0 || rc == -EBADMSG);
                if (rc < 0)
                    assert_true(strlen(tm_error()) > 0);
                free(copy);
                arena_reset(arena);
            }
        }
        buf_release(&b);
    }
}

static void test_truncated_message_text(void **state)
{
    Buf b = BUF_INIT;
    Change c;

    (void)state;
    build_insert(&b);
    tm_error_clear();
    assert_int_equal(pgoutput_decode((const uint8_t *)b.data, 11, arena, &c), -EBADMSG);
    assert_string_equal(tm_error(),
                        "pgoutput: truncated Insert message at offset 9 (need 4 bytes, have 2)");
    buf_release(&b);
}

static void test_empty(void **state)
{
    Change c;

    (void)state;
    tm_error_clear();
    assert_int_equal(pgoutput_decode(NULL, 0, arena, &c), -EBADMSG);
    assert_true(strlen(tm_error()) > 0);
}

static void insert_with_text_len(Buf *b, uint32_t len)
{
    buf_put_u8(b, 'I');
    buf_put_be32(b, RELID);
    buf_put_u8(b, 'N');
    put_u16(b, 1);
    buf_put_u8(b, 't');
    buf_put_be32(b, len);
    buf_append(b, "abc", 3);
}

static void test_huge_text_length(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    insert_with_text_len(&b, 0x7fffffffu);
    expect_fail(&b, -EBADMSG, "Insert");
    buf_release(&b);

    insert_with_text_len(&b, 0xffffffffu);
    expect_fail(&b, -EBADMSG, "Insert");
    buf_release(&b);

    insert_with_text_len(&b, 0x80000000u);
    expect_fail(&b, -EBADMSG, "Insert");
    buf_release(&b);

    /* One more than is there. */
    insert_with_text_len(&b, 4);
    expect_fail(&b, -EBADMSG, "offset 13");
    buf_release(&b);

    /* Exactly what is there is fine. */
    insert_with_text_len(&b, 3);
    Change c;
    assert_int_equal(decode(&b, &c), 0);
    check_text(&b, &c.insert.newtup.cols[0], "abc");
    buf_release(&b);
}

static void test_huge_binary_length(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    buf_put_u8(&b, 'U');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'N');
    put_u16(&b, 1);
    buf_put_u8(&b, 'b');
    buf_put_be32(&b, 0xfffffffeu);
    buf_append(&b, "abc", 3);
    expect_fail(&b, -EBADMSG, "Update");
    buf_release(&b);
}

static void test_too_many_columns(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    buf_put_u8(&b, 'I');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'N');
    put_u16(&b, 65535);
    for (int i = 0; i < 70000; i++)
        put_null(&b);
    expect_fail(&b, -EBADMSG, "1664");
    buf_release(&b);

    buf_put_u8(&b, 'I');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'N');
    put_u16(&b, 1665);
    for (int i = 0; i < 1665; i++)
        put_null(&b);
    expect_fail(&b, -EBADMSG, "1665");
    buf_release(&b);

    buf_put_u8(&b, 'R');
    buf_put_be32(&b, RELID);
    put_str(&b, "public");
    put_str(&b, "t");
    buf_put_u8(&b, 'd');
    put_u16(&b, 65535);
    expect_fail(&b, -EBADMSG, "Relation");
    buf_release(&b);
}

static void test_missing_nul(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    buf_put_u8(&b, 'R');
    buf_put_be32(&b, RELID);
    buf_append(&b, "public", 6);
    expect_fail(&b, -EBADMSG, "Relation");
    buf_release(&b);

    buf_put_u8(&b, 'O');
    buf_put_be64(&b, LSN_A);
    buf_append(&b, "node", 4);
    expect_fail(&b, -EBADMSG, "offset 9");
    buf_release(&b);

    buf_put_u8(&b, 'M');
    buf_put_u8(&b, 0);
    buf_put_be64(&b, LSN_A);
    buf_append(&b, "prefix", 6);
    expect_fail(&b, -EBADMSG, "Message");
    buf_release(&b);
}

static void test_unknown_column_kind(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    buf_put_u8(&b, 'I');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'N');
    put_u16(&b, 2);
    put_null(&b);
    buf_put_u8(&b, 'x');
    expect_fail(&b, -EBADMSG, "offset 9");
    buf_release(&b);
}

static void test_unknown_message_type(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    /* Stream Start: only sent with streaming on, which we never request. */
    buf_put_u8(&b, 'S');
    buf_put_be32(&b, 1234);
    buf_put_u8(&b, 1);
    expect_fail(&b, -EPROTO, "'S' (0x53)");
    assert_non_null(strstr(tm_error(), "protocol version 1"));
    buf_release(&b);

    buf_put_u8(&b, 0x01);
    expect_fail(&b, -EPROTO, "0x01");
    buf_release(&b);
}

static void test_bad_tuple_markers(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    /* Update with 'X' where the new tuple belongs. */
    buf_put_u8(&b, 'U');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'X');
    put_tuple_a(&b);
    expect_fail(&b, -EBADMSG, "Update message at offset 5");
    buf_release(&b);

    /* Update with an old key and then 'X' instead of 'N'. */
    buf_put_u8(&b, 'U');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'K');
    put_tuple_key(&b);
    buf_put_u8(&b, 'X');
    put_tuple_a(&b);
    expect_fail(&b, -EBADMSG, "'N'");
    buf_release(&b);

    /* Two old tuples. */
    buf_put_u8(&b, 'U');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'K');
    put_tuple_key(&b);
    buf_put_u8(&b, 'O');
    put_tuple_old(&b);
    expect_fail(&b, -EBADMSG, "Update");
    buf_release(&b);

    /* Insert with an old tuple marker. */
    buf_put_u8(&b, 'I');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'K');
    put_tuple_key(&b);
    expect_fail(&b, -EBADMSG, "Insert");
    buf_release(&b);

    /* Delete must carry an old tuple. */
    buf_put_u8(&b, 'D');
    buf_put_be32(&b, RELID);
    buf_put_u8(&b, 'N');
    put_tuple_key(&b);
    expect_fail(&b, -EBADMSG, "Delete");
    buf_release(&b);
}

static void test_bad_replident(void **state)
{
    Buf b = BUF_INIT;

    (void)state;
    build_relation_catalog(&b);
    b.data[1 + 4 + 1 + 9] = 'z';
    expect_fail(&b, -EBADMSG, "replica identity");
    buf_release(&b);
}

static void test_truncate_bad_counts(void **state)
{
    static const uint32_t counts[] = {0x7fffffffu, 0xffffffffu, 0x80000000u, 0x40000000u, 2};

    (void)state;
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        Buf b = BUF_INIT;

        buf_put_u8(&b, 'T');
        buf_put_be32(&b, counts[i]);
        buf_put_u8(&b, 0);
        buf_put_be32(&b, RELID);
        expect_fail(&b, -EBADMSG, "Truncate");
        buf_release(&b);
    }
}

static void test_message_bad_length(void **state)
{
    static const uint32_t lens[] = {0x7fffffffu, 0xffffffffu, 6};

    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        Buf b = BUF_INIT;

        buf_put_u8(&b, 'M');
        buf_put_u8(&b, 1);
        buf_put_be64(&b, LSN_A);
        put_str(&b, "p");
        buf_put_be32(&b, lens[i]);
        buf_append(&b, "hello", 5);
        expect_fail(&b, -EBADMSG, "Message");
        buf_release(&b);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_begin),
        T(test_commit),
        T(test_origin),
        T(test_relation),
        T(test_relation_catalog),
        T(test_relation_replident),
        T(test_type),
        T(test_insert),
        T(test_insert_zero_cols),
        T(test_insert_max_cols),
        T(test_update_no_old),
        T(test_update_key),
        T(test_update_old),
        T(test_delete),
        T(test_truncate),
        T(test_message),
        T(test_kind_names),
        T(test_every_truncation),
        T(test_trailing_bytes),
        T(test_byte_corruption),
        T(test_truncated_message_text),
        T(test_empty),
        T(test_huge_text_length),
        T(test_huge_binary_length),
        T(test_too_many_columns),
        T(test_missing_nul),
        T(test_unknown_column_kind),
        T(test_unknown_message_type),
        T(test_bad_tuple_markers),
        T(test_bad_replident),
        T(test_truncate_bad_counts),
        T(test_message_bad_length),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
