/*
 * A replicated table as the copy path sees it: names and the replicated
 * columns (not dropped, not generated) with their types and key flags,
 * resolved from the source catalog before any row moves. The stream path uses
 * RelInfo from Relation messages instead; both describe the same table.
 */
#ifndef TM_TABLE_H
#define TM_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lsn.h"

typedef struct TableColumn {
    char *name;
    uint32_t type_oid;
    bool is_key; /* primary key, or replica identity index column */
    /*
     * What sinks that render values by type (Kafka) need beyond the OID.
     * Filled by the catalog; zero in TableDefs built elsewhere (mappings).
     */
    int32_t typmod;
    bool not_null;
    bool is_pk;          /* primary key, or the first unique index's (by name) without one */
    uint32_t base_oid;   /* the type, or a domain's base type (0: unknown) */
    int32_t base_typmod; /* typmod of the column or of the domain chain */
    char base_typtype;   /* pg_type.typtype of the base: 'b', 'e' enum, 'r' range, ... */
    char *base_typname;  /* extension types (hstore, citext, ...) have no fixed OID */
    uint32_t elem_oid;   /* base is an array: its element type (0: not an array) */
    char elem_typtype;   /* of the element */
    char *elem_typname;
    char *enum_labels; /* an enum (or array of one): its labels, "a,b,c" */
} TableColumn;

typedef struct TableDef {
    uint32_t oid;
    char *schema;
    char *name;
    char *display; /* schema.name for messages */
    char replident;
    char relkind; /* 'r' table, 'p' partitioned */
    bool has_pk;
    bool has_ident_index;
    /* Partitioned: its leaves whose UPDATE/DELETE the source would refuse
     * once published (no key, no replica identity), or NULL. */
    char *leaves_without_identity;
    size_t ncols;
    TableColumn *cols;
} TableDef;

/*
 * How a table's initial copy is split. Key-range parts can be redone one by
 * one after a crash (a stream change maps to its part by key); parts of the
 * other kinds share one snapshot, so an unfinished one makes the whole table
 * start over.
 */
typedef enum PartKind {
    PART_WHOLE = 0,
    PART_KEY = 1,  /* single integer key column in [lo, hi) */
    PART_CTID = 2, /* heap blocks [lo, hi) */
    PART_LEAF = 3, /* one leaf partition of a partitioned table */
} PartKind;

typedef struct CopyPart {
    int index;
    PartKind kind;
    int64_t lo, hi; /* INT64_MIN / INT64_MAX: open ends */
    char *leaf_schema, *leaf_name;
    bool synced;
    Lsn sync_lsn;
    long long rows;
} CopyPart;

void copyparts_free(CopyPart *parts, int n);

typedef struct TableSet {
    size_t n;
    TableDef *t;
} TableSet;

/* Frees the contents of one TableDef (not t itself). */
void tabledef_release(TableDef *t);

/* Frees the contents of every table and the array; accepts an empty set. */
void tableset_release(TableSet *set);

/* Index of schema.name in set, or -1. */
int tableset_find(const TableSet *set, const char *schema, const char *name);

#endif
