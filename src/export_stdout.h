/* SPDX-License-Identifier: MIT */
/*
 * export_stdout: one OTLP/JSON ExportTraceServiceRequest per line on a stream. Synchronous:
 * each batch is written and finished inside submit().
 */
#ifndef CLN_OTLP_EXPORT_STDOUT_H
#define CLN_OTLP_EXPORT_STDOUT_H

#include <stdio.h>

#include "export.h"
#include "otlp.h"

/* @res must outlive the exporter; @out is not closed. */
struct exporter *export_stdout__new(const struct otlp_resource_cfg *res, FILE *out);

#endif
