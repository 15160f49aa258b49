/*
 * Foreign keys for `schema: copy`. Each table is copied at its own source
 * position, so until the stream has caught up with every table the target
 * may hold a line whose invoice arrives later (or an invoice whose lines are
 * already gone): a foreign key restored with the post-data section would be
 * checked against that state and fail, and since the stream waits for the
 * post-data section, it would fail again on every restart. The post-data
 * restore therefore leaves foreign keys out; they are created NOT VALID
 * before the stream starts (nothing is checked; tidemark's own session runs
 * with session_replication_role = replica anyway) and validated once every
 * table has caught up, when each committed target transaction is a state
 * the source had. VALIDATE CONSTRAINT does not block the stream's writes.
 * PostgreSQL 15 refuses NOT VALID on a partitioned table: such a key is
 * added (and checked) only at validation time. A key the source itself has
 * NOT VALID stays so.
 */
#ifndef TM_SCHEMAFK_H
#define TM_SCHEMAFK_H

#include "core/table.h"

#include <libpq-fe.h>
#include <stdbool.h>

typedef struct SchemaFk {
    char *schema, *table, *name;
    char *def;        /* pg_get_constraintdef, names schema-qualified */
    bool partitioned; /* the referencing table */
    bool validated;   /* on the source */
} SchemaFk;

typedef struct SchemaFks {
    size_t n;
    SchemaFk *fk;
} SchemaFks;

/* The foreign keys pg_dump would restore for the schemas of tabs. */
int schemafk_load(PGconn *src, const TableSet *tabs, SchemaFks *out);
void schemafk_release(SchemaFks *l);

/* Creates NOT VALID, in one transaction, every key the target lacks (but partitioned ones). */
int schemafk_create_not_valid(PGconn *dst, const SchemaFks *l);

/*
 * The statement that completes fk on the target (VALIDATE CONSTRAINT, or
 * ADD CONSTRAINT for a partitioned table), or *sql = NULL when there is
 * nothing left to do.
 */
int schemafk_next_step(PGconn *dst, const SchemaFk *fk, char **sql);

/* Whether the post-data restore list line is a foreign key (left out of it). */
bool schemafk_is_list_entry(const char *line);

#endif
