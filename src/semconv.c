// SPDX-License-Identifier: MIT
/*
 * The CLN mapping tables. The names follow the current OpenTelemetry semantic conventions:
 *   - RPC and JSON-RPC: https://opentelemetry.io/docs/specs/semconv/rpc/json-rpc/ (a
 *     JSON-RPC span has rpc.system.name "jsonrpc", rpc.method, jsonrpc.request.id; a client
 *     span's kind MUST be CLIENT, a server span's SERVER), attribute registry
 *     https://opentelemetry.io/docs/specs/semconv/registry/attributes/jsonrpc/ ;
 *   - databases: https://opentelemetry.io/docs/specs/semconv/db/sql/ and
 *     https://opentelemetry.io/docs/specs/semconv/database/postgresql/ (db.system.name
 *     "sqlite" or "postgresql", db.query.text; span kind SHOULD be CLIENT).
 *
 * Why each span is what it is (CLN's own names, common/trace.c and its callers):
 *   - "lightningd/jsonrpc": lightningd runs one JSON-RPC command it received (from
 *     lightning-cli, a plugin, an application): the server side of a call. SERVER.
 *   - "jsonrpc": emitted by a plugin (libplugin) around a request it sends to lightningd:
 *     the client side of a call whose server side is lightningd's "lightningd/jsonrpc".
 *     Its "id" tag is the JSON-RPC request id. Only this exact name; "jsonrpc/..." is not it.
 *     CLIENT.
 *   - "plugin/<name>": lightningd sends a request to a plugin (a hook, a plugin command such
 *     as bitcoind's getrawblockbyheight): lightningd is the client. CLIENT. ("plugins/init",
 *     lightningd starting its plugins, is not a call: INTERNAL.)
 *   - "db_<op>" (db_exec_prepared, db_query_prepared, db_setup, ...): a statement sent to the
 *     wallet database through its driver (sqlite3 in-process or a PostgreSQL server); the
 *     conventions treat both as database client spans. CLIENT.
 *   - everything else (lightningd/startup, hsmd_init, wallet_new, extend_tip, ...): work
 *     inside one process. INTERNAL.
 * The first rule that matches wins; the table is short and walked in order.
 */
#include "semconv.h"

#include <string.h>

struct semconv_rule {
	const char *name;
	bool prefix; /* the name starts with it (else: exactly it) */
	enum semconv_class cls;
};

static const struct semconv_rule semconv_rules[] = {
	{"lightningd/jsonrpc", false, SEMCONV_RPC_SERVER},
	{"jsonrpc", false, SEMCONV_RPC_CLIENT},
	{"plugin/", true, SEMCONV_PLUGIN_CALL},
	{"db_", true, SEMCONV_DB},
};

static const enum semconv_kind semconv_kinds[] = {
	[SEMCONV_OTHER] = SEMCONV_KIND_INTERNAL,    [SEMCONV_RPC_SERVER] = SEMCONV_KIND_SERVER,
	[SEMCONV_RPC_CLIENT] = SEMCONV_KIND_CLIENT, [SEMCONV_PLUGIN_CALL] = SEMCONV_KIND_CLIENT,
	[SEMCONV_DB] = SEMCONV_KIND_CLIENT,
};

#define RPC_ANY \
	((1u << SEMCONV_RPC_SERVER) | (1u << SEMCONV_RPC_CLIENT) | (1u << SEMCONV_PLUGIN_CALL))

/*
 * CLN's tags, renamed on the spans of the classes in @classes only: the same word on
 * another span may mean something else, and passes unchanged.
 *   method: the JSON-RPC method called (lightningd/jsonrpc, plugin/<name>).
 *   id:     the request id of a plugin's call ("cln:init#24/autoclean:listconfigs#9").
 *   query:  the SQL statement text, with placeholders (db_*).
 */
static const struct {
	const char *tag;
	unsigned classes; /* bit (1 << class) */
	const char *attr;
} semconv_renames[] = {
	{"method", RPC_ANY, SEMCONV_ATTR_RPC_METH},
	{"id", 1u << SEMCONV_RPC_CLIENT, "jsonrpc.request.id"},
	{"query", 1u << SEMCONV_DB, "db.query.text"},
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum semconv_class semconv_class_of(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_LEN(semconv_rules); i++) {
		const struct semconv_rule *r = &semconv_rules[i];
		size_t n = strlen(r->name);

		if (len < n || (!r->prefix && len != n) || memcmp(name, r->name, n))
			continue;
		return r->cls;
	}
	return SEMCONV_OTHER;
}

enum semconv_kind semconv_kind_of(enum semconv_class cls)
{
	return (size_t)cls < ARRAY_LEN(semconv_kinds) ? semconv_kinds[cls] : SEMCONV_KIND_INTERNAL;
}

bool semconv_is_rpc(enum semconv_class cls)
{
	return (RPC_ANY >> cls) & 1u;
}

const char *semconv_rename(enum semconv_class cls, const char *key, size_t len)
{
	for (size_t i = 0; i < ARRAY_LEN(semconv_renames); i++)
		if ((semconv_renames[i].classes >> cls) & 1u &&
		    strlen(semconv_renames[i].tag) == len &&
		    !memcmp(key, semconv_renames[i].tag, len))
			return semconv_renames[i].attr;
	return NULL;
}

static bool semconv_word_char(char c)
{
	return c > ' ' && c != '/' && c != ':' && c != '#' && c != 0x7f;
}

bool semconv_method_from_id(const char *id, size_t len, const char **method, size_t *mlen)
{
	const char *end = id + len, *last = id, *colon = NULL, *hash = NULL;

	for (const char *p = id; p < end; p++)
		if (*p == '/')
			last = p + 1;
	for (const char *p = last; p < end; p++) {
		if (*p == ':' && !colon && !hash)
			colon = p;
		else if (*p == '#' && colon && !hash)
			hash = p;
		else if (!semconv_word_char(*p) && !(hash && *p >= '0' && *p <= '9'))
			return false;
		else if (hash && (*p < '0' || *p > '9'))
			return false;
	}
	/* <plugin> ':' <method> '#' <digits>, none of them empty */
	if (!colon || !hash || colon == last || hash == colon + 1 || hash + 1 == end ||
	    hash - colon - 1 >= SEMCONV_METHOD_MAX)
		return false;
	*method = colon + 1;
	*mlen = (size_t)(hash - colon - 1);
	return true;
}
