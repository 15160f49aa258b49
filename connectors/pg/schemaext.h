/*
 * Extensions for `schema: copy`. pg_dump --schema restores tables whose
 * columns, defaults and indexes use extension types, functions and
 * operator classes (citext, hstore, uuid_generate_v4(), gin_trgm_ops...)
 * but never the CREATE EXTENSION they need. Before anything is created on
 * either side, the extensions the dumped schemas depend on are looked up on
 * the source; those the target lacks are created there (same schema), and
 * if any cannot be (not available on the target server), the start is
 * refused naming exactly those.
 */
#ifndef TM_SCHEMAEXT_H
#define TM_SCHEMAEXT_H

#include "core/table.h"

#include <libpq-fe.h>

int schemaext_ensure(PGconn *src, PGconn *dst, const TableSet *tabs);

/* '{"schema",...}': the distinct schemas of tabs as a text[] literal (a parameter). */
char *schemaext_schema_array(const TableSet *tabs);

#endif
