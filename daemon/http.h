/*
 * The daemon's HTTP endpoint: /metrics (Prometheus text), /healthz and
 * /readyz, served by libmicrohttpd without any thread of its own. MHD runs
 * in "external epoll" mode: its epoll fd is one ev_io on the daemon's libev
 * loop and its timeout one ev_timer, so requests are answered between
 * replication frames on the same thread (invariant 8) and the handlers read
 * pipeline state without locks.
 */
#ifndef TM_HTTP_H
#define TM_HTTP_H

#include "core/buf.h"

#include <sys/socket.h>

struct ev_loop;

typedef struct HttpServer HttpServer;

typedef struct HttpHandlers {
    void (*metrics)(void *arg, Buf *out); /* appends Prometheus text exposition */
    int (*health)(void *arg, Buf *out);   /* returns 200 or 503, appends a short text body */
    int (*ready)(void *arg, Buf *out);    /* same for /readyz */
    void *arg;
} HttpHandlers;

/*
 * Serves GET (and HEAD) on listen, "host:port": an IPv4 address, an IPv6
 * address in [brackets], or a name such as "localhost" (its first IPv4
 * address is preferred). "" (or NULL) means disabled: *out = NULL, returns
 * 0. Port 0 binds a free port (see http_port). A NULL handler answers 404
 * for its path. Returns 0 or a negative code with tm_error() set.
 */
int http_start(struct ev_loop *loop, const char *listen, const HttpHandlers *h, HttpServer **out);

/* Stops serving and frees s; NULL is fine. */
void http_stop(HttpServer *s);

/* The bound port (useful with port 0 in tests); 0 for NULL. */
int http_port(const HttpServer *s);

/*
 * Parses and resolves listen ("host:port") into an address, as http_start
 * does; for validating a new config before applying it, and for clients.
 */
int http_resolve(const char *listen, struct sockaddr_storage *addr, socklen_t *len);

#endif
