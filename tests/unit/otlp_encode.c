// SPDX-License-Identifier: MIT
/*
 * otlp-encode FILE...: the spans of CLN trace files (span_emit lines) encoded as ONE
 * ExportTraceServiceRequest in protobuf on stdout, for `protoc --decode` in the tests and
 * for the encoder benchmark's cross-check. Each file's pid comes from its name (.<pid>).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otlp.h"
#include "span.h"
#include "../trace_lines.h"

#define MAX_SPANS 100000

int main(int argc, char **argv)
{
	static struct span *spans[MAX_SPANS];
	struct otlp_resource_cfg res = { .host_name = "testhost" };
	struct otlp_buf buf = OTLP_BUF_INIT;
	size_t n = 0;
	char *line = NULL;
	size_t cap = 0;
	int status = 0;

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "r");
		const char *dot = strrchr(argv[i], '.');
		uint32_t pid = dot ? (uint32_t)strtoul(dot + 1, NULL, 10) : 0;
		ssize_t len;

		if (!f) {
			perror(argv[i]);
			return 1;
		}
		while ((len = getline(&line, &cap, f)) > 0) {
			enum span_reject why;
			const char *json;
			size_t json_len;

			if (!trace_line_span(line, (size_t)len, &json, &json_len))
				continue;
			if (n == MAX_SPANS || span_parse(json, json_len, &spans[n], &why) < 0) {
				fprintf(stderr, "%s: span rejected or too many\n", argv[i]);
				status = 1;
				continue;
			}
			spans[n++]->pid = pid;
		}
		fclose(f);
	}
	free(line);
	if (otlp_encode_pb(&res, spans, n, &buf) < 0 || fwrite(buf.bytes.data, 1, buf.bytes.len, stdout) != buf.bytes.len)
		status = 1;
	otlp_buf_release(&buf);
	for (size_t i = 0; i < n; i++)
		span__free(spans[i]);
	return status;
}
