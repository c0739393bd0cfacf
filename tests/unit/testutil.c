/*
 * testutil.c - helpers shared by the unit test suites.
 */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "util.h"

const char *tu_programs_dir(void)
{
    static char dir[PATH_MAX];
    if (!dir[0]) {
        char rel[PATH_MAX];
        const char *slash = strrchr(__FILE__, '/');
        int n = slash ? (int)(slash - __FILE__) : 0;
        snprintf(rel, sizeof rel, "%.*s%sfixtures/programs", n, __FILE__, slash ? "/" : "");
        if (!realpath(rel, dir)) snprintf(dir, sizeof dir, "%s", rel);
    }
    return dir;
}

int tu_write_file(const char *dir, const char *name, const char *text, int mode)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    if (fclose(f) != 0) return -1;
    return chmod(path, (mode_t)mode);
}

char tu_proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold ") ": the state follows the last ')'. */
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

int tu_pid_alive(pid_t pid)
{
    char st = tu_proc_state(pid);
    return st && st != 'Z';
}

int tu_stdout_has(prog_t *p, const char *text, int ms)
{
    int64_t end = kit_now_ms() + ms;
    do {
        if (strstr(prog_stdout(p, NULL), text)) return 1;
        kit_sleep_ms(10);
    } while (kit_now_ms() < end);
    return 0;
}
