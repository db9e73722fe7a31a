/* SPDX-License-Identifier: MIT */
/*
 * log: levelled messages on stderr. Secrets never go through here: callers log header
 * names, never their values.
 */
#ifndef CLN_OTLP_LOG_H
#define CLN_OTLP_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/*
 * Rate-limited warning for the hot path: at most one line per @key per 10 s, with the
 * number of occurrences suppressed since the last line.
 */
struct log_ratelimit {
	uint64_t last_ms;
	uint64_t suppressed;
};
void log_limited(struct log_ratelimit *rl, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
