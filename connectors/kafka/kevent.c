/*
 * Debezium envelopes in (kevent.h). JsonConverter with schemas.enable wraps
 * the envelope as {"schema", "payload"}; without, the envelope is the whole
 * value. The source block names the table; positions come from tidemark's
 * headers (commit LSN, txid) and source.lsn (the change's own LSN).
 */
#include "connectors/kafka/kevent.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {"schema": ..., "payload": X} -> X; anything else as it is. */
static json_t *payload_of(json_t *v)
{
    json_t *p = json_object_get(v, "payload");

    if (p && json_object_get(v, "schema") && json_object_size(v) == 2)
        return p;
    return v;
}

static const json_t *row_or_null(const json_t *v)
{
    return json_is_object(v) ? v : NULL;
}

int kevent_parse(const void *value, size_t len, const KHeaders *h, KEvent *ev)
{
    json_error_t jerr;
    json_t *env, *src;
    const char *op;
    char tmp[32];

    memset(ev, 0, sizeof(*ev));
    if (h->lsn && h->lsn_len < sizeof(tmp)) {
        memcpy(tmp, h->lsn, h->lsn_len);
        tmp[h->lsn_len] = '\0';
        if (lsn_parse(tmp, &ev->commit_lsn) < 0)
            return tm_fail(-EINVAL, "the lsn header \"%s\" is not an LSN", tmp);
    }
    if (h->txid && h->txid_len < sizeof(tmp)) {
        memcpy(tmp, h->txid, h->txid_len);
        tmp[h->txid_len] = '\0';
        ev->xid = (uint32_t)strtoul(tmp, NULL, 10);
    }
    ev->seq = h->oldkey ? 2 : 0;
    if (!value || len == 0)
        return 0; /* tombstone */
    ev->value = json_loadb(value, len, 0, &jerr);
    if (!ev->value)
        return tm_fail(-EINVAL, "the message value is not JSON: %s (at %d)", jerr.text,
                       jerr.position);
    env = payload_of(ev->value);
    op = json_string_value(json_object_get(env, "op"));
    src = json_object_get(env, "source");
    if (!op || strlen(op) != 1 || !strchr("cudrt", op[0]) || !json_is_object(src)) {
        kevent_release(ev);
        return tm_fail(-EINVAL, "the message is not a Debezium change event (no op or source)");
    }
    ev->op = op[0];
    ev->before = row_or_null(json_object_get(env, "before"));
    ev->after = row_or_null(json_object_get(env, "after"));
    ev->schema = json_string_value(json_object_get(src, "schema"));
    ev->table = json_string_value(json_object_get(src, "table"));
    ev->producer = json_string_value(json_object_get(src, "name"));
    if (json_is_integer(json_object_get(src, "lsn")))
        ev->change_lsn = (Lsn)json_integer_value(json_object_get(src, "lsn"));
    if (!ev->schema || !ev->table) {
        kevent_release(ev);
        return tm_fail(-EINVAL, "the change event names no table (source.schema, source.table)");
    }
    if (!ev->commit_lsn)
        ev->commit_lsn = ev->change_lsn; /* not written by tidemark: Debezium's own position */
    if ((ev->op == 'c' || ev->op == 'r' || ev->op == 'u') && !ev->after) {
        kevent_release(ev);
        return tm_fail(-EINVAL, "a '%c' event without an after row", ev->op);
    }
    if (ev->op == 'd' && !ev->before) {
        kevent_release(ev);
        return tm_fail(-EINVAL, "a delete event without a before row");
    }
    return 0;
}

void kevent_release(KEvent *ev)
{
    json_decref(ev->value);
    memset(ev, 0, sizeof(*ev));
}

json_t *kevent_key_fields(const void *key, size_t len)
{
    json_t *v, *obj, *out = NULL;
    const char *k;
    json_t *val;

    if (!key || len == 0)
        return NULL;
    v = json_loadb(key, len, 0, NULL);
    obj = v ? payload_of(v) : NULL;
    if (json_is_object(obj)) {
        out = json_array();
        json_object_foreach(obj, k, val) json_array_append_new(out, json_string(k));
    }
    json_decref(v);
    return out;
}
