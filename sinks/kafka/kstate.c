/*
 * The Kafka sink's state file (see kstate.h). Format, version 1:
 *   {"format": 1, "pipeline": "p", "start_lsn": "0/16B3748",
 *    "tables": [{"schema": "public", "table": "t", "state": "pending"},
 *               {"schema": "public", "table": "u", "state": "synced",
 *                "sync_lsn": "0/16B3790"}],
 *    "lost_lsn": "0/16B4000"}
 * lost_lsn (optional) is the commit LSN of a transaction whose delivery
 * failed: a restart must resume at or before it.
 * A file that does not parse, or belongs to another pipeline, stops the
 * daemon: guessing would either skip a copy or redo everything silently.
 */
#include "sinks/kafka/kstate.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FORMAT 1

/* mkdir -p, mode 0750 for what it creates. */
static int make_dirs(const char *dir)
{
    char *p = xstrdup(dir);
    int rc = 0;

    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;

        *s = '\0';
        if (mkdir(p, 0750) < 0 && errno != EEXIST) {
            rc = tm_fail(-errno, "cannot create the Kafka state directory %s: %s", p,
                         strerror(errno));
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return rc;
}

static void tables_free(KState *st)
{
    for (size_t i = 0; i < st->n; i++) {
        free(st->t[i].schema);
        free(st->t[i].name);
    }
    free(st->t);
    st->t = NULL;
    st->n = 0;
}

static int bad_file(const KState *st, const char *what)
{
    return tm_fail(-EINVAL,
                   "Kafka state file %s: %s. Fix or remove it (removing it, and dropping the"
                   " slot, starts the pipeline over with a new initial load)",
                   st->path, what);
}

static int parse(KState *st, json_t *root)
{
    const char *pipeline = json_string_value(json_object_get(root, "pipeline"));
    const char *start = json_string_value(json_object_get(root, "start_lsn"));
    const char *lost = json_string_value(json_object_get(root, "lost_lsn"));
    json_t *tables = json_object_get(root, "tables");
    size_t i;
    json_t *el;

    if (json_integer_value(json_object_get(root, "format")) != STATE_FORMAT)
        return bad_file(st, "unknown format");
    if (!pipeline || strcmp(pipeline, st->pipeline) != 0)
        return tm_fail(-EINVAL,
                       "Kafka state file %s belongs to pipeline \"%s\", not \"%s\": give each"
                       " pipeline its own target.state_dir",
                       st->path, pipeline ? pipeline : "?", st->pipeline);
    if (!start || lsn_parse(start, &st->start_lsn) < 0 || !json_is_array(tables))
        return bad_file(st, "start_lsn or tables missing");
    if (lost && lsn_parse(lost, &st->lost_lsn) < 0)
        return bad_file(st, "lost_lsn is not an LSN");
    st->t = xcalloc(json_array_size(tables) + 1, sizeof(*st->t));
    json_array_foreach(tables, i, el)
    {
        const char *schema = json_string_value(json_object_get(el, "schema"));
        const char *name = json_string_value(json_object_get(el, "table"));
        const char *state = json_string_value(json_object_get(el, "state"));
        const char *lsn = json_string_value(json_object_get(el, "sync_lsn"));
        KStateTable *t = &st->t[st->n];

        if (!schema || !name || !state)
            return bad_file(st, "a table entry lacks schema, table or state");
        t->schema = xstrdup(schema);
        t->name = xstrdup(name);
        st->n++;
        t->synced = strcmp(state, "synced") == 0;
        if (t->synced && (!lsn || lsn_parse(lsn, &t->sync_lsn) < 0))
            return bad_file(st, "a synced table has no valid sync_lsn");
    }
    st->initialized = true;
    return 0;
}

int kstate_load(KState *st, const char *dir, const char *pipeline)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    memset(st, 0, sizeof(*st));
    st->dir = xstrdup(dir);
    st->path = xasprintf("%s/state.json", dir);
    st->pipeline = xstrdup(pipeline);
    rc = make_dirs(dir);
    if (rc < 0)
        return rc;
    if (access(st->path, F_OK) < 0) {
        if (errno == ENOENT)
            return 0;
        return tm_fail(-errno, "cannot access %s: %s", st->path, strerror(errno));
    }
    root = json_load_file(st->path, 0, &jerr);
    if (!root)
        return bad_file(st, jerr.text);
    rc = parse(st, root);
    json_decref(root);
    if (rc < 0)
        tables_free(st);
    return rc;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int save(const KState *st)
{
    json_t *root = json_object(), *tables = json_array();
    char lsnbuf[24];
    char *text, *tmp = xasprintf("%s.tmp", st->path);
    int fd, rc = 0;

    json_object_set_new(root, "format", json_integer(STATE_FORMAT));
    json_object_set_new(root, "pipeline", json_string(st->pipeline));
    json_object_set_new(root, "start_lsn",
                        json_string(lsn_format(st->start_lsn, lsnbuf, sizeof(lsnbuf))));
    for (size_t i = 0; i < st->n; i++) {
        json_t *t = json_object();

        json_object_set_new(t, "schema", json_string(st->t[i].schema));
        json_object_set_new(t, "table", json_string(st->t[i].name));
        json_object_set_new(t, "state", json_string(st->t[i].synced ? "synced" : "pending"));
        if (st->t[i].synced)
            json_object_set_new(t, "sync_lsn",
                                json_string(lsn_format(st->t[i].sync_lsn, lsnbuf, sizeof(lsnbuf))));
        json_array_append_new(tables, t);
    }
    json_object_set_new(root, "tables", tables);
    if (st->lost_lsn != LSN_INVALID)
        json_object_set_new(root, "lost_lsn",
                            json_string(lsn_format(st->lost_lsn, lsnbuf, sizeof(lsnbuf))));
    text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        xalloc_die();

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        rc = -errno;
    if (rc == 0)
        rc = write_all(fd, text, strlen(text));
    if (rc == 0)
        rc = write_all(fd, "\n", 1);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, st->path) < 0)
        rc = -errno;
    if (rc == 0) {
        /* The rename is durable only once the directory is. */
        int dfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd < 0 || fsync(dfd) < 0)
            rc = -errno;
        if (dfd >= 0)
            close(dfd);
    }
    if (rc < 0) {
        rc = tm_fail(rc, "writing the Kafka state file %s: %s", st->path, strerror(-rc));
        unlink(tmp);
    }
    free(text);
    free(tmp);
    return rc;
}

int kstate_init(KState *st, Lsn start_lsn, const TableSet *tabs)
{
    tables_free(st);
    st->start_lsn = start_lsn;
    st->lost_lsn = LSN_INVALID;
    st->t = xcalloc(tabs->n + 1, sizeof(*st->t));
    for (size_t i = 0; i < tabs->n; i++) {
        st->t[i].schema = xstrdup(tabs->t[i].schema);
        st->t[i].name = xstrdup(tabs->t[i].name);
    }
    st->n = tabs->n;
    st->initialized = true;
    return save(st);
}

static KStateTable *find(const KState *st, const char *schema, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->t[i].schema, schema) == 0 && strcmp(st->t[i].name, name) == 0)
            return &st->t[i];
    return NULL;
}

void kstate_table(const KState *st, const char *schema, const char *name, bool *synced,
                  Lsn *sync_lsn)
{
    const KStateTable *t = find(st, schema, name);

    *synced = t && t->synced;
    *sync_lsn = *synced ? t->sync_lsn : LSN_INVALID;
}

int kstate_set_synced(KState *st, const char *schema, const char *name, Lsn sync_lsn)
{
    KStateTable *t = find(st, schema, name);

    if (!t) {
        st->t = xrealloc(st->t, (st->n + 1) * sizeof(*st->t));
        t = &st->t[st->n++];
        t->schema = xstrdup(schema);
        t->name = xstrdup(name);
    }
    t->synced = true;
    t->sync_lsn = sync_lsn;
    return save(st);
}

int kstate_set_lost(KState *st, Lsn lsn)
{
    if (lsn != LSN_INVALID && st->lost_lsn != LSN_INVALID && st->lost_lsn <= lsn)
        return 0;
    if (lsn == st->lost_lsn)
        return 0;
    st->lost_lsn = lsn;
    return save(st);
}

int kstate_forget(KState *st, const TableSet *keep)
{
    size_t kept = 0;

    for (size_t i = 0; i < st->n; i++) {
        if (tableset_find(keep, st->t[i].schema, st->t[i].name) >= 0) {
            st->t[kept++] = st->t[i];
        } else {
            free(st->t[i].schema);
            free(st->t[i].name);
        }
    }
    if (kept == st->n)
        return 0;
    st->n = kept;
    return save(st);
}

void kstate_release(KState *st)
{
    tables_free(st);
    free(st->dir);
    free(st->path);
    free(st->pipeline);
    memset(st, 0, sizeof(*st));
}
