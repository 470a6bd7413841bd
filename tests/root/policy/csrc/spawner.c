/* spawner COUNT PATH ARG: vfork+execve PATH ARG COUNT times, one after the other, reaping each.
 * Prints "exited0 killed9 other". */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s COUNT PATH ARG\n", argv[0]);
        return 2;
    }
    long count = atol(argv[1]), ok = 0, killed = 0, other = 0;
    char *args[] = {argv[2], argv[3], NULL};
    char *envp[] = {NULL};
    for (long i = 0; i < count; i++) {
        pid_t pid = vfork();
        if (pid == 0) {
            execve(args[0], args, envp);
            _exit(127);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0) {
            other++;
            continue;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ok++;
        else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) killed++;
        else other++;
    }
    printf("%ld %ld %ld\n", ok, killed, other);
    return 0;
}
