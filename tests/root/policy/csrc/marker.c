/* A short-lived binary whose first act is to create a marker file DIR/m<pid>, then exit (well under 1 ms). */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char path[512];
    if (argc != 2) return 2;
    snprintf(path, sizeof path, "%s/m%d", argv[1], (int)getpid());
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    return fd < 0;
}
