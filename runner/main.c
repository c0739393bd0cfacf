/*
 * main.c - mqlab's command line: parse, dispatch, print. The work is in
 * the modules; this file only decides which of them to call.
 *
 * Exit codes: 0 all passed / done; 1 a check failed; 2 wrong usage or a
 * bad input file; 3 the machine lacks something (and we say what).
 */
#include "benchcmd.h"
#include "broker.h"
#include "cleanup.h"
#include "embedded.h"
#include "host.h"
#include "lab.h"
#include "mqtt.h"
#include "programs.h"
#include "sandbox.h"
#include "report.h"
#include "store.h"
#include "tls.h"
#include "trace.h"
#include "util.h"
#include "worker.h"

#include <ctype.h>
#include <getopt.h>
#include <lauxlib.h>
#include <libgen.h>
#include <limits.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MQLAB_VERSION "0.1.0"

enum { EXIT_PASS = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_ENV = 3 };

/* Options shared by every command. */
static struct {
    const char *lang;       /* "es" or "en" */
    const char *student;    /* --student */
    const char *format;     /* --format */
    const char *db;         /* --db */
    int json;               /* --json */
    int all;                /* --all */
    int no_record;          /* --no-record */
    int port;               /* --port */
    int no_sandbox;         /* --no-sandbox */
    int help;
} opt;

static int es(void) { return strcmp(opt.lang, "es") == 0; }
#define T(en_, es_) (es() ? (es_) : (en_))

static const char *pick_lang(const char *flag)
{
    const char *cands[] = { flag, getenv("MQLAB_LANG"), getenv("LC_ALL"), getenv("LANG") };
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        const char *l = cands[i];
        if (!l || !*l) continue;
        if (strncmp(l, "es", 2) == 0) return "es";
        if (strncmp(l, "en", 2) == 0 || i < 2) return "en";
    }
    return "en";
}

/* What a killed mqlab left in the temp folder: gone before we add ours. */
static void sweep_leftovers(void)
{
    sweep_report_t r;
    char err[KIT_ERRLEN];
    cleanup_sweep(NULL, &r, err);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    return kit_usage_error(cmd, es(), fmt, arg);
}

/* ------------------------------------------------------------ help */

typedef struct {
    const char *name, *args, *en, *es, *more_en, *more_es;
} command_help_t;

static const command_help_t helps[] = {
    { "init", "[DIR] [--student ID]", "create a workspace: one folder per lab with instructions and starter files",
      "crea un espacio de trabajo: una carpeta por laboratorio con instrucciones y ficheros de partida",
      "DIR defaults to ./mqlab-work. Existing files are never overwritten.\n"
      "The student id (default: $USER) chooses your own topics, ids and plant.",
      "DIR es ./mqlab-work si no se indica. Nunca se sobrescriben ficheros existentes.\n"
      "El id de estudiante (por defecto: $USER) elige tus propios topics, ids y planta." },
    { "list", "", "the labs, their status and your best score", "los laboratorios, su estado y tu mejor nota", "", "" },
    { "show", "NN", "a lab's instructions, with your own parameters", "las instrucciones de un laboratorio, con tus parámetros",
      "NN may be 1, 01 or 01-hello.", "NN puede ser 1, 01 o 01-hello." },
    { "check", "NN [DIR] [--format text|json] [--no-record] [--no-sandbox]", "grade your work for lab NN and record the attempt",
      "evalúa tu trabajo del laboratorio NN y guarda el intento",
      "DIR defaults to the lab's folder in your workspace (or the current folder).\n"
      "--format json prints exactly one JSON object (the verdict) on stdout.\n"
      "Your programs run in a sandbox (a private copy of the folder, a private /tmp, nothing of your home);\n"
      "where there is none (see mqlab doctor) they run unconfined, with a notice.\n"
      "Exit code: 0 full marks, 1 a check failed, 2 bad usage or input, 3 something is missing here.",
      "DIR es la carpeta del laboratorio en tu espacio de trabajo (o la carpeta actual).\n"
      "--format json imprime exactamente un objeto JSON (el veredicto) en stdout.\n"
      "Tus programas corren aislados (una copia privada de la carpeta, un /tmp propio, nada de tu home);\n"
      "donde no se puede (mira mqlab doctor) corren sin aislar, con un aviso.\n"
      "Código de salida: 0 nota máxima, 1 alguna comprobación falló, 2 uso o entrada incorrectos, 3 falta algo en esta máquina." },
    { "hint", "NN", "the next hint for lab NN (hints used are recorded)", "la siguiente pista del laboratorio NN (se registran)", "", "" },
    { "progress", "[--json]", "where you stand in every lab", "cómo vas en cada laboratorio", "", "" },
    { "reset", "NN | --all", "forget your attempts and hints for a lab (or all)", "olvida tus intentos y pistas de un laboratorio (o de todos)", "", "" },
    { "run", "FILE.lua [ARGS...]", "run a Lua MQTT client with the kit's mqtt module", "ejecuta un cliente MQTT en Lua con el módulo mqtt del kit",
      "The script gets the globals `mqtt` (require \"mqlab.mqtt\") and `arg`.\n"
      "Example: local c = mqtt.connect{port = 1883, id = \"gw-1\"}; c:publish(\"acme/v1/x\", \"hola\", {qos = 1})",
      "El script recibe las globales `mqtt` (require \"mqlab.mqtt\") y `arg`.\n"
      "Ejemplo: local c = mqtt.connect{port = 1883, id = \"gw-1\"}; c:publish(\"acme/v1/x\", \"hola\", {qos = 1})" },
    { "broker", "[PROFILE] [--port P]", "a bundled Mosquitto in the foreground, to explore freely (Ctrl-C stops it)",
      "un Mosquitto del kit en primer plano para explorar (Ctrl-C lo para)",
      "PROFILE defaults to plain. It listens on 127.0.0.1 only and prints its log as it goes.",
      "PROFILE es plain por defecto. Escucha solo en 127.0.0.1 y muestra su log en vivo." },
    { "trace", "[--port P] [--to HOST:PORT] [--format text|json] [FAULTS...]",
      "a proxy that prints the live packet exchange, and can break the link on purpose",
      "un proxy que imprime en vivo el intercambio de paquetes, y puede romper el enlace a propósito",
      "`mqlab trace --help` lists the fault flags (--drop, --dup, --delay, --cut-before, --cut-after, ...).",
      "`mqlab trace --help` lista las opciones de fallo (--drop, --dup, --delay, --cut-before, --cut-after, ...)." },
    { "bench", "conn|steady|burst|ramp [OPTIONS]", "the load generator: thousands of MQTT clients from one process",
      "el generador de carga: miles de clientes MQTT desde un solo proceso",
      "`mqlab bench --help` lists the modes and options (--clients, --rate, --qos, --size, --duration,\n"
      "--format text|json|csv, --plot FILE.svg). Without --host/--port it starts a bundled broker.",
      "`mqlab bench --help` lista los modos y opciones (--clients, --rate, --qos, --size, --duration,\n"
      "--format text|json|csv, --plot FICHERO.svg). Sin --host/--port arranca un broker del kit." },
    { "certs", "[DIR]", "make the kit's PKI for the TLS labs (only the files that are missing)",
      "crea la PKI del kit para los laboratorios TLS (solo los ficheros que falten)",
      "DIR defaults to $MQLAB_CERTS, else certs/ beside mqlab, else ~/.local/share/mqlab/certs.\n"
      "It makes a CA, a server certificate for localhost and 127.0.0.1, a client certificate, an impostor CA\n"
      "with a server certificate for the same names, a certificate for another host and an expired one.\n"
      "Keys are readable only by you. `make` runs it for the repository's certs/.",
      "DIR es $MQLAB_CERTS, si no certs/ junto a mqlab, si no ~/.local/share/mqlab/certs.\n"
      "Crea una CA, un certificado de servidor para localhost y 127.0.0.1, uno de cliente, una CA impostora\n"
      "con un certificado de servidor para los mismos nombres, uno para otro host y uno caducado.\n"
      "Las claves solo las puedes leer tú. `make` lo ejecuta para certs/ del repositorio." },
    { "grade", "NN DIR... [--format text|json|csv] [--db FILE] [--no-sandbox]", "instructors: grade many submissions into a gradebook",
      "docentes: evalúa muchas entregas y las guarda en un libro de notas",
      "Each DIR is one student's folder for the lab; the folder name is the student id.\n"
      "Results are added to the gradebook database (default ./gradebook.db).\n"
      "Each submission is graded in its own process and sandbox; grade refuses to run without a\n"
      "sandbox unless given --no-sandbox. A grading that overruns its lab's limit is stopped and\n"
      "reported as not finished, without a score.\n"
      "Exit code: 0 when every submission was graded, 1 when some could not be, 2 bad usage, 3 missing tools.",
      "Cada DIR es la carpeta de un estudiante para ese laboratorio; su nombre es el id del estudiante.\n"
      "Los resultados se añaden al libro de notas (por defecto ./gradebook.db).\n"
      "Cada entrega se evalúa en su propio proceso y aislada; grade no evalúa sin aislamiento salvo\n"
      "con --no-sandbox. Una evaluación que pasa el límite de su laboratorio se para y se informa\n"
      "como no terminada, sin nota.\n"
      "Código de salida: 0 si se evaluaron todas, 1 si alguna no se pudo, 2 uso incorrecto, 3 faltan herramientas." },
    { "doctor", "", "is everything the kit needs here, and working", "¿está aquí todo lo que el kit necesita, y funciona?", "", "" },
    { "tour", "[DIR]", "the student tour: checks the machine, makes a workspace, shows where to start",
      "el recorrido del estudiante: revisa la máquina, crea el espacio de trabajo y muestra por dónde empezar", "", "" },
};

static const command_help_t *find_help(const char *name)
{
    for (size_t i = 0; i < sizeof helps / sizeof *helps; i++)
        if (strcmp(helps[i].name, name) == 0) return &helps[i];
    return NULL;
}

static void print_main_help(FILE *f)
{
    fprintf(f, "mqlab %s - %s\n\n", MQLAB_VERSION,
            T("MQTT labs graded from what happens on the wire", "laboratorios MQTT evaluados con lo que pasa en el cable"));
    fprintf(f, "%s: mqlab [--lang es|en] COMMAND [ARGS]\n\n", T("Usage", "Uso"));
    for (size_t i = 0; i < sizeof helps / sizeof *helps; i++)
        fprintf(f, "  %-9s %s\n", helps[i].name, T(helps[i].en, helps[i].es));
    fprintf(f, "\n%s\n", T("`mqlab COMMAND --help` tells more. Language: --lang, MQLAB_LANG or LANG.",
                            "`mqlab COMANDO --help` da más detalle. Idioma: --lang, MQLAB_LANG o LANG."));
}

static int print_help(const char *cmd)
{
    const command_help_t *h = find_help(cmd);
    if (!h) { print_main_help(stdout); return EXIT_PASS; }
    printf("%s: mqlab %s %s\n\n%s\n", T("Usage", "Uso"), h->name, h->args, T(h->en, h->es));
    const char *more = T(h->more_en, h->more_es);
    if (*more) printf("\n%s\n", more);
    printf("\n%s\n", T("Common options: --lang es|en, --student ID, --help",
                       "Opciones comunes: --lang es|en, --student ID, --help"));
    return EXIT_PASS;
}

/* ------------------------------------------------------------ workspace */

/* The workspace is the nearest folder, from start upwards, holding
 * .mqlab/. Fills root; 0 when there is none. */
static int find_workspace(const char *start, char *root, size_t len)
{
    char buf[PATH_MAX];
    if (!realpath(start, buf)) return 0;
    for (;;) {
        char probe[PATH_MAX + 16];
        snprintf(probe, sizeof probe, "%s/.mqlab", buf);
        if (kit_is_dir(probe)) { snprintf(root, len, "%s", buf); return 1; }
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf) return 0;
        *slash = '\0';
    }
}

static char student_buf[256];

static const char *student_id(const char *ws)
{
    if (opt.student && *opt.student) return opt.student;
    const char *env = getenv("MQLAB_STUDENT");
    if (env && *env) return env;
    if (ws) {
        char *p = kit_strdup_printf("%s/.mqlab/student", ws);
        char *s = kit_read_file(p, NULL, NULL);
        free(p);
        if (s) {
            s[strcspn(s, "\r\n")] = '\0';
            snprintf(student_buf, sizeof student_buf, "%s", s);
            free(s);
            if (*student_buf) return student_buf;
        }
    }
    const char *u = getenv("USER");
    return u && *u ? u : "student";
}

/* Progress database: --db, MQLAB_DB, the workspace's, or ~/.local/share. */
static char *progress_path(const char *ws)
{
    if (opt.db) return kit_strdup(opt.db);
    const char *env = getenv("MQLAB_DB");
    if (env && *env) return kit_strdup(env);
    if (ws) return kit_strdup_printf("%s/.mqlab/progress.db", ws);
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && *xdg) return kit_strdup_printf("%s/mqlab/progress.db", xdg);
    const char *home = getenv("HOME");
    return kit_strdup_printf("%s/.local/share/mqlab/progress.db", home && *home ? home : ".");
}

static store_t *open_store(const char *ws)
{
    char err[KIT_ERRLEN];
    char *path = progress_path(ws);
    store_t *s = NULL;
    if (store_open(&s, path, err) != KIT_OK) {
        fprintf(stderr, "mqlab: %s\n", err);
        s = NULL;
    }
    free(path);
    return s;
}

static host_t *new_host(void)
{
    char err[KIT_ERRLEN];
    host_t *h = host_new(err);
    if (!h) fprintf(stderr, "mqlab: %s\n", err);
    return h;
}

/* Resolve NN and load the lab. Prints the error; returns an exit code. */
static int load_lab(host_t *h, const char *cmd, const char *arg, lab_t **lab)
{
    char id[128], err[4096];
    if (lab_resolve(arg, id, sizeof id, err) != KIT_OK) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    if (lab_load(h, id, lab, err, sizeof err) != KIT_OK) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    return EXIT_PASS;
}

/* ------------------------------------------------------------ init */

typedef struct {
    const char *dir;
    int written, kept;
} init_ctx_t;

static int write_new(init_ctx_t *c, const char *path, const char *data, size_t len, int mode)
{
    char err[KIT_ERRLEN];
    if (kit_file_exists(path)) { c->kept++; return KIT_OK; }
    if (kit_write_file_atomic(path, data, len, mode, err) != KIT_OK) {
        fprintf(stderr, "mqlab init: %s\n", err);
        return KIT_ERR;
    }
    c->written++;
    return KIT_OK;
}

static int starter_cb(void *ud, const char *name, const char *data, size_t len)
{
    init_ctx_t *c = ud;
    char *path = kit_strdup_printf("%s/%s", c->dir, name);
    int exec = strstr(name, ".sh") != NULL;
    int rc = write_new(c, path, data, len, exec ? 0755 : 0644);
    free(path);
    return rc;
}

static int make_workspace(const char *dir, const char *student, int quiet)
{
    char err[KIT_ERRLEN];
    char *meta = kit_strdup_printf("%s/.mqlab", dir);
    int rc = kit_mkdir_p(meta, 0755, err);
    free(meta);
    if (rc != KIT_OK) { fprintf(stderr, "mqlab init: %s\n", err); return EXIT_USAGE; }

    init_ctx_t c = { .dir = NULL };
    char *sfile = kit_strdup_printf("%s/.mqlab/student", dir);
    char *sline = kit_strdup_printf("%s\n", student);
    if (kit_file_exists(sfile) && opt.student) {
        /* An explicit --student replaces the recorded one. */
        kit_write_file_atomic(sfile, sline, strlen(sline), 0644, err);
    } else {
        write_new(&c, sfile, sline, strlen(sline), 0644);
    }
    free(sfile);
    free(sline);

    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    char **ids;
    int n;
    lab_ids(&ids, &n);
    int exit_code = EXIT_PASS;
    const char *who = student_id(dir);
    for (int i = 0; i < n && exit_code == EXIT_PASS; i++) {
        lab_t *lab;
        char e[4096];
        if (lab_load(h, ids[i], &lab, e, sizeof e) != KIT_OK) {
            fprintf(stderr, "mqlab init: %s\n", e);
            exit_code = EXIT_USAGE;
            break;
        }
        char *ldir = kit_strdup_printf("%s/%s", dir, ids[i]);
        kit_mkdir_p(ldir, 0755, e);
        c.dir = ldir;
        char *text = lab_instructions(lab, who, opt.lang, e, sizeof e);
        if (text) {
            char *readme = kit_strdup_printf("%s/README.md", ldir);
            write_new(&c, readme, text, strlen(text), 0644);
            free(readme);
            free(text);
        } else {
            fprintf(stderr, "mqlab init: %s\n", e);
        }
        if (lab_starter_files(ids[i], starter_cb, &c) != KIT_OK) exit_code = EXIT_USAGE;
        free(ldir);
        lab_free(lab);
    }
    lab_free_ids(ids, n);
    host_free(h);
    if (!quiet && exit_code == EXIT_PASS) {
        printf(T("Workspace %s for student '%s': %d files written, %d already there (kept).\n",
                 "Espacio de trabajo %s para '%s': %d ficheros escritos, %d ya existían (se conservan).\n"),
               dir, who, c.written, c.kept);
        printf(T("Next: cd %s && mqlab show 01\n", "Siguiente: cd %s && mqlab show 01\n"), dir);
    }
    return exit_code;
}

static int cmd_init(int argc, char **argv)
{
    if (argc > 1) return usage_error("init", "%s", T("too many arguments", "demasiados argumentos"));
    const char *dir = argc == 1 ? argv[0] : "mqlab-work";
    const char *who = opt.student;
    if (!who) {
        const char *u = getenv("MQLAB_STUDENT");
        if (!u || !*u) u = getenv("USER");
        who = u && *u ? u : "student";
    }
    for (const char *p = who; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
            return usage_error("init", T("the student id may only have letters, digits, '-', '_' and '.': %s",
                                         "el id de estudiante solo admite letras, dígitos, '-', '_' y '.': %s"), who);
    return make_workspace(dir, who, 0);
}

/* ------------------------------------------------------------ list, show */

/* Print s left-aligned in a column of width characters. printf pads by
 * bytes, which shifts every column after an accented word ("TÍTULO"). */
static void column(const char *s, int width)
{
    int chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) chars++;
    fputs(s, stdout);
    for (; chars < width; chars++) putchar(' ');
    putchar(' ');
}

static int cmd_list(int argc, char **argv)
{
    (void)argv;
    if (argc > 0) return usage_error("list", "%s", T("takes no arguments", "no admite argumentos"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    const char *who = student_id(have_ws ? ws : NULL);
    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    store_t *s = open_store(have_ws ? ws : NULL);
    char **ids;
    int n;
    lab_ids(&ids, &n);
    int color = report_color(stdout);
    column("LAB", 16);
    column(T("TITLE", "TÍTULO"), 50);
    column(T("STATUS", "ESTADO"), 14);
    printf("%s\n", T("BEST", "MEJOR"));
    for (int i = 0; i < n; i++) {
        lab_t *lab;
        char err[4096];
        if (lab_load(h, ids[i], &lab, err, sizeof err) != KIT_OK) {
            printf("%-16s %s\n", ids[i], err);
            continue;
        }
        lab_info_t info;
        lab_describe(lab, opt.lang, &info);
        store_summary_t sum = { 0 };
        if (s) store_summary(s, who, ids[i], &sum, err);
        const char *status = sum.passed ? T("passed", "superado")
                           : sum.attempts ? T("in progress", "en curso") : T("not started", "sin empezar");
        const char *col = !color ? "" : sum.passed ? "\033[32m" : sum.attempts ? "\033[33m" : "";
        char best[32] = "-";
        if (sum.attempts) snprintf(best, sizeof best, "%g/%g", sum.best_score, sum.max_score);
        column(ids[i], 16);
        column(info.title, 50);
        fputs(col, stdout);
        column(status, 14);
        printf("%s%s\n", color ? "\033[0m" : "", best);
        lab_info_clear(&info);
        lab_free(lab);
    }
    lab_free_ids(ids, n);
    store_close(s);
    host_free(h);
    return EXIT_PASS;
}

static int cmd_show(int argc, char **argv)
{
    if (argc != 1) return usage_error("show", "%s", T("expects one lab, e.g. mqlab show 01", "espera un laboratorio, p. ej. mqlab show 01"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    lab_t *lab;
    int rc = load_lab(h, "show", argv[0], &lab);
    if (rc == EXIT_PASS) {
        char err[4096];
        char *text = lab_instructions(lab, student_id(have_ws ? ws : NULL), opt.lang, err, sizeof err);
        if (text) { fputs(text, stdout); if (text[0] && text[strlen(text) - 1] != '\n') putchar('\n'); }
        else { fprintf(stderr, "mqlab show: %s\n", err); rc = EXIT_USAGE; }
        free(text);
        lab_free(lab);
    }
    host_free(h);
    return rc;
}

/* ------------------------------------------------------------ check, grade */

/* Student programs run in the sandbox when the machine allows it. check
 * runs a student's own code, so without one it goes on with a notice;
 * grade runs strangers' code, so it refuses unless told --no-sandbox.
 * Returns an exit code (EXIT_PASS to go on). */
static const char *unconfined_cmd = "check";

static void unconfined_notice(const char *why)
{
    fprintf(stderr, "mqlab %s: %s (%s)\n", unconfined_cmd,
            T("no sandbox here, your program runs unconfined", "aquí no hay aislamiento: tu programa corre sin confinar"), why);
}

static int choose_sandbox(const char *cmd, int strict)
{
    char why[KIT_ERRLEN];
    if (opt.no_sandbox) {
        prog_set_sandbox(0);
        fprintf(stderr, "mqlab %s: %s\n", cmd, T("--no-sandbox: programs run with your own rights, unconfined",
                                                 "--no-sandbox: los programas corren con tus permisos, sin aislar"));
        return EXIT_PASS;
    }
    unconfined_cmd = cmd;
    if (!strict) {
        /* No probe (a whole sandbox start, a tenth of a short grading):
         * the first program finds out, and says so if it cannot be. */
        if (sbx_installed(why, sizeof why)) {
            prog_set_sandbox_lenient(unconfined_notice);
            return EXIT_PASS;
        }
        prog_set_sandbox(0);
        unconfined_notice(why);
        return EXIT_PASS;
    }
    if (sbx_available(why, sizeof why)) {
        prog_set_sandbox(1);
        return EXIT_PASS;
    }
    prog_set_sandbox(0);
    fprintf(stderr, "mqlab %s: %s: %s\n%s\n", cmd,
            T("cannot sandbox the submissions", "no se pueden aislar las entregas"), why,
            T("Fix that (see mqlab doctor), or grade without a sandbox with --no-sandbox.",
              "Arréglalo (mira mqlab doctor), o evalúa sin aislamiento con --no-sandbox."));
    return EXIT_ENV;
}

/* Grade one folder in a worker. Returns an exit code; v is filled when it
 * is 0 or 1. */
static int grade_one(const char *lab, const char *dir, const char *who, verdict_t *v, const char *cmd)
{
    char err[8192];
    char abs[PATH_MAX];
    if (!kit_is_dir(dir) || !realpath(dir, abs)) {
        fprintf(stderr, "mqlab %s: %s: %s\n", cmd, dir, T("no such folder", "no existe esa carpeta"));
        return EXIT_USAGE;
    }
    worker_job_t job = { .lab = lab, .dir = abs, .student = who, .lang = opt.lang };
    int rc = worker_grade(&job, v, err, sizeof err);
    if (rc == KIT_EINTR) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, T("interrupted; everything was stopped and removed",
                                                  "interrumpido; se paró y borró todo lo que se había creado"));
        return 130;
    }
    if (rc == KIT_EMISSING) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_ENV;
    }
    if (rc != KIT_OK) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    return !v->incomplete && v->max_score > 0 && v->score >= v->max_score ? EXIT_PASS : EXIT_FAIL;
}

static int resolve_lab(const char *cmd, const char *arg, char *id, size_t len)
{
    char err[KIT_ERRLEN];
    if (lab_resolve(arg, id, len, err) != KIT_OK) {
        fprintf(stderr, "mqlab %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    return EXIT_PASS;
}

static int cmd_check(int argc, char **argv)
{
    if (argc < 1 || argc > 2)
        return usage_error("check", "%s", T("expects a lab and optionally a folder: mqlab check 01 [DIR]",
                                             "espera un laboratorio y, si quieres, una carpeta: mqlab check 01 [DIR]"));
    const char *fmt = opt.format ? opt.format : "text";
    if (strcmp(fmt, "text") && strcmp(fmt, "json"))
        return usage_error("check", T("unknown format '%s' (text or json)", "formato desconocido '%s' (text o json)"), fmt);
    char lab[128];
    int rc = resolve_lab("check", argv[0], lab, sizeof lab);
    if (rc != EXIT_PASS) return rc;
    if ((rc = choose_sandbox("check", 0)) != EXIT_PASS) return rc;

    /* The folder: given, else the lab's folder in the workspace, else here. */
    char ws[PATH_MAX];
    int have_ws = find_workspace(argc == 2 ? argv[1] : ".", ws, sizeof ws);
    char *dir;
    if (argc == 2) dir = kit_strdup(argv[1]);
    else {
        char *cand = have_ws ? kit_strdup_printf("%s/%s", ws, lab) : NULL;
        dir = cand && kit_is_dir(cand) ? cand : (free(cand), kit_strdup("."));
    }
    const char *who = student_id(have_ws ? ws : NULL);
    verdict_t v = { 0 };
    rc = grade_one(lab, dir, who, &v, "check");
    if (rc == EXIT_PASS || rc == EXIT_FAIL) {
        if (strcmp(fmt, "json") == 0) report_json(stdout, &v);
        else report_text(stdout, &v, opt.lang, report_color(stdout));
        fflush(stdout);
        if (!opt.no_record) {
            store_t *s = open_store(have_ws ? ws : NULL);
            char err[KIT_ERRLEN];
            if (s && store_record(s, &v, NULL, err) != KIT_OK) fprintf(stderr, "mqlab check: %s\n", err);
            store_close(s);
        }
        if (v.error) {
            fprintf(stderr, "mqlab check: %s\n", v.error);
            if (rc == EXIT_PASS) rc = EXIT_FAIL;
        }
    }
    verdict_clear(&v);
    free(dir);
    return rc;
}

static int cmd_grade(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("grade", "%s", T("expects a lab and at least one submission folder",
                                             "espera un laboratorio y al menos una carpeta de entrega"));
    const char *fmt = opt.format ? opt.format : "text";
    if (strcmp(fmt, "text") && strcmp(fmt, "json") && strcmp(fmt, "csv"))
        return usage_error("grade", T("unknown format '%s' (text, json or csv)", "formato desconocido '%s' (text, json o csv)"), fmt);
    for (int i = 1; i < argc; i++)
        if (!kit_is_dir(argv[i]))
            return usage_error("grade", T("%s is not a folder", "%s no es una carpeta"), argv[i]);
    char lab[128];
    int rc = resolve_lab("grade", argv[0], lab, sizeof lab);
    if (rc != EXIT_PASS) return rc;
    if ((rc = choose_sandbox("grade", 1)) != EXIT_PASS) return rc;
    char *dbpath = kit_strdup(opt.db ? opt.db : "gradebook.db");
    store_t *s = NULL;
    char err[KIT_ERRLEN];
    if (store_open(&s, dbpath, err) != KIT_OK) {
        fprintf(stderr, "mqlab grade: %s\n", err);
        free(dbpath);
        return EXIT_USAGE;
    }
    int exit_code = EXIT_PASS, first = 1;
    if (strcmp(fmt, "json") == 0) fputs("[", stdout);
    if (strcmp(fmt, "text") == 0) {
        column(T("STUDENT", "ESTUDIANTE"), 24);
        printf("%9s %8s  %s\n", T("SCORE", "NOTA"), T("TIME", "TIEMPO"), T("FAILED CHECKS", "COMPROBACIONES FALLIDAS"));
    }
    for (int i = 1; i < argc; i++) {
        char abs[PATH_MAX];
        if (!realpath(argv[i], abs)) continue;
        char *base = kit_strdup(basename(abs));
        verdict_t v = { 0 };
        int r = grade_one(lab, argv[i], base, &v, "grade");
        if (r == 130 || r == EXIT_ENV) { exit_code = r; verdict_clear(&v); free(base); break; }
        if (r == EXIT_USAGE) { exit_code = EXIT_FAIL; verdict_clear(&v); free(base); continue; }
        if (v.error) exit_code = EXIT_FAIL;
        if (store_record(s, &v, NULL, err) != KIT_OK) fprintf(stderr, "mqlab grade: %s\n", err);
        if (strcmp(fmt, "json") == 0) {
            if (!first) fputs(",", stdout);
            report_json(stdout, &v);
        } else if (strcmp(fmt, "csv") == 0) {
            if (first) report_csv_header(stdout, &v);
            report_csv_row(stdout, &v);
        } else {
            char score[32];
            if (v.incomplete) snprintf(score, sizeof score, "—/%g", v.max_score);
            else snprintf(score, sizeof score, "%g/%g", v.score, v.max_score);
            column(base, 24);
            printf("%9s %7.1fs  ", score, v.duration_s);
            if (v.incomplete) {
                printf("%s\n", v.error);
            } else {
                int any = 0;
                for (int k = 0; k < v.nchecks; k++)
                    if (!v.checks[k].passed) { printf("%s%s", any ? ", " : "", v.checks[k].id); any = 1; }
                printf("%s\n", any ? "" : "-");
            }
        }
        fflush(stdout);
        first = 0;
        verdict_clear(&v);
        free(base);
    }
    if (strcmp(fmt, "json") == 0) fputs("]\n", stdout);
    if (strcmp(fmt, "text") == 0)
        fprintf(stderr, T("gradebook: %s\n", "libro de notas: %s\n"), dbpath);
    store_close(s);
    free(dbpath);
    return exit_code;
}

/* ------------------------------------------------------------ hint, progress, reset */

static int cmd_hint(int argc, char **argv)
{
    if (argc != 1) return usage_error("hint", "%s", T("expects one lab, e.g. mqlab hint 01", "espera un laboratorio, p. ej. mqlab hint 01"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    const char *who = student_id(have_ws ? ws : NULL);
    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    lab_t *lab;
    int rc = load_lab(h, "hint", argv[0], &lab);
    if (rc != EXIT_PASS) { host_free(h); return rc; }
    store_t *s = open_store(have_ws ? ws : NULL);
    int n = lab_nhints(lab), idx = 0;
    char err[4096];
    if (!s || store_use_hint(s, who, lab_id(lab), n, &idx, err) != KIT_OK) {
        if (s) fprintf(stderr, "mqlab hint: %s\n", err);
        rc = EXIT_USAGE;
    } else {
        char *text = lab_hint(lab, idx, who, opt.lang, err, sizeof err);
        if (text) printf("%s %d/%d: %s\n", T("Hint", "Pista"), idx + 1, n, text);
        else { fprintf(stderr, "mqlab hint: %s\n", err); rc = EXIT_USAGE; }
        free(text);
    }
    store_close(s);
    lab_free(lab);
    host_free(h);
    return rc;
}

static int cmd_progress(int argc, char **argv)
{
    (void)argv;
    if (argc > 0) return usage_error("progress", "%s", T("takes no arguments", "no admite argumentos"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    const char *who = student_id(have_ws ? ws : NULL);
    store_t *s = open_store(have_ws ? ws : NULL);
    if (!s) return EXIT_USAGE;
    char **ids;
    int n, passed = 0;
    lab_ids(&ids, &n);
    double total = 0;
    if (opt.json) { printf("{\"student\":"); report_json_string(stdout, who); printf(",\"labs\":["); }
    else printf("%s: %s\n", T("Student", "Estudiante"), who);
    for (int i = 0; i < n; i++) {
        store_summary_t sum = { 0 };
        char err[KIT_ERRLEN];
        store_summary(s, who, ids[i], &sum, err);
        passed += sum.passed;
        total += sum.best_score;
        if (opt.json) {
            printf("%s{\"lab\":", i ? "," : "");
            report_json_string(stdout, ids[i]);
            printf(",\"attempts\":%d,\"best_score\":%g,\"max_score\":%g,\"passed\":%s,\"hints_used\":%d}",
                   sum.attempts, sum.best_score, sum.max_score, sum.passed ? "true" : "false", sum.hints_used);
        } else {
            printf("  %-16s %2d %s  %s %g/%g  %s %d%s\n", ids[i], sum.attempts, T("attempts", "intentos"),
                   T("best", "mejor"), sum.best_score, sum.max_score, T("hints", "pistas"), sum.hints_used,
                   sum.passed ? T("  passed", "  superado") : "");
        }
    }
    if (opt.json) printf("],\"passed\":%d,\"labs_total\":%d}\n", passed, n);
    else printf(T("%d of %d labs passed.\n", "%d de %d laboratorios superados.\n"), passed, n);
    lab_free_ids(ids, n);
    store_close(s);
    return EXIT_PASS;
}

static int cmd_reset(int argc, char **argv)
{
    if ((argc != 1 && !opt.all) || (argc != 0 && opt.all))
        return usage_error("reset", "%s", T("expects one lab or --all", "espera un laboratorio o --all"));
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    const char *who = student_id(have_ws ? ws : NULL);
    char id[128] = "", err[KIT_ERRLEN];
    if (!opt.all && lab_resolve(argv[0], id, sizeof id, err) != KIT_OK) {
        fprintf(stderr, "mqlab reset: %s\n", err);
        return EXIT_USAGE;
    }
    store_t *s = open_store(have_ws ? ws : NULL);
    if (!s) return EXIT_USAGE;
    int removed = 0;
    int rc = store_reset(s, who, opt.all ? NULL : id, &removed, err);
    store_close(s);
    if (rc != KIT_OK) { fprintf(stderr, "mqlab reset: %s\n", err); return EXIT_USAGE; }
    printf(T("Removed %d attempts of '%s' (%s), and the hints used.\n", "Borrados %d intentos de '%s' (%s) y las pistas usadas.\n"),
           removed, who, opt.all ? T("all labs", "todos los laboratorios") : id);
    return EXIT_PASS;
}

/* ------------------------------------------------------------ run */

static int cmd_run(int argc, char **argv)
{
    if (argc < 1) return usage_error("run", "%s", T("expects a Lua file", "espera un fichero Lua"));
    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    lua_State *L = host_state(h);
    char err[8192];
    size_t len;
    char *code = kit_read_file(argv[0], &len, err);
    if (!code) { fprintf(stderr, "mqlab run: %s\n", err); host_free(h); return EXIT_USAGE; }
    /* Globals for the script: mqtt, and arg as lua.c builds it. */
    lua_getglobal(L, "require");
    lua_pushstring(L, "mqlab.mqtt");
    lua_call(L, 1, 1);
    lua_setglobal(L, "mqtt");
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, -2, i); }
    lua_setglobal(L, "arg");
    char *chunk = kit_strdup_printf("@%s", argv[0]);
    int rc = host_load(h, code, len, chunk, 0, err, sizeof err);
    free(chunk);
    free(code);
    if (rc != KIT_OK) { fprintf(stderr, "mqlab run: %s\n", err); host_free(h); return EXIT_USAGE; }
    for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
    rc = host_call(h, argc - 1, 0, err, sizeof err);
    fflush(stdout);
    if (rc != KIT_OK) fprintf(stderr, "mqlab run: %s\n", err);
    host_free(h);
    return rc == KIT_OK ? EXIT_PASS : rc == KIT_EINTR ? 130 : EXIT_FAIL;
}

/* ------------------------------------------------------------ broker */

static int cmd_broker(int argc, char **argv)
{
    if (argc > 1) return usage_error("broker", "%s", T("expects at most one profile", "espera como mucho un perfil"));
    const char *profile = argc ? argv[0] : "plain";
    char err[KIT_ERRLEN];
    broker_opts_t bo = { .port = opt.port };
    broker_t *b = NULL;
    int rc = broker_start_profile(&b, profile, &bo, err);
    if (rc == KIT_ENOENT) return usage_error("broker", T("no broker profile '%s'", "no hay perfil de broker '%s'"), profile);
    if (rc != KIT_OK) {
        fprintf(stderr, "mqlab broker: %s\n", err);
        return rc == KIT_EMISSING ? EXIT_ENV : rc == KIT_EINTR ? 130 : EXIT_USAGE;
    }
    printf(T("Broker '%s' listening on 127.0.0.1:%d (Ctrl-C stops it and removes its folder)\n",
             "Broker '%s' escuchando en 127.0.0.1:%d (Ctrl-C lo para y borra su carpeta)\n"), profile, broker_port(b));
    if (broker_certs(b))
        printf(T("Try: mosquitto_sub -h localhost -p %d --cafile %s/ca.crt -t 'acme/#' -v\n",
                 "Prueba: mosquitto_sub -h localhost -p %d --cafile %s/ca.crt -t 'acme/#' -v\n"), broker_port(b),
               broker_certs(b));
    else
        printf(T("Try: mosquitto_sub -h 127.0.0.1 -p %d -t 'acme/#' -v\n", "Prueba: mosquitto_sub -h 127.0.0.1 -p %d -t 'acme/#' -v\n"),
               broker_port(b));
    printf("----\n");
    fflush(stdout);
    size_t shown = 0;
    while (!cleanup_interrupted() && broker_running(b)) {
        size_t len;
        char *log = broker_log(b, &len);
        if (log && len > shown) { fwrite(log + shown, 1, len - shown, stdout); fflush(stdout); shown = len; }
        free(log);
        kit_sleep_ms(200);
    }
    int died = !cleanup_interrupted();
    cleanup_clear_interrupt();
    broker_free(b);
    if (died) { fprintf(stderr, "mqlab broker: %s\n", T("the broker stopped by itself", "el broker se paró solo")); return EXIT_FAIL; }
    printf("\n%s\n", T("Broker stopped.", "Broker parado."));
    return EXIT_PASS;
}

/* ------------------------------------------------------------ bench */

static int cmd_bench(int argc, char **argv)
{
    return bench_main(argc, argv, opt.lang);
}

/* ------------------------------------------------------------ certs */

static int cmd_certs(int argc, char **argv)
{
    if (argc > 1) return usage_error("certs", "%s", T("expects at most one folder", "espera como mucho una carpeta"));
    char err[KIT_ERRLEN] = "";
    int rc = tls_certs_command(argc ? argv[0] : NULL, 0, err);
    if (rc != KIT_OK) {
        fprintf(stderr, "mqlab certs: %s\n", err);
        return rc == KIT_EMISSING ? EXIT_ENV : EXIT_FAIL;
    }
    return EXIT_PASS;
}

/* ------------------------------------------------------------ trace */

static int cmd_trace(int argc, char **argv)
{
    return trace_main(argc, argv, opt.lang);
}

/* ------------------------------------------------------------ doctor */

static int doctor_line(int ok, const char *what, const char *detail)
{
    int color = report_color(stdout);
    printf("  %s%s%s %s%s%s\n", color ? (ok ? "\033[32m" : "\033[31m") : "", ok ? "✔" : "✘", color ? "\033[0m" : "",
           what, detail && *detail ? ": " : "", detail ? detail : "");
    return ok;
}

/* Start a broker and send one QoS 1 message through it. */
static int doctor_roundtrip(char *detail, size_t len)
{
    broker_t *b = NULL;
    mq_client_t *sub = NULL, *pub = NULL;
    char err[KIT_ERRLEN];
    int ok = 0, rc;
    if ((rc = broker_start_profile(&b, "plain", NULL, err)) != KIT_OK) { snprintf(detail, len, "%s", err); goto cleanup; }
    mq_opts_t so = { .port = broker_port(b), .id = "doctor-sub", .clean = 1 };
    mq_opts_t po = { .port = broker_port(b), .id = "doctor-pub", .clean = 1 };
    int granted, code;
    if (mq_connect(&sub, &so, &code, err) || mq_subscribe(sub, "doctor/#", 1, 3000, &granted, err) ||
        mq_connect(&pub, &po, &code, err) || mq_publish(pub, "doctor/ping", "hola", 4, 1, 0, 3000, NULL, err)) {
        snprintf(detail, len, "%s", err);
        goto cleanup;
    }
    mq_message_t *m = mq_wait_message(sub, "doctor/#", 3000, NULL);
    ok = m && strcmp(m->payload, "hola") == 0;
    snprintf(detail, len, ok ? T("127.0.0.1:%d, a QoS 1 PUBLISH was delivered", "127.0.0.1:%d, se entregó un PUBLISH con QoS 1")
                            : T("127.0.0.1:%d, the message did not arrive", "127.0.0.1:%d, el mensaje no llegó"),
             broker_port(b));
    mq_message_free(m);
cleanup:
    mq_free(sub);
    mq_free(pub);
    broker_free(b);
    return ok;
}

static int cmd_doctor(int argc, char **argv)
{
    (void)argv;
    if (argc > 0) return usage_error("doctor", "%s", T("takes no arguments", "no admite argumentos"));
    char detail[KIT_ERRLEN];
    int missing = 0;
    printf("mqlab %s %s\n", MQLAB_VERSION, T("doctor", "revisión"));

    int maj, min, rev;
    mosquitto_lib_version(&maj, &min, &rev);
    snprintf(detail, sizeof detail, "libmosquitto %d.%d.%d, %s, %zu %s", maj, min, rev, LUA_RELEASE,
             embedded_count, T("embedded files", "ficheros incluidos"));
    doctor_line(1, "mqlab", detail);

    FILE *p = popen("(command -v mosquitto || ls /usr/sbin/mosquitto) 2>/dev/null | head -1", "r");
    char path[PATH_MAX] = "";
    if (p) { if (!fgets(path, sizeof path, p)) path[0] = '\0'; pclose(p); }
    path[strcspn(path, "\n")] = '\0';
    missing += !doctor_line(*path != '\0', "mosquitto", *path ? path : T("not installed (apt-get install -y mosquitto)",
                                                                            "no instalado (apt-get install -y mosquitto)"));
    const char *py = prog_python(detail);
    missing += !doctor_line(py != NULL, T("Python with paho-mqtt (for .py programs)", "Python con paho-mqtt (programas .py)"),
                            py ? py : detail);
    int cc = system("command -v cc >/dev/null 2>&1") == 0;
    missing += !doctor_line(cc, T("C compiler (for .c programs)", "compilador de C (programas .c)"),
                            cc ? "cc" : "apt-get install -y build-essential");
    int hdr = kit_file_exists("/usr/include/mosquitto.h");
    missing += !doctor_line(hdr, "libmosquitto-dev", hdr ? "/usr/include/mosquitto.h" : "apt-get install -y libmosquitto-dev");
    int mclients = system("command -v mosquitto_sub >/dev/null 2>&1") == 0;
    doctor_line(mclients, T("mosquitto_pub/sub (optional, to explore)", "mosquitto_pub/sub (opcional, para explorar)"),
                mclients ? "" : "apt-get install -y mosquitto-clients");
    if (*path) {
        int ok = doctor_roundtrip(detail, sizeof detail);
        missing += !doctor_line(ok, T("a private broker and a message through it", "un broker privado y un mensaje a través de él"), detail);
    }
    {
        char why[KIT_ERRLEN], line[2 * KIT_ERRLEN];
        int sb = sbx_available(why, sizeof why);
        if (sb) sbx_describe(line, sizeof line);
        else snprintf(line, sizeof line, "%s; %s", why,
                      T("mqlab check runs programs unconfined, mqlab grade needs --no-sandbox",
                        "mqlab check ejecuta los programas sin aislar, mqlab grade necesita --no-sandbox"));
        doctor_line(sb, T("sandbox for student programs (bubblewrap)", "aislamiento de los programas (bubblewrap)"), line);
        int net = worker_netns_available(why, sizeof why);
        if (net) snprintf(line, sizeof line, "%s", T("each grading gets its own loopback (network namespace)",
                                                     "cada evaluación tiene su propio loopback (espacio de red)"));
        else snprintf(line, sizeof line, "%s: %s", T("shared loopback, ports chosen free", "loopback compartido, puertos libres elegidos al vuelo"), why);
        doctor_line(net, T("a network of its own per grading", "una red propia por evaluación"), line);
        sweep_report_t sw;
        char err[KIT_ERRLEN] = "";
        int src = cleanup_sweep(NULL, &sw, err);
        if (src != KIT_OK)
            snprintf(detail, sizeof detail, "%s", err);
        else if (sw.folders_removed || sw.processes_ended)
            snprintf(detail, sizeof detail, T("removed %d folders and ended %d processes left by a killed mqlab",
                                              "borradas %d carpetas y terminados %d procesos de un mqlab que murió"),
                     sw.folders_removed, sw.processes_ended);
        else
            snprintf(detail, sizeof detail, "%s", T("nothing left behind by an earlier run", "nada pendiente de ejecuciones anteriores"));
        doctor_line(src == KIT_OK, T("temporary folders", "carpetas temporales"), detail);
    }
    char ws[PATH_MAX];
    int have_ws = find_workspace(".", ws, sizeof ws);
    char *db = progress_path(have_ws ? ws : NULL);
    store_t *s = open_store(have_ws ? ws : NULL);
    missing += !doctor_line(s != NULL, T("progress database", "base de datos de progreso"), db);
    store_close(s);
    free(db);
    if (missing) {
        printf("\n%s\n  apt-get update && apt-get install -y mosquitto mosquitto-clients libmosquitto-dev python3-paho-mqtt build-essential bubblewrap\n",
               T("Something is missing. As root, install it with:", "Falta algo. Como root, instálalo con:"));
        return EXIT_ENV;
    }
    printf("%s\n", T("All good.", "Todo bien."));
    return EXIT_PASS;
}

/* ------------------------------------------------------------ tour */

static int cmd_tour(int argc, char **argv)
{
    if (argc > 1) return usage_error("tour", "%s", T("expects at most a folder", "espera como mucho una carpeta"));
    const char *dir = argc ? argv[0] : "mqlab-work";
    printf("%s\n\n", T("Welcome to mqlab: MQTT labs graded from what your programs do on the wire.",
                       "Bienvenido a mqlab: laboratorios MQTT evaluados con lo que tus programas hacen en el cable."));
    int rc = cmd_doctor(0, NULL);
    if (rc != EXIT_PASS) return rc;
    printf("\n");
    rc = make_workspace(dir, student_id(NULL), 1);
    if (rc != EXIT_PASS) return rc;
    char abs[PATH_MAX];
    if (!realpath(dir, abs)) snprintf(abs, sizeof abs, "%s", dir);
    printf("\n%s\n\n", T("The labs:", "Los laboratorios:"));
    if (chdir(abs) == 0) cmd_list(0, NULL);
    printf("\n%s\n", T("Your first steps:", "Tus primeros pasos:"));
    printf("  cd %s\n", abs);
    printf("  mqlab show 01      # %s\n", T("read lab 01 (also in 01-hello/README.md)", "lee el laboratorio 01 (también en 01-hello/README.md)"));
    printf("  $EDITOR 01-hello/hello.py 01-hello/filters.txt\n");
    printf("  mqlab check 01     # %s\n", T("grade it: see what the broker saw", "evalúalo: mira lo que vio el broker"));
    printf("  mqlab hint 01      # %s\n", T("stuck? a hint (it is recorded)", "¿atascado? una pista (queda registrada)"));
    printf("  mqlab broker       # %s\n", T("a broker of your own to play with", "un broker propio para experimentar"));
    return EXIT_PASS;
}

/* ------------------------------------------------------------ main */

typedef int (*command_fn)(int argc, char **argv);

static const struct { const char *name; command_fn fn; } commands[] = {
    { "init", cmd_init }, { "list", cmd_list }, { "show", cmd_show }, { "check", cmd_check },
    { "hint", cmd_hint }, { "progress", cmd_progress }, { "reset", cmd_reset }, { "run", cmd_run },
    { "broker", cmd_broker }, { "trace", cmd_trace }, { "bench", cmd_bench }, { "certs", cmd_certs }, { "grade", cmd_grade }, { "doctor", cmd_doctor }, { "tour", cmd_tour },
};

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "__box-init") == 0) return sbx_init_main(argc, argv);
    cleanup_init();
    opt.lang = pick_lang(NULL);

    /* Options may come before or after the command; `run` passes the
     * rest of its line to the script untouched. */
    static const struct option longopts[] = {
        { "lang", required_argument, 0, 'l' }, { "student", required_argument, 0, 's' },
        { "format", required_argument, 0, 'f' }, { "db", required_argument, 0, 'd' },
        { "json", no_argument, 0, 'j' }, { "all", no_argument, 0, 'a' },
        { "no-record", no_argument, 0, 'n' }, { "port", required_argument, 0, 'p' },
        { "no-sandbox", no_argument, 0, 'S' },
        { "help", no_argument, 0, 'h' }, { "version", no_argument, 0, 'V' }, { 0, 0, 0, 0 }
    };
    const char *cmd = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { opt.help = 1; continue; }
        if (strcmp(argv[i], "--version") == 0) { printf("mqlab %s\n", MQLAB_VERSION); return EXIT_PASS; }
        if (strncmp(argv[i], "--lang=", 7) == 0) { opt.lang = pick_lang(argv[i] + 7); continue; }
        if (strcmp(argv[i], "--lang") == 0 && i + 1 < argc) { opt.lang = pick_lang(argv[++i]); continue; }
        fprintf(stderr, "mqlab: unknown option %s (try mqlab --help)\n", argv[i]);
        return EXIT_USAGE;
    }
    if (i >= argc) { print_main_help(opt.help ? stdout : stderr); return opt.help ? EXIT_PASS : EXIT_USAGE; }
    cmd = argv[i++];
    if (strcmp(cmd, "help") == 0) return i < argc ? print_help(argv[i]) : (print_main_help(stdout), EXIT_PASS);

    command_fn fn = NULL;
    for (size_t k = 0; k < sizeof commands / sizeof *commands; k++)
        if (strcmp(commands[k].name, cmd) == 0) fn = commands[k].fn;
    if (!fn) {
        fprintf(stderr, "mqlab: %s '%s'\n\n", T("unknown command", "comando desconocido"), cmd);
        print_main_help(stderr);
        return EXIT_USAGE;
    }
    if (opt.help) return print_help(cmd);

    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    if (strcmp(cmd, "run") == 0) {
        if (sub_argc > 0 && (strcmp(sub_argv[0], "--help") == 0 || strcmp(sub_argv[0], "-h") == 0))
            return print_help(cmd);
    } else if (strcmp(cmd, "trace") == 0 || strcmp(cmd, "bench") == 0) {
        /* trace and bench have options of their own: they parse them. */
    } else {
        /* getopt_long permutes, so "check 01 --format json" works. */
        optind = 0;
        int c;
        char **av = kit_xmalloc(sizeof *av * (size_t)(sub_argc + 2));
        av[0] = (char *)cmd;
        for (int k = 0; k < sub_argc; k++) av[k + 1] = sub_argv[k];
        av[sub_argc + 1] = NULL;
        int ac = sub_argc + 1;
        opterr = 0;
        while ((c = getopt_long(ac, av, "h", longopts, NULL)) != -1) {
            switch (c) {
            case 'l': opt.lang = pick_lang(optarg); break;
            case 's': opt.student = optarg; break;
            case 'f': opt.format = optarg; break;
            case 'd': opt.db = optarg; break;
            case 'j': opt.json = 1; break;
            case 'a': opt.all = 1; break;
            case 'n': opt.no_record = 1; break;
            case 'S': opt.no_sandbox = 1; break;
            case 'p': opt.port = atoi(optarg); break;
            case 'h': free(av); return print_help(cmd);
            case 'V': printf("mqlab %s\n", MQLAB_VERSION); free(av); return EXIT_PASS;
            default: {
                const char *bad = av[optind - 1];
                int r = usage_error(cmd, T("unknown or incomplete option %s", "opción desconocida o incompleta %s"), bad);
                free(av);
                return r;
            }
            }
        }
        sub_argc = ac - optind;
        /* Keep the operands alive after av is freed: they point into argv. */
        char **ops = kit_xmalloc(sizeof *ops * (size_t)(sub_argc + 1));
        for (int k = 0; k < sub_argc; k++) ops[k] = av[optind + k];
        ops[sub_argc] = NULL;
        free(av);
        sub_argv = ops;
    }
    /* Commands that make temporary folders first sweep what a killed
     * mqlab left (doctor does it itself, and says what it found). */
    static const char *const makes_folders[] = { "check", "grade", "broker", "trace", "bench", "tour" };
    for (size_t k = 0; k < sizeof makes_folders / sizeof *makes_folders; k++)
        if (strcmp(cmd, makes_folders[k]) == 0) sweep_leftovers();
    mq_init();
    int rc = fn(sub_argc, sub_argv);
    if (sub_argv != argv + i) free(sub_argv);
    mq_cleanup();
    fflush(stdout);
    return rc;
}
