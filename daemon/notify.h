/*
 * The systemd service-manager protocol for Type=notify units, as thin
 * wrappers over sd_notify(3): readiness, status text, watchdog pings and
 * the reload/stop transitions. Each is a no-op when NOTIFY_SOCKET is unset
 * (not under systemd, or in tests that do not listen), so callers never ask.
 */
#ifndef TM_NOTIFY_H
#define TM_NOTIFY_H

#include "core/error.h"

#include <stdint.h>

/* READY=1, with STATUS=status when status is not NULL (also after a reload). */
void notify_ready(const char *status);

/* STATUS=<text>: the one line `systemctl status` shows (newlines become spaces). */
void notify_status(const char *fmt, ...) TM_PRINTF(1, 2);

/* WATCHDOG=1: send it only while the loop makes progress. */
void notify_watchdog(void);

/* STOPPING=1: the drain after SIGTERM has begun. */
void notify_stopping(void);

/* RELOADING=1 with MONOTONIC_USEC=<now> (systemd >= 253 requires the timestamp). */
void notify_reloading(void);

/*
 * The watchdog interval systemd expects pings within (WatchdogSec=, from
 * WATCHDOG_USEC for this process), in microseconds; 0 when off. Ping at
 * half of it.
 */
uint64_t notify_watchdog_interval_usec(void);

#endif
