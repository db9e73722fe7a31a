// SPDX-License-Identifier: MIT
#include "log.h"

#include <stdio.h>
#include <time.h>

#include "clock.h"

static enum log_level log_level = LOG_LVL_INFO;

static const char *const log_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warning",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

__attribute__((format(printf, 2, 0))) void log_vmsg(enum log_level level, const char *fmt,
						    va_list ap)
{
	char line[1024];
	int n;

	if (level > log_level)
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/* One write per message, so lines from signal-time summaries never interleave. */
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	while (n > 0 && line[n - 1] == '\n')
		n--;
	fprintf(stderr, "cln-otlp: %s: %.*s\n", log_names[level], n, line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_limited(struct log_ratelimit *rl, enum log_level level, const char *fmt, ...)
{
	uint64_t now = clock_mono_ms();
	va_list ap;

	if (level > log_level)
		return;
	if (rl->last_ms && now - rl->last_ms < 10000) {
		rl->suppressed++;
		return;
	}
	if (rl->suppressed)
		log_msg(level, "(%llu similar messages suppressed in the last 10 s)",
			(unsigned long long)rl->suppressed);
	rl->last_ms = now;
	rl->suppressed = 0;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
