// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: any bytes as a span_emit payload through the parser, then (when it
 * parses) through both OTLP encoders, with the protobuf decoded back and checked.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include "otlp.h"
#include "span.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct otlp_kv attrs[] = { { "deployment.environment", "fuzz" } };
	struct otlp_resource_cfg res = { .host_name = "fuzz", .attrs = attrs, .n_attrs = 1 };
	struct otlp_buf buf = { 0 };
	enum span_reject why;
	struct span *span;
	char *copy;

	/* Not NUL-terminated on purpose: the parser must honour the length. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (span_parse(copy, size, &span, &why) == 0) {
		Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;

		span->pid = 1234;
		span_add_event(span, SPAN_EVENT_SUSPEND, 1);
		if (span->name.len != strlen(span->name.ptr))
			abort(); /* strings are NUL-free and NUL-terminated */
		if (otlp_encode_json(&res, &span, 1, &buf) < 0)
			abort();
		if (otlp_encode_pb(&res, &span, 1, &buf) < 0)
			abort();
		req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
			NULL, buf.len, buf.data);
		if (!req || req->n_resource_spans != 1)
			abort();
		opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
			req, NULL);
		span__free(span);
	} else if (why <= SPAN_OK || why >= SPAN_REJECT__MAX) {
		abort(); /* a failure always says why */
	}
	otlp_buf_release(&buf);
	free(copy);
	span_intern_reset();
	return 0;
}
