// SPDX-License-Identifier: MIT
#include "export_stdout.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "stats.h"

struct export_stdout {
	struct exporter ex; /* first: the pipeline sees only this */
	const struct otlp_resource_cfg *res;
	FILE *out;
	struct otlp_buf buf;
	struct log_ratelimit rl;
};

static int export_stdout_submit(struct exporter *ex, struct queue_batch *batch)
{
	struct export_stdout *es = (struct export_stdout *)ex;
	enum export_result res = EXPORT_OK;

	if (otlp_encode_json(es->res, batch->spans, batch->n, &es->buf) < 0) {
		res = EXPORT_FAIL_ENCODE;
	} else if (fwrite(es->buf.bytes.data, 1, es->buf.bytes.len, es->out) != es->buf.bytes.len ||
		   fputc('\n', es->out) == EOF || fflush(es->out) == EOF) {
		log_limited(&es->rl, LOG_LVL_ERROR, "cannot write spans to standard output: %m");
		res = EXPORT_FAIL_IO;
	}
	if (res == EXPORT_OK)
		stats.batches_sent++;
	else
		stats.failed_batches++;
	ex->done(ex->done_ctx, batch, res);
	return 0;
}

static bool export_stdout_busy(const struct exporter *ex)
{
	return false;
}

static unsigned export_stdout_pending(const struct exporter *ex)
{
	return 0;
}

static void export_stdout_abort(struct exporter *ex)
{
}

static void export_stdout_free(struct exporter *ex)
{
	struct export_stdout *es = (struct export_stdout *)ex;

	otlp_buf_release(&es->buf);
	free(es);
}

static const struct exporter_ops export_stdout_ops = {
	.submit = export_stdout_submit,
	.busy = export_stdout_busy,
	.pending = export_stdout_pending,
	.abort = export_stdout_abort,
	.free = export_stdout_free,
};

struct exporter *export_stdout__new(const struct otlp_resource_cfg *res, FILE *out)
{
	struct export_stdout *es = calloc(1, sizeof(*es));

	if (!es)
		return NULL;
	es->ex.ops = &export_stdout_ops;
	es->ex.name = "stdout";
	es->res = res;
	es->out = out;
	otlp_buf_init(&es->buf);
	return &es->ex;
}
