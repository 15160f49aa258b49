/*
 * What `tidemark status` reports, gathered into one JSON tree: the target's
 * tidemark.* tables (watermark, per-table sync state, last error), the
 * source's slot (active, confirmed and restart LSNs, WAL retained and lag in
 * bytes) and, when service.listen is set, whether the running daemon's
 * /healthz answers. It only reads, so it runs beside the daemon. The CLI
 * prints the tree as JSON or renders it as one screen of text.
 */
#ifndef TM_STATUS_H
#define TM_STATUS_H

#include "config/config.h"

#include <jansson.h>

/*
 * Fills *out (caller json_decref()s it) with what could be learnt. Returns 0,
 * or -ECONNREFUSED when the source or the target could not be reached or
 * read (the tree then says which, under source.error / target.error).
 */
int status_collect(const Config *cfg, json_t **out);

/*
 * GET path on listen ("host:port") with a connect timeout and a total
 * timeout in milliseconds. Returns the HTTP status, or a negative code with
 * tm_error() set; body (may be NULL) receives the first line of the body.
 */
int status_http_get(const char *listen, const char *path, int timeout_ms, char *body,
                    size_t body_cap);

#endif
