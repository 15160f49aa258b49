/*
 * tidemark.id_map lookups for the id_map transform (see idmap.h). A failed
 * lookup says whose fault it is: an id with no entry is -ENOENT and an id
 * the server rejects as a value (SQLSTATE class 22) -EINVAL, the row's own
 * data; a connection that cannot be opened or was lost (class 08, 57: an
 * administrator or a shutdown ended the session) is -ENOTCONN, a target
 * outage; any other server error (permission denied, the table missing) is
 * -EIO. Only the first two may send the row to the dead letters.
 *
 * The stream cannot wait for the target on the daemon's loop, so the lookup
 * comes apart there (daemon/pipeline_idmap.c): the loop asks the cache, the
 * target worker runs idmap_fetch(), and the loop files the answer with
 * idmap_remember() before it transforms the change again.
 */
#include "connectors/pg/idmap.h"
#include "connectors/pg/pgconn.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#define IDMAP_BUCKETS     4096
#define IDMAP_MAX_ENTRIES 200000 /* bounded memory: the cache starts over beyond this */

typedef struct IdMapEntry {
    struct IdMapEntry *next;
    char *ns, *old, *new_id; /* answers: new_id holds the error message */
    int rc;
} IdMapEntry;

struct IdMapLookup {
    const ConfigEndpoint *ep;
    PGconn *conn;
    IdMapEntry *buckets[IDMAP_BUCKETS];
    size_t nentries;
    IdMapEntry *answers; /* failed lookups of the change being transformed */
};

static uint32_t hash2(const char *a, const char *b)
{
    uint32_t h = 2166136261u;

    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 16777619u;
    return h;
}

static void entries_free(IdMapEntry *e)
{
    for (IdMapEntry *next; e; e = next) {
        next = e->next;
        free(e->ns);
        free(e->old);
        free(e->new_id);
        free(e);
    }
}

static void cache_clear(IdMapLookup *l)
{
    for (size_t i = 0; i < IDMAP_BUCKETS; i++) {
        entries_free(l->buckets[i]);
        l->buckets[i] = NULL;
    }
    l->nentries = 0;
}

int idmap_lookup_new(const ConfigEndpoint *ep, IdMapLookup **out)
{
    IdMapLookup *l = xcalloc(1, sizeof(*l));

    l->ep = ep;
    *out = l;
    return 0;
}

void idmap_lookup_free(IdMapLookup *l)
{
    if (!l)
        return;
    cache_clear(l);
    entries_free(l->answers);
    if (l->conn)
        PQfinish(l->conn);
    free(l);
}

static int lookup_failed(IdMapLookup *l, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    bool lost = PQstatus(l->conn) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 ||
                strncmp(state, "57", 2) == 0;
    int rc = lost ? -ENOTCONN : strncmp(state, "22", 2) == 0 ? -EINVAL : -EIO;

    if (rc == -EINVAL)
        return tm_fail(rc, "tidemark.id_map rejected the id: %s", pgconn_errmsg(l->conn, res));
    rc = tm_fail(rc, "reading tidemark.id_map failed (the target, not the row): %s",
                 pgconn_errmsg(l->conn, res));
    /* Start over with a fresh connection next time. */
    PQfinish(l->conn);
    l->conn = NULL;
    return rc;
}

static IdMapEntry *find(const IdMapLookup *l, const char *ns, const char *old)
{
    for (IdMapEntry *e = l->buckets[hash2(ns, old) % IDMAP_BUCKETS]; e; e = e->next)
        if (strcmp(e->old, old) == 0 && strcmp(e->ns, ns) == 0)
            return e;
    return NULL;
}

static IdMapEntry *entry_new(const char *ns, const char *old)
{
    IdMapEntry *e = xcalloc(1, sizeof(*e));

    e->ns = xstrdup(ns);
    e->old = xstrdup(old);
    return e;
}

int idmap_cached(IdMapLookup *l, const char *ns, const char *old, const char **new_out)
{
    IdMapEntry *e = find(l, ns, old);

    if (e) {
        *new_out = e->new_id;
        return 1;
    }
    for (e = l->answers; e; e = e->next)
        if (strcmp(e->old, old) == 0 && strcmp(e->ns, ns) == 0)
            return e->rc == -ENOENT ? -ENOENT : tm_fail(e->rc, "%s", e->new_id);
    return 0;
}

int idmap_fetch(IdMapLookup *l, const char *ns, const char *old, char **new_out)
{
    const char *params[2] = {ns, old};
    PGresult *res;
    int rc;

    if (!l->conn) {
        rc = pgconn_open(l->ep, PGCONN_NORMAL, "target (id_map)", &l->conn);
        if (rc < 0)
            return tm_fail_ctx(-ENOTCONN, "id_map lookup");
    }
    res = PQexecParams(l->conn,
                       "SELECT new_id FROM tidemark.id_map WHERE namespace = $1 AND old_id = $2", 2,
                       NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = lookup_failed(l, res);
    else if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
        rc = -ENOENT;
    else
        rc = 0, *new_out = xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

void idmap_remember(IdMapLookup *l, const char *ns, const char *old, int rc, const char *new_id,
                    const char *err)
{
    IdMapEntry *e = entry_new(ns, old);

    if (rc < 0) {
        /* Not cached: an id mapped later is seen; kept for this change only. */
        e->rc = rc;
        e->new_id = xstrdup(err ? err : "");
        e->next = l->answers;
        l->answers = e;
        return;
    }
    if (l->nentries >= IDMAP_MAX_ENTRIES)
        cache_clear(l);
    uint32_t b = hash2(ns, old) % IDMAP_BUCKETS;

    e->new_id = xstrdup(new_id);
    e->next = l->buckets[b];
    l->buckets[b] = e;
    l->nentries++;
}

void idmap_forget_answers(IdMapLookup *l)
{
    entries_free(l->answers);
    l->answers = NULL;
}

int idmap_lookup_fn(void *ctx, const char *ns, const char *old, const char **new_out)
{
    IdMapLookup *l = ctx;
    char *found = NULL;
    int rc = idmap_cached(l, ns, old, new_out);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    rc = idmap_fetch(l, ns, old, &found);
    if (rc < 0)
        return rc;
    idmap_remember(l, ns, old, 0, found, NULL);
    free(found);
    return idmap_cached(l, ns, old, new_out) == 1 ? 0 : -EIO;
}
