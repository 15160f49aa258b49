/*
 * Monotonic time in seconds, for durations, rates and timeouts (progress,
 * throttles, ETAs): never affected by wall-clock jumps.
 */
#ifndef TM_CLOCK_H
#define TM_CLOCK_H

double clock_mono_secs(void);

#endif
