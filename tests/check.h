/* SPDX-License-Identifier: MIT */
/*
 * check.h: the one set of checks every C test program uses. A failed check prints where it
 * is, what it checked and (for the _MSG form) why, then the program carries on, so one run
 * shows every failure; check_summary() prints the totals and gives the exit status.
 *
 *   CHECK(cond)                 the condition, printed as written when it fails
 *   CHECK_MSG(cond, fmt, ...)   the same, with a message of its own
 *   CHECK_FAIL(fmt, ...)        a failure reached (set-up that went wrong)
 *   CHECK_EQ(a, b)              two integers (printed both when they differ)
 *   CHECK_STR(a, b)             two C strings (NULL allowed)
 *   check_case(name)            names the case the next failures belong to (data-driven runners)
 *   return check_summary();     "N passed, M failed"; 1 when any failed or none ran
 *
 * Each test program is one translation unit, so the counters are static here.
 */
#ifndef CLN_OTLP_TESTS_CHECK_H
#define CLN_OTLP_TESTS_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;
static const char *check_case_name;

static inline void check_case(const char *name)
{
	check_case_name = name;
}

static inline void check_fail_head(const char *file, int line)
{
	check_failed++;
	fprintf(stderr, "FAIL %s:%d: ", file, line);
	if (check_case_name)
		fprintf(stderr, "[%s] ", check_case_name);
}

static inline bool check_pass(void)
{
	check_passed++;
	return true;
}

static inline bool check_at(const char *file, int line, const char *what)
{
	check_fail_head(file, line);
	fprintf(stderr, "%s\n", what);
	return false;
}

__attribute__((format(printf, 3, 4))) static inline bool check_msg_at(const char *file, int line,
								      const char *fmt, ...)
{
	va_list ap;

	check_fail_head(file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return false;
}

static inline bool check_eq_at(long long a, long long b, const char *file, int line,
			       const char *expr_a, const char *expr_b)
{
	if (a == b) {
		check_passed++;
		return true;
	}
	check_fail_head(file, line);
	fprintf(stderr, "%s == %lld, expected %s == %lld\n", expr_a, a, expr_b, b);
	return false;
}

static inline bool check_str_at(const char *a, const char *b, const char *file, int line,
				const char *expr_a)
{
	if ((!a && !b) || (a && b && !strcmp(a, b))) {
		check_passed++;
		return true;
	}
	check_fail_head(file, line);
	fprintf(stderr, "%s is \"%s\", expected \"%s\"\n", expr_a, a ? a : "(null)",
		b ? b : "(null)");
	return false;
}

static inline int check_summary(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed || !check_passed ? 1 : 0;
}

/* The message's arguments are evaluated only when the check fails. */
#define CHECK(cond)	     ((cond) ? check_pass() : check_at(__FILE__, __LINE__, "CHECK(" #cond ")"))
#define CHECK_MSG(cond, ...) ((cond) ? check_pass() : check_msg_at(__FILE__, __LINE__, __VA_ARGS__))
#define CHECK_FAIL(...)	     check_msg_at(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK_EQ(a, b)	     check_eq_at((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_STR(a, b)	     check_str_at((a), (b), __FILE__, __LINE__, #a)

#endif
