/*
 * testutil.h - helpers shared by the unit test suites.
 */
#ifndef MQLAB_TESTUTIL_H
#define MQLAB_TESTUTIL_H

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

#endif
