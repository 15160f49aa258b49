/*
 * The `id_map` transform's lookup: old id → new id per namespace, kept in
 * tidemark.id_map (namespace, old_id, new_id) on the target. Each lookup
 * object owns its own short-lived-per-need target connection (the apply
 * session is in pipeline mode and copy sessions are inside COPY, so neither
 * can answer a query mid-row) and a bounded cache of the ids it has found.
 * Misses are not cached: a mapping added to the table later is seen. One
 * object per thread (each copy worker, the replay command), or per pipeline
 * for the stream (cache on the loop, connection on the target worker); not
 * thread-safe.
 */
#ifndef TM_IDMAP_H
#define TM_IDMAP_H

#include "config/config.h"

typedef struct IdMapLookup IdMapLookup;

/* ep: the target endpoint. The connection opens on the first lookup. */
int idmap_lookup_new(const ConfigEndpoint *ep, IdMapLookup **out);
void idmap_lookup_free(IdMapLookup *l);

/* An IdLookupFn (core/transform/xf.h); ctx is the IdMapLookup. Blocking. */
int idmap_lookup_fn(void *ctx, const char *ns, const char *old, const char **new_out);

/*
 * The same lookup in parts, for a caller that must not block (the daemon's
 * loop). idmap_cached() asks only memory: 1 with *new_out, 0 not known yet,
 * or a failure idmap_remember() kept (-ENOENT: no entry; others with
 * tm_error() set). idmap_fetch() asks the target (blocking; the only part
 * that touches the connection, and nothing else of l: it may run on another
 * thread while the others run, one fetch at a time): 0 with a malloc'd *new_out, -ENOENT, or a
 * failure as above. idmap_remember() files fetch's answer: a found id in the
 * cache, a failure (with its message err) until idmap_forget_answers(),
 * which the caller does before the next change.
 */
int idmap_cached(IdMapLookup *l, const char *ns, const char *old, const char **new_out);
int idmap_fetch(IdMapLookup *l, const char *ns, const char *old, char **new_out);
void idmap_remember(IdMapLookup *l, const char *ns, const char *old, int rc, const char *new_id,
                    const char *err);
void idmap_forget_answers(IdMapLookup *l);

#endif
