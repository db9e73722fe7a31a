/* SPDX-License-Identifier: MIT */
/*
 * clock: the process's one reading of time. Monotonic time for deadlines, timers and rate
 * limits (it never jumps); wall-clock time only where a span's time is meant.
 */
#ifndef CLN_OTLP_CLOCK_H
#define CLN_OTLP_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);
/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t clock_real_ns(void);

#endif
