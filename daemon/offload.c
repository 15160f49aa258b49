/*
 * The offload worker (see offload.h): one thread, a FIFO of jobs to run and
 * a FIFO of finished jobs the loop collects when the ev_async fires. The
 * thread blocks every signal so SIGTERM, SIGINT and SIGHUP reach the loop's
 * signal watchers, never a thread stuck in connect().
 */
#include "daemon/offload.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

struct Offload {
    struct ev_loop *loop;
    ev_async async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    OffloadJob *todo, **todo_tail; /* under mu */
    OffloadJob *fin, **fin_tail;   /* under mu */
    bool stopping;                 /* under mu */
    char name[32];
};

static void push(OffloadJob **head, OffloadJob ***tail, OffloadJob *j)
{
    j->next = NULL;
    **tail = j;
    *tail = &j->next;
}

static OffloadJob *take_all(OffloadJob **head, OffloadJob ***tail)
{
    OffloadJob *all = *head;

    *head = NULL;
    *tail = head;
    return all;
}

static void *worker_main(void *arg)
{
    Offload *o = arg;

    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->todo && !o->stopping)
            pthread_cond_wait(&o->cv, &o->mu);
        if (o->stopping)
            break;
        OffloadJob *j = o->todo;

        o->todo = j->next;
        if (!o->todo)
            o->todo_tail = &o->todo;
        pthread_mutex_unlock(&o->mu);
        tm_error_clear();
        j->rc = 0;
        j->err[0] = '\0';
        j->run(j);
        pthread_mutex_lock(&o->mu);
        push(&o->fin, &o->fin_tail, j);
        ev_async_send(o->loop, &o->async);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

static void deliver(OffloadJob *j, bool cancelled)
{
    while (j) {
        OffloadJob *next = j->next;

        j->cancelled = cancelled;
        j->done(j); /* may free j, may submit more */
        j = next;
    }
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    Offload *o = w->data;

    pthread_mutex_lock(&o->mu);
    OffloadJob *fin = take_all(&o->fin, &o->fin_tail);
    pthread_mutex_unlock(&o->mu);
    deliver(fin, false);
}

int offload_new(struct ev_loop *loop, const char *name, Offload **out)
{
    Offload *o = xcalloc(1, sizeof(*o));
    sigset_t all, old;
    int err;

    o->loop = loop;
    o->todo_tail = &o->todo;
    o->fin_tail = &o->fin;
    snprintf(o->name, sizeof(o->name), "%s", name);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    ev_async_init(&o->async, on_async);
    o->async.data = o;
    ev_async_start(loop, &o->async);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    err = pthread_create(&o->thread, NULL, worker_main, o);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        ev_async_stop(loop, &o->async);
        pthread_mutex_destroy(&o->mu);
        pthread_cond_destroy(&o->cv);
        free(o);
        return tm_fail(-err, "cannot start the %s worker thread: %s", name, strerror(err));
    }
    *out = o;
    return 0;
}

void offload_submit(Offload *o, OffloadJob *job)
{
    job->cancelled = false;
    pthread_mutex_lock(&o->mu);
    push(&o->todo, &o->todo_tail, job);
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

void offload_result(OffloadJob *job, int rc)
{
    job->rc = rc;
    if (rc < 0)
        snprintf(job->err, sizeof(job->err), "%s", tm_error());
}

int offload_rethrow(const OffloadJob *job)
{
    if (job->rc < 0)
        return tm_fail(job->rc, "%s", job->err);
    return job->rc;
}

void offload_free(Offload *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    log_debug("waiting for the %s worker's current job", o->name);
    pthread_join(o->thread, NULL);
    ev_async_stop(o->loop, &o->async);
    /* Finished first, then never run: each done() releases its job. */
    deliver(take_all(&o->fin, &o->fin_tail), true);
    deliver(take_all(&o->todo, &o->todo_tail), true);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o);
}
