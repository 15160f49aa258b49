/*
 * The relation cache: the source's table shapes as announced by pgoutput
 * Relation messages, keyed by relation OID. A Relation message is sent
 * before the first change of a table in each session and again whenever the
 * table's shape changes, so entries are replaced wholesale; whatever a sink
 * or transform compiled for the old shape is dropped with it (state_free),
 * which is how "compiled once per relation" stays correct across ALTER TABLE.
 */
#ifndef TM_RELCACHE_H
#define TM_RELCACHE_H

#include "core/change.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct RelEntry {
    RelInfo info;        /* deep copy, owned by the cache */
    char *display;       /* schema.name, quoted where SQL needs it, for logs */
    int table_idx;       /* the pipeline's index of this table, -1: not replicated */
    bool foreign_warned; /* "not in source.tables" was logged */
    void *sink_state;
    void (*sink_state_free)(void *state);
    /*
     * A configured mapping compiled for this shape (NULL: the table goes to
     * the sink as it is). mapped is the target's shape the sink sees instead
     * of this entry; both belong to map_state and go with it.
     */
    struct RelEntry *mapped;
    void *map_state;
    void (*map_state_free)(void *state);
} RelEntry;

typedef struct RelCache RelCache;

RelCache *relcache_new(void);
void relcache_free(RelCache *rc);

/* Deep-copies rel, replacing (and freeing the state of) any entry with its OID. */
RelEntry *relcache_put(RelCache *rc, const RelInfo *rel);
RelEntry *relcache_get(RelCache *rc, uint32_t oid);

/* Calls fn for every entry. */
void relcache_foreach(RelCache *rc, void (*fn)(RelEntry *e, void *arg), void *arg);

/* Drops every entry's sink state (the sink's session was replaced). */
void relcache_reset_sink_state(RelCache *rc);

/* Quotes an identifier for display only (never for SQL: use libpq there). */
char *relcache_display_name(const char *schema, const char *name);

#endif
