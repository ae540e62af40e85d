/* A slow disk for the agent's tests, at the system-call boundary: preloaded with LD_PRELOAD,
 * it makes every fsync and fdatasync of the process take SLOW_FSYNC_MS milliseconds (default
 * 200, what an SD card under load can take) before doing the real one. Nothing in the agent
 * knows it is there. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void slow(void) {
    const char *text = getenv("SLOW_FSYNC_MS");
    long ms = text ? atol(text) : 200;
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow();
    return real(fd);
}
