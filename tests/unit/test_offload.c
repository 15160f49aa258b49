/*
 * The offload worker (daemon/offload.c): jobs run in order on another
 * thread, their done() on the loop's; a job that blocks does not stop the
 * loop's timers; a failure's message crosses threads; stopping cancels what
 * is queued and still hands every job back.
 */
#include "core/error.h"
#include "daemon/offload.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <unistd.h>

typedef struct TestJob {
    OffloadJob base;
    int id;
    int gate;         /* -1, or a pipe's read end run() blocks on */
    pthread_t ran_on; /* run()'s thread */
    int *order;       /* done() appends id here */
    int *norder;
    int *ncancelled;
    struct ev_loop *loop; /* done() of the last job breaks it */
    bool last;
} TestJob;

static void job_run(OffloadJob *j)
{
    TestJob *t = (TestJob *)j;
    char c;

    t->ran_on = pthread_self();
    if (t->gate >= 0)
        assert_int_equal(read(t->gate, &c, 1), 1);
    offload_result(j, t->id == 13 ? tm_fail(-EIO, "job %d failed on the worker", t->id) : 0);
}

static void job_done(OffloadJob *j)
{
    TestJob *t = (TestJob *)j;

    if (j->cancelled) {
        (*t->ncancelled)++;
        return;
    }
    assert_false(pthread_equal(t->ran_on, pthread_self()));
    t->order[(*t->norder)++] = t->id;
    if (t->id == 13) {
        assert_int_equal(offload_rethrow(j), -EIO);
        assert_string_equal(tm_error(), "job 13 failed on the worker");
    } else {
        assert_int_equal(offload_rethrow(j), 0);
    }
    if (t->last)
        ev_break(t->loop, EVBREAK_ALL);
}

typedef struct Ticker {
    ev_timer w;
    int ticks;
    int gate_w; /* released after a few ticks: the loop ran while the job blocked */
} Ticker;

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    Ticker *t = (Ticker *)w;

    if (++t->ticks == 3)
        assert_int_equal(write(t->gate_w, "x", 1), 1);
}

static void test_runs_off_the_loop_in_order(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    Offload *o = NULL;
    int gate[2], order[8], norder = 0, ncancelled = 0;
    TestJob jobs[3];
    Ticker tick = {.gate_w = -1};

    assert_int_equal(pipe(gate), 0);
    assert_int_equal(offload_new(loop, "test", &o), 0);
    for (int i = 0; i < 3; i++) {
        jobs[i] = (TestJob){.base = {.run = job_run, .done = job_done},
                            .id = 11 + i,
                            .gate = i == 0 ? gate[0] : -1,
                            .order = order,
                            .norder = &norder,
                            .ncancelled = &ncancelled,
                            .loop = loop,
                            .last = i == 2};
        offload_submit(o, &jobs[i].base);
    }
    /* The first job blocks until the loop's timer has fired three times. */
    tick.gate_w = gate[1];
    ev_timer_init(&tick.w, on_tick, 0.01, 0.01);
    ev_timer_start(loop, &tick.w);
    ev_run(loop, 0);
    ev_timer_stop(loop, &tick.w);
    assert_true(tick.ticks >= 3);
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 11);
    assert_int_equal(order[1], 12);
    assert_int_equal(order[2], 13);
    assert_int_equal(ncancelled, 0);
    offload_free(o);
    close(gate[0]);
    close(gate[1]);
    ev_loop_destroy(loop);
}

static void test_free_cancels_queued(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    Offload *o = NULL;
    int gate[2], order[8], norder = 0, ncancelled = 0;
    TestJob jobs[3];

    assert_int_equal(pipe(gate), 0);
    assert_int_equal(offload_new(loop, "test", &o), 0);
    for (int i = 0; i < 3; i++) {
        jobs[i] = (TestJob){.base = {.run = job_run, .done = job_done},
                            .id = 21 + i,
                            .gate = i == 0 ? gate[0] : -1,
                            .order = order,
                            .norder = &norder,
                            .ncancelled = &ncancelled,
                            .loop = loop};
        offload_submit(o, &jobs[i].base);
    }
    /* Nothing was collected by the loop: every job comes back cancelled. */
    assert_int_equal(write(gate[1], "x", 1), 1);
    offload_free(o);
    assert_int_equal(norder, 0);
    assert_int_equal(ncancelled, 3);
    close(gate[0]);
    close(gate[1]);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_off_the_loop_in_order),
        cmocka_unit_test(test_free_cancels_queued),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
