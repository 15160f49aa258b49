/*
 * One message of tidemark's topics as the applier needs it: the Debezium
 * envelope (docs/KAFKA.md; with or without schemas.enable) parsed into its
 * op, before and after rows, source table and positions, plus tidemark's
 * lsn and txid headers and the key-change headers. The row values stay JSON
 * (dbzdecode.h turns them into PostgreSQL text once the table's types are
 * known). No librdkafka here: the consumer hands over bytes.
 */
#ifndef TM_KEVENT_H
#define TM_KEVENT_H

#include "core/lsn.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct KEvent {
    char op;              /* 'c', 'u', 'd', 'r', 't'; 0: a tombstone (null value) */
    const json_t *before; /* the rows (JSON objects), NULL when null */
    const json_t *after;
    const char *schema, *table; /* source.schema, source.table */
    const char *producer;       /* source.name: the pipeline that wrote it */
    Lsn commit_lsn;             /* header lsn: the source transaction's commit */
    Lsn change_lsn;             /* source.lsn: the change's own position */
    uint32_t xid;               /* header txid (0: initial load) */
    /*
     * Order of messages that share a change (a key-change UPDATE is sent as
     * a delete of the old key, a tombstone, a create of the new key): 0, or
     * 2 for the create (header __debezium.oldkey).
     */
    int seq;
    json_t *value; /* owns the parsed value */
} KEvent;

/* The headers of a message the parser reads (NULL / 0 when absent). */
typedef struct KHeaders {
    const char *lsn;
    size_t lsn_len;
    const char *txid;
    size_t txid_len;
    bool oldkey; /* __debezium.oldkey present */
} KHeaders;

/*
 * Parses value (NULL/0: a tombstone). -EINVAL with tm_error() saying what
 * is not a tidemark Debezium event.
 */
int kevent_parse(const void *value, size_t len, const KHeaders *h, KEvent *ev);
void kevent_release(KEvent *ev);

/*
 * The field names of a message key ({"id":1}, or {"schema":..., "payload":
 * {...}}), in order, as a new JSON array; NULL for a null key or one that is
 * not an object.
 */
json_t *kevent_key_fields(const void *key, size_t len);

#endif
