/*
 * Applying a compiled MappingPlan to one row: the filter, then each
 * producer's value through its transform chain, into an output tuple whose
 * values live in the caller's arena. The COPY entry point parses a COPY
 * text row into the same Tuple the stream delivers and renders the result
 * back as COPY text, so both paths run the identical per-row code. Errors
 * carry the table, the row's key, the column and the function.
 */
#include "core/transform/mapping_int.h"

#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* "id=42, region='eu'" from the source key columns, for error messages. */
static const char *row_key(const MappingPlan *plan, const Tuple *in, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    if (plan->nkeys == 0)
        return "(table has no key)";
    for (size_t k = 0; k < plan->nkeys && len + 1 < size; k++) {
        int i = plan->key_src[k];
        const ColValue *c = i < in->ncols ? &in->cols[i] : NULL;
        char shown[XF_SHOW_MAX * 2];
        XfStr v = c && c->state == COL_TEXT ? (XfStr){c->data, c->len} : XF_NULL;

        len += (size_t)snprintf(buf + len, size - len, "%s%s=%s", k ? ", " : "", plan->key_names[k],
                                xf_show(v, shown, sizeof(shown)));
    }
    return buf;
}

static int fail_row(const MappingPlan *plan, const Tuple *in, int rc, const char *what)
{
    char key[256];

    return tm_fail_ctx(rc, "%s, row with key %s: %s", plan->src_display,
                       row_key(plan, in, key, sizeof(key)), what);
}

static int text_of(const ColValue *c, XfStr *v)
{
    switch (c->state) {
    case COL_NULL:
        *v = XF_NULL;
        return 0;
    case COL_TEXT:
        *v = (XfStr){c->data ? c->data : "", c->len};
        return 0;
    case COL_UNCHANGED:
        return tm_fail(-EINVAL, "the value is an unchanged TOAST value that was not sent; "
                                "the transform needs it (set REPLICA IDENTITY FULL on the source "
                                "table, or map the column without transforms)");
    case COL_BINARY:
        break;
    }
    return tm_fail(-EINVAL, "binary-format values cannot be transformed");
}

/* True when the row belongs in the target. */
static int keep_row(const MappingPlan *plan, const Tuple *in, Arena *a, bool *keep)
{
    *keep = true;
    for (size_t i = 0; i < plan->nfilters && *keep; i++) {
        const Filter *f = &plan->filters[i];
        XfStr v, hit;
        int rc = text_of(&in->cols[f->src], &v);

        if (rc < 0)
            return tm_fail_ctx(rc, "filter on column %s", f->col);
        switch (f->op) {
        case F_IS_NULL:
            *keep = v.s == NULL;
            break;
        case F_NOT_NULL:
            *keep = v.s != NULL;
            break;
        case F_IN:
            *keep = v.s && xf_dict_get(f->values, v, a, &hit);
            break;
        case F_NOT_IN:
            /* NULL is in no list: a NULL status row is kept (say is_null to drop it). */
            *keep = !(v.s && xf_dict_get(f->values, v, a, &hit));
            break;
        }
    }
    return 0;
}

/*
 * Plain concat treats a NULL column as '' (as PostgreSQL's concat()), unless
 * every column part is NULL; with a separator, NULL parts are skipped
 * (concat_ws), which is what address lines want.
 */
static int concat(const Producer *p, const Tuple *in, Arena *a, XfStr *out)
{
    XfStr vals[64];
    size_t len = 0, n = p->nparts < 64 ? p->nparts : 64, used = 0;
    bool any = false, has_col = false;
    char *o;
    int rc;

    for (size_t i = 0; i < n; i++) {
        vals[i] = p->parts[i].lit;
        if (p->parts[i].src >= 0) {
            has_col = true;
            if ((rc = text_of(&in->cols[p->parts[i].src], &vals[i])) < 0)
                return rc;
            any |= vals[i].s != NULL;
        }
        if (vals[i].s) {
            len += vals[i].len + p->sep.len;
            used++;
        }
    }
    if (has_col && !any) {
        /* Every column part is NULL: the whole value is unknown, not a separator. */
        *out = XF_NULL;
        return 0;
    }
    o = arena_alloc(a, len + 1);
    len = 0;
    used = 0;
    for (size_t i = 0; i < n; i++) {
        if (!vals[i].s)
            continue;
        if (used++ && p->sep.s) {
            memcpy(o + len, p->sep.s, p->sep.len);
            len += p->sep.len;
        }
        if (vals[i].len)
            memcpy(o + len, vals[i].s, vals[i].len);
        len += vals[i].len;
    }
    o[len] = '\0';
    *out = (XfStr){o, len};
    return 0;
}

static void put(ColValue *c, XfStr v)
{
    if (!v.s)
        *c = (ColValue){.state = COL_NULL};
    else
        *c = (ColValue){.state = COL_TEXT, .len = (uint32_t)v.len, .data = v.s};
}

/* Runs one producer into its output columns. */
static int produce(const MappingPlan *plan, const Producer *p, const Tuple *in, Arena *a,
                   ColValue *outcols)
{
    XfStr v, res[XF_MAX_OUTPUTS];
    int rc = 0;

    if (p->kind == P_COLUMN && p->identity) {
        outcols[p->first_out] = in->cols[p->src];
        return 0;
    }
    switch (p->kind) {
    case P_COLUMN:
        rc = text_of(&in->cols[p->src], &v);
        break;
    case P_CONST:
        v = p->constval;
        break;
    case P_CONCAT:
        rc = concat(p, in, a, &v);
        break;
    }
    if (rc < 0)
        return fail_row(plan, in, rc, p->what);
    res[0] = v;
    for (size_t i = 0; i < p->nsteps; i++) {
        const XfStep *st = &p->steps[i];

        rc = st->fn(st->opts, res[0], a, res);
        if (rc < 0)
            return fail_row(plan, in, rc, p->what);
    }
    for (unsigned k = 0; k < p->nout; k++)
        put(&outcols[p->first_out + k], res[k]);
    return 0;
}

int mapping_apply(const MappingPlan *plan, const Tuple *in, Arena *arena, Tuple *out,
                  bool *filtered)
{
    bool keep;
    int rc;

    *filtered = false;
    out->ncols = 0;
    out->cols = NULL;
    if (in->ncols != plan->src_ncols)
        return tm_fail(-EPROTO,
                       "%s: row has %u columns but the mapping was compiled for %u (recompile "
                       "after the Relation message)",
                       plan->src_display, in->ncols, plan->src_ncols);
    rc = keep_row(plan, in, arena, &keep);
    if (rc < 0)
        return fail_row(plan, in, rc, "row filter");
    if (!keep) {
        *filtered = true;
        return 0;
    }
    out->cols = arena_alloc(arena, plan->nout * sizeof(ColValue));
    for (size_t k = 0; k < plan->nprods; k++)
        if ((rc = produce(plan, &plan->prods[k], in, arena, out->cols)) < 0)
            return rc;
    out->ncols = (uint16_t)plan->nout;
    return 0;
}

int mapping_apply_key(const MappingPlan *plan, const Tuple *oldkey, Arena *arena, Tuple *out)
{
    int rc;

    out->ncols = 0;
    out->cols = NULL;
    if (oldkey->ncols != plan->src_ncols)
        return tm_fail(-EPROTO, "%s: key tuple has %u columns but the mapping was compiled for %u",
                       plan->src_display, oldkey->ncols, plan->src_ncols);
    out->cols = arena_alloc(arena, plan->nout * sizeof(ColValue));
    for (size_t i = 0; i < plan->nout; i++)
        out->cols[i] = (ColValue){.state = COL_NULL};
    for (size_t k = 0; k < plan->nprods; k++) {
        const Producer *p = &plan->prods[k];

        if (p->kind != P_COLUMN || p->nout != 1 || !plan->target.cols[p->first_out].is_key)
            continue;
        if ((rc = produce(plan, p, oldkey, arena, out->cols)) < 0)
            return rc;
    }
    out->ncols = (uint16_t)plan->nout;
    return 0;
}

/* ---- COPY text --------------------------------------------------------- */

int mapping_copy_render(const Tuple *t, Buf *out)
{
    for (uint16_t i = 0; i < t->ncols; i++) {
        const ColValue *c = &t->cols[i];

        if (i)
            buf_putc(out, '\t');
        if (c->state == COL_NULL) {
            buf_append(out, "\\N", 2);
            continue;
        }
        if (c->state != COL_TEXT)
            return tm_fail(-EINVAL, "COPY output: column %u is not a text value", i + 1);
        const char *p = c->data, *end = c->data + c->len, *run = p;

        buf_reserve(out, c->len + 8);
        for (; p < end; p++) {
            char esc;

            switch (*p) {
            case '\\':
                esc = '\\';
                break;
            case '\t':
                esc = 't';
                break;
            case '\n':
                esc = 'n';
                break;
            case '\r':
                esc = 'r';
                break;
            default:
                continue;
            }
            buf_append(out, run, (size_t)(p - run));
            buf_putc(out, '\\');
            buf_putc(out, esc);
            run = p + 1;
        }
        buf_append(out, run, (size_t)(end - run));
    }
    buf_putc(out, '\n');
    return 0;
}

int mapping_apply_copy_row(const MappingPlan *plan, CopyText *ct, const char *row, size_t len,
                           Arena *arena, Buf *out, bool *filtered)
{
    Tuple in, res;
    int rc;

    *filtered = false;
    rc = copytext_parse(ct, row, len, plan->src_ncols, &in);
    if (rc < 0)
        return tm_fail_ctx(rc, "%s: COPY row", plan->src_display);
    rc = mapping_apply(plan, &in, arena, &res, filtered);
    if (rc < 0 || *filtered)
        return rc;
    return mapping_copy_render(&res, out);
}
