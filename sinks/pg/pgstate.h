/*
 * Schema tidemark on a PostgreSQL target is shared by every pipeline, verify
 * and profile run that writes to it, and several of them often start at the
 * same moment (fan-in pipelines at boot). CREATE SCHEMA / CREATE TABLE ... IF
 * NOT EXISTS are not safe against each other: two sessions that both see no
 * schema both insert it, and the second fails on the catalog's unique index.
 * Every piece of tidemark that creates state tables does it through
 * pgstate_ensure, which serializes it on one advisory lock.
 */
#ifndef TM_PGSTATE_H
#define TM_PGSTATE_H

#include <libpq-fe.h>
#include <stdbool.h>

/*
 * The advisory lock key (a bigint, the bytes of "tidemark" in ASCII) that
 * serializes DDL on schema tidemark; documented in docs/OPERATIONS.md so it
 * is recognized in pg_locks and not reused.
 */
#define PGSTATE_LOCK_KEY "8388346167743836779"

/*
 * Creates schema tidemark if missing, then runs ddl (CREATE TABLE IF NOT
 * EXISTS statements in it; may be NULL), holding the lock. Call it outside a
 * transaction block: the DDL commits before the lock is released.
 */
int pgstate_ensure(PGconn *conn, const char *ddl);

/*
 * Records msg as the pipeline's last_error and, for a divergence, the halt
 * every start refuses until `tidemark resume` (a halt already recorded is
 * kept: it names the first divergence). Best effort: the caller is failing
 * anyway and reports msg itself.
 */
void pgstate_record_error(PGconn *conn, const char *pipeline, const char *msg, bool halted);

#endif
