// SPDX-License-Identifier: MIT
/*
 * endpoint: the request URL and its display form (see endpoint.h).
 */
#include "endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "export_wire.h"

#define ENDPOINT_SHOWN_CAP 256

/*
 * Append @suffix ("/...") to the path of @u. With @trim, the path's trailing slashes go first
 * (gRPC: "http://h:4317/" and "http://h:4317" name the same service); without, a path that
 * ends in '/' keeps it once ("http://h:4318/otlp/" + "/v1/traces" is "/otlp/v1/traces").
 * The query and fragment stay where they are.
 */
static int url_append_path(CURLU *u, const char *suffix, bool trim)
{
	char *path = NULL, *p = NULL;
	size_t n, size;
	int rc = 0;

	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		return -EINVAL;
	n = strlen(path);
	while (n > 0 && path[n - 1] == '/' && (trim || n == strlen(path)))
		n--;
	size = n + strlen(suffix) + 1;
	p = malloc(size);
	if (!p) {
		rc = -ENOMEM;
		goto cleanup;
	}
	snprintf(p, size, "%.*s%s", (int)n, path, suffix);
	if (curl_url_set(u, CURLUPART_PATH, p, 0) != CURLUE_OK)
		rc = -EINVAL;
cleanup:
	free(p);
	curl_free(path);
	return rc;
}

/* The URL's display form: scheme://host[:port], nothing else (no credentials, path, query). */
static int url_display(CURLU *u, const char *scheme, const char *host, char **display)
{
	char *port = NULL;
	size_t n;

	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		port = NULL;
	n = strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) + 8;
	*display = malloc(n);
	if (*display)
		snprintf(*display, n, "%s://%s%s%s", scheme, host, port ? ":" : "",
			 port ? port : "");
	curl_free(port);
	return *display ? 0 : -ENOMEM;
}

/*
 * gRPC: a scheme-less host:port is TLS unless @insecure (protocol/exporter.md, Insecure:
 * "whether to enable client transport security for the exporter's gRPC connection", which
 * "only applies to OTLP/gRPC when an endpoint is provided without the http or https scheme").
 * Returns @endpoint itself, or an allocated copy with the scheme (*@copy).
 */
static const char *url_with_scheme(const char *endpoint, bool grpc, bool insecure, char **copy)
{
	size_t n = strlen(endpoint) + sizeof("https://");

	*copy = NULL;
	if (!grpc || strstr(endpoint, "://"))
		return endpoint;
	*copy = malloc(n);
	if (*copy)
		snprintf(*copy, n, "%s://%s", insecure ? "http" : "https", endpoint);
	return *copy;
}

/* gRPC: the path of the endpoint has no meaning; the Export method's replaces it. */
static int url_grpc_path(CURLU *u, bool *ignored)
{
	char *path = NULL;

	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		return -EINVAL;
	*ignored = path[strspn(path, "/")] != '\0';
	curl_free(path);
	return curl_url_set(u, CURLUPART_PATH, ENDPOINT_GRPC_PATH, 0) == CURLUE_OK ? 0 : -EINVAL;
}

int endpoint_url_parse(const char *endpoint, bool grpc, bool append, bool insecure,
		       struct endpoint_url *out, char *err, size_t err_size)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *url = NULL, *copy = NULL;
	char shown
		[ENDPOINT_SHOWN_CAP]; /* the endpoint as it may be quoted: no password, no query */
	const char *full;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (!endpoint || !endpoint[0]) {
		snprintf(err, err_size, "no OTLP endpoint: give --endpoint http://host:port");
		return -EINVAL;
	}
	export_wire_redact_url(endpoint, strlen(endpoint), shown, sizeof(shown));
	full = url_with_scheme(endpoint, grpc, insecure, &copy);
	u = curl_url();
	if (!u || !full) {
		rc = -ENOMEM;
		goto cleanup;
	}
	if (curl_url_set(u, CURLUPART_URL, full, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, err_size,
			 "endpoint \"%s\" is not a URL: write it as http://host:port or "
			 "https://host:port%s",
			 shown, grpc ? " (or host:port for grpc)" : "");
		rc = -EINVAL;
		goto cleanup;
	}
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
		snprintf(err, err_size,
			 "endpoint \"%s\": scheme %s is not supported: use http:// or https://",
			 shown, scheme);
		rc = -EINVAL;
		goto cleanup;
	}
	out->tls = strcasecmp(scheme, "https") == 0;
	rc = url_display(u, scheme, host, &out->display);
	if (rc == 0 && grpc)
		rc = url_grpc_path(u, &out->path_ignored);
	else if (rc == 0 && append)
		rc = url_append_path(u, "/" ENDPOINT_TRACES_PATH, false);
	if (rc == 0 && curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
		rc = -ENOMEM;
	if (rc == 0 && !(out->url = strdup(url)))
		rc = -ENOMEM;
	if (rc == 0 && !grpc)
		out->signal_doubled =
			strstr(url, "/" ENDPOINT_TRACES_PATH "/" ENDPOINT_TRACES_PATH) != NULL;
cleanup:
	if (rc == -ENOMEM)
		snprintf(err, err_size, "out of memory");
	else if (rc < 0 && !err[0])
		snprintf(err, err_size, "endpoint \"%s\" is not usable", shown);
	if (rc < 0)
		endpoint_url_release(out);
	if (copy)
		explicit_bzero(copy, strlen(copy));
	free(copy);
	curl_free(url);
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

void endpoint_url_release(struct endpoint_url *url)
{
	if (!url)
		return;
	free(url->url);
	free(url->display);
	url->url = url->display = NULL;
}
