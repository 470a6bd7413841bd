/* A shared object whose constructor creates a marker file $KG_MARKERS/lib<pid> as soon as it is loaded
 * (LD_PRELOAD, dlopen): if the marker exists, the object's code ran. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void mark(void) {
    const char *dir = getenv("KG_MARKERS");
    char path[512];
    if (!dir) return;
    snprintf(path, sizeof path, "%s/lib%d", dir, (int)getpid());
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
}
