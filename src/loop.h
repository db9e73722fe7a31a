/* SPDX-License-Identifier: MIT */
/*
 * loop: the one event loop (epoll). File descriptors and timers (one timerfd each) call
 * back into their owners; nothing blocks, nothing locks.
 */
#ifndef CLN_OTLP_LOOP_H
#define CLN_OTLP_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct loop_timer;

typedef void (*loop_fd_cb)(struct loop *loop, int fd, uint32_t events, void *ctx);
typedef void (*loop_timer_cb)(struct loop *loop, void *ctx);

struct loop *loop__new(void);
void loop__free(struct loop *loop);

/* Watch @fd for @events (EPOLLIN, EPOLLOUT...). Returns 0 or -errno. */
int loop_add(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *ctx);
int loop_mod(struct loop *loop, int fd, uint32_t events);
int loop_del(struct loop *loop, int fd);

/* A one-shot timer; re-arm from its callback for periodic work. */
struct loop_timer *loop_timer__new(struct loop *loop, loop_timer_cb cb, void *ctx);
void loop_timer__free(struct loop_timer *timer);
/* Fire once after @ms milliseconds (0 fires at the next turn). Returns 0 or -errno. */
int loop_timer_arm(struct loop_timer *timer, uint64_t ms);
int loop_timer_disarm(struct loop_timer *timer);
int loop_timer_armed(const struct loop_timer *timer);

/* Run until loop_stop(). Returns 0, or -errno when epoll itself fails. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

#endif
