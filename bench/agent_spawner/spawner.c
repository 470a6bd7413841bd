/* Exec storm for bench/agent.py: vfork+execve PATH at RATE per second for SECONDS (0 = as fast as
 * possible), reaping children as they exit. Prints "spawned elapsed_seconds" on stdout. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s RATE SECONDS PATH\n", argv[0]);
        return 2;
    }
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    char *args[] = {argv[3], NULL};
    char *envp[] = {NULL};
    long spawned = 0, failed = 0;
    double start = now(), elapsed = 0;
    while ((elapsed = now() - start) < seconds) {
        if (rate > 0 && spawned >= rate * elapsed) {
            struct timespec pause = {0, 100000};
            nanosleep(&pause, NULL);
        } else {
            pid_t pid = vfork();
            if (pid == 0) {
                execve(args[0], args, envp);
                _exit(127);
            }
            if (pid > 0) spawned++;
            else failed++;
        }
        int status;
        while (waitpid(-1, &status, WNOHANG) > 0) {
        }
    }
    while (wait(NULL) > 0) {
    }
    printf("%ld %.3f %ld\n", spawned, now() - start, failed);
    return 0;
}
