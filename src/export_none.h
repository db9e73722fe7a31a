/* SPDX-License-Identifier: MIT */
/*
 * export_none: OTEL_TRACES_EXPORTER=none (--exporter none). Spans are captured, parsed and
 * counted as every exporter's are, then discarded: each batch is finished inside submit()
 * as delivered (EXPORT_OK), so they show as exported in the stats line and /metrics, which
 * is what "no exporter" means for a bridge whose only output is the exporter. Useful to
 * measure capture alone, or to keep a unit installed but silent.
 */
#ifndef CLN_OTLP_EXPORT_NONE_H
#define CLN_OTLP_EXPORT_NONE_H

#include "export.h"

struct exporter *export_none__new(void);

#endif
