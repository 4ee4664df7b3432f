/*
 * pause: the process that holds a Kubernetes pod's namespaces (the sandbox container).
 *
 * It does nothing but wait: SIGINT and SIGTERM end it with status 0 (CRI stops a pod by
 * signalling it), and SIGCHLD makes it reap every exited child, since it is pid 1 of the
 * pod's PID namespace when the pod shares one and orphans are reparented to it.
 * Signals are taken synchronously with sigwaitinfo, so no handler runs asynchronously.
 *
 * Built static (images/pause/build.sh) so that the image needs nothing else.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAUSE_VERSION "youki-pause 1.0"

static void reap_children(void)
{
	/* Every exited child, not just one: SIGCHLD is not queued per child. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv)
{
	sigset_t wait_for;
	int sig;

	if (argc == 2 && strcmp(argv[1], "-v") == 0) {
		puts(PAUSE_VERSION);
		return 0;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: %s [-v]\n", argv[0]);
		return 2;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: warning: not pid 1 of its PID namespace\n");

	sigemptyset(&wait_for);
	sigaddset(&wait_for, SIGINT);
	sigaddset(&wait_for, SIGTERM);
	sigaddset(&wait_for, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &wait_for, NULL) != 0) {
		perror("pause: sigprocmask");
		return 1;
	}

	for (;;) {
		sig = sigwaitinfo(&wait_for, NULL);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			perror("pause: sigwaitinfo");
			return 1;
		}
		if (sig == SIGCHLD) {
			reap_children();
			continue;
		}
		/* SIGINT or SIGTERM: the pod is being stopped. */
		return 0;
	}
}
