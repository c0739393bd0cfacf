/*
 * util.c - the bottom layer: errors, clocks, files and loopback ports.
 * It depends on nothing else of the kit (cleanup.c builds on it).
 */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int kit_seterr(char *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, KIT_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return code;
}

int64_t kit_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double kit_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int64_t kit_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void (*oom_cleanup)(void);

void kit_on_out_of_memory(void (*fn)(void)) { oom_cleanup = fn; }

static void out_of_memory(size_t n)
{
    fprintf(stderr, "mqlab: out of memory (asking for %zu bytes)\n", n);
    if (oom_cleanup) oom_cleanup();
    _exit(70);
}

void *kit_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *kit_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

char *kit_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    return memcpy(kit_xmalloc(n), s, n);
}

char *kit_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    if (vasprintf(&out, fmt, ap) < 0) { fputs("mqlab: out of memory\n", stderr); abort(); }
    va_end(ap);
    return out;
}

char *kit_read_file(const char *path, size_t *len, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) { kit_seterr(err, KIT_ENOENT, "cannot open %s: %s", path, strerror(errno)); return NULL; }
    size_t cap = 4096, n = 0;
    char *buf = kit_xmalloc(cap);
    for (;;) {
        if (cap - n < 2) buf = kit_xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); kit_seterr(err, KIT_ERR, "cannot read %s", path); return NULL; }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int kit_write_file_atomic(const char *path, const void *data, size_t len, int mode, char *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp)
        return kit_seterr(err, KIT_EINVAL, "path too long: %s", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return kit_seterr(err, KIT_ERR, "cannot write %s: %s", path, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) goto fail;
        p += w; left -= (size_t)w;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) goto fail;
    if (close(fd) != 0) { fd = -1; goto fail; }
    if (rename(tmp, path) != 0) { fd = -1; goto fail; }
    return KIT_OK;
fail:
    {
        int e = errno;
        if (fd >= 0) close(fd);
        unlink(tmp);
        return kit_seterr(err, KIT_ERR, "cannot write %s: %s", path, strerror(e));
    }
}

int kit_mkdir_p(const char *path, int mode, char *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return kit_seterr(err, KIT_EINVAL, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return kit_seterr(err, KIT_ERR, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
        return kit_seterr(err, KIT_ERR, "cannot create %s: %s", buf, strerror(errno));
    if (!kit_is_dir(buf))
        return kit_seterr(err, KIT_ERR, "%s exists and is not a folder", buf);
    return KIT_OK;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(p);
    return 0;
}

int kit_rm_rf(const char *path)
{
    if (!path || !*path || strcmp(path, "/") == 0) return KIT_EINVAL;
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? KIT_OK : KIT_ERR;
}

int kit_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int kit_not_work(const char *name)
{
    return name[0] == '.' || strncmp(name, "__", 2) == 0;
}

int kit_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int kit_free_port(char *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return kit_seterr(err, 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    else
        kit_seterr(err, 0, "cannot find a free port on 127.0.0.1: %s", strerror(errno));
    close(fd);
    return port;
}

const char *kit_self_exe(void)
{
    static char path[PATH_MAX];
    if (!path[0]) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0) snprintf(path, sizeof path, "mqlab");
        else path[n] = '\0';
    }
    return path;
}

int kit_usage_error(const char *cmd, int es, const char *fmt, const char *arg)
{
    fprintf(stderr, "mqlab %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, es ? "\nPrueba: mqlab %s --help\n" : "\nTry: mqlab %s --help\n", cmd);
    return 2;
}

int kit_long_opt(const char *arg, char *name, size_t namelen, const char **val)
{
    if (strncmp(arg, "--", 2) != 0) return -1;
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    if (n >= namelen) return -2;
    memcpy(name, arg + 2, n);
    name[n] = '\0';
    *val = eq ? eq + 1 : NULL;
    return 0;
}

void kit_set_limit(int resource, uint64_t soft, uint64_t hard)
{
    struct rlimit cur, r = { (rlim_t)soft, (rlim_t)hard };
    /* Never above the hard limit this process already has: raising it
     * would fail, and the whole call with it. */
    if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
        if (r.rlim_max > cur.rlim_max) r.rlim_max = cur.rlim_max;
        if (r.rlim_cur > r.rlim_max) r.rlim_cur = r.rlim_max;
    }
    setrlimit(resource, &r);
}

int kit_path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0) return 1;
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int kit_cmp_strp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int kit_proc_stat(int pid, char *state, unsigned long long f[KIT_STAT_FIELDS])
{
    char path[64], buf[1024];
    if (pid) snprintf(path, sizeof path, "/proc/%d/stat", pid);
    else snprintf(path, sizeof path, "/proc/self/stat");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    memset(f, 0, sizeof *f * KIT_STAT_FIELDS);
    f[1] = strtoull(buf, NULL, 10);
    /* Field 2, the command name, may hold spaces and parentheses: the
     * numbered fields resume after the last ')'. */
    char *p = strrchr(buf, ')'), *save = NULL;
    if (!p) return -1;
    int field = 2;
    for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (++field == 3) {
            if (state) *state = tok[0];
            continue;
        }
        f[field] = strtoull(tok, NULL, 10);
        if (field == KIT_STAT_FIELDS - 1) return 0;
    }
    return -1;
}

void kit_close_from(int lowfd)
{
    if (close_range((unsigned)lowfd, ~0U, 0) == 0) return;
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = lowfd; fd < max; fd++) close(fd);
}
