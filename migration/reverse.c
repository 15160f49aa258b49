/*
 * The fallback pipeline's configuration (see reverse.h). It is built as YAML
 * text and loaded through the normal config loader, so the file an operator
 * runs and the Config cutover and rollback use cannot differ. Connection
 * settings are swapped; apply, service, log and verify settings are carried
 * over; there is no mapping and no schema copy (the tables exist on both
 * sides and are equal at the switch).
 */
#include "migration/reverse.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/xmalloc.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The config schema's limit for pipeline names. */
#define PIPELINE_NAME_MAX 41

char *reverse_refusal(const Config *fwd)
{
    json_t *mapping = json_object_get(fwd->tree, "mapping");

    if (strcmp(fwd->target.type, "postgres") != 0)
        return xasprintf("pipeline %s writes to %s: only a PostgreSQL target can stream back"
                         " to the source",
                         fwd->pipeline, fwd->target.type);
    if (mapping && json_object_size(mapping) > 0) {
        const char *first = json_object_iter_key(json_object_iter(mapping));

        return xasprintf("pipeline %s maps tables (mapping: %s%s): a mapping's transforms have"
                         " no inverse in tidemark, so the new side's changes cannot be streamed"
                         " back to the old one; remove the mapping, or cut over without a"
                         " fallback (--no-fallback: then there is no rollback either)",
                         fwd->pipeline, first, json_object_size(mapping) > 1 ? ", ..." : "");
    }
    if (strlen(fwd->pipeline) + strlen(REVERSE_SUFFIX) > PIPELINE_NAME_MAX)
        return xasprintf("pipeline name %s is too long for its fallback pipeline %s%s (at most"
                         " %zu characters)",
                         fwd->pipeline, fwd->pipeline, REVERSE_SUFFIX,
                         PIPELINE_NAME_MAX - strlen(REVERSE_SUFFIX));
    return NULL;
}

/* A double-quoted YAML scalar. */
static void put_str(Buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_putc(b, '\\');
        if (*s == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

static void put_endpoint(Buf *b, const ConfigEndpoint *ep)
{
    buf_puts(b, "  conninfo: ");
    put_str(b, ep->conninfo);
    buf_putc(b, '\n');
    if (ep->password_file) {
        buf_puts(b, "  password_file: ");
        put_str(b, ep->password_file);
        buf_putc(b, '\n');
    }
}

/* A section of the forward tree as one line of flow YAML (JSON is flow YAML). */
static void put_section(Buf *b, const Config *fwd, const char *key)
{
    json_t *v = json_object_get(fwd->tree, key);
    char *text;

    if (!v || (json_is_object(v) && json_object_size(v) == 0))
        return;
    text = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    if (text)
        buf_printf(b, "%s: %s\n", key, text);
    free(text);
}

int reverse_build(const Config *fwd, const TableSet *tabs, const char *path, char **yaml,
                  Config **rev)
{
    Buf b = BUF_INIT;
    char when[32];
    time_t now = time(NULL);
    char *why = reverse_refusal(fwd);
    int rc;

    if (why) {
        rc = tm_fail(-EINVAL, "%s", why);
        free(why);
        return rc;
    }
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    buf_printf(&b,
               "# The fallback pipeline of %s, written by `tidemark cutover` at %s from\n"
               "# %s. It streams what the application writes to the new database\n"
               "# back to the old one, so a rollback loses nothing (docs/CUTOVER.md).\n"
               "# Run it with: tidemark run --config %s\n",
               fwd->pipeline, when, fwd->path ? fwd->path : "(config)", path);
    buf_printf(&b, "pipeline: %s%s\nsource:\n", fwd->pipeline, REVERSE_SUFFIX);
    put_endpoint(&b, &fwd->target.conn);
    buf_puts(&b, "  tables: [");
    for (size_t i = 0; i < tabs->n; i++) {
        TableName tn = {tabs->t[i].schema, tabs->t[i].name};
        char *disp = config_table_display(&tn);

        buf_puts(&b, i ? ", " : "");
        put_str(&b, disp);
        free(disp);
    }
    buf_puts(&b, "]\ntarget:\n  type: postgres\n");
    put_endpoint(&b, &fwd->source.conn);
    buf_puts(&b, "schema: existing\n");
    put_section(&b, fwd, "apply");
    put_section(&b, fwd, "service");
    put_section(&b, fwd, "log");
    put_section(&b, fwd, "verify");
    rc = config_load_string(path, buf_cstr(&b), rev);
    if (rc < 0) {
        buf_release(&b);
        return tm_fail_ctx(rc, "building the fallback pipeline's configuration");
    }
    *yaml = xstrdup(buf_cstr(&b));
    buf_release(&b);
    return 0;
}

char *reverse_default_path(const Config *fwd)
{
    char *copy = xstrdup(fwd->path ? fwd->path : "./x");
    char *out = xasprintf("%s/%s%s.yaml", dirname(copy), fwd->pipeline, REVERSE_SUFFIX);

    free(copy);
    return out;
}
