// SPDX-License-Identifier: MIT
/*
 * sock-sender SOCKET PAYLOAD: send PAYLOAD as one datagram to the unix socket SOCKET (as
 * CLN_TRACE_SOCKET does), then stay alive until standard input closes, so
 * the receiver can still read /proc/<pid>/exe. Copies of it at many paths stand in for
 * many different executables.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char c;
	int fd;

	if (argc != 3 || strlen(argv[1]) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "usage: sock-sender SOCKET PAYLOAD\n");
		return 2;
	}
	strcpy(addr.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    sendto(fd, argv[2], strlen(argv[2]), 0, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("sock-sender");
		return 1;
	}
	while (read(STDIN_FILENO, &c, 1) > 0)
		;
	return 0;
}
