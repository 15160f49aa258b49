/*
 * The HTTP endpoint on libmicrohttpd, driven by the daemon's libev loop (see
 * http.h). MHD is started with MHD_USE_EPOLL and no internal thread: the
 * loop watches MHD's epoll fd and calls MHD_run() when it is readable, and
 * an ev_timer re-armed from MHD_get_timeout() after every run covers
 * connection timeouts and work MHD left pending (it then asks for 0 ms).
 */
#include "daemon/http.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ev.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct HttpServer {
    struct ev_loop *loop;
    struct MHD_Daemon *mhd;
    HttpHandlers h;
    ev_io io;
    ev_timer timer;
    int port;
};

static const char *const CT_TEXT = "text/plain; charset=utf-8";
static const char *const CT_METRICS = "text/plain; version=0.0.4; charset=utf-8";

/* MHD's last complaint while starting, for a useful error when it fails. */
static char start_msg[256];

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
        msg[--n] = '\0';
    snprintf(start_msg, sizeof(start_msg), "%s", msg);
    log_debug("http: %s", msg);
}

int http_resolve(const char *listen, struct sockaddr_storage *addr, socklen_t *len)
{
    struct addrinfo hints, *res = NULL, *pick = NULL;
    const char *colon, *port;
    char host[256];
    size_t hlen;
    char *end;
    long p;
    int rc;

    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');

        if (!close || close[1] != ':')
            return tm_fail(-EINVAL, "listen address \"%s\": expected [IPv6]:port", listen);
        hlen = (size_t)(close - listen - 1);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || strchr(listen, ':') != colon)
            return tm_fail(
                -EINVAL, "listen address \"%s\": expected host:port (IPv6 in [brackets])", listen);
        hlen = (size_t)(colon - listen);
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return tm_fail(-EINVAL,
                       "listen address \"%s\": name the address to bind (e.g. 127.0.0.1:9187;"
                       " 0.0.0.0 for every interface)",
                       listen);
    memcpy(host, listen[0] == '[' ? listen + 1 : listen, hlen);
    host[hlen] = '\0';
    port = colon + 1;
    p = strtol(port, &end, 10);
    if (!isdigit((unsigned char)*port) || *end || p > 65535)
        return tm_fail(-EINVAL, "listen address \"%s\": port must be 0..65535", listen);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return tm_fail(-EINVAL, "listen address \"%s\": cannot resolve %s: %s", listen, host,
                       gai_strerror(rc));
    /* "localhost" usually resolves to ::1 first; 127.0.0.1 is what users
     * and scrapers expect of it. */
    for (struct addrinfo *ai = res; ai && !pick; ai = ai->ai_next)
        if (ai->ai_family == AF_INET)
            pick = ai;
    for (struct addrinfo *ai = res; ai && !pick; ai = ai->ai_next)
        if (ai->ai_family == AF_INET6)
            pick = ai;
    if (!pick) {
        freeaddrinfo(res);
        return tm_fail(-EINVAL, "listen address \"%s\": no IPv4 or IPv6 address", listen);
    }
    memcpy(addr, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
                             const Buf *body, bool allow_hdr)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body->len, body->len ? body->data : (void *)"", MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    /* Scrapers and probes want the state now, never a cached copy. */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow_hdr)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    HttpServer *s = cls;
    Buf body = BUF_INIT;
    enum MHD_Result ret;
    unsigned status = MHD_HTTP_OK;
    const char *ctype = CT_TEXT;
    bool is_metrics = strcmp(url, "/metrics") == 0;
    bool is_health = strcmp(url, "/healthz") == 0;
    bool is_ready = strcmp(url, "/readyz") == 0;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        buf_puts(&body, "method not allowed: use GET\n");
        ret = reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, CT_TEXT, &body, true);
        buf_release(&body);
        return ret;
    }
    if (is_metrics && s->h.metrics) {
        s->h.metrics(s->h.arg, &body);
        ctype = CT_METRICS;
    } else if (is_health && s->h.health) {
        status = (unsigned)s->h.health(s->h.arg, &body);
    } else if (is_ready && s->h.ready) {
        status = (unsigned)s->h.ready(s->h.arg, &body);
    } else {
        status = MHD_HTTP_NOT_FOUND;
        buf_puts(&body, "not found: /metrics, /healthz, /readyz\n");
    }
    ret = reply(conn, status, ctype, &body, false);
    buf_release(&body);
    return ret;
}

static void rearm(HttpServer *s)
{
    MHD_UNSIGNED_LONG_LONG ms;

    ev_timer_stop(s->loop, &s->timer);
    if (MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
        ev_timer_set(&s->timer, (double)ms / 1000.0, 0.);
        ev_timer_start(s->loop, &s->timer);
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    HttpServer *s = w->data;

    (void)loop;
    (void)revents;
    MHD_run(s->mhd);
    rearm(s);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    HttpServer *s = w->data;

    (void)loop;
    (void)revents;
    MHD_run(s->mhd);
    rearm(s);
}

static int bound_port(struct MHD_Daemon *mhd)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (!info || getsockname(info->listen_fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int http_start(struct ev_loop *loop, const char *listen, const HttpHandlers *h, HttpServer **out)
{
    struct sockaddr_storage addr;
    socklen_t alen;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    HttpServer *s;
    int rc;

    *out = NULL;
    if (!listen || !*listen)
        return 0;
    rc = http_resolve(listen, &addr, &alen);
    if (rc < 0)
        return rc;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->h = *h;
    start_msg[0] = '\0';
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        /* A scrape is one small request: bound what a misbehaving client holds. */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)32, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
        /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: it means SO_REUSEPORT, which
         * would let a second daemon share the port and half the scrapes.
         * MHD's default SO_REUSEADDR already allows a quick restart. */
        MHD_OPTION_END);
    if (!s->mhd) {
        free(s);
        return tm_fail(-EADDRNOTAVAIL, "cannot serve HTTP on %s%s%s", listen,
                       start_msg[0] ? ": " : "", start_msg);
    }
    info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || info->epoll_fd < 0) {
        MHD_stop_daemon(s->mhd);
        free(s);
        return tm_fail(-ENOTSUP, "cannot serve HTTP: libmicrohttpd lacks epoll support");
    }
    s->port = bound_port(s->mhd);
    ev_io_init(&s->io, on_io, info->epoll_fd, EV_READ);
    s->io.data = s;
    ev_io_start(loop, &s->io);
    ev_init(&s->timer, on_timer);
    s->timer.data = s;
    rearm(s);
    *out = s;
    return 0;
}

void http_stop(HttpServer *s)
{
    if (!s)
        return;
    ev_io_stop(s->loop, &s->io);
    ev_timer_stop(s->loop, &s->timer);
    MHD_stop_daemon(s->mhd);
    free(s);
}

int http_port(const HttpServer *s)
{
    return s ? s->port : 0;
}
