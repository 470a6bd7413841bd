/* Latency probe for bench/policy.py.
 *   lat exec N PATH      vfork+execve PATH and wait, N times
 *   lat connect N IP PORT  socket + connect (TCP) + close, N times
 * With KG_LAT_GAP_US=G in the environment, each call starts G microseconds after the previous one ended
 * (the pause is not counted): a paced load instead of back-to-back calls.
 * Prints the N latencies' p50 and p99 in microseconds and how many failed: "p50 p99 failed". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s exec N PATH [ARG...] | connect N IP PORT\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]), failed = 0;
    double *lat = calloc(n, sizeof(double));
    int is_exec = strcmp(argv[1], "exec") == 0;
    struct sockaddr_in addr = {0};
    if (!is_exec) {
        if (argc < 5) return 2;
        addr.sin_family = AF_INET;
        addr.sin_port = htons(atoi(argv[4]));
        inet_pton(AF_INET, argv[3], &addr.sin_addr);
    }
    const char *gap_env = getenv("KG_LAT_GAP_US");
    long gap_us = gap_env ? atol(gap_env) : 0;
    char **args = &argv[3]; /* exec: PATH and its arguments, NULL-terminated as argv is */
    char *envp[] = {NULL};
    for (long i = 0; i < n; i++) {
        if (gap_us > 0) {
            struct timespec pause = {gap_us / 1000000, (gap_us % 1000000) * 1000};
            nanosleep(&pause, NULL);
        }
        double t0 = now_us();
        if (is_exec) {
            pid_t pid = vfork();
            if (pid == 0) {
                execve(args[0], args, envp);
                _exit(127);
            }
            int status = 0;
            if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
        } else {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) failed++;
            /* close with a reset: tens of thousands of TIME_WAIT sockets would exhaust the ephemeral ports and
             * make later connects search for a free one (milliseconds each, whatever the agent does) */
            struct linger reset = {1, 0};
            if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
            if (fd >= 0) close(fd);
        }
        lat[i] = now_us() - t0;
    }
    qsort(lat, n, sizeof(double), cmp);
    printf("%.1f %.1f %ld\n", lat[n / 2], lat[(n * 99) / 100], failed);
    return 0;
}
