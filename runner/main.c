/*
 * main.c - mqlab's command line: the global options, the help, and the
 * dispatch to a command (cmd_*.c). The work is in the modules.
 *
 * Exit codes: 0 all passed / done; 1 a check failed; 2 wrong usage or a
 * bad input file; 3 the machine lacks something (and we say what).
 */
#include "cleanup.h"
#include "mqtt.h"
#include "programs.h"
#include "report.h"
#include "util.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct cli_opt opt;

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

int usage_error(const char *cmd, const char *fmt, const char *arg)
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
    { "grade", "NN DIR... [--format text|json|csv] [--db FILE] [--jobs N] [--no-sandbox]", "instructors: grade many submissions into a gradebook",
      "docentes: evalúa muchas entregas y las guarda en un libro de notas",
      "Each DIR is one student's folder for the lab; the folder name is the student id.\n"
      "Results are added to the gradebook database (default ./gradebook.db).\n"
      "Each submission is graded in its own process and sandbox; grade refuses to run without a\n"
      "sandbox unless given --no-sandbox. A grading that overruns its lab's limit is stopped and\n"
      "reported as not finished, without a score.\n"
      "--jobs N grades N submissions at a time (default 1), each in its own worker; the output and\n"
      "the gradebook keep the order of the folders, and the verdicts are those of --jobs 1.\n"
      "Exit code: 0 when every submission was graded, 1 when some could not be, 2 bad usage, 3 missing tools.",
      "Cada DIR es la carpeta de un estudiante para ese laboratorio; su nombre es el id del estudiante.\n"
      "Los resultados se añaden al libro de notas (por defecto ./gradebook.db).\n"
      "Cada entrega se evalúa en su propio proceso y aislada; grade no evalúa sin aislamiento salvo\n"
      "con --no-sandbox. Una evaluación que pasa el límite de su laboratorio se para y se informa\n"
      "como no terminada, sin nota.\n"
      "--jobs N evalúa N entregas a la vez (por defecto 1), cada una en su proceso; la salida y el\n"
      "libro de notas siguen el orden de las carpetas, y los veredictos son los de --jobs 1.\n"
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

int print_help(const char *cmd)
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
        { "no-sandbox", no_argument, 0, 'S' }, { "jobs", required_argument, 0, 'J' },
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
            case 'J': opt.jobs = atoi(optarg); if (opt.jobs < 1) opt.jobs = -1; break;
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
