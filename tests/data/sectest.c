/*
 * Test helper for tests/seccomp.rs and tests/security.rs, built with `gcc -static` at test
 * time and copied into the busybox rootfs: makes one syscall that busybox cannot make and
 * prints its outcome on one line, "ok <return value>" or "errno <n> <message>".
 *
 *   sectest personality HEX     personality(HEX)
 *   sectest keyctl              keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1)
 *   sectest add_key             add_key("user", "sectest", "x", 1, KEY_SPEC_PROCESS_KEYRING)
 *   sectest mkdir PATH          mkdir(PATH, 0755)
 *   sectest euid                prints the effective uid (a setuid copy tests noNewPrivileges)
 *   sectest open-write PATH     open(PATH, O_WRONLY)
 *   sectest fds                 the open descriptors, from /proc/self/fd, space-separated
 *   sectest init_module         init_module(NULL, 0, "") (loads nothing even when allowed)
 *   sectest settime-noop        settimeofday(NULL, NULL) (changes nothing even when allowed)
 *   sectest close_range         close_range(1000, 1000, 0) (closes nothing: no such fds)
 *   sectest thread              pthread_create and join (glibc >= 2.34 tries clone3 first
 *                               and falls back to clone only on ENOSYS)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *thread_main(void *arg) {
    return arg;
}

static int report(long ret) {
    if (ret < 0) {
        int e = errno;
        printf("errno %d %s\n", e, strerror(e));
        return 1;
    }
    printf("ok %ld\n", ret);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sectest COMMAND [ARG]\n");
        return 2;
    }
    const char *cmd = argv[1];
    const char *arg = argc > 2 ? argv[2] : NULL;
    if (!strcmp(cmd, "personality") && arg)
        return report(syscall(SYS_personality, strtoul(arg, NULL, 16)));
    if (!strcmp(cmd, "keyctl"))
        return report(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */,
                              -3 /* KEY_SPEC_SESSION_KEYRING */, 1));
    if (!strcmp(cmd, "add_key"))
        return report(syscall(SYS_add_key, "user", "sectest", "x", 1,
                              -2 /* KEY_SPEC_PROCESS_KEYRING */));
    if (!strcmp(cmd, "mkdir") && arg)
        return report(mkdir(arg, 0755));
    if (!strcmp(cmd, "euid")) {
        printf("%d\n", (int)geteuid());
        return 0;
    }
    if (!strcmp(cmd, "open-write") && arg)
        return report(open(arg, O_WRONLY));
    if (!strcmp(cmd, "init_module"))
        return report(syscall(SYS_init_module, NULL, 0UL, ""));
    if (!strcmp(cmd, "settime-noop"))
        return report(syscall(SYS_settimeofday, NULL, NULL));
    if (!strcmp(cmd, "fds")) {
        DIR *d = opendir("/proc/self/fd");
        if (!d)
            return report(-1);
        int self = dirfd(d);
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.' && atoi(e->d_name) != self)
                printf("%s ", e->d_name);
        printf("\n");
        return 0;
    }
    if (!strcmp(cmd, "close_range"))
        return report(syscall(SYS_close_range, 1000U, 1000U, 0U));
    if (!strcmp(cmd, "thread")) {
        pthread_t t;
        void *back = NULL;
        int e = pthread_create(&t, NULL, thread_main, (void *)42);
        if (e) {
            errno = e;
            return report(-1);
        }
        pthread_join(t, &back);
        return report((long)back);
    }
    fprintf(stderr, "sectest: unknown command %s\n", cmd);
    return 2;
}
