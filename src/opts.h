/* SPDX-License-Identifier: MIT */
/*
 * opts: options described by one table, read from the command line and the environment.
 * The mechanism only: each row says an option's names, its variable (and that variable's
 * OTEL_EXPORTER_OTLP_TRACES_ form, which wins), its type, bounds, unit, default, the field
 * it fills (an offset into the caller's struct) and its help. From the rows come
 * getopt_long's tables, the parsing and checking of every value with messages that name
 * the flag or variable at fault, the defaults, and --help. What the options mean, and the
 * rules between them, stay with the caller (config.c). Pure: variables are read through a
 * callback.
 */
#ifndef CLN_OTLP_OPTS_H
#define CLN_OTLP_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OPTS_MAX       64 /* rows in a table */
#define OPTS_MAX_LIST  32 /* entries of a repeatable option */
#define OPTS_SHOWN_MAX 64 /* characters of a bad value quoted back */
#define OPTS_MAX_WARN  16 /* warnings kept from one load; more are counted */
#define OPTS_WARN_LEN  256

enum opts_kind {
	OPTS_SECTION, /* a heading of --help (.help), not an option */
	OPTS_FLAG,    /* no value: sets a bool; its variable, if any, says true or false */
	OPTS_COUNT,   /* no value: adds .step to an int, within -16..16 (-v, -q) */
	OPTS_STR,     /* a string, not empty on the command line */
	OPTS_STRS,    /* a repeatable string: an array of char * and its count */
	OPTS_UINT,    /* a decimal integer in [min, max] */
	OPTS_UINTS,   /* a repeatable integer: an array of uint32_t and its count */
	OPTS_SIZE,    /* bytes: an integer with an optional K, M or G (powers of 1024) */
	OPTS_ENUM,    /* one of .choices */
	OPTS_CUSTOM, /* the caller's .set takes the value; its variable is read even after a flag */
	OPTS_HELP,   /* -h: stop, st->help */
	OPTS_VERSION, /* -V: stop, st->version */
};

/* What of a value is a secret, wiped from the command line once read (opts_wipe_argv). */
enum opts_secret {
	OPTS_PUBLIC = 0,
	OPTS_SECRET_AFTER_EQ, /* NAME=VALUE: the VALUE (a header's) */
	OPTS_SECRET_USERINFO, /* a URL: the password of its user:password@ */
};

struct opts_choice {
	const char *name;
	int value;
};

struct opts_option {
	const char *name;	/* long option, without "--" */
	char short_name;	/* 0: none */
	const char *env;	/* its variable; NULL: none */
	const char *traces_env; /* its OTEL_EXPORTER_OTLP_TRACES_ form; NULL: none */
	enum opts_kind kind;
	const char *arg;  /* placeholder in --help (PATH, MS...) */
	uint64_t min;	  /* UINT(S), SIZE */
	uint64_t max;	  /* UINT(S), SIZE */
	const char *unit; /* what a number counts, or what a string is, for messages */
	size_t off;	  /* the field */
	size_t size;	  /* its size: bool, 32 or 64 bits */
	size_t count_off; /* STRS, UINTS: the size_t counting the entries */
	const struct opts_choice *choices; /* ENUM, up to a NULL name */
	bool icase;			   /* ENUM: names of any case; CUSTOM: the caller's */
	/*
	 * ENUM: an unknown value of its variable is warned about and ignored (the default, or
	 * the base variable under a bad TRACES_ one, is used), as the OpenTelemetry environment
	 * specification says enums MUST be; the flag stays strict.
	 */
	bool env_lenient;
	bool env_list; /* ENUM variable: a comma list, the first known name used, others warned */
	int step;      /* COUNT */
	int tag;       /* the caller's, for .set */
	enum opts_secret secret; /* what opts_wipe_argv() overwrites */
	/* A rule on a value after its type's (@v: the number, if one). 0 or -EINVAL. */
	int (*check)(const char *who, const char *arg, uint64_t v, char *err, size_t err_size);
	/* CUSTOM: takes the value of the flag or the variable @who (@env). 0 or -errno. */
	int (*set)(void *ctx, const struct opts_option *o, const char *who, const char *v, bool env,
		   char *err, size_t err_size);
	const char *def;  /* default: applied by opts_defaults(), shown by opts_usage() */
	const char *help; /* --help text; "(VARIABLE; default X)" is added to it */
};

struct opts_table {
	const struct opts_option *rows;
	size_t n;
	const char *prog; /* named in messages: "run PROG --help" */
};

/* What one load learned, for the caller's rules between options. */
struct opts_state {
	bool seen[OPTS_MAX];   /* row i was given on the command line */
	bool traces[OPTS_MAX]; /* row i's value came from its TRACES_ variable */
	bool help;
	bool version;
	/* What the variables got wrong but the run survives: said once logging is set up. */
	char warn[OPTS_MAX_WARN][OPTS_WARN_LEN];
	size_t n_warn;
	size_t warn_lost; /* warnings past OPTS_MAX_WARN, counted only */
};

typedef const char *(*opts_getenv_fn)(const char *name);

/* The defaults of every row into @dst (numbers and choices; strings have none). */
void opts_defaults(const struct opts_table *t, void *dst);
/* Free the strings of STR and STRS rows in @dst (not CUSTOM: those are the caller's). */
void opts_free(const struct opts_table *t, void *dst);

/*
 * The flags of @argv into @dst, in order. Stops at -h/-V (st->help, st->version). Returns 0
 * or -EINVAL/-ENOMEM with a message in @err. Resets getopt (optind), never permutes @argv.
 */
int opts_parse_argv(const struct opts_table *t, void *dst, void *ctx, int argc, char **argv,
		    struct opts_state *st, char *err, size_t err_size);
/*
 * The variables (the TRACES_ form first) of the rows no flag fixed; CUSTOM rows' always.
 * Empty variables count as unset. Returns 0 or -EINVAL/-ENOMEM with a message.
 */
int opts_load_env(const struct opts_table *t, void *dst, void *ctx, opts_getenv_fn getenv_fn,
		  struct opts_state *st, char *err, size_t err_size);

/*
 * Overwrite in place, with '*', the secret part of every value of a row marked .secret in
 * @argv (as getopt_long reads it, like opts_parse_argv), so that /proc/PID/cmdline and ps no
 * longer show it. Call it once the values were copied (after opts_parse_argv). Returns how
 * many values were wiped. The lengths stay; only the bytes change.
 */
size_t opts_wipe_argv(const struct opts_table *t, int argc, char **argv);
/* Overwrite the @s part of one value @v in place; how many bytes were overwritten. */
size_t opts_wipe_value(enum opts_secret s, char *v);

const struct opts_option *opts_find(const struct opts_table *t, const char *name);
/* Index of row @o in @t (for st->seen and st->traces). */
static inline size_t opts_index(const struct opts_table *t, const struct opts_option *o)
{
	return (size_t)(o - t->rows);
}

/* --help: @head, the rows (sections and options, wrapped), then @tail. */
void opts_usage(const struct opts_table *t, const char *head, const char *tail, FILE *out);

/* Add a warning to @st (kept up to OPTS_MAX_WARN, the rest counted in st->warn_lost). */
void opts_warn(struct opts_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * A boolean variable's value: true, 1 or yes are true, false, 0 or no false (any case).
 * Returns 0, or -EINVAL for anything else (*out untouched).
 */
int opts_parse_bool(const char *v, bool *out);

/* Format a message into @err (may be NULL) and return -EINVAL. */
int opts_fail(char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "out of memory..." into @err; returns -ENOMEM. */
int opts_oom(char *err, size_t err_size);
/* Strict unsigned decimal (digits only). 0, -EINVAL (not a number) or -ERANGE. */
int opts_parse_u64(const char *s, uint64_t *out);

#endif
