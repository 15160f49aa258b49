/*
 * sd_notify wrappers (see notify.h). sd_notify() itself does nothing without
 * NOTIFY_SOCKET; failures to send are not errors of the pipeline (the
 * manager may be restarting), so they are only logged at debug level.
 */
#include "daemon/notify.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

static void send_state(const char *state)
{
    int rc = sd_notify(0, state);

    if (rc < 0)
        log_debug("sd_notify(%s): %s", state, strerror(-rc));
}

/* The status as one line: sd_notify's fields are newline-separated. */
static void flatten(char *text)
{
    for (char *p = text; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

void notify_ready(const char *status)
{
    char text[400], msg[440];

    if (!status) {
        send_state("READY=1");
        return;
    }
    snprintf(text, sizeof(text), "%s", status);
    flatten(text);
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", text);
    send_state(msg);
}

void notify_status(const char *fmt, ...)
{
    char text[400], msg[420];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    flatten(text);
    snprintf(msg, sizeof(msg), "STATUS=%s", text);
    send_state(msg);
}

void notify_watchdog(void)
{
    send_state("WATCHDOG=1");
}

void notify_stopping(void)
{
    send_state("STOPPING=1");
}

void notify_reloading(void)
{
    struct timespec ts;
    char msg[64];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    send_state(msg);
}

uint64_t notify_watchdog_interval_usec(void)
{
    uint64_t usec = 0;

    /* The environment stays: sd_watchdog_enabled() compares WATCHDOG_PID
     * (when set) with our pid, so a child that inherits it never pings. */
    if (sd_watchdog_enabled(0, &usec) <= 0)
        return 0;
    return usec;
}
