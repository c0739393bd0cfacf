/*
 * policy.c - the roots a lab file may reach (see policy.h).
 *
 * A handful of roots at most, so a fixed table and a linear scan: the
 * checks run once per file call of a lab, never in a hot loop.
 */
#include "policy.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ROOTS 32

static struct {
    char path[PATH_MAX];
    int rights;
} roots[MAX_ROOTS];
static int nroots;
static int active;

void policy_begin(void)
{
    nroots = 0;
    active = 1;
}

void policy_end(void)
{
    nroots = 0;
    active = 0;
}

int policy_active(void) { return active; }

int policy_add(const char *path, int rights, char *err)
{
    char real[PATH_MAX];
    if (!path || !realpath(path, real))
        return kit_seterr(err, KIT_ENOENT, "%s: %s", path ? path : "(null)", strerror(errno));
    for (int i = 0; i < nroots; i++) {
        if (strcmp(roots[i].path, real) == 0) {
            roots[i].rights |= rights;
            return KIT_OK;
        }
    }
    if (nroots == MAX_ROOTS) return kit_seterr(err, KIT_ERR, "too many folders for one lab (%d)", MAX_ROOTS);
    snprintf(roots[nroots].path, sizeof roots[nroots].path, "%s", real);
    roots[nroots].rights = rights;
    nroots++;
    return KIT_OK;
}

void policy_forget(const char *path)
{
    char real[PATH_MAX];
    const char *want = path && realpath(path, real) ? real : path;
    for (int i = 0; want && i < nroots; i++) {
        if (strcmp(roots[i].path, want) != 0) continue;
        roots[i] = roots[--nroots];
        return;
    }
}

/* The real path of path, or, when it does not exist, the real path of
 * its nearest existing ancestor followed by the missing names (none of
 * which may be "." or ".."). 0 on success. */
static int resolve(const char *path, char *out, size_t len)
{
    char buf[PATH_MAX], tail[PATH_MAX] = "";
    if (!*path || snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (;;) {
        char real[PATH_MAX];
        if (realpath(buf, real)) {
            if ((size_t)snprintf(out, len, "%s%s", strcmp(real, "/") == 0 && *tail ? "" : real, tail) >= len)
                return -1;
            return 0;
        }
        if (errno != ENOENT) return -1;
        /* Peel off the last name: it does not exist (yet). */
        size_t n = strlen(buf);
        while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
        char *slash = strrchr(buf, '/');
        const char *name = slash ? slash + 1 : buf;
        if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return -1;
        char next[PATH_MAX];
        if ((size_t)snprintf(next, sizeof next, "/%s%s", name, tail) >= sizeof next) return -1;
        memcpy(tail, next, strlen(next) + 1);
        if (!slash) snprintf(buf, sizeof buf, ".");
        else if (slash == buf) snprintf(buf, sizeof buf, "/");
        else *slash = '\0';
    }
}

int policy_check(const char *path, int rights, char *resolved, size_t len, char *err)
{
    char real[PATH_MAX];
    if (!path) return kit_seterr(err, KIT_EINVAL, "no path");
    if (!active) {
        if (resolved && (size_t)snprintf(resolved, len, "%s", path) >= len)
            return kit_seterr(err, KIT_EINVAL, "path too long: %s", path);
        return KIT_OK;
    }
    if (resolve(path, real, sizeof real) != 0)
        return kit_seterr(err, KIT_EINVAL, "%s: not a path a lab may use", path);
    for (int i = 0; i < nroots; i++) {
        if (!kit_path_under(real, roots[i].path)) continue;
        int have = roots[i].rights;
        /* Removing is for the root itself (a kit.tmpdir folder), never
         * for something below it or below another root. */
        if ((rights & POLICY_REMOVE) && strcmp(real, roots[i].path) != 0) have &= ~POLICY_REMOVE;
        if ((have & rights) != rights) continue;
        if (resolved && (size_t)snprintf(resolved, len, "%s", real) >= len)
            return kit_seterr(err, KIT_EINVAL, "path too long: %s", real);
        return KIT_OK;
    }
    const char *what = rights & POLICY_REMOVE ? "remove" : rights & POLICY_RUN ? "run a program from"
                     : rights & POLICY_WRITE ? "write" : "read";
    return kit_seterr(err, KIT_EINVAL, "a lab may not %s %s (only its private folder, the submission "
                      "and its own lab folder)", what, path);
}
