/*
 * The HTTP endpoint on a real libev loop: the server binds 127.0.0.1:0, a
 * client thread speaks plain HTTP/1.1 over sockets while the test's thread
 * runs the loop, as the daemon would. Checks status codes, bodies and
 * headers (/metrics, /healthz 200 and 503, /readyz, 404, 405), that handlers
 * run on the loop's thread (one loop, no MHD threads), that a stalled client
 * does not block others, and the listen-address parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/error.h"
#include "daemon/http.h"

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct Reply {
    int status;
    char headers[2048];
    char body[4096];
} Reply;

typedef struct Fixture {
    struct ev_loop *loop;
    HttpServer *srv;
    int port;
    ev_async done;
    ev_timer deadline;
    pthread_t loop_thread;
    bool handler_off_thread;
    int health_status;
    int calls;
    bool timed_out;
    void (*client)(struct Fixture *f);
} Fixture;

static void metrics_cb(void *arg, Buf *out)
{
    Fixture *f = arg;

    f->calls++;
    if (!pthread_equal(pthread_self(), f->loop_thread))
        f->handler_off_thread = true;
    buf_puts(out, "# HELP tidemark_up Whether the pipeline runs.\n# TYPE tidemark_up gauge\n"
                  "tidemark_up 1\n");
}

static int health_cb(void *arg, Buf *out)
{
    Fixture *f = arg;

    f->calls++;
    if (!pthread_equal(pthread_self(), f->loop_thread))
        f->handler_off_thread = true;
    buf_puts(out, f->health_status == 200 ? "ok: streaming\n" : "unhealthy: target down\n");
    return f->health_status;
}

static int ready_cb(void *arg, Buf *out)
{
    (void)arg;
    buf_puts(out, "ready\n");
    return 200;
}

static int connect_to(int port)
{
    struct sockaddr_in sa;
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request on a fresh connection; reads to EOF (Connection: close). */
static void request(int port, const char *method, const char *path, Reply *r)
{
    char req[256], resp[8192];
    size_t got = 0;
    ssize_t n;
    int fd = connect_to(port);
    const char *sep;

    memset(r, 0, sizeof(*r));
    r->status = -1;
    if (fd < 0)
        return;
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s\r\n",
             method, path, strcmp(method, "POST") == 0 ? "Content-Length: 3\r\n" : "");
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
        goto out;
    if (strcmp(method, "POST") == 0)
        (void)send(fd, "a=b", 3, MSG_NOSIGNAL);
    while (got < sizeof(resp) - 1 && (n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) > 0)
        got += (size_t)n;
    resp[got] = '\0';
    if (sscanf(resp, "HTTP/1.%*d %d", &r->status) != 1)
        goto out;
    sep = strstr(resp, "\r\n\r\n");
    if (sep) {
        snprintf(r->headers, sizeof(r->headers), "%.*s", (int)(sep - resp), resp);
        snprintf(r->body, sizeof(r->body), "%s", sep + 4);
    }
out:
    close(fd);
}

static void *client_main(void *arg)
{
    Fixture *f = arg;

    f->client(f);
    ev_async_send(f->loop, &f->done);
    return NULL;
}

static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    Fixture *f = w->data;

    (void)revents;
    f->timed_out = true;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs f->client in a thread while this thread runs the loop. */
static void run_client(Fixture *f, void (*client)(Fixture *))
{
    pthread_t th;

    f->client = client;
    f->timed_out = false;
    assert_int_equal(pthread_create(&th, NULL, client_main, f), 0);
    ev_run(f->loop, 0);
    if (f->timed_out) {
        /* The client is stuck on a server that does not answer: fail now
         * (its sockets have 5 s timeouts, so joining would end too). */
        fail_msg("HTTP client did not finish within the deadline");
    }
    pthread_join(th, NULL);
}

static int setup(void **state)
{
    static const HttpHandlers h0 = {.metrics = metrics_cb, .health = health_cb, .ready = ready_cb};
    Fixture *f = calloc(1, sizeof(*f));
    HttpHandlers h = h0;

    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->loop_thread = pthread_self();
    f->health_status = 200;
    h.arg = f;
    if (http_start(f->loop, "127.0.0.1:0", &h, &f->srv) != 0 || !f->srv) {
        fprintf(stderr, "http_start: %s\n", tm_error());
        return -1;
    }
    f->port = http_port(f->srv);
    ev_async_init(&f->done, on_done);
    ev_async_start(f->loop, &f->done);
    ev_timer_init(&f->deadline, on_deadline, 20., 0.);
    f->deadline.data = f;
    ev_timer_start(f->loop, &f->deadline);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;

    http_stop(f->srv);
    ev_async_stop(f->loop, &f->done);
    ev_timer_stop(f->loop, &f->deadline);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static Reply r_metrics, r_health, r_ready, r_404, r_405, r_head, r_health503;

static void client_basic(Fixture *f)
{
    request(f->port, "GET", "/metrics", &r_metrics);
    request(f->port, "GET", "/healthz", &r_health);
    request(f->port, "GET", "/readyz", &r_ready);
    request(f->port, "GET", "/nope", &r_404);
    request(f->port, "POST", "/metrics", &r_405);
    request(f->port, "HEAD", "/metrics", &r_head);
    f->health_status = 503; /* the loop thread reads it only inside the next request */
    request(f->port, "GET", "/healthz", &r_health503);
}

static void test_endpoints(void **state)
{
    Fixture *f = *state;

    assert_true(f->port > 0);
    run_client(f, client_basic);
    assert_int_equal(r_metrics.status, 200);
    assert_non_null(strstr(r_metrics.headers, "Content-Type: text/plain; version=0.0.4"));
    assert_string_equal(r_metrics.body, "# HELP tidemark_up Whether the pipeline runs.\n"
                                        "# TYPE tidemark_up gauge\ntidemark_up 1\n");
    assert_int_equal(r_health.status, 200);
    assert_string_equal(r_health.body, "ok: streaming\n");
    assert_int_equal(r_ready.status, 200);
    assert_string_equal(r_ready.body, "ready\n");
    assert_int_equal(r_404.status, 404);
    assert_int_equal(r_405.status, 405);
    assert_non_null(strstr(r_405.headers, "Allow: GET, HEAD"));
    assert_int_equal(r_head.status, 200);
    assert_string_equal(r_head.body, "");
    assert_int_equal(r_health503.status, 503);
    assert_string_equal(r_health503.body, "unhealthy: target down\n");
    assert_false(f->handler_off_thread);
}

/* A client that sends half a request and waits must not hold up others. */
static Reply r_while_stalled;

static void client_stalled(Fixture *f)
{
    int stalled = connect_to(f->port);

    assert_true(stalled >= 0);
    (void)send(stalled, "GET /met", 8, MSG_NOSIGNAL);
    for (int i = 0; i < 20; i++) {
        request(f->port, "GET", "/metrics", &r_while_stalled);
        if (r_while_stalled.status != 200)
            break;
    }
    close(stalled);
}

static void test_stalled_client(void **state)
{
    Fixture *f = *state;
    int before = f->calls;

    run_client(f, client_stalled);
    assert_int_equal(r_while_stalled.status, 200);
    assert_true(f->calls - before >= 20);
}

/* Several clients at once, all answered by the one loop. */
static void *parallel_one(void *arg)
{
    Reply *r = arg;

    request(*(int *)(void *)r->headers, "GET", "/metrics", r);
    return NULL;
}

static Reply r_par[8];

static void client_parallel(Fixture *f)
{
    pthread_t th[8];

    for (int i = 0; i < 8; i++) {
        memcpy(r_par[i].headers, &f->port, sizeof(int)); /* port in, reply out */
        pthread_create(&th[i], NULL, parallel_one, &r_par[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
}

static void test_parallel(void **state)
{
    Fixture *f = *state;

    run_client(f, client_parallel);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(r_par[i].status, 200);
        assert_non_null(strstr(r_par[i].body, "tidemark_up 1\n"));
    }
    assert_false(f->handler_off_thread);
}

static void test_disabled_and_errors(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    HttpHandlers h = {0};
    HttpServer *s = (HttpServer *)&h;
    HttpServer *s2 = NULL;
    Fixture *f = *state;
    char addr[64];

    (void)state;
    assert_int_equal(http_start(loop, "", &h, &s), 0);
    assert_null(s);
    assert_int_equal(http_start(loop, NULL, &h, &s), 0);
    assert_null(s);
    assert_int_equal(http_port(NULL), 0);
    http_stop(NULL);

    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:", ":9187", "127.0.0.1:x",   "127.0.0.1:-1", "127.0.0.1:65536",
        "::1:9187",  "[::1]9187",  "[::1",  "127.0.0.1: 80", "127.0.0.1:+80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = (HttpServer *)&h;
        assert_int_equal(http_start(loop, bad[i], &h, &s), -EINVAL);
        assert_null(s);
        assert_non_null(strstr(tm_error(), bad[i]));
    }
    /* The port the fixture holds is taken. */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
    assert_true(http_start(loop, addr, &h, &s2) < 0);
    assert_null(s2);
    assert_non_null(strstr(tm_error(), addr));

    /* localhost binds the IPv4 loopback. */
    assert_int_equal(http_start(loop, "localhost:0", &h, &s2), 0);
    assert_non_null(s2);
    assert_true(http_port(s2) > 0);
    http_stop(s2);
    ev_loop_destroy(loop);
}

static void test_resolve(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;

    (void)state;
    assert_int_equal(http_resolve("127.0.0.1:9187", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9187);
    assert_int_equal(http_resolve("[::1]:80", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 80);
    assert_int_equal(http_resolve("localhost:1", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints), cmocka_unit_test(test_stalled_client),
        cmocka_unit_test(test_parallel),  cmocka_unit_test(test_disabled_and_errors),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
