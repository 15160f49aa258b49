/*
 * The Kafka sink's table shapes: the source catalog's description of each
 * replicated table (registered by check_table at start and on reload) joined
 * with what pgoutput's Relation messages say, so every column renders by its
 * real type (domains as their base, enums with their labels, extension types
 * by name) and the message key is Debezium's: the primary key, or the first
 * unique index without one, whatever the replica identity. A table the
 * catalog did not describe (a mapping's target) renders from its OIDs and
 * identity columns.
 */
#include "sinks/kafka/kafkasink_int.h"
#include "core/xmalloc.h"

#include <string.h>

static const TableDef *find_known(const KafkaSink *s, const char *schema, const char *name)
{
    for (size_t i = 0; i < s->nknown; i++)
        if (strcmp(s->known[i].schema, schema) == 0 && strcmp(s->known[i].name, name) == 0)
            return &s->known[i];
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void kafkasink_register_table(KafkaSink *s, const TableDef *t)
{
    TableDef *d;

    pthread_mutex_lock(&s->mu);
    d = (TableDef *)find_known(s, t->schema, t->name);
    if (d) {
        tabledef_release(d);
    } else {
        s->known = xrealloc(s->known, (s->nknown + 1) * sizeof(*s->known));
        d = &s->known[s->nknown++];
    }
    memset(d, 0, sizeof(*d));
    d->oid = t->oid;
    d->schema = xstrdup(t->schema);
    d->name = xstrdup(t->name);
    d->display = xstrdup(t->display);
    d->replident = t->replident;
    d->ncols = t->ncols;
    d->cols = xcalloc(t->ncols + 1, sizeof(*d->cols));
    for (size_t i = 0; i < t->ncols; i++) {
        d->cols[i] = t->cols[i];
        d->cols[i].name = xstrdup(t->cols[i].name);
        d->cols[i].base_typname = dup_or_null(t->cols[i].base_typname);
        d->cols[i].elem_typname = dup_or_null(t->cols[i].elem_typname);
        d->cols[i].enum_labels = dup_or_null(t->cols[i].enum_labels);
    }
    pthread_mutex_unlock(&s->mu);
}

/* A column as the catalog describes it (base_oid set), or as an OID and typmod only. */
static void fill_type(DbzTypeInfo *ti, const TableColumn *tc, uint32_t oid, int32_t typmod)
{
    memset(ti, 0, sizeof(*ti));
    if (tc && tc->base_oid && tc->type_oid == oid) {
        ti->oid = tc->base_oid;
        ti->typmod = tc->base_typmod;
        ti->typtype = tc->base_typtype;
        ti->typname = tc->base_typname;
        ti->elem_oid = tc->elem_oid;
        ti->elem_typtype = tc->elem_typtype;
        ti->elem_typname = tc->elem_typname;
        ti->enum_labels = tc->enum_labels;
        return;
    }
    ti->oid = oid;
    ti->typmod = typmod;
}

static const TableColumn *known_col(const TableDef *k, const char *name)
{
    for (size_t i = 0; k && i < k->ncols; i++)
        if (strcmp(k->cols[i].name, name) == 0)
            return &k->cols[i];
    return NULL;
}

typedef struct ColIn {
    const char *name;
    uint32_t oid;
    int32_t typmod;
    bool ident; /* replica identity (or the TableDef's key) column */
} ColIn;

static DbzTable *build(KafkaSink *s, const char *schema, const char *name, char replident,
                       const ColIn *in, size_t n)
{
    DbzColumnSpec *spec = xcalloc(n + 1, sizeof(*spec));
    const TableDef *k;
    DbzTable *t;

    pthread_mutex_lock(&s->mu);
    k = find_known(s, schema, name);
    for (size_t i = 0; i < n; i++) {
        const TableColumn *tc = known_col(k, in[i].name);

        spec[i].name = in[i].name;
        fill_type(&spec[i].type, tc, in[i].oid, in[i].typmod);
        if (k) {
            spec[i].key = tc && tc->is_pk;
            spec[i].not_null = tc && tc->not_null;
        } else {
            /* Without the catalog: the identity columns, but a FULL identity is no key. */
            spec[i].key = in[i].ident && replident != 'f';
        }
    }
    t = debezium_table_new(s->cfg->target.kafka.topic_prefix, schema, name, (uint16_t)n, spec,
                           &s->dbz);
    pthread_mutex_unlock(&s->mu);
    free(spec);
    return t;
}

DbzTable *kafkasink_dbz_rel(KafkaSink *s, const RelInfo *rel)
{
    ColIn *in = xcalloc(rel->ncols + 1u, sizeof(*in));
    DbzTable *t;

    for (uint16_t i = 0; i < rel->ncols; i++)
        in[i] = (ColIn){rel->cols[i].name, rel->cols[i].type_oid, rel->cols[i].typmod,
                        rel->cols[i].is_key};
    t = build(s, rel->schema, rel->name, rel->replident, in, rel->ncols);
    free(in);
    return t;
}

DbzTable *kafkasink_dbz_def(KafkaSink *s, const TableDef *def)
{
    ColIn *in = xcalloc(def->ncols + 1, sizeof(*in));
    DbzTable *t;

    for (size_t i = 0; i < def->ncols; i++)
        in[i] = (ColIn){def->cols[i].name, def->cols[i].type_oid, def->cols[i].typmod,
                        def->cols[i].is_key};
    t = build(s, def->schema, def->name, def->replident, in, def->ncols);
    free(in);
    return t;
}
