/*
 * Row-level differences, free of SQL: the rows of a leaf range (or of the
 * keys being rechecked) arrive from both sides as text, are sorted by their
 * key text and merged. With a key, a row on one side only is missing or
 * extra and a row on both sides is compared column by column (a NULL and an
 * empty string differ); without a key the row text is the key and the copy
 * counts are compared, so a duplicated row is one extra row with its count.
 */
#include "core/xmalloc.h"
#include "migration/verify_int.h"

#include <stdlib.h>
#include <string.h>

void vrowset_init(VRowSet *s, size_t ncols)
{
    memset(s, 0, sizeof(*s));
    s->ncols = ncols;
}

void vrowset_add(VRowSet *s, char *key, char **vals, long long count)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->rows = xrealloc(s->rows, s->cap * sizeof(VRow));
    }
    s->rows[s->n].key = key;
    s->rows[s->n].vals = vals;
    s->rows[s->n].count = count;
    s->n++;
}

void vrowset_release(VRowSet *s)
{
    for (size_t i = 0; i < s->n; i++) {
        for (size_t c = 0; c < s->ncols; c++)
            free(s->rows[i].vals[c]);
        free(s->rows[i].vals);
        free(s->rows[i].key);
    }
    free(s->rows);
    memset(s, 0, sizeof(*s));
}

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const VRow *)a)->key, ((const VRow *)b)->key);
}

static json_t *val_json(const char *v)
{
    return v ? json_string(v) : json_null();
}

/* {"col": value} of the key columns, or of every column without a key. */
static json_t *key_json(const VShape *sh, const VRow *r)
{
    json_t *o = json_object();

    if (sh->nkey == 0) {
        for (size_t c = 0; c < sh->ncols; c++)
            json_object_set_new(o, sh->cols[c], val_json(r->vals[c]));
    } else {
        for (size_t k = 0; k < sh->nkey; k++)
            json_object_set_new(o, sh->cols[sh->keyidx[k]], val_json(r->vals[sh->keyidx[k]]));
    }
    return o;
}

static json_t *row_json(const VShape *sh, const VRow *r)
{
    json_t *o = json_object();

    for (size_t c = 0; c < sh->ncols; c++)
        json_object_set_new(o, sh->cols[c], val_json(r->vals[c]));
    return o;
}

static void one_side(const VShape *sh, const VRow *r, const char *kind, long long count,
                     json_t *diffs)
{
    json_t *d = json_pack("{s:s, s:o, s:s, s:o}", "kind", kind, "key", key_json(sh, r), "key_text",
                          r->key, "row", row_json(sh, r));

    if (sh->nkey == 0)
        json_object_set_new(d, "count", json_integer(count));
    json_array_append_new(diffs, d);
}

static bool same_val(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

size_t verify_diff_rows(const VShape *sh, VRowSet *src, VRowSet *dst, json_t *diffs)
{
    size_t i = 0, j = 0, n = 0;

    if (src->n)
        qsort(src->rows, src->n, sizeof(VRow), cmp_row);
    if (dst->n)
        qsort(dst->rows, dst->n, sizeof(VRow), cmp_row);
    while (i < src->n || j < dst->n) {
        int c = i >= src->n ? 1 : j >= dst->n ? -1 : strcmp(src->rows[i].key, dst->rows[j].key);

        if (c < 0) {
            one_side(sh, &src->rows[i], "missing", src->rows[i].count, diffs);
            n++;
            i++;
        } else if (c > 0) {
            one_side(sh, &dst->rows[j], "extra", dst->rows[j].count, diffs);
            n++;
            j++;
        } else {
            const VRow *a = &src->rows[i], *b = &dst->rows[j];

            if (sh->nkey == 0) {
                if (a->count > b->count)
                    one_side(sh, a, "missing", a->count - b->count, diffs);
                else if (b->count > a->count)
                    one_side(sh, b, "extra", b->count - a->count, diffs);
                n += a->count != b->count;
            } else {
                json_t *cols = json_array();

                for (size_t k = 0; k < sh->ncols; k++)
                    if (!same_val(a->vals[k], b->vals[k]))
                        json_array_append_new(
                            cols, json_pack("{s:s, s:o, s:o}", "column", sh->cols[k], "source",
                                            val_json(a->vals[k]), "target", val_json(b->vals[k])));
                if (json_array_size(cols)) {
                    json_array_append_new(diffs, json_pack("{s:s, s:o, s:s, s:o}", "kind",
                                                           "differs", "key", key_json(sh, a),
                                                           "key_text", a->key, "columns", cols));
                    n++;
                } else {
                    json_decref(cols);
                }
            }
            i++;
            j++;
        }
    }
    return n;
}
