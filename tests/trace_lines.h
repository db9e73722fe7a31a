/* SPDX-License-Identifier: MIT */
/*
 * trace_lines.h: the payload of a CLN trace file line, for the C tests that read the real
 * captures. A line is `span_emit <id> <json>` (other kinds: span_suspend, span_resume...).
 */
#ifndef CLN_OTLP_TESTS_TRACE_LINES_H
#define CLN_OTLP_TESTS_TRACE_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/*
 * The JSON of a span_emit line of @len bytes: true with *@json and *@json_len (the line's
 * end, \n or \r\n, left out); false for any other line.
 */
static inline bool trace_line_span(const char *line, size_t len, const char **json,
				   size_t *json_len)
{
	const char *p;

	if (len < 10 || strncmp(line, "span_emit ", 10) || !(p = memchr(line + 10, ' ', len - 10)))
		return false;
	p++;
	len -= (size_t)(p - line);
	while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	*json = p;
	*json_len = len;
	return true;
}

#endif
