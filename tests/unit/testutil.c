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

/* ---- hand-built MQTT 3.1.1 packets (the proxy's tests) ---- */

size_t tu_put_str(uint8_t *b, const char *s)
{
    size_t n = strlen(s);
    b[0] = (uint8_t)(n >> 8);
    b[1] = (uint8_t)n;
    memcpy(b + 2, s, n);
    return n + 2;
}

size_t tu_frame(uint8_t *out, uint8_t first, const uint8_t *body, size_t n)
{
    size_t k = 0;
    out[k++] = first;
    size_t rem = n;
    do {
        uint8_t byte = rem % 128;
        rem /= 128;
        if (rem) byte |= 0x80;
        out[k++] = byte;
    } while (rem);
    memcpy(out + k, body, n);
    return k + n;
}

/* CONNECT, clean session; a will when will_topic is not NULL. */
size_t tu_mk_connect(uint8_t *out, const char *id, int keepalive, const char *will_topic,
                         const char *will_payload, int will_qos)
{
    uint8_t body[512];
    size_t n = tu_put_str(body, "MQTT");
    body[n++] = 4;
    uint8_t flags = 0x02;
    if (will_topic) flags |= (uint8_t)(0x04 | (will_qos << 3));
    body[n++] = flags;
    body[n++] = (uint8_t)(keepalive >> 8);
    body[n++] = (uint8_t)keepalive;
    n += tu_put_str(body + n, id);
    if (will_topic) {
        n += tu_put_str(body + n, will_topic);
        n += tu_put_str(body + n, will_payload);
    }
    return tu_frame(out, 0x10, body, n);
}

/* out must hold len + strlen(topic) + 9 bytes. */
size_t tu_mk_publish(uint8_t *out, const char *topic, const void *payload, size_t len, int qos, int id)
{
    uint8_t *body = kit_xmalloc(len + strlen(topic) + 4);
    size_t n = tu_put_str(body, topic);
    if (qos) {
        body[n++] = (uint8_t)(id >> 8);
        body[n++] = (uint8_t)id;
    }
    memcpy(body + n, payload, len);
    n += len;
    size_t total = tu_frame(out, (uint8_t)(0x30 | (qos << 1)), body, n);
    free(body);
    return total;
}

size_t tu_mk_subscribe(uint8_t *out, int id, const char *filter, int qos)
{
    uint8_t body[300];
    body[0] = (uint8_t)(id >> 8);
    body[1] = (uint8_t)id;
    size_t n = 2 + tu_put_str(body + 2, filter);
    body[n++] = (uint8_t)qos;
    return tu_frame(out, 0x82, body, n);
}

size_t tu_mk_puback(uint8_t *out, int id)
{
    out[0] = 0x40;
    out[1] = 2;
    out[2] = (uint8_t)(id >> 8);
    out[3] = (uint8_t)id;
    return 4;
}

