/*
 * The `id_map` transform's lookup: old id → new id per namespace, kept in
 * tidemark.id_map (namespace, old_id, new_id) on the target. Each lookup
 * object owns its own short-lived-per-need target connection (the apply
 * session is in pipeline mode and copy sessions are inside COPY, so neither
 * can answer a query mid-row) and a bounded cache of the ids it has found.
 * Misses are not cached: a mapping added to the table later is seen. One
 * object per thread (the stream's pipeline thread, each copy worker, the
 * replay command); not thread-safe.
 */
#ifndef TM_IDMAP_H
#define TM_IDMAP_H

#include "config/config.h"

typedef struct IdMapLookup IdMapLookup;

/* ep: the target endpoint. The connection opens on the first lookup. */
int idmap_lookup_new(const ConfigEndpoint *ep, IdMapLookup **out);
void idmap_lookup_free(IdMapLookup *l);

/* An IdLookupFn (core/transform/xf.h); ctx is the IdMapLookup. */
int idmap_lookup_fn(void *ctx, const char *ns, const char *old, const char **new_out);

#endif
