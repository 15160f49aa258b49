/*
 * The change event: the one vocabulary every part of tidemark speaks. The
 * pgoutput decoder produces it, the transform layer rewrites it, and every
 * sink consumes it. A Change is one decoded logical-replication message;
 * strings and arrays in it live in the arena of the transaction that carries
 * it, and column values point into the receive buffer or that arena. Nothing
 * here knows about libpq or the wire format.
 */
#ifndef TM_CHANGE_H
#define TM_CHANGE_H

#include "core/lsn.h"

#include <stdbool.h>
#include <stdint.h>

/* Microseconds since 2000-01-01 00:00:00 UTC, PostgreSQL's timestamp epoch. */
typedef int64_t PgTime;

/* Seconds between the Unix epoch and PostgreSQL's. */
#define PG_EPOCH_OFFSET_SECS 946684800LL

typedef enum ColState {
    COL_NULL = 'n',
    COL_UNCHANGED = 'u', /* unchanged TOASTed value: never write it */
    COL_TEXT = 't',
    COL_BINARY = 'b',
} ColState;

typedef struct ColValue {
    ColState state;
    uint32_t len;
    const char *data; /* not NUL-terminated; NULL for COL_NULL/COL_UNCHANGED */
} ColValue;

typedef struct Tuple {
    uint16_t ncols;
    ColValue *cols;
} Tuple;

typedef struct RelColumn {
    char *name;
    uint32_t type_oid;
    int32_t typmod;
    bool is_key; /* part of the replica identity */
} RelColumn;

typedef struct RelInfo {
    uint32_t oid;
    char *schema;
    char *name;
    char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
    uint16_t ncols;
    RelColumn *cols;
} RelInfo;

typedef enum ChangeKind {
    CHG_BEGIN = 'B',
    CHG_COMMIT = 'C',
    CHG_ORIGIN = 'O',
    CHG_RELATION = 'R',
    CHG_TYPE = 'Y',
    CHG_INSERT = 'I',
    CHG_UPDATE = 'U',
    CHG_DELETE = 'D',
    CHG_TRUNCATE = 'T',
    CHG_MESSAGE = 'M',
} ChangeKind;

/* TRUNCATE option bits as sent by pgoutput. */
#define TRUNCATE_CASCADE          1
#define TRUNCATE_RESTART_IDENTITY 2

typedef struct Change {
    ChangeKind kind;
    union {
        struct {
            Lsn final_lsn; /* LSN of the commit record */
            PgTime commit_time;
            uint32_t xid;
        } begin;
        struct {
            uint8_t flags;
            Lsn commit_lsn;
            Lsn end_lsn; /* position just after the commit: the watermark */
            PgTime commit_time;
        } commit;
        struct {
            Lsn commit_lsn;
            char *name;
        } origin;
        RelInfo relation;
        struct {
            uint32_t oid;
            char *schema;
            char *name;
        } type;
        struct {
            uint32_t relid;
            Tuple newtup;
        } insert;
        struct {
            uint32_t relid;
            char old_kind; /* 0: no old tuple, 'K': old key, 'O': full old row */
            Tuple oldtup;
            Tuple newtup;
        } update;
        struct {
            uint32_t relid;
            char old_kind; /* 'K' or 'O' */
            Tuple oldtup;
        } del;
        struct {
            uint8_t flags; /* TRUNCATE_* */
            uint32_t nrels;
            uint32_t *relids;
        } truncate;
        struct {
            uint8_t flags; /* 1: transactional */
            Lsn lsn;
            char *prefix;
            uint32_t len;
            const char *content;
        } message;
    };
} Change;

/* The source transaction a row change belongs to. */
typedef struct TxnInfo {
    uint32_t xid;
    Lsn final_lsn;
    Lsn end_lsn; /* known only at commit */
    PgTime commit_time;
    Lsn change_lsn; /* the WAL position of the change being applied (its XLogData start) */
} TxnInfo;

#endif
