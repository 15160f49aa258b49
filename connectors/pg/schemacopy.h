/*
 * `schema: copy`: creates the target's tables from the source's definitions
 * with PostgreSQL's own tools. pg_dump --schema-only (custom format) of the
 * schemas holding the pipeline's tables; pg_restore of the pre-data section
 * (types, sequences, tables) before the copy and of the post-data section
 * (indexes, constraints, triggers; foreign keys: see schemafk.h) after it,
 * because loading rows into bare tables and indexing once is much faster
 * than maintaining indexes row by row. Extensions: see schemaext.h. Each section is restored in one
 * transaction and recorded in tidemark.pipeline_state so a restart does not run it twice.
 */
#ifndef TM_SCHEMACOPY_H
#define TM_SCHEMACOPY_H

#include "config/config.h"
#include "core/table.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <sys/types.h>

/* Whether section ("pre-data" / "post-data") was restored for this pipeline. */
int schemacopy_done(PGconn *dst, const char *pipeline, const char *section, bool *done);
int schemacopy_mark(PGconn *dst, const char *pipeline, const char *section);

typedef struct SchemaJob SchemaJob;

/*
 * Dumps the schemas of tabs and starts pg_restore of section into the
 * target. Wait for schemacopy_pid() (waitpid or an ev_child watcher), then
 * schemacopy_finish() with its status: it removes the dump and frees job.
 */
int schemacopy_start(const Config *cfg, PGconn *dst, const TableSet *tabs, const char *section,
                     SchemaJob **job);
pid_t schemacopy_pid(const SchemaJob *job);
int schemacopy_finish(SchemaJob *job, int wstatus);
/* Blocking: start, wait, finish. */
int schemacopy_run(const Config *cfg, PGconn *dst, const TableSet *tabs, const char *section);
/* Kills a running restore (it rolls back) and frees job. */
void schemacopy_abort(SchemaJob *job);

#endif
