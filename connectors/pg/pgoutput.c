/*
 * Decoder for pgoutput protocol version 1 (PostgreSQL 15, no streaming or
 * two-phase messages). The bytes come straight off the network, so the
 * decoder treats them as hostile: every read goes through a bounds-checked
 * reader, counts are capped before anything is allocated, and a message is
 * accepted only if it is consumed exactly.
 */
#include "connectors/pg/pgoutput.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

/* MaxTupleAttributeNumber: no relation or tuple can have more columns. */
#define PGOUTPUT_MAX_COLS 1664

typedef struct Reader {
    const uint8_t *buf;
    size_t pos;
    size_t len;
    const char *kind; /* message name, for error messages */
} Reader;

/* "'x' (0x78)" for printable bytes, "0x01" otherwise: readable in a log line. */
static const char *byte_repr(uint8_t b, char out[16])
{
    if (b >= 0x20 && b < 0x7f)
        snprintf(out, 16, "'%c' (0x%02x)", b, b);
    else
        snprintf(out, 16, "0x%02x", b);
    return out;
}

static size_t rd_left(const Reader *r)
{
    return r->len - r->pos;
}

static int rd_need(const Reader *r, size_t n)
{
    if (rd_left(r) < n)
        return tm_fail(-EBADMSG,
                       "pgoutput: truncated %s message at offset %zu (need %zu bytes, have %zu)",
                       r->kind, r->pos, n, rd_left(r));
    return 0;
}

static int rd_u8(Reader *r, uint8_t *out)
{
    int rc = rd_need(r, 1);

    if (rc < 0)
        return rc;
    *out = r->buf[r->pos++];
    return 0;
}

static int rd_u16(Reader *r, uint16_t *out)
{
    int rc = rd_need(r, 2);

    if (rc < 0)
        return rc;
    const uint8_t *p = r->buf + r->pos;
    *out = (uint16_t)((unsigned)p[0] << 8 | p[1]);
    r->pos += 2;
    return 0;
}

static int rd_u32(Reader *r, uint32_t *out)
{
    int rc = rd_need(r, 4);

    if (rc < 0)
        return rc;
    const uint8_t *p = r->buf + r->pos;
    *out = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    r->pos += 4;
    return 0;
}

static int rd_u64(Reader *r, uint64_t *out)
{
    uint32_t hi = 0, lo = 0;
    int rc;

    if ((rc = rd_need(r, 8)) < 0 || (rc = rd_u32(r, &hi)) < 0 || (rc = rd_u32(r, &lo)) < 0)
        return rc;
    *out = (uint64_t)hi << 32 | lo;
    return 0;
}

static int rd_i64(Reader *r, int64_t *out)
{
    uint64_t v = 0;
    int rc = rd_u64(r, &v);

    if (rc < 0)
        return rc;
    *out = (int64_t)v;
    return 0;
}

/*
 * A 32-bit length or count on the wire is a signed Int32; a "negative" value
 * is corruption, not a huge size, and must be caught before any arithmetic.
 */
static int rd_len(Reader *r, const char *what, uint32_t *out)
{
    size_t at = r->pos;
    uint32_t v = 0;
    int rc = rd_u32(r, &v);

    if (rc < 0)
        return rc;
    if (v > INT32_MAX)
        return tm_fail(-EBADMSG, "pgoutput: invalid %s %d in %s message at offset %zu", what,
                       (int32_t)v, r->kind, at);
    *out = v;
    return 0;
}

/* Returns a pointer into the buffer; the bytes are checked to be there. */
static int rd_bytes(Reader *r, size_t n, const uint8_t **out)
{
    int rc = rd_need(r, n);

    if (rc < 0)
        return rc;
    *out = r->buf + r->pos;
    r->pos += n;
    return 0;
}

/* A NUL-terminated string, copied into the arena. */
static int rd_str(Reader *r, Arena *arena, char **out)
{
    const uint8_t *start = r->buf + r->pos;
    const uint8_t *nul = rd_left(r) ? memchr(start, '\0', rd_left(r)) : NULL;

    if (!nul)
        return tm_fail(-EBADMSG, "pgoutput: unterminated string in %s message at offset %zu",
                       r->kind, r->pos);
    size_t n = (size_t)(nul - start);

    *out = arena_strndup(arena, (const char *)start, n);
    r->pos += n + 1;
    return 0;
}

/* pgoutput sends "" for pg_catalog to save bytes; callers want the real name. */
static int rd_namespace(Reader *r, Arena *arena, char **out)
{
    int rc = rd_str(r, arena, out);

    if (rc < 0)
        return rc;
    if ((*out)[0] == '\0')
        *out = arena_strdup(arena, "pg_catalog");
    return 0;
}

static int rd_ncols(Reader *r, uint16_t *out)
{
    size_t at = r->pos;
    int rc = rd_u16(r, out);

    if (rc < 0)
        return rc;
    if (*out > PGOUTPUT_MAX_COLS)
        return tm_fail(-EBADMSG,
                       "pgoutput: %s message at offset %zu claims %u columns (at most %d allowed)",
                       r->kind, at, (unsigned)*out, PGOUTPUT_MAX_COLS);
    return 0;
}

static int rd_tuple(Reader *r, Arena *arena, Tuple *t)
{
    uint16_t ncols = 0;
    int rc = rd_ncols(r, &ncols);

    if (rc < 0)
        return rc;
    t->ncols = ncols;
    t->cols = ncols ? arena_calloc(arena, ncols, sizeof(ColValue)) : NULL;
    for (uint16_t i = 0; i < ncols; i++) {
        ColValue *c = &t->cols[i];
        size_t at = r->pos;
        uint8_t kind = 0;
        char repr[16];
        uint32_t len = 0;
        const uint8_t *data = NULL;

        if ((rc = rd_u8(r, &kind)) < 0)
            return rc;
        switch (kind) {
        case 'n':
        case 'u':
            c->state = (ColState)kind;
            c->len = 0;
            c->data = NULL;
            break;
        case 't':
        case 'b':
            if ((rc = rd_len(r, "column length", &len)) < 0 || (rc = rd_bytes(r, len, &data)) < 0)
                return rc;
            c->state = (ColState)kind;
            c->len = len;
            c->data = (const char *)data;
            break;
        default:
            return tm_fail(-EBADMSG,
                           "pgoutput: unknown column kind %s for column %u in %s message at "
                           "offset %zu",
                           byte_repr(kind, repr), (unsigned)i + 1, r->kind, at);
        }
    }
    return 0;
}

/* Reads a tuple marker byte and checks it is one of the allowed ones. */
static int rd_marker(Reader *r, const char *allowed, const char *expect, uint8_t *out)
{
    size_t at = r->pos;
    char repr[16];
    int rc = rd_u8(r, out);

    if (rc < 0)
        return rc;
    if (*out == '\0' || !strchr(allowed, *out))
        return tm_fail(-EBADMSG, "pgoutput: expected %s in %s message at offset %zu, got %s",
                       expect, r->kind, at, byte_repr(*out, repr));
    return 0;
}

static int decode_begin(Reader *r, Change *out)
{
    int rc;

    if ((rc = rd_u64(r, &out->begin.final_lsn)) < 0 ||
        (rc = rd_i64(r, &out->begin.commit_time)) < 0 || (rc = rd_u32(r, &out->begin.xid)) < 0)
        return rc;
    return 0;
}

static int decode_commit(Reader *r, Change *out)
{
    int rc;

    if ((rc = rd_u8(r, &out->commit.flags)) < 0 || (rc = rd_u64(r, &out->commit.commit_lsn)) < 0 ||
        (rc = rd_u64(r, &out->commit.end_lsn)) < 0 ||
        (rc = rd_i64(r, &out->commit.commit_time)) < 0)
        return rc;
    return 0;
}

static int decode_origin(Reader *r, Arena *arena, Change *out)
{
    int rc;

    if ((rc = rd_u64(r, &out->origin.commit_lsn)) < 0 ||
        (rc = rd_str(r, arena, &out->origin.name)) < 0)
        return rc;
    return 0;
}

static int decode_relation(Reader *r, Arena *arena, Change *out)
{
    RelInfo *rel = &out->relation;
    uint8_t replident = 0;
    size_t at;
    int rc;

    if ((rc = rd_u32(r, &rel->oid)) < 0 || (rc = rd_namespace(r, arena, &rel->schema)) < 0 ||
        (rc = rd_str(r, arena, &rel->name)) < 0)
        return rc;
    at = r->pos;
    if ((rc = rd_u8(r, &replident)) < 0)
        return rc;
    if (!memchr("dnfi", replident, 4))
        return tm_fail(
            -EBADMSG, "pgoutput: invalid replica identity 0x%02x in Relation message at offset %zu",
            replident, at);
    rel->replident = (char)replident;
    if ((rc = rd_ncols(r, &rel->ncols)) < 0)
        return rc;
    rel->cols = rel->ncols ? arena_calloc(arena, rel->ncols, sizeof(RelColumn)) : NULL;
    for (uint16_t i = 0; i < rel->ncols; i++) {
        RelColumn *c = &rel->cols[i];
        uint8_t flags = 0;
        uint32_t typmod = 0;

        if ((rc = rd_u8(r, &flags)) < 0 || (rc = rd_str(r, arena, &c->name)) < 0 ||
            (rc = rd_u32(r, &c->type_oid)) < 0 || (rc = rd_u32(r, &typmod)) < 0)
            return rc;
        c->is_key = (flags & 1) != 0;
        c->typmod = (int32_t)typmod;
    }
    return 0;
}

static int decode_type(Reader *r, Arena *arena, Change *out)
{
    int rc;

    if ((rc = rd_u32(r, &out->type.oid)) < 0 ||
        (rc = rd_namespace(r, arena, &out->type.schema)) < 0 ||
        (rc = rd_str(r, arena, &out->type.name)) < 0)
        return rc;
    return 0;
}

static int decode_insert(Reader *r, Arena *arena, Change *out)
{
    uint8_t marker = 0;
    int rc;

    if ((rc = rd_u32(r, &out->insert.relid)) < 0 ||
        (rc = rd_marker(r, "N", "'N' (new tuple)", &marker)) < 0 ||
        (rc = rd_tuple(r, arena, &out->insert.newtup)) < 0)
        return rc;
    return 0;
}

static int decode_update(Reader *r, Arena *arena, Change *out)
{
    uint8_t marker = 0;
    int rc;

    if ((rc = rd_u32(r, &out->update.relid)) < 0 ||
        (rc = rd_marker(r, "KON", "'K', 'O' or 'N' tuple", &marker)) < 0)
        return rc;
    out->update.old_kind = 0;
    if (marker != 'N') {
        out->update.old_kind = (char)marker;
        if ((rc = rd_tuple(r, arena, &out->update.oldtup)) < 0 ||
            (rc = rd_marker(r, "N", "'N' (new tuple)", &marker)) < 0)
            return rc;
    }
    return rd_tuple(r, arena, &out->update.newtup);
}

static int decode_delete(Reader *r, Arena *arena, Change *out)
{
    uint8_t marker = 0;
    int rc;

    if ((rc = rd_u32(r, &out->del.relid)) < 0 ||
        (rc = rd_marker(r, "KO", "'K' or 'O' (old tuple)", &marker)) < 0)
        return rc;
    out->del.old_kind = (char)marker;
    return rd_tuple(r, arena, &out->del.oldtup);
}

static int decode_truncate(Reader *r, Arena *arena, Change *out)
{
    uint32_t nrels = 0;
    int rc;

    if ((rc = rd_len(r, "relation count", &nrels)) < 0 || (rc = rd_u8(r, &out->truncate.flags)) < 0)
        return rc;
    /* Check the oids are all there before allocating room for them; the
     * division keeps the comparison free of overflow on 32-bit size_t. */
    if (nrels > rd_left(r) / 4)
        return tm_fail(-EBADMSG,
                       "pgoutput: truncated Truncate message at offset %zu (%u relation oids need "
                       "%llu bytes, have %zu)",
                       r->pos, nrels, (unsigned long long)nrels * 4, rd_left(r));
    out->truncate.nrels = nrels;
    out->truncate.relids = nrels ? arena_alloc(arena, (size_t)nrels * sizeof(uint32_t)) : NULL;
    for (uint32_t i = 0; i < nrels; i++)
        if ((rc = rd_u32(r, &out->truncate.relids[i])) < 0)
            return rc;
    return 0;
}

static int decode_message(Reader *r, Arena *arena, Change *out)
{
    const uint8_t *content = NULL;
    int rc;

    if ((rc = rd_u8(r, &out->message.flags)) < 0 || (rc = rd_u64(r, &out->message.lsn)) < 0 ||
        (rc = rd_str(r, arena, &out->message.prefix)) < 0 ||
        (rc = rd_len(r, "content length", &out->message.len)) < 0 ||
        (rc = rd_bytes(r, out->message.len, &content)) < 0)
        return rc;
    out->message.content = (const char *)content;
    return 0;
}

int pgoutput_decode(const uint8_t *buf, size_t len, Arena *arena, Change *out)
{
    Reader r = {buf, 0, len, "pgoutput"};
    uint8_t type;
    char repr[16];
    int rc;

    memset(out, 0, sizeof(*out));
    if (len == 0)
        return tm_fail(-EBADMSG, "pgoutput: empty message");
    type = buf[r.pos++];
    out->kind = (ChangeKind)type;
    r.kind = pgoutput_kind_name(out->kind);
    switch (type) {
    case CHG_BEGIN:
        rc = decode_begin(&r, out);
        break;
    case CHG_COMMIT:
        rc = decode_commit(&r, out);
        break;
    case CHG_ORIGIN:
        rc = decode_origin(&r, arena, out);
        break;
    case CHG_RELATION:
        rc = decode_relation(&r, arena, out);
        break;
    case CHG_TYPE:
        rc = decode_type(&r, arena, out);
        break;
    case CHG_INSERT:
        rc = decode_insert(&r, arena, out);
        break;
    case CHG_UPDATE:
        rc = decode_update(&r, arena, out);
        break;
    case CHG_DELETE:
        rc = decode_delete(&r, arena, out);
        break;
    case CHG_TRUNCATE:
        rc = decode_truncate(&r, arena, out);
        break;
    case CHG_MESSAGE:
        rc = decode_message(&r, arena, out);
        break;
    default:
        /* Streaming ('S', 'E', 'c', 'A') and two-phase messages land here when
         * the slot was created with options this version did not ask for. */
        return tm_fail(-EPROTO,
                       "pgoutput: unsupported message type %s: tidemark speaks protocol version 1",
                       byte_repr(type, repr));
    }
    if (rc < 0)
        return rc;
    if (r.pos != r.len)
        return tm_fail(-EBADMSG,
                       "pgoutput: %zu unexpected trailing byte(s) after %s message at offset %zu",
                       rd_left(&r), r.kind, r.pos);
    return 0;
}

const char *pgoutput_kind_name(ChangeKind kind)
{
    switch (kind) {
    case CHG_BEGIN:
        return "Begin";
    case CHG_COMMIT:
        return "Commit";
    case CHG_ORIGIN:
        return "Origin";
    case CHG_RELATION:
        return "Relation";
    case CHG_TYPE:
        return "Type";
    case CHG_INSERT:
        return "Insert";
    case CHG_UPDATE:
        return "Update";
    case CHG_DELETE:
        return "Delete";
    case CHG_TRUNCATE:
        return "Truncate";
    case CHG_MESSAGE:
        return "Message";
    }
    return "unknown";
}
