/*
 * benchcmd.c - `mqlab bench`: parses the command line, starts the bundled
 * broker when no --host/--port is given, runs bench_run() and prints the
 * result (text summary, one JSON object, or csv), plus an optional SVG
 * plot of the per-second series. The work itself is in bench.c.
 */
#include "benchcmd.h"

#include "bench.h"
#include "benchmerge.h"
#include "broker.h"
#include "cleanup.h"
#include "json.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int es;
#define T(en_, es_) (es ? (es_) : (en_))

typedef enum { FMT_TEXT, FMT_JSON, FMT_CSV } out_format;

typedef struct {
    bench_opts b;
    const char *host;
    int port;
    out_format format;
    const char *plot;
    int tty;                /* progress line on stderr */
} cmd_opts;

static int usage(const char *fmt, const char *arg)
{
    return kit_usage_error("bench", es, fmt, arg);
}

static void help(void)
{
    printf("%s: mqlab bench conn|steady|burst|ramp [%s]\n", T("Usage", "Uso"), T("OPTIONS", "OPCIONES"));
    printf("     mqlab bench merge FILE.json... [--format text|json]   %s\n\n",
           T("(runs of several generators joined: see mqlab bench merge --help)",
             "(medidas de varios generadores unidas: ver mqlab bench merge --help)"));
    printf("%s\n\n", T("A load generator: many MQTT clients from one process, publishers and one subscriber\n"
                       "that measures end-to-end latency, loss and duplicates. Without --host/--port it starts\n"
                       "a bundled broker tuned for load, and stops it at the end. Ctrl-C ends a run early and\n"
                       "still prints what was measured.",
                       "Un generador de carga: muchos clientes MQTT desde un proceso, publicadores y un\n"
                       "suscriptor que mide la latencia de extremo a extremo, las pérdidas y los duplicados.\n"
                       "Sin --host/--port arranca un broker del kit preparado para carga y lo para al final.\n"
                       "Ctrl-C termina antes y aun así imprime lo medido."));
    printf("%s\n", T("Modes:", "Modos:"));
    printf("  conn    %s\n", T("connect --clients N (at --connect-rate/s), hold them --hold S",
                               "conectar --clients N (a --connect-rate/s) y mantenerlos --hold S"));
    printf("  steady  %s\n", T("--rate R msg/s in total over N publishers for --duration S",
                               "--rate R msg/s en total entre N publicadores durante --duration S"));
    printf("  burst   %s\n", T("--messages M as fast as the broker takes them",
                               "--messages M tan rápido como los acepte el broker"));
    printf("  ramp    %s\n", T("--from A --to B msg/s over --duration S; reports the knee",
                               "de --from A a --to B msg/s durante --duration S; indica el codo"));
    printf("\n%s\n", T("Options:", "Opciones:"));
    printf("  --host H --port P     %s\n", T("an existing broker (default: a bundled one)", "un broker ya en marcha (por defecto, uno del kit)"));
    printf("  --clients N           %s\n", T("publishers, or connections in conn mode (default 10; conn 1000)",
                                             "publicadores, o conexiones en modo conn (10 por defecto; conn 1000)"));
    printf("  --rate R              %s\n", T("steady: msg/s in total (default 1000)", "steady: msg/s en total (1000 por defecto)"));
    printf("  --from A --to B       %s\n", T("ramp: msg/s at the start and at the end (default 100, 10000)",
                                             "ramp: msg/s al principio y al final (100 y 10000 por defecto)"));
    printf("  --messages M          %s\n", T("burst: messages in total (default 10000)", "burst: mensajes en total (10000 por defecto)"));
    printf("  --duration S          %s\n", T("steady, ramp: seconds (default 10)", "steady, ramp: segundos (10 por defecto)"));
    printf("  --hold S              %s\n", T("conn: seconds to keep the connections (default 1)", "conn: segundos con las conexiones abiertas (1 por defecto)"));
    printf("  --connect-rate R      %s\n", T("conn: connections per second (default: as fast as possible)",
                                             "conn: conexiones por segundo (por defecto, tan rápido como se pueda)"));
    printf("  --qos 0|1|2           %s\n", T("default 1", "1 por defecto"));
    printf("  --size B              %s %d)\n", T("payload bytes (default 64, at least", "bytes de carga útil (64 por defecto, al menos"), BENCH_MIN_SIZE);
    printf("  --topic TEMPLATE      %s\n", T("{i} = publisher index (default mqlab/bench/{i})", "{i} = índice del publicador (mqlab/bench/{i} por defecto)"));
    printf("  --username U --password P   %s\n", T("credentials", "credenciales"));
    printf("  --cafile FILE         %s\n", T("TLS, trusting that CA", "TLS, confiando en esa CA"));
    printf("  --no-subscriber       %s\n", T("publishers only (throughput; no latency or loss figures)",
                                             "solo publicadores (caudal; sin latencia ni pérdidas)"));
    printf("  --id-prefix P         %s\n", T("client ids are P0, P1, ... and Psub (default: from the pid and a random\n"
                                             "                        number); give each generator its own P when several load one broker",
                                             "los id de cliente son P0, P1, ... y Psub (por defecto, del pid y un número\n"
                                             "                        aleatorio); da a cada generador su propio P si varios cargan un broker"));
    printf("  --format text|json|csv  %s\n", T("csv: one row per second", "csv: una fila por segundo"));
    printf("  --plot FILE.svg       %s\n", T("draw rates and latency per second", "dibujar tasas y latencia por segundo"));
    printf("\n%s\n", T("Latency in steady mode is reported twice: from the time each message was due by the\n"
                       "schedule (corrected for coordinated omission: a stall that holds the publishers back\n"
                       "still counts for every message it delayed) and from the time it was actually sent\n"
                       "(raw; JSON latency_ms). JSON latency_corrected_ms is the corrected one; in the other\n"
                       "modes, which have no schedule, the two are the same.",
                       "En modo steady la latencia sale dos veces: desde la hora a la que tocaba enviar cada\n"
                       "mensaje según el ritmo (corregida de omisión coordinada: un atasco que frena a los\n"
                       "publicadores sigue contando para cada mensaje que retrasó) y desde que se envió de\n"
                       "verdad (sin corregir; latency_ms en JSON). latency_corrected_ms en JSON es la corregida;\n"
                       "en los demás modos, sin ritmo fijo, las dos son la misma."));
    printf("\n%s\n", T("Example: mqlab bench steady --clients 20 --rate 5000 --qos 1 --duration 10",
                       "Ejemplo: mqlab bench steady --clients 20 --rate 5000 --qos 1 --duration 10"));
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo) || !(v <= hi)) return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, cmd_opts *o)
{
    if (argc < 1) return usage("%s", T("which mode? conn, steady, burst or ramp", "¿qué modo? conn, steady, burst o ramp"));
    int clients_set = 0;
    int i = 0;
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) { help(); return 1; }
    if (strcmp(argv[0], "merge") == 0) return 3;
    if (strcmp(argv[0], "conn") == 0) o->b.mode = BENCH_CONN;
    else if (strcmp(argv[0], "steady") == 0) o->b.mode = BENCH_STEADY;
    else if (strcmp(argv[0], "burst") == 0) o->b.mode = BENCH_BURST;
    else if (strcmp(argv[0], "ramp") == 0) o->b.mode = BENCH_RAMP;
    else return usage(T("unknown mode '%s' (conn, steady, burst or ramp)", "modo desconocido '%s' (conn, steady, burst o ramp)"), argv[0]);
    for (i = 1; i < argc; i++) {
        char name[40];
        const char *a = argv[i], *val = NULL;
        int split = kit_long_opt(a, name, sizeof name, &val);
        if (split == -1) return usage(T("unexpected argument '%s'", "argumento inesperado '%s'"), a);
        if (split == -2) return usage(T("unknown option %s", "opción desconocida %s"), a);
        if (strcmp(name, "help") == 0) { help(); return 1; }
        if (strcmp(name, "no-subscriber") == 0) { o->b.no_subscriber = 1; continue; }
        if (!val && i + 1 >= argc) return usage(T("option %s needs a value", "la opción %s necesita un valor"), a);
        if (!val) val = argv[++i];

        double v;
        if (strcmp(name, "host") == 0) {
            if (!*val) return usage(T("--host expects a host name, not '%s'", "--host espera un nombre de host, no '%s'"), val);
            o->host = val;
        } else if (strcmp(name, "port") == 0) {
            if (parse_num(val, 1, 65535, &v)) return usage(T("--port expects 1..65535, not '%s'", "--port espera 1..65535, no '%s'"), val);
            o->port = (int)v;
        } else if (strcmp(name, "clients") == 0) {
            if (parse_num(val, 1, 1000000, &v)) return usage(T("--clients expects 1..1000000, not '%s'", "--clients espera 1..1000000, no '%s'"), val);
            o->b.clients = (int)v;
            clients_set = 1;
        } else if (strcmp(name, "rate") == 0) {
            if (parse_num(val, 0.001, 1e7, &v)) return usage(T("--rate expects msg/s > 0, not '%s'", "--rate espera msg/s > 0, no '%s'"), val);
            o->b.rate = v;
        } else if (strcmp(name, "from") == 0) {
            if (parse_num(val, 0.001, 1e7, &v)) return usage(T("--from expects msg/s > 0, not '%s'", "--from espera msg/s > 0, no '%s'"), val);
            o->b.rate_from = v;
        } else if (strcmp(name, "to") == 0) {
            if (parse_num(val, 0.001, 1e7, &v)) return usage(T("--to expects msg/s > 0, not '%s'", "--to espera msg/s > 0, no '%s'"), val);
            o->b.rate_to = v;
        } else if (strcmp(name, "messages") == 0) {
            if (parse_num(val, 1, 1e12, &v)) return usage(T("--messages expects a count > 0, not '%s'", "--messages espera un número > 0, no '%s'"), val);
            o->b.messages = (uint64_t)v;
        } else if (strcmp(name, "duration") == 0) {
            if (parse_num(val, 0.001, 86400, &v)) return usage(T("--duration expects seconds > 0, not '%s'", "--duration espera segundos > 0, no '%s'"), val);
            o->b.duration_ms = (int)(v * 1000 + 0.5);
        } else if (strcmp(name, "hold") == 0) {
            if (parse_num(val, 0, 86400, &v)) return usage(T("--hold expects seconds, not '%s'", "--hold espera segundos, no '%s'"), val);
            o->b.hold_ms = (int)(v * 1000 + 0.5);
        } else if (strcmp(name, "connect-rate") == 0) {
            if (parse_num(val, 0, 1e7, &v)) return usage(T("--connect-rate expects connections/s, not '%s'", "--connect-rate espera conexiones/s, no '%s'"), val);
            o->b.connect_rate = v;
        } else if (strcmp(name, "qos") == 0) {
            if (strcmp(val, "0") && strcmp(val, "1") && strcmp(val, "2")) return usage(T("--qos is 0, 1 or 2, not '%s'", "--qos es 0, 1 o 2, no '%s'"), val);
            o->b.qos = val[0] - '0';
        } else if (strcmp(name, "size") == 0) {
            if (parse_num(val, 0, 256.0 * 1024 * 1024, &v)) return usage(T("--size expects bytes, not '%s'", "--size espera bytes, no '%s'"), val);
            o->b.size = (int)v;
        } else if (strcmp(name, "topic") == 0) {
            if (!*val || strchr(val, '#') || strchr(val, '+'))
                return usage(T("--topic expects a topic template without wildcards, not '%s'", "--topic espera una plantilla de topic sin comodines, no '%s'"), val);
            o->b.topic = val;
        } else if (strcmp(name, "username") == 0) {
            o->b.username = val;
        } else if (strcmp(name, "password") == 0) {
            o->b.password = val;
        } else if (strcmp(name, "cafile") == 0) {
            if (!kit_file_exists(val)) return usage(T("--cafile: no file '%s'", "--cafile: no existe el fichero '%s'"), val);
            o->b.cafile = val;
        } else if (strcmp(name, "id-prefix") == 0) {
            if (!*val || strlen(val) > BENCH_ID_PREFIX_MAX)
                return usage(T("--id-prefix expects 1 to 64 bytes, not '%s'", "--id-prefix espera de 1 a 64 bytes, no '%s'"), val);
            o->b.id_prefix = val;
        } else if (strcmp(name, "format") == 0) {
            if (strcmp(val, "text") == 0) o->format = FMT_TEXT;
            else if (strcmp(val, "json") == 0) o->format = FMT_JSON;
            else if (strcmp(val, "csv") == 0) o->format = FMT_CSV;
            else return usage(T("--format is text, json or csv, not '%s'", "--format es text, json o csv, no '%s'"), val);
        } else if (strcmp(name, "plot") == 0) {
            if (!*val) return usage(T("--plot expects a file name, not '%s'", "--plot espera un nombre de fichero, no '%s'"), val);
            o->plot = val;
        } else if (strcmp(name, "lang") == 0) {
            es = strncmp(val, "es", 2) == 0;
        } else {
            return usage(T("unknown option %s", "opción desconocida %s"), a);
        }
    }
    if (o->b.mode == BENCH_CONN && !clients_set) o->b.clients = 1000;
    if (o->b.password && !o->b.username) return usage("%s", T("--password needs --username", "--password necesita --username"));
    return 0;
}

/* ---- output ---------------------------------------------------------- */

static double ms(const hist_t *h, double p)
{
    return (double)(p >= 100 ? hist_max(h) : hist_percentile(h, p)) / 1000.0;
}

static void progress(const bench_second *s, const bench_opts *o, void *ud)
{
    (void)o;
    (void)ud;
    fprintf(stderr, "\r\033[K  %5.0f s  %s %7llu/s  %s %7llu/s  %s %7llu/s  p99 %8.2f ms  %s %llu",
            s->t, T("sent", "enviados"), (unsigned long long)s->sent, T("acked", "confirmados"), (unsigned long long)s->acked,
            T("received", "recibidos"), (unsigned long long)s->received, s->p99_ms,
            T("connected", "conectados"), (unsigned long long)s->connected);
    fflush(stderr);
}

static void print_json(const bench_result *r)
{
    if (r->mode == BENCH_CONN) {
        printf("{\"mode\":\"conn\",\"clients\":%d,\"connected\":%d,\"failed\":%d,\"connect_rate\":%.1f,"
               "\"rss_mb\":%.1f,\"errors\":%d}\n",
               r->clients, r->connected, r->failed, r->connect_rate, r->rss_mb, r->errors);
        return;
    }
    printf("{\"mode\":\"%s\",\"clients\":%d,\"qos\":%d,\"sent\":%llu,\"acked\":%llu,\"received\":%llu,"
           "\"lost\":%llu,\"duplicates\":%llu,\"rate_sent\":%.1f,\"rate_received\":%.1f,"
           "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},\"errors\":%d",
           bench_mode_name(r->mode), r->clients, r->qos, (unsigned long long)r->sent, (unsigned long long)r->acked,
           (unsigned long long)r->received, (unsigned long long)r->lost, (unsigned long long)r->duplicates,
           r->rate_sent, r->rate_received, ms(r->latency, 50), ms(r->latency, 90), ms(r->latency, 99),
           ms(r->latency, 99.9), ms(r->latency, 100), r->errors);
    /* latency_ms keeps its meaning (from the send time: lab 10 and the
     * students' reports compare it); the corrected one is beside it. */
    const hist_t *c = r->latency_corrected;
    printf(",\"latency_corrected_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}",
           ms(c, 50), ms(c, 90), ms(c, 99), ms(c, 99.9), ms(c, 100));
    if (r->mode == BENCH_RAMP) {
        if (r->knee_s >= 0)
            printf(",\"knee\":{\"t\":%.1f,\"rate\":%.1f,\"reason\":\"%s\",\"base_p99_ms\":%.3f}",
                   r->knee_s, r->knee_rate, r->knee_reason, r->base_p99_ms);
        else
            printf(",\"knee\":null");
    }
    /* What bench merge needs: the load's wall-clock window and the whole histogram. */
    json_buf_t b = { 0 };
    json_buf_printf(&b, ",\"interrupted\":%s", r->interrupted ? "true" : "false");
    bench_merge_fields(&b, r);
    if (!b.oom) printf("%.*s", (int)b.len, b.data);
    json_buf_free(&b);
    printf("}\n");
}

static void print_csv(const bench_result *r)
{
    if (r->mode == BENCH_CONN) {
        printf("mode,clients,connected,failed,connect_rate,rss_mb,errors\n");
        printf("conn,%d,%d,%d,%.1f,%.1f,%d\n", r->clients, r->connected, r->failed, r->connect_rate, r->rss_mb, r->errors);
        return;
    }
    printf("t_s,offered,sent,acked,received,connected,p50_ms,p99_ms,p50_corrected_ms,p99_corrected_ms\n");
    for (int i = 0; i < r->nseconds; i++) {
        const bench_second *s = &r->seconds[i];
        printf("%.3f,%.1f,%llu,%llu,%llu,%llu,%.3f,%.3f,%.3f,%.3f\n", s->t, s->offered, (unsigned long long)s->sent,
               (unsigned long long)s->acked, (unsigned long long)s->received, (unsigned long long)s->connected,
               s->p50_ms, s->p99_ms, s->p50_corr_ms, s->p99_corr_ms);
    }
}

/* Spaces that pad a label to 22 columns (UTF-8: one column a character,
 * where %-22s would count bytes). */
static int pad22(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w < 22 ? 22 - w : 0;
}

static void print_text(const bench_result *r, const cmd_opts *o)
{
    printf("\nmqlab bench %s%s\n", bench_mode_name(r->mode), r->interrupted ? T("  (interrupted)", "  (interrumpido)") : "");
    if (r->mode == BENCH_CONN) {
        printf("  %-22s %d\n", T("clients", "clientes"), r->clients);
        printf("  %-22s %d\n", T("connected", "conectados"), r->connected);
        printf("  %-22s %d\n", T("failed", "fallidos"), r->failed);
        printf("  %-22s %.0f /s\n", T("connect rate", "ritmo de conexión"), r->connect_rate);
        printf("  %-22s %.1f MB\n", T("peak RSS (mqlab)", "RSS máximo (mqlab)"), r->rss_mb);
    } else {
        printf("  %-22s %d, QoS %d, %d B\n", T("publishers", "publicadores"), r->clients, r->qos, r->size);
        printf("  %-22s %llu  (%.0f msg/s)\n", T("sent", "enviados"), (unsigned long long)r->sent, r->rate_sent);
        printf("  %-22s %llu\n", r->qos ? T("acked", "confirmados") : T("written", "escritos"), (unsigned long long)r->acked);
        printf("  %-22s %llu  (%.0f msg/s)\n", T("received", "recibidos"), (unsigned long long)r->received, r->rate_received);
        printf("  %-22s %llu\n", T("lost", "perdidos"), (unsigned long long)r->lost);
        printf("  %-22s %llu\n", T("duplicates", "duplicados"), (unsigned long long)r->duplicates);
        /* steady: corrected (from the due time) first, then raw (from the
         * send time); other modes have no schedule, the two are one. */
        const hist_t *c = r->latency_corrected;
        if (r->mode == BENCH_STEADY)
            printf("  %s%*s p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms\n",
                   T("latency, from due", "latencia, desde hora"), pad22(T("latency, from due", "latencia, desde hora")), "",
                   ms(c, 50), ms(c, 90), ms(c, 99), ms(c, 99.9), ms(c, 100));
        const char *lab = r->mode == BENCH_STEADY ? T("latency, from sent", "latencia, desde envío") : T("latency", "latencia");
        printf("  %s%*s p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms\n", lab, pad22(lab), "",
               ms(r->latency, 50), ms(r->latency, 90), ms(r->latency, 99), ms(r->latency, 99.9), ms(r->latency, 100));
        if (r->mode == BENCH_RAMP) {
            if (r->knee_s >= 0)
                printf("  %-22s %.0f s, %.0f msg/s (%s; p99 %s %.2f ms)\n", T("knee", "codo"), r->knee_s, r->knee_rate,
                       r->knee_reason, T("at the start", "al principio"), r->base_p99_ms);
            else
                printf("  %-22s %s\n", T("knee", "codo"), T("none within the ramp", "ninguno en la rampa"));
        }
    }
    printf("  %-22s %d%s%s\n", T("errors", "errores"), r->errors, r->first_error[0] ? "  " : "", r->first_error);
    (void)o;
}

/* ---- the SVG plot ------------------------------------------------------ */

static void polyline(FILE *f, const bench_result *r, int which, double ymax, double x0, double y0, double w, double h,
                     double tmax, const char *color)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (int i = 0; i < r->nseconds; i++) {
        const bench_second *s = &r->seconds[i];
        double v = which == 0 ? s->offered : which == 1 ? (double)s->acked : which == 2 ? (double)s->received
                 : which == 3 ? s->p50_ms : s->p99_ms;
        double x = x0 + w * s->t / tmax, y = y0 + h - h * (v > ymax ? ymax : v) / ymax;
        fprintf(f, "%.1f,%.1f ", x, y);
    }
    fprintf(f, "\"/>\n");
}

static int write_plot(const char *path, const bench_result *r)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    double tmax = 1, rmax = 1, lmax = 0.001;
    for (int i = 0; i < r->nseconds; i++) {
        const bench_second *s = &r->seconds[i];
        if (s->t > tmax) tmax = s->t;
        double m = s->offered;
        if ((double)s->acked > m) m = (double)s->acked;
        if ((double)s->received > m) m = (double)s->received;
        if (m > rmax) rmax = m;
        if (s->p99_ms > lmax) lmax = s->p99_ms;
    }
    rmax *= 1.1;
    lmax *= 1.1;
    const double W = 800, X0 = 70, PW = 700, PH = 170;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"440\" font-family=\"sans-serif\" font-size=\"11\">\n", W);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"16\" font-size=\"13\">mqlab bench %s: %d %s, QoS %d</text>\n", X0,
            bench_mode_name(r->mode), r->clients, T("publishers", "publicadores"), r->qos);
    /* top: rates; bottom: latency */
    double ys[2] = { 30, 240 };
    for (int p = 0; p < 2; p++) {
        double y0 = ys[p], ymax = p ? lmax : rmax;
        fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#999\"/>\n", X0, y0, PW, PH);
        for (int k = 0; k <= 4; k++) {
            double y = y0 + PH - PH * k / 4.0;
            fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", X0 - 4, y + 4, p ? 2 : 0, ymax * k / 4.0);
        }
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" transform=\"rotate(-90 12 %.0f)\" x-offset=\"0\">%s</text>\n", 12.0,
                y0 + PH / 2, y0 + PH / 2, p ? T("latency ms", "latencia ms") : "msg/s");
        if (p == 0) {
            polyline(f, r, 0, ymax, X0, y0, PW, PH, tmax, "#888");
            polyline(f, r, 1, ymax, X0, y0, PW, PH, tmax, "#1f77b4");
            polyline(f, r, 2, ymax, X0, y0, PW, PH, tmax, "#2ca02c");
        } else {
            polyline(f, r, 3, ymax, X0, y0, PW, PH, tmax, "#1f77b4");
            polyline(f, r, 4, ymax, X0, y0, PW, PH, tmax, "#d62728");
        }
        if (r->knee_s >= 0) {
            double x = X0 + PW * r->knee_s / tmax;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>\n",
                    x, y0, x, y0 + PH);
        }
    }
    fprintf(f, "<text x=\"%.0f\" y=\"218\">%s</text>\n", X0, T("grey: offered   blue: acked   green: received   (per second)",
                                                         "gris: ofrecidos   azul: confirmados   verde: recibidos   (por segundo)"));
    fprintf(f, "<text x=\"%.0f\" y=\"428\">%s %.0f s</text>\n", X0, T("blue: p50   red: p99   time axis: 0 to",
                                                                     "azul: p50   rojo: p99   eje de tiempo: de 0 a"), tmax);
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- main ------------------------------------------------------------ */

int bench_main(int argc, char **argv, const char *lang)
{
    es = lang && strcmp(lang, "es") == 0;
    cmd_opts o;
    memset(&o, 0, sizeof o);
    bench_opts_init(&o.b);
    o.b.clients = 10;
    o.b.hold_ms = 1000;
    int rc = parse_args(argc, argv, &o);
    if (rc == 3) return bench_merge_main(argc - 1, argv + 1, es);
    if (rc == 1) return 0;
    if (rc) return 2;
    o.tty = o.b.mode != BENCH_CONN && isatty(2);
    if (o.tty) o.b.progress = progress;

    char err[KIT_ERRLEN] = "";
    broker_t *b = NULL;
    bench_result r;
    memset(&r, 0, sizeof r);
    int exit_code = 0;

    /* Before the broker starts, so that it inherits the limit too. */
    long limit = bench_raise_nofile(BENCH_FDS(o.b.clients));
    if (limit > 0 && BENCH_FDS(o.b.clients) > limit)
        fprintf(stderr, "mqlab bench: %s %ld; %s %ld %s\n", T("open files limit", "límite de ficheros abiertos"), limit,
                T("each client needs one, so about", "cada cliente necesita uno, así que unos"), limit - 256,
                T("clients can connect (raise it with ulimit -n as root)", "clientes podrán conectar (súbelo con ulimit -n como root)"));

    if (!o.host && !o.port) {
        rc = broker_start_profile(&b, "bench", NULL, err);
        if (rc != KIT_OK) {
            fprintf(stderr, "mqlab bench: %s\n", err);
            exit_code = rc == KIT_EMISSING ? 3 : rc == KIT_EINTR ? 0 : 1;
            goto cleanup;
        }
        o.b.host = "127.0.0.1";
        o.b.port = broker_port(b);
    } else {
        o.b.host = o.host ? o.host : "127.0.0.1";
        o.b.port = o.port ? o.port : 1883;
    }
    if (o.format == FMT_TEXT)
        fprintf(stderr, "mqlab bench %s: %s %s:%d%s\n", bench_mode_name(o.b.mode), T("broker", "broker"), o.b.host, o.b.port,
                b ? T(" (bundled)", " (del kit)") : "");

    rc = bench_run(&o.b, &r, err);
    if (o.tty) fprintf(stderr, "\r\033[K");
    if (rc != KIT_OK) {
        fprintf(stderr, "mqlab bench: %s\n", err);
        exit_code = rc == KIT_EINVAL ? 2 : 1;
        goto cleanup;
    }
    if (o.format == FMT_JSON) print_json(&r);
    else if (o.format == FMT_CSV) print_csv(&r);
    else print_text(&r, &o);
    fflush(stdout);
    if (o.format != FMT_TEXT && r.interrupted)
        fprintf(stderr, "mqlab bench: %s\n", T("interrupted: these are the figures so far", "interrumpido: estas son las cifras hasta ahora"));
    if (o.format != FMT_TEXT && r.errors) fprintf(stderr, "mqlab bench: %d %s: %s\n", r.errors, T("errors", "errores"), r.first_error);
    if (o.plot && o.b.mode != BENCH_CONN && write_plot(o.plot, &r) != 0) {
        fprintf(stderr, "mqlab bench: %s %s\n", T("cannot write", "no se puede escribir"), o.plot);
        exit_code = 1;
    }
    if (r.connected == 0 && !r.interrupted) exit_code = 1;

cleanup:
    bench_result_free(&r);
    broker_free(b);
    return exit_code;
}
