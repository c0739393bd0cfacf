/*
 * cmd_tools.c - the tools around the labs: run, broker, bench, certs, trace,
 * doctor and tour.
 */
#include "benchcmd.h"
#include "browser.h"
#include "json.h"
#include "broker.h"
#include "cleanup.h"
#include "embedded.h"
#include "mqtt.h"
#include "programs.h"
#include "proxy.h"
#include "report.h"
#include "tls.h"
#include "trace.h"
#include "util.h"
#include "worker.h"

#include <limits.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------ run */

int cmd_run(int argc, char **argv)
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

void broker_profile_list(char *buf, size_t len)
{
    static const char prefix[] = "broker-config/", suffix[] = ".conf";
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < embedded_count; i++) {
        const char *n = embedded_files[i].name;
        size_t nl = strlen(n);
        if (strncmp(n, prefix, sizeof prefix - 1) != 0 || nl < sizeof prefix - 1 + sizeof suffix ||
            strcmp(n + nl - (sizeof suffix - 1), suffix) != 0 || strchr(n + sizeof prefix - 1, '/'))
            continue;
        int w = snprintf(buf + used, len - used, "%s%.*s", used ? ", " : "",
                         (int)(nl - (sizeof prefix - 1) - (sizeof suffix - 1)), n + sizeof prefix - 1);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
}

int cmd_broker(int argc, char **argv)
{
    if (argc > 1) return usage_error("broker", "%s", T("expects at most one profile", "espera como mucho un perfil"));
    const char *profile = argc ? argv[0] : "plain";
    char err[KIT_ERRLEN];
    broker_opts_t bo = { .port = opt.port };
    broker_t *b = NULL;
    int rc = broker_start_profile(&b, profile, &bo, err);
    if (rc == KIT_ENOENT) {
        char list[1024];
        broker_profile_list(list, sizeof list);
        fprintf(stderr, T("mqlab broker: no broker profile '%s'; the profiles are: %s\n",
                          "mqlab broker: no hay perfil de broker «%s»; los perfiles son: %s\n"), profile, list);
        fprintf(stderr, T("Try: mqlab broker --help\n", "Prueba: mqlab broker --help\n"));
        return EXIT_USAGE;
    }
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
    /* MQTT over WebSockets, through the kit's proxy: Debian's mosquitto
     * has none of its own. The course's port when it is free. */
    proxy *wsp = NULL;
    if (opt.ws_port != -1) {
        px_opts po = { .upstream_host = "127.0.0.1", .upstream_port = broker_port(b), .websocket = 1,
                       .ws_port = opt.ws_port > 0 ? opt.ws_port : opt.ws_port == -2 ? 0 : 9001 };
        rc = proxy_start(&po, &wsp, err);
        if (rc != KIT_OK && opt.ws_port == 0) {
            po.ws_port = 0;
            rc = proxy_start(&po, &wsp, err);
        }
        if (rc != KIT_OK) {
            fprintf(stderr, "mqlab broker: %s\n", err);
            broker_free(b);
            return EXIT_USAGE;
        }
        printf(T("MQTT over WebSockets (mqtt.js in a browser): ws://127.0.0.1:%d%s\n",
                 "MQTT sobre WebSockets (mqtt.js en un navegador): ws://127.0.0.1:%d%s\n"), proxy_ws_port(wsp),
               opt.ws_port == 0 && proxy_ws_port(wsp) != 9001 ? T(" (9001 was taken)", " (9001 estaba ocupado)") : "");
    }
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
    proxy_free(wsp);
    broker_free(b);
    if (died) { fprintf(stderr, "mqlab broker: %s\n", T("the broker stopped by itself", "el broker se paró solo")); return EXIT_FAIL; }
    printf("\n%s\n", T("Broker stopped.", "Broker parado."));
    return EXIT_PASS;
}

/* ------------------------------------------------------------ bench */

int cmd_bench(int argc, char **argv)
{
    return bench_main(argc, argv, opt.lang);
}

/* ------------------------------------------------------------ certs */

int cmd_certs(int argc, char **argv)
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

int cmd_trace(int argc, char **argv)
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

static void python_candidate(void *ud, const char *name, const char *path, enum py_status st)
{
    (void)ud;
    const char *what = "";
    switch (st) {
    case PY_CHOSEN: what = T("used: it imports paho.mqtt.client", "la que se usa: importa paho.mqtt.client"); break;
    case PY_NOT_FOUND: what = T("not found", "no existe"); break;
    case PY_SAME: what = T("the same Python as one above", "es el mismo Python que uno de arriba"); break;
    case PY_NO_PAHO: what = T("not used: it cannot import paho.mqtt.client", "no se usa: no puede importar paho.mqtt.client"); break;
    case PY_LATER: what = T("not used: it would do, but one above comes first", "no se usa: serviría, pero va antes uno de arriba"); break;
    case PY_OVERRIDDEN: what = T("not used: MQLAB_PYTHON names the one to use", "no se usa: MQLAB_PYTHON dice cuál usar"); break;
    }
    if (path && strcmp(name, path) != 0) printf("      %s (%s): %s\n", name, path, what);
    else printf("      %s: %s\n", name, what);
}

/* The first line a command prints (its version), or "" (out gets it). */
static void first_output_line(const char *cmd, char *out, size_t len)
{
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(out, (int)len, p)) out[0] = '\0';
    pclose(p);
    out[strcspn(out, "\n")] = '\0';
}

/* The browser labs (optional: no built-in lab needs them yet): Chromium,
 * Node and mqtt.js's browser bundle, each with how to install it. */
static void doctor_browser(void)
{
    char path[PATH_MAX], err[KIT_ERRLEN], line[PATH_MAX + KIT_ERRLEN], ver[256];
    int ok = browser_find_chromium(NULL, path, sizeof path, err) == KIT_OK;
    if (ok) {
        char cmd[PATH_MAX + 64];
        snprintf(cmd, sizeof cmd, "'%s' --version 2>/dev/null", path);
        first_output_line(strchr(path, '\'') ? "false" : cmd, ver, sizeof ver);
        snprintf(line, sizeof line, "%s (%s)", *ver ? ver : "?", path);
    } else {
        snprintf(line, sizeof line, "%s", T("not installed (apt-get install -y chromium)",
                                            "no instalado (apt-get install -y chromium)"));
    }
    doctor_line(ok, T("Chromium (optional, for browser labs)", "Chromium (opcional, labs de navegador)"), line);
    first_output_line("node --version 2>/dev/null", ver, sizeof ver);
    doctor_line(*ver != '\0', T("Node.js (optional, for browser labs)", "Node.js (opcional, labs de navegador)"),
                *ver ? ver : T("not installed (apt-get install -y nodejs npm)", "no instalado (apt-get install -y nodejs npm)"));
    ok = browser_find_mqttjs(path, sizeof path, err) == KIT_OK;
    if (ok) {
        /* Its version, from the package.json one folder up. */
        char pkg[PATH_MAX + 32];
        snprintf(pkg, sizeof pkg, "%s", path);
        char *slash = strrchr(pkg, '/');
        if (slash) snprintf(slash, sizeof pkg - (size_t)(slash - pkg), "/../package.json");
        size_t n;
        char *text = kit_read_file(pkg, &n, NULL);
        json_t *v = text ? json_parse(text, n, NULL) : NULL;
        const char *version = json_get_str(v, "version");
        snprintf(line, sizeof line, "mqtt %s (%s)", version ? version : "?", path);
        json_free(v);
        free(text);
    } else {
        snprintf(line, sizeof line, "%s", T("not installed (make deps, in mqlab's source folder; it needs npm)",
                                            "no instalado (make deps, en la carpeta fuente de mqlab; necesita npm)"));
    }
    doctor_line(ok, T("mqtt.js browser bundle (optional, for browser labs)",
                      "mqtt.js para el navegador (opcional, labs de navegador)"), line);
}

int cmd_doctor(int argc, char **argv)
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
    printf("    %s\n", T("The Pythons tried, in order (MQLAB_PYTHON chooses another); mqlab show writes the one used:",
                          "Los Python probados, en orden (MQLAB_PYTHON elige otro); mqlab show escribe el que se usa:"));
    prog_python_candidates(python_candidate, NULL);
    int cc = system("command -v cc >/dev/null 2>&1") == 0;
    missing += !doctor_line(cc, T("C compiler (for .c programs)", "compilador de C (programas .c)"),
                            cc ? "cc" : "apt-get install -y build-essential");
    int hdr = kit_file_exists("/usr/include/mosquitto.h");
    missing += !doctor_line(hdr, "libmosquitto-dev", hdr ? "/usr/include/mosquitto.h" : "apt-get install -y libmosquitto-dev");
    int mclients = system("command -v mosquitto_sub >/dev/null 2>&1") == 0;
    doctor_line(mclients, T("mosquitto_pub/sub (optional, to explore)", "mosquitto_pub/sub (opcional, para explorar)"),
                mclients ? "" : "apt-get install -y mosquitto-clients");
    doctor_browser();
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

/* Is name, looked up on PATH, the file self (after links)? */
static int on_path_as(const char *name, const char *self)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    char *copy = kit_strdup(path);
    int found = 0;
    for (char *save = NULL, *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char *p = kit_strdup_printf("%s/%s", *d ? d : ".", name);
        char real[PATH_MAX];
        if (access(p, X_OK) == 0) {
            found = realpath(p, real) && strcmp(real, self) == 0 ? 1 : -1;
        }
        free(p);
    }
    free(copy);
    return found == 1;
}

int cmd_tour(int argc, char **argv)
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
    /* Commands that work exactly as printed, in a new shell too: "mqlab"
     * when that name on PATH is this very binary (make run links it into
     * PREFIX/bin), else the binary's full path. */
    char self[PATH_MAX], cmd[PATH_MAX] = "mqlab";
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        if (!on_path_as("mqlab", self)) snprintf(cmd, sizeof cmd, "%s", self);
    }
    printf("\n%s\n", T("Your first steps:", "Tus primeros pasos:"));
    printf("  cd %s\n", abs);
    printf("  %s show 01      # %s\n", cmd, T("read lab 01 (also in 01-hello/README.md)", "lee el laboratorio 01 (también en 01-hello/README.md)"));
    printf("  %s check 01     # %s\n", cmd, T("grade it: see what the broker saw", "evalúalo: mira lo que vio el broker"));
    printf("  %s start 01     # %s\n", cmd, T("do it live, step by step, with mosquitto_sub and mosquitto_pub",
                                              "hazlo en vivo, paso a paso, con mosquitto_sub y mosquitto_pub"));
    printf("  ${EDITOR:-nano} 01-hello/hello.py 01-hello/filters.txt\n");
    printf("  %s hint 01      # %s\n", cmd, T("stuck? a hint (it is recorded)", "¿atascado? una pista (queda registrada)"));
    printf("  %s broker       # %s\n", cmd, T("a broker of your own to play with", "un broker propio para experimentar"));
    if (strcmp(cmd, "mqlab") != 0)
        printf("\n%s\n", T("(mqlab is not on your PATH: the commands above use its full path. `make run` links it into\n"
                            " ~/.local/bin, or /usr/local/bin as root; open a new shell if that folder is on your PATH.)",
                            "(mqlab no está en tu PATH: las órdenes de arriba usan su ruta completa. `make run` lo enlaza en\n"
                            " ~/.local/bin, o en /usr/local/bin como root; abre un shell nuevo si esa carpeta está en tu PATH.)"));
    return EXIT_PASS;
}
