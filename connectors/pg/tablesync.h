/*
 * Table-sync workers: the initial load of tables (or parts of tables) in
 * worker threads while the main loop streams. Each table is copied in the
 * snapshot of a temporary replication slot, whose LSN is exact; the parts of
 * a table share it, and a worker's consecutive tables may too. A worker reports every committed
 * part to the main loop (through notify(), e.g. an ev_async), which then applies stream changes of
 * that part iff they committed at or after the part's sync LSN (invariant 3).
 */
#ifndef TM_TABLESYNC_H
#define TM_TABLESYNC_H

#include "config/config.h"
#include "core/table.h"
#include "sinks/sink.h"

#include <stdbool.h>

typedef struct TableSync TableSync;

typedef enum TableSyncEventKind {
    TSE_PLANNED, /* parts are known: table_idx, nparts, parts */
    TSE_PART,    /* one part committed: table_idx, part (index, sync_lsn, rows) */
    TSE_ERROR,   /* a worker failed: message */
} TableSyncEventKind;

typedef struct TableSyncEvent {
    TableSyncEventKind kind;
    int table_idx;
    int nparts;
    CopyPart *parts; /* TSE_PLANNED: owned by the receiver (copyparts_free) */
    CopyPart part;   /* TSE_PART (no leaf names) */
    int err;
    char msg[1024];
} TableSyncEvent;

/* Live progress of one table, readable from the main thread. */
typedef struct TableSyncProgress {
    long long rows;
    long long bytes;
    long long est_rows;     /* the planner's estimate, for an ETA; 0 unknown */
    long long filtered;     /* rows the table's mapping filter kept out of the target */
    long long dead_letters; /* rows the mapping could not transform, dead-lettered */
    int parts_total;
    int parts_done;
    double started; /* monotonic seconds, 0: not started */
    double finished;
} TableSyncProgress;

/* tabs must outlive the TableSync. notify is called from worker threads. */
TableSync *tablesync_new(const Config *cfg, Sink *sink, const TableSet *tabs,
                         void (*notify)(void *arg), void *arg);
void tablesync_free(TableSync *ts); /* stops and joins the workers first */

/*
 * Queues table_idx for copying; workers start on the first submit. Submit
 * every table of a TableSync in one turn of the main loop, after the stream
 * began holding their changes and before it moves on: any snapshot the
 * workers take is then late enough for every one of them, so a worker may
 * copy several tables in one snapshot.
 */
int tablesync_submit(TableSync *ts, int table_idx);

/* Takes the next event; returns 1, or 0 when there is none. */
int tablesync_poll(TableSync *ts, TableSyncEvent *ev);

/* Asks the workers to abandon their copies (they roll back) and waits for them. */
void tablesync_stop(TableSync *ts);

void tablesync_progress(TableSync *ts, int table_idx, TableSyncProgress *out);

int tablesync_jobs(const TableSync *ts);

#endif
