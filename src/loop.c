// SPDX-License-Identifier: MIT
#include "loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/*
 * Each watched fd has a small record; epoll's data.ptr points at it. Records are kept in
 * a singly linked list so loop_del can find them by fd; there are a handful (ring buffer,
 * socket, curl's sockets, a few timers), so a list is the right size.
 * A record deleted during dispatch is only marked dead and reaped after the batch of
 * events, because a later event of the same epoll_wait may still point at it.
 */
struct loop_watch {
	struct loop_watch *next;
	int fd;
	bool dead;
	loop_fd_cb cb;
	void *ctx;
};

struct loop {
	int epfd;
	bool stop;
	bool dispatching;
	struct loop_watch *watches;
};

struct loop_timer {
	struct loop *loop;
	int fd;
	bool armed;
	loop_timer_cb cb;
	void *ctx;
};

#define LOOP_MAX_EVENTS 64

struct loop *loop__new(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		free(loop);
		return NULL;
	}
	return loop;
}

void loop__free(struct loop *loop)
{
	struct loop_watch *w, *next;

	if (!loop)
		return;
	for (w = loop->watches; w; w = next) {
		next = w->next;
		free(w);
	}
	close(loop->epfd);
	free(loop);
}

static struct loop_watch *loop_find(struct loop *loop, int fd)
{
	for (struct loop_watch *w = loop->watches; w; w = w->next)
		if (w->fd == fd && !w->dead)
			return w;
	return NULL;
}

int loop_add(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *ctx)
{
	struct epoll_event ev = {.events = events};
	struct loop_watch *w;

	if (loop_find(loop, fd))
		return -EEXIST;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->cb = cb;
	w->ctx = ctx;
	ev.data.ptr = w;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(w);
		return err;
	}
	w->next = loop->watches;
	loop->watches = w;
	return 0;
}

int loop_mod(struct loop *loop, int fd, uint32_t events)
{
	struct loop_watch *w = loop_find(loop, fd);
	struct epoll_event ev = {.events = events};

	if (!w)
		return -ENOENT;
	ev.data.ptr = w;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

static void loop_reap(struct loop *loop)
{
	struct loop_watch **pp = &loop->watches;

	while (*pp) {
		struct loop_watch *w = *pp;

		if (w->dead) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

int loop_del(struct loop *loop, int fd)
{
	struct loop_watch *w = loop_find(loop, fd);

	if (!w)
		return -ENOENT;
	/* The fd may already be closed (curl closes before telling us): ignore EBADF. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	w->dead = true;
	if (!loop->dispatching)
		loop_reap(loop);
	return 0;
}

static void loop_timer_fire(struct loop *loop, int fd, uint32_t events, void *ctx)
{
	struct loop_timer *t = ctx;
	uint64_t expirations;

	if (read(fd, &expirations, sizeof(expirations)) < 0 && errno == EAGAIN)
		return;
	t->armed = false;
	t->cb(loop, t->ctx);
}

struct loop_timer *loop_timer__new(struct loop *loop, loop_timer_cb cb, void *ctx)
{
	struct loop_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->loop = loop;
	t->cb = cb;
	t->ctx = ctx;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0)
		goto err;
	if (loop_add(loop, t->fd, EPOLLIN, loop_timer_fire, t) < 0)
		goto err_fd;
	return t;
err_fd:
	close(t->fd);
err:
	free(t);
	return NULL;
}

void loop_timer__free(struct loop_timer *t)
{
	if (!t)
		return;
	loop_del(t->loop, t->fd);
	close(t->fd);
	free(t);
}

int loop_timer_arm(struct loop_timer *t, uint64_t ms)
{
	struct itimerspec its = {0};

	/* it_value of zero would disarm: fire after 1 ns instead. */
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (ms % 1000) * 1000000;
	if (!ms)
		its.it_value.tv_nsec = 1;
	if (timerfd_settime(t->fd, 0, &its, NULL) < 0)
		return -errno;
	t->armed = true;
	return 0;
}

int loop_timer_disarm(struct loop_timer *t)
{
	struct itimerspec its = {0};

	if (!t->armed)
		return 0; /* fired or never armed: nothing to tell the kernel */
	if (timerfd_settime(t->fd, 0, &its, NULL) < 0)
		return -errno;
	t->armed = false;
	return 0;
}

int loop_timer_armed(const struct loop_timer *t)
{
	return t->armed;
}

int loop_run(struct loop *loop)
{
	struct epoll_event events[LOOP_MAX_EVENTS];

	loop->stop = false;
	while (!loop->stop) {
		int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		loop->dispatching = true;
		for (int i = 0; i < n; i++) {
			struct loop_watch *w = events[i].data.ptr;

			if (!w->dead)
				w->cb(loop, w->fd, events[i].events, w->ctx);
		}
		loop->dispatching = false;
		loop_reap(loop);
	}
	return 0;
}

void loop_stop(struct loop *loop)
{
	loop->stop = true;
}
