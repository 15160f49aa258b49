/*
 * Offload: how the daemon's one loop (invariant 8) gets blocking work done
 * without waiting for it. A worker thread runs jobs one after another; each
 * job's run() may block on the network (connects, queries, pg_restore), and
 * its done() then runs on the loop thread, woken through an ev_async. The
 * pipeline keeps one worker per peer (source, target): jobs for one peer
 * never overlap, and a peer that black-holes packets delays only its own
 * jobs, never the loop, /metrics or the watchdog.
 *
 * Ownership rule: while a job is queued or running it owns whatever its run()
 * touches (a connection, the sink while the target is down, the replication
 * connection while the stream starts); the loop does not touch those until
 * done() hands them back. done() owns the job's memory.
 */
#ifndef TM_OFFLOAD_H
#define TM_OFFLOAD_H

#include <ev.h>
#include <stdbool.h>

typedef struct Offload Offload;
typedef struct OffloadJob OffloadJob;

typedef void (*OffloadFn)(OffloadJob *job);

struct OffloadJob {
    OffloadFn run;  /* worker thread; sets the result with offload_result() */
    OffloadFn done; /* loop thread; with cancelled set it only releases */
    int rc;
    bool cancelled; /* the pipeline stopped: run() may not have run */
    char err[1024]; /* tm_error() of run() when rc < 0 */
    OffloadJob *next;
};

/* name: for the thread and messages ("source", "target"). */
int offload_new(struct ev_loop *loop, const char *name, Offload **out);

/* Queues job (its run and done set); never blocks. */
void offload_submit(Offload *o, OffloadJob *job);

/* In run(): records rc and, when it is < 0, the thread's tm_error(). */
void offload_result(OffloadJob *job, int rc);

/* In done(): job->rc, with tm_error() set on this thread from the job. */
int offload_rethrow(const OffloadJob *job);

/*
 * Waits for the running job (each blocking call in one is bounded by the
 * connect timeout and TCP keepalives), then calls done() with cancelled set
 * for every job not yet delivered. NULL is fine.
 */
void offload_free(Offload *o);

#endif
