/*
 * lab.h - the lab engine: finds, loads and validates lab files, renders
 * their texts with a student's parameters, and grades a submission into
 * a verdict. The Lua half is runner/lua/engine.lua; callers of this
 * header never see Lua.
 *
 * Labs come from the binary (labs/<id>/lab.lua, embedded at build time)
 * or, when MQLAB_LABS names a folder, from <folder>/<id>/lab.lua.
 */
#ifndef MQLAB_LAB_H
#define MQLAB_LAB_H

#include <stddef.h>
#include "host.h"
#include "verdict.h"

typedef struct lab lab_t;

/* The ids of every lab, sorted ("01-hello", ...). Free with lab_free_ids. */
int lab_ids(char ***ids, int *n);
void lab_free_ids(char **ids, int n);

/* "1", "01", "01-hello" (or a unique prefix) -> "01-hello". KIT_ENOENT
 * with the known ids in err otherwise. */
int lab_resolve(const char *arg, char *id, size_t idlen, char *err);

/* Load and validate a lab by id, or any lab file by path. A malformed
 * lab is KIT_EINVAL with "file:line: what is wrong" in err. */
int lab_load(host_t *h, const char *id, lab_t **out, char *err, size_t errlen);
int lab_load_file(host_t *h, const char *path, lab_t **out, char *err, size_t errlen);
void lab_free(lab_t *lab);

const char *lab_id(const lab_t *lab);

typedef struct {
    char *title;
    char *programs;    /* "hello" or "" ("a, b" when several) */
    char *files;       /* "filters.txt" or "" */
    int nchecks;
    double max_points;
} lab_info_t;
int lab_describe(lab_t *lab, const char *lang, lab_info_t *info);
void lab_info_clear(lab_info_t *info);

/* Texts with the student's own parameters (malloc'd; NULL + err on a
 * lab error). Hints are 0-based. */
char *lab_instructions(lab_t *lab, const char *student, const char *lang,
                       char *err, size_t errlen);
int lab_nhints(lab_t *lab);
char *lab_hint(lab_t *lab, int i, const char *student, const char *lang,
               char *err, size_t errlen);

/* Starter files of a lab (labs/<id>/starter/...): fn is called with the
 * relative name and the content of each. */
int lab_starter_files(const char *id,
                      int (*fn)(void *ud, const char *name, const char *data, size_t len),
                      void *ud);

/* Grade the submission in dir. KIT_OK when grading ran (whatever the
 * score), KIT_EINTR on Ctrl-C, KIT_EMISSING when the machine lacks
 * something (err says what), KIT_ERR when the lab itself failed.
 * v is filled in every case that returns KIT_OK. */
int lab_grade(lab_t *lab, const char *dir, const char *student, const char *lang,
              verdict_t *v, char *err, size_t errlen);

#endif
