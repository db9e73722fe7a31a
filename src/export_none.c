// SPDX-License-Identifier: MIT
#include "export_none.h"

#include <stdlib.h>

static int export_none_submit(struct exporter *ex, struct queue_batch *batch)
{
	ex->done(ex->done_ctx, batch, EXPORT_OK);
	return 0;
}

static bool export_none_busy(const struct exporter *ex)
{
	return false;
}

static unsigned export_none_pending(const struct exporter *ex)
{
	return 0;
}

static void export_none_abort(struct exporter *ex)
{
}

static void export_none_free(struct exporter *ex)
{
	free(ex);
}

static const struct exporter_ops export_none_ops = {
	.submit = export_none_submit,
	.busy = export_none_busy,
	.pending = export_none_pending,
	.abort = export_none_abort,
	.free = export_none_free,
};

struct exporter *export_none__new(void)
{
	struct exporter *ex = calloc(1, sizeof(*ex));

	if (!ex)
		return NULL;
	ex->ops = &export_none_ops;
	ex->name = "none";
	return ex;
}
