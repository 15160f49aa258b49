/*
 * TableSet helpers (see table.h).
 */
#include "core/table.h"

#include <stdlib.h>
#include <string.h>

void tabledef_release(TableDef *t)
{
    if (!t)
        return;
    free(t->schema);
    free(t->name);
    free(t->display);
    free(t->leaves_without_identity);
    for (size_t c = 0; c < t->ncols; c++) {
        free(t->cols[c].name);
        free(t->cols[c].base_typname);
        free(t->cols[c].elem_typname);
        free(t->cols[c].enum_labels);
    }
    free(t->cols);
    memset(t, 0, sizeof(*t));
}

void tableset_release(TableSet *set)
{
    if (!set || !set->t)
        return;
    for (size_t i = 0; i < set->n; i++)
        tabledef_release(&set->t[i]);
    free(set->t);
    set->t = NULL;
    set->n = 0;
}

int tableset_find(const TableSet *set, const char *schema, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->t[i].schema, schema) == 0 && strcmp(set->t[i].name, name) == 0)
            return (int)i;
    return -1;
}

void copyparts_free(CopyPart *parts, int n)
{
    if (!parts)
        return;
    for (int i = 0; i < n; i++) {
        free(parts[i].leaf_schema);
        free(parts[i].leaf_name);
    }
    free(parts);
}
