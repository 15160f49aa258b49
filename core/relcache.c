/*
 * RelCache implementation: open addressing on the OID with linear probing.
 * Tables are few (hundreds at most) and lookups happen per row, so a flat
 * array beats anything cleverer.
 */
#include "core/relcache.h"
#include "core/xmalloc.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

struct RelCache {
    RelEntry **slots;
    uint32_t *oids;
    size_t cap;
    size_t count;
};

RelCache *relcache_new(void)
{
    RelCache *rc = xcalloc(1, sizeof(*rc));

    rc->cap = 64;
    rc->slots = xcalloc(rc->cap, sizeof(*rc->slots));
    rc->oids = xcalloc(rc->cap, sizeof(*rc->oids));
    return rc;
}

static void entry_free(RelEntry *e)
{
    if (!e)
        return;
    if (e->sink_state && e->sink_state_free)
        e->sink_state_free(e->sink_state);
    if (e->map_state && e->map_state_free)
        e->map_state_free(e->map_state);
    for (uint16_t i = 0; i < e->info.ncols; i++)
        free(e->info.cols[i].name);
    free(e->info.cols);
    free(e->info.schema);
    free(e->info.name);
    free(e->display);
    free(e);
}

void relcache_free(RelCache *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i < rc->cap; i++)
        entry_free(rc->slots[i]);
    free(rc->slots);
    free(rc->oids);
    free(rc);
}

static size_t probe(const RelCache *rc, uint32_t oid)
{
    size_t i = (oid * 2654435761u) & (rc->cap - 1);

    while (rc->slots[i] && rc->oids[i] != oid)
        i = (i + 1) & (rc->cap - 1);
    return i;
}

static void grow(RelCache *rc)
{
    RelEntry **old_slots = rc->slots;
    uint32_t *old_oids = rc->oids;
    size_t old_cap = rc->cap;

    rc->cap *= 2;
    rc->slots = xcalloc(rc->cap, sizeof(*rc->slots));
    rc->oids = xcalloc(rc->cap, sizeof(*rc->oids));
    for (size_t i = 0; i < old_cap; i++) {
        if (old_slots[i]) {
            size_t j = probe(rc, old_oids[i]);
            rc->slots[j] = old_slots[i];
            rc->oids[j] = old_oids[i];
        }
    }
    free(old_slots);
    free(old_oids);
}

static bool needs_quotes(const char *s)
{
    if (!*s || !(islower((unsigned char)*s) || *s == '_'))
        return true;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' || *p == '$'))
            return true;
    return false;
}

static void append_ident(char **out, size_t *len, const char *s)
{
    bool q = needs_quotes(s);
    size_t n = strlen(s);

    *out = xrealloc(*out, *len + 2 * n + 4);
    if (q)
        (*out)[(*len)++] = '"';
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            (*out)[(*len)++] = '"';
        (*out)[(*len)++] = *p;
    }
    if (q)
        (*out)[(*len)++] = '"';
    (*out)[*len] = '\0';
}

char *relcache_display_name(const char *schema, const char *name)
{
    char *out = NULL;
    size_t len = 0;

    append_ident(&out, &len, schema);
    out = xrealloc(out, len + 2);
    out[len++] = '.';
    out[len] = '\0';
    append_ident(&out, &len, name);
    return out;
}

RelEntry *relcache_put(RelCache *rc, const RelInfo *rel)
{
    RelEntry *e = xcalloc(1, sizeof(*e));
    size_t i;

    e->info.oid = rel->oid;
    e->info.schema = xstrdup(rel->schema && rel->schema[0] ? rel->schema : "pg_catalog");
    e->info.name = xstrdup(rel->name);
    e->info.replident = rel->replident;
    e->info.ncols = rel->ncols;
    e->info.cols = xcalloc(rel->ncols ? rel->ncols : 1, sizeof(RelColumn));
    for (uint16_t c = 0; c < rel->ncols; c++) {
        e->info.cols[c] = rel->cols[c];
        e->info.cols[c].name = xstrdup(rel->cols[c].name);
    }
    e->display = relcache_display_name(e->info.schema, e->info.name);
    e->table_idx = -1;

    if ((rc->count + 1) * 2 > rc->cap)
        grow(rc);
    i = probe(rc, rel->oid);
    if (rc->slots[i]) {
        entry_free(rc->slots[i]);
    } else {
        rc->count++;
    }
    rc->slots[i] = e;
    rc->oids[i] = rel->oid;
    return e;
}

RelEntry *relcache_get(RelCache *rc, uint32_t oid)
{
    size_t i = probe(rc, oid);

    return rc->slots[i];
}

void relcache_foreach(RelCache *rc, void (*fn)(RelEntry *e, void *arg), void *arg)
{
    for (size_t i = 0; i < rc->cap; i++)
        if (rc->slots[i])
            fn(rc->slots[i], arg);
}

static void reset_one(RelEntry *e, void *arg)
{
    if (e->sink_state && e->sink_state_free)
        e->sink_state_free(e->sink_state);
    e->sink_state = NULL;
    e->sink_state_free = NULL;
    if (e->mapped && e->mapped != e)
        reset_one(e->mapped, arg); /* the target shape's statements died too */
}

void relcache_reset_sink_state(RelCache *rc)
{
    relcache_foreach(rc, reset_one, NULL);
}
