/*
 * policy.h - what a lab file may reach on disk.
 *
 * Lab files are Lua written by instructors, and they run inside the
 * grader, next to the gradebook and other students' work. While lab code
 * may run (loading, rendering texts, grading), the kit's file functions
 * (mqlab.kit, mqlab.sqlite, mqlab.programs) ask this module first. It
 * holds a short list of roots, each with the rights a lab has below it:
 *
 *   the grading's private folder   read, write
 *   the program's writable folder  read, write
 *   the submission, and its copy   read
 *   the lab's own folder           read
 *   the kit's certificates         read
 *   the copy of the submission     run (programs may be started there)
 *   folders made by kit.tmpdir     read, write, remove
 *
 * A path is judged by what it really is: its real path (symbolic links
 * resolved) must lie inside a root that grants every right asked for. A
 * path that does not exist yet (a file about to be written) is judged by
 * its nearest existing ancestor. With no policy in force (mqlab run, the
 * tests of the Lua modules), every path is allowed.
 */
#ifndef MQLAB_POLICY_H
#define MQLAB_POLICY_H

#include <stddef.h>

enum {
    POLICY_READ = 1,
    POLICY_WRITE = 2,
    POLICY_RUN = 4,       /* a folder programs may be started from */
    POLICY_REMOVE = 8     /* the root itself may be removed (kit.tmpdir) */
};

/* Turn the policy on with no roots (nothing reachable), or off. */
void policy_begin(void);
void policy_end(void);
int policy_active(void);

/* Add a root: path must exist; its real path is kept. KIT_ENOENT when it
 * does not exist, KIT_ERR when the table is full. Adding a root that is
 * there already adds the rights. */
int policy_add(const char *path, int rights, char *err);
/* Forget the root whose real path is path's (e.g. after kit.rmdir). */
void policy_forget(const char *path);

/* May `rights` be exercised on path? KIT_OK, with the real path (or, for
 * a path that does not exist, its nearest existing ancestor's real path
 * plus the rest) in resolved; KIT_EINVAL otherwise, with a sentence in
 * err. POLICY_REMOVE is granted only for a root itself. Without a policy
 * in force, always KIT_OK and resolved is path. */
int policy_check(const char *path, int rights, char *resolved, size_t len, char *err);

#endif
