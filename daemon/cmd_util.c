/*
 * See cmd_util.h.
 */
#include "daemon/cmd_util.h"
#include "core/error.h"
#include "core/sqlname.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end || v < lo || v > hi)
        return tm_fail(-EINVAL, "%s: \"%s\" is not a number from %ld to %ld", opt, s, lo, hi);
    *out = v;
    return 0;
}

int cmd_add_table(TableName **tables, size_t *n, const char *arg)
{
    TableName tn;
    int rc = sqlname_parse(arg, &tn.schema, &tn.name);

    if (rc < 0)
        return rc;
    *tables = xrealloc(*tables, (*n + 1) * sizeof(TableName));
    (*tables)[(*n)++] = tn;
    return 0;
}

void cmd_tables_free(TableName *tables, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(tables[i].schema);
        free(tables[i].name);
    }
    free(tables);
}

bool cmd_has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), k = strlen(ext);

    return n > k && strcmp(path + n - k, ext) == 0;
}

int cmd_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return tm_fail(-errno, "%s: cannot open: %s", path, strerror(errno));
    if (fputs(text, f) < 0 || fclose(f) != 0)
        return tm_fail(-EIO, "%s: cannot write", path);
    return 0;
}
