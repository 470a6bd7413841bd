/* A manual loader's two steps: map a file readable (no PROT_EXEC), then make the mapping executable with
 * mprotect. argv[1]: the file, or "-" for anonymous memory (a JIT's); argv[2] "span": the mprotect range starts
 * on an anonymous page in front of the file's mapping. Prints "mapped" once the mapping exists; once mprotect
 * has returned (the file's bytes could run now), creates $KG_MARKERS/mprotect<pid> and exits 0. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    long page = sysconf(_SC_PAGESIZE);
    int span = argc > 2 && strcmp(argv[2], "span") == 0;
    char *base = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return 3;
    char *code = base + page;
    if (strcmp(argv[1], "-") != 0) {
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 4;
        if (mmap(code, page, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) return 5;
        close(fd);
    }
    printf("mapped\n");
    fflush(stdout);
    if (mprotect(span ? base : code, span ? 2 * page : page, PROT_READ | PROT_EXEC) != 0) return 6;
    const char *dir = getenv("KG_MARKERS");
    if (dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/mprotect%d", dir, (int)getpid());
        int marker = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (marker >= 0) close(marker);
    }
    return 0;
}
