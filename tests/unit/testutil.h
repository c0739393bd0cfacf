/*
 * testutil.h - helpers shared by the unit test suites.
 */
#ifndef MQLAB_TESTUTIL_H
#define MQLAB_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "programs.h"

/* tests/unit/fixtures/programs, absolute (tests run from the repository root). */
const char *tu_programs_dir(void);
/* Write dir/name with text and chmod it to mode. 0, or -1. */
int tu_write_file(const char *dir, const char *name, const char *text, int mode);
/* The state letter of pid in /proc (R, S, Z, ...), 0 when it is gone. */
char tu_proc_state(pid_t pid);
/* Running: neither gone nor a zombie (an orphan's zombie waits for an
 * init that, in some containers, never reaps; a zombie runs nothing). */
int tu_pid_alive(pid_t pid);
/* Wait until p's stdout holds text, or ms pass. 1 when it does. */
int tu_stdout_has(prog_t *p, const char *text, int ms);


/* Hand-built MQTT 3.1.1 packets into out; each returns its length. */
size_t tu_put_str(uint8_t *b, const char *s);
size_t tu_frame(uint8_t *out, uint8_t first, const uint8_t *body, size_t n);
/* CONNECT, clean session; a will when will_topic is not NULL. */
size_t tu_mk_connect(uint8_t *out, const char *id, int keepalive, const char *will_topic,
                     const char *will_payload, int will_qos);
/* out must hold len + strlen(topic) + 9 bytes. */
size_t tu_mk_publish(uint8_t *out, const char *topic, const void *payload, size_t len, int qos, int id);
size_t tu_mk_subscribe(uint8_t *out, int id, const char *filter, int qos);
size_t tu_mk_puback(uint8_t *out, int id);

#endif
