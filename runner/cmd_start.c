/*
 * cmd_start.c - mqlab start NN: a lab, live. The lab's broker runs
 * behind the kit's proxy on a local port (1883 when it is free), the
 * student acts from another terminal with mosquitto_sub, mosquitto_pub
 * or their own program, and each step of the lab's guide waits for the
 * wire to show it done, saying what it saw meanwhile. Steps met are
 * recorded with the student's progress.
 */
#include "cleanup.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct {
    store_t *store;
    const char *student, *lab;
    int n, met;
} start_state_t;

static void step_met(void *ud, int i, const char *step)
{
    start_state_t *st = ud;
    char err[KIT_ERRLEN];
    (void)i;
    st->met++;
    if (st->store && store_guide_step(st->store, st->student, st->lab, step ? step : "?", err) != KIT_OK)
        fprintf(stderr, "mqlab start: %s\n", err);
}

int cmd_start(int argc, char **argv)
{
    if (argc != 1)
        return usage_error("start", "%s", T("expects one lab, e.g. mqlab start 01", "espera un laboratorio, p. ej. mqlab start 01"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    const char *who = student_id(have_ws ? ws : NULL);
    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    lab_t *lab;
    int rc = load_lab(h, "start", argv[0], &lab);
    if (rc != EXIT_PASS) { host_free(h); return rc; }
    int n = lab_guide_steps(lab);
    if (n == 0) {
        fprintf(stderr, T("mqlab start: lab %s has no guided mode yet; read it with mqlab show %s and grade it with mqlab check %s\n",
                          "mqlab start: el laboratorio %s aún no tiene modo guiado; léelo con mqlab show %s y evalúalo con mqlab check %s\n"),
                lab_id(lab), argv[0], argv[0]);
        lab_free(lab);
        host_free(h);
        return EXIT_USAGE;
    }
    start_state_t st = { .store = opt.no_record ? NULL : open_store(have_ws ? ws : NULL),
                         .student = who, .lab = lab_id(lab), .n = n };
    char err[KIT_ERRLEN];
    /* The lab's folder in the workspace, else this one, as check does. */
    char *dir = check_folder(NULL, lab_id(lab), ws, sizeof ws, &have_ws);
    int krc = lab_guide(lab, who, opt.lang, dir, opt.port > 0 ? opt.port : 1883, step_met, &st, err, sizeof err);
    free(dir);
    if (krc == KIT_OK) {
        printf(T("\nAll %d steps done. When your own program does the same: mqlab check %s\n",
                 "\nHechos los %d pasos. Cuando tu programa haga lo mismo: mqlab check %s\n"), n, argv[0]);
        rc = EXIT_PASS;
    } else if (krc == KIT_EINTR) {
        printf(T("\nStopped after %d of %d steps (they are kept); the broker and the proxy are gone.\n",
                 "\nParado tras %d de %d pasos (quedan guardados); el broker y el proxy ya no están.\n"), st.met, n);
        rc = 130;
    } else {
        fprintf(stderr, "mqlab start: %s\n", err);
        rc = krc == KIT_EMISSING ? EXIT_ENV : EXIT_USAGE;
    }
    fflush(stdout);
    store_close(st.store);
    lab_free(lab);
    host_free(h);
    return rc;
}
