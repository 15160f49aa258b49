/*
 * The fallback pipeline. After a cutover the application writes to the new
 * database, and the old one stays a current rollback target only if those
 * writes flow back: that is an ordinary tidemark pipeline with source and
 * target swapped, named <pipeline>_reverse, run by the same daemon code. This
 * module derives its configuration from the forward one, as YAML an operator
 * can read and run (`tidemark run --config FILE`) and as a loaded Config.
 */
#ifndef TM_REVERSE_H
#define TM_REVERSE_H

#include "config/config.h"
#include "core/table.h"

#include <stdbool.h>

#define REVERSE_SUFFIX "_reverse"

/*
 * Why fwd has no fallback pipeline (malloc'd sentence), or NULL when it can
 * have one: the target must be PostgreSQL, mapped tables cannot be streamed
 * back (no transform here has an inverse), and the derived name must fit.
 */
char *reverse_refusal(const Config *fwd);

/*
 * The reverse configuration for fwd whose tables, resolved on the source,
 * are tabs: *yaml (malloc'd) and *rev (loaded from that text). path names the
 * file in messages.
 */
int reverse_build(const Config *fwd, const TableSet *tabs, const char *path, char **yaml,
                  Config **rev);

/* Where cutover writes it by default: <dir of fwd->path>/<pipeline>_reverse.yaml. */
char *reverse_default_path(const Config *fwd);

#endif
