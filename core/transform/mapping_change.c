/*
 * One row change (INSERT, UPDATE, DELETE) through a table's mapping, as a
 * change of the target table: the stream's rule for filters in one place, for
 * any reader of change events (the Kafka applier; the pipeline's stream has
 * the same rule inline). With a filter (which needs the whole old row) an
 * UPDATE that moves a row into the filter's range becomes an INSERT, one
 * that moves it out a DELETE, and a DELETE of a row the filter kept out
 * is no change at all: the target never had it.
 */
#include "core/error.h"
#include "core/transform/mapping.h"

int mapping_apply_change(const MappingPlan *plan, const Change *c, Arena *arena, Change *out,
                         bool *filtered)
{
    Tuple nt = {0}, ot = {0};
    bool nf = false, of = false;
    int rc = 0;

    *filtered = false;
    *out = (Change){.kind = c->kind};
    switch (c->kind) {
    case CHG_INSERT:
        rc = mapping_apply(plan, &c->insert.newtup, arena, &nt, &nf);
        if (rc < 0)
            return rc;
        *filtered = nf;
        out->insert.relid = c->insert.relid;
        out->insert.newtup = nt;
        return 0;
    case CHG_UPDATE: {
        Tuple in = c->update.newtup;
        char ok = c->update.old_kind;

        if (ok == 'O') {
            /* Unchanged TOAST values a transform needs come from the full old row. */
            ColValue *cols = arena_calloc(arena, in.ncols ? in.ncols : 1, sizeof(*cols));

            for (uint16_t i = 0; i < in.ncols; i++)
                cols[i] = in.cols[i].state == COL_UNCHANGED && i < c->update.oldtup.ncols
                              ? c->update.oldtup.cols[i]
                              : in.cols[i];
            in.cols = cols;
        }
        rc = mapping_apply(plan, &in, arena, &nt, &nf);
        if (rc == 0 && ok == 'O')
            rc = mapping_apply(plan, &c->update.oldtup, arena, &ot, &of);
        else if (rc == 0 && ok == 'K')
            rc = mapping_apply_key(plan, &c->update.oldtup, arena, &ot);
        if (rc < 0)
            return rc;
        if (nf && of) {
            *filtered = true;
        } else if (of) { /* into the filter's range: the target does not have it yet */
            out->kind = CHG_INSERT;
            out->insert.relid = c->update.relid;
            out->insert.newtup = nt;
        } else if (nf) { /* out of it: the target's row goes */
            out->kind = CHG_DELETE;
            out->del.relid = c->update.relid;
            out->del.old_kind = 'O';
            out->del.oldtup = ot;
        } else {
            out->update.relid = c->update.relid;
            out->update.old_kind = ok;
            out->update.oldtup = ot;
            out->update.newtup = nt;
        }
        return 0;
    }
    case CHG_DELETE:
        if (c->del.old_kind == 'O')
            rc = mapping_apply(plan, &c->del.oldtup, arena, &ot, &of);
        else
            rc = mapping_apply_key(plan, &c->del.oldtup, arena, &ot);
        if (rc < 0)
            return rc;
        *filtered = of;
        out->del.relid = c->del.relid;
        out->del.old_kind = c->del.old_kind;
        out->del.oldtup = ot;
        return 0;
    default:
        return tm_fail(-EINVAL, "mapping: change kind '%c' is not a row change", c->kind);
    }
}
