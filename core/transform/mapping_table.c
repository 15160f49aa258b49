/*
 * Glue between the mapping engine and the rest of the daemon: compiling a
 * table's mapping for the shape the copy path knows (a TableDef from the
 * source catalog) and describing its target as a TableDef (what copy
 * sessions and target checks need), the rule that a filtered table needs
 * REPLICA IDENTITY FULL, the constant columns that scope a fan-in target,
 * and the JSON form of a source row that dead letters store. Both paths
 * call these, so a table is compiled the same way whether its rows arrive
 * by COPY or by the stream.
 */
#include "core/transform/mapping_int.h"

#include "core/error.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int mapping_compile_for_table(const json_t *tree, const TableDef *t, MappingPlan **out)
{
    const json_t *cfg = mapping_find(tree, t->schema, t->name);
    RelInfo rel = {0};
    int rc;

    *out = NULL;
    if (!cfg)
        return 0;
    rel.oid = t->oid;
    rel.schema = t->schema;
    rel.name = t->name;
    rel.replident = t->replident;
    rel.ncols = (uint16_t)t->ncols;
    rel.cols = xcalloc(t->ncols ? t->ncols : 1, sizeof(RelColumn));
    for (size_t i = 0; i < t->ncols; i++) {
        rel.cols[i].name = t->cols[i].name;
        rel.cols[i].type_oid = t->cols[i].type_oid;
        /* The catalog's typmod (TableDefs built without one have base_oid 0). */
        rel.cols[i].typmod = t->cols[i].base_oid ? t->cols[i].typmod : -1;
        /* With FULL identity the stream's Relation message flags every column. */
        rel.cols[i].is_key = t->replident == 'f' || t->cols[i].is_key;
    }
    rc = mapping_compile(cfg, &rel, out);
    free(rel.cols);
    if (rc == 0)
        mapping_default_on_error(*out, mapping_tree_on_error(tree));
    if (rc == 0)
        rc = mapping_check_identity(*out, t->replident);
    if (rc < 0) {
        mapping_free(*out);
        *out = NULL;
    }
    return rc;
}

int mapping_check_identity(const MappingPlan *plan, char replident)
{
    if (plan && mapping_has_filter(plan) && replident != 'f')
        return tm_fail(-EINVAL,
                       "the mapping of %s has a filter, which needs REPLICA IDENTITY FULL on the"
                       " source table: an UPDATE or DELETE must show whether the old row passed"
                       " the filter (ALTER TABLE %s REPLICA IDENTITY FULL)",
                       plan->src_display, plan->src_display);
    return 0;
}

void mapping_target_tabledef(const MappingPlan *plan, TableDef *out)
{
    const RelInfo *r = &plan->target;
    size_t dlen = strlen(plan->tschema) + strlen(plan->tname) + 2;

    memset(out, 0, sizeof(*out));
    out->oid = 0;
    out->schema = xstrdup(plan->tschema);
    out->name = xstrdup(plan->tname);
    out->display = xmalloc(dlen);
    snprintf(out->display, dlen, "%s.%s", plan->tschema, plan->tname);
    out->replident = r->replident;
    out->relkind = 'r';
    out->ncols = r->ncols;
    out->cols = xcalloc(r->ncols ? r->ncols : 1, sizeof(TableColumn));
    for (size_t i = 0; i < r->ncols; i++) {
        out->cols[i].name = xstrdup(r->cols[i].name);
        out->cols[i].type_oid = r->cols[i].type_oid;
        out->cols[i].typmod = r->cols[i].typmod;
        out->cols[i].is_key = r->cols[i].is_key;
    }
}

bool mapping_target_const(const MappingPlan *plan, size_t col, const char **value, size_t *len)
{
    for (size_t k = 0; k < plan->nprods; k++) {
        const Producer *p = &plan->prods[k];

        if (p->kind != P_CONST || p->nsteps != 0 || col < p->first_out ||
            col >= (size_t)p->first_out + p->nout)
            continue;
        *value = p->constval.s;
        *len = p->constval.len;
        return true;
    }
    return false;
}

/* Appends s as a JSON string; bytes that are not UTF-8 are taken as LATIN1. */
static void json_str(Buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    buf_putc(out, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        bool ok = n > 0 && i + n <= len && !(n == 2 && c < 0xc2);

        for (size_t k = 1; ok && k < n; k++)
            ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
        if (!ok || c == 0) {
            /* Not UTF-8 (a SQL_ASCII source's LATIN1 byte, say), or NUL, which
             * jsonb refuses: keep the byte's value as its LATIN1 character. */
            if (c == 0)
                buf_puts(out, "\\ufffd");
            else
                buf_printf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            i++;
            continue;
        }
        if (n > 1) {
            buf_append(out, s + i, n);
        } else if (c == '"' || c == '\\') {
            buf_putc(out, '\\');
            buf_putc(out, (char)c);
        } else if (c < 0x20) {
            buf_printf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
        } else {
            buf_putc(out, (char)c);
        }
        i += n;
    }
    buf_putc(out, '"');
}

void mapping_row_json(const RelInfo *rel, const Tuple *t, Buf *out)
{
    buf_putc(out, '{');
    for (uint16_t i = 0; i < rel->ncols && i < t->ncols; i++) {
        const ColValue *v = &t->cols[i];

        if (v->state == COL_UNCHANGED)
            continue; /* not sent by the source: unknown, not NULL */
        if (out->len > 0 && out->data[out->len - 1] != '{')
            buf_putc(out, ',');
        json_str(out, rel->cols[i].name, strlen(rel->cols[i].name));
        buf_putc(out, ':');
        if (v->state == COL_TEXT)
            json_str(out, v->data ? v->data : "", v->len);
        else
            buf_puts(out, "null");
    }
    buf_putc(out, '}');
}
