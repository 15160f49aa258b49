/*
 * The stream's id_map lookups without waiting on the loop. A change whose
 * id is not cached is not transformed now: the lookup asks the target
 * worker (one question at a time) and fails with -EAGAIN, which is never a
 * data error (mapping_error_is_data) so it is neither dead-lettered nor fatal;
 * pipeline.c keeps the frame and stops reading the replication socket. When
 * the answer is in, the frame is transformed again from the start (nothing
 * was sent for it) and finds the answer: a new id in the cache, a missing one
 * or a failed lookup among the answers kept until the next frame.
 */
#include "daemon/pipeline_int.h"
#include "connectors/pg/idmap.h"
#include "core/error.h"
#include "core/transform/mapping.h"
#include "core/xmalloc.h"

#include <stdlib.h>

typedef struct StreamIdMap {
    Pipeline *p;
    IdMapLookup *l;
    bool asking; /* a LookupJob is on its way */
} StreamIdMap;

typedef struct LookupJob {
    OffloadJob base;
    StreamIdMap *m;
    char *ns, *old, *new_id;
} LookupJob;

static void lookup_run(OffloadJob *j)
{
    LookupJob *q = (LookupJob *)j;

    offload_result(j, idmap_fetch(q->m->l, q->ns, q->old, &q->new_id));
}

static void lookup_done(OffloadJob *j)
{
    LookupJob *q = (LookupJob *)j;
    StreamIdMap *m = q->m;

    if (!j->cancelled) {
        m->asking = false;
        idmap_remember(m->l, q->ns, q->old, j->rc, q->new_id, j->err);
    }
    free(q->ns);
    free(q->old);
    free(q->new_id);
    bool cancelled = j->cancelled;

    free(q);
    if (!cancelled)
        pipeline_lookup_answered(m->p);
}

/* The plan's IdLookupFn on the stream. */
static int stream_lookup(void *ctx, const char *ns, const char *old, const char **new_out)
{
    StreamIdMap *m = ctx;
    int rc = idmap_cached(m->l, ns, old, new_out);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    /* Asking already (an answer for a frame a lost connection took away):
     * its answer wakes this frame, which then asks for its own id. */
    if (!m->asking) {
        LookupJob *q = xcalloc(1, sizeof(*q));

        q->base.run = lookup_run;
        q->base.done = lookup_done;
        q->m = m;
        q->ns = xstrdup(ns);
        q->old = xstrdup(old);
        m->asking = true;
        offload_submit(m->p->dst_jobs, &q->base);
    }
    return tm_fail(-EAGAIN, "id_map: looking up id %.64s of namespace \"%s\" on the target", old,
                   ns);
}

int pipeline_idmap_attach(Pipeline *p, MappingPlan *plan)
{
    if (!p->idmap) {
        StreamIdMap *m = xcalloc(1, sizeof(*m));

        m->p = p;
        idmap_lookup_new(&p->cfg->target.conn, &m->l);
        p->idmap = m;
    }
    mapping_set_id_lookup(plan, stream_lookup, p->idmap);
    return 0;
}

void pipeline_idmap_new_frame(Pipeline *p)
{
    if (p->idmap)
        idmap_forget_answers(p->idmap->l);
}

void pipeline_idmap_free(Pipeline *p)
{
    if (!p->idmap)
        return;
    idmap_lookup_free(p->idmap->l);
    free(p->idmap);
    p->idmap = NULL;
}
