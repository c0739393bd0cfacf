/*
 * trace.c - `mqlab trace`: the live packet exchange, as a sequence diagram.
 *
 * The proxy does the work (proxy.c); this file parses the command line,
 * starts a bundled broker when no --to is given, turns fault flags into
 * proxy rules, and prints trace events as they arrive:
 *
 *      0.000 s  #1  client ──▶ broker  CONNECT id=gw-1 v4 clean=0 ka=10 ...
 *      0.002 s  #1  client ◀── broker  CONNACK rc=0 sp=0
 *      0.131 s  #1  client ◀─✗ broker  PUBACK id=2   [dropped: --drop down:puback:1]
 *
 * or, with --format json, one JSON object per line on stdout (the banner
 * then goes to stderr, so stdout stays machine-readable).
 *
 * With --web the same events also go, as JSON, over a WebSocket to a page
 * the kit serves itself (runner/web/trace.html, embedded), which draws the
 * diagram in three lanes for a projector.
 */
#include "trace.h"

#include "broker.h"
#include "cleanup.h"
#include "embedded.h"
#include "http.h"
#include "packet.h"
#include "proxy.h"
#include "report.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_PORT 1884
#define MAX_RULES 32

static int es;
#define T(en_, es_) (es ? (es_) : (en_))

typedef struct {
    px_rule rule;
    char flag[96];          /* the flag as given, to name the fault in the output */
} trace_rule;

typedef struct {
    int port;
    char to_host[64];
    int to_port;
    const char *profile;
    int json;
    int web;                /* --web: the diagram as a page too */
    int web_port;           /* 0: a free port */
    int ws_port;            /* MQTT over WebSockets too: its port (0: a free one); -1: none */
    int quiet;              /* no line per packet: only the banner and the totals */
    int color;
    int duration_ms;
    int refuse_ms;          /* --refuse: from the start */
    int refuse_after_cut_ms;
    const char *client;
    trace_rule rules[MAX_RULES];
    int nrules;
} trace_opts;

static int usage(const char *fmt, const char *arg)
{
    return kit_usage_error("trace", es, fmt, arg);
}

static void help(void)
{
    printf("%s: mqlab trace [--port P] [--to HOST:PORT] [--format text|json] [--ws-port P] [--web] [FAULTS...]\n\n", T("Usage", "Uso"));
    printf("%s\n\n", T("A proxy that prints every MQTT packet between your client and the broker, live.\n"
                       "Without --to it starts a bundled broker (--profile, default plain) behind the proxy.\n"
                       "Point your client at the proxy's port (default 1884). Ctrl-C stops everything.",
                       "Un proxy que imprime en vivo cada paquete MQTT entre tu cliente y el broker.\n"
                       "Sin --to arranca un broker del kit (--profile, por defecto plain) detrás del proxy.\n"
                       "Conecta tu cliente al puerto del proxy (por defecto 1884). Ctrl-C lo para todo."));
    printf("%s\n", T("Options:", "Opciones:"));
    printf("  --port P            %s\n", T("the proxy's port on 127.0.0.1 (0: any free port)", "el puerto del proxy en 127.0.0.1 (0: uno libre)"));
    printf("  --to HOST:PORT      %s\n", T("an existing broker (numeric IPv4) instead of a bundled one", "un broker ya en marcha (IPv4 numérica) en vez del del kit"));
    printf("  --profile NAME      %s\n", T("the bundled broker's profile (default plain)", "el perfil del broker del kit (plain por defecto)"));
    printf("  --format text|json  %s\n", T("one JSON object per line with json", "un objeto JSON por línea con json"));
    printf("  --no-color          %s\n", T("no colours (also NO_COLOR=1)", "sin colores (también NO_COLOR=1)"));
    printf("  --quiet             %s\n", T("print only the banner and the totals (for benchmarks)", "imprimir solo la cabecera y los totales (para medir)"));
    printf("  --duration S        %s\n", T("stop after S seconds", "parar a los S segundos"));
    printf("  --ws-port P         %s\n", T("also take MQTT over WebSockets (a browser's mqtt.js) on port P (0: a free one)",
                                          "aceptar también MQTT sobre WebSockets (el mqtt.js de un navegador) en el puerto P (0: uno libre)"));
    printf("  --web               %s\n", T("also draw the diagram live on a web page, for a projector (it prints the URL)",
                                          "dibujar además el diagrama en vivo en una página web, para el proyector (imprime la URL)"));
    printf("  --web-port N        %s\n", T("the page's port on 127.0.0.1 (default 0: a free one); implies --web",
                                          "el puerto de la página en 127.0.0.1 (por defecto 0: uno libre); implica --web"));
    printf("\n%s\n", T("Faults (SPEC is [up:|down:]TYPE:N, the Nth packet of that type; up = client to broker,\n"
                       "down = broker to client, no prefix = either way; each flag may be repeated):",
                       "Fallos (SPEC es [up:|down:]TIPO:N, el N-ésimo paquete de ese tipo; up = del cliente al broker,\n"
                       "down = del broker al cliente, sin prefijo = en cualquier sentido; cada opción se puede repetir):"));
    printf("  --drop SPEC             %s\n", T("do not forward it", "no reenviarlo"));
    printf("  --dup SPEC              %s\n", T("forward it twice", "reenviarlo dos veces"));
    printf("  --delay SPEC:MS         %s\n", T("hold it (and what follows it) MS milliseconds", "retenerlo (y lo que venga detrás) MS milisegundos"));
    printf("  --cut-before SPEC       %s\n", T("cut the connection instead of forwarding it", "cortar la conexión en vez de reenviarlo"));
    printf("  --cut-after SPEC        %s\n", T("forward it, then cut the connection", "reenviarlo y después cortar la conexión"));
    printf("  --cut-bytes [DIR:]N     %s\n", T("cut once N bytes have passed", "cortar cuando hayan pasado N bytes"));
    printf("  --blackhole-after SPEC  %s\n", T("from it on, forward nothing but keep the sockets open (a partition)",
                                               "desde él, no reenviar nada pero dejar los sockets abiertos (una partición)"));
    printf("  --reorder SPEC          %s\n", T("hold it until the next packet of its type has overtaken it",
                                               "retenerlo hasta que el siguiente paquete de su tipo lo adelante"));
    printf("  --refuse S              %s\n", T("refuse new connections for the first S seconds", "rechazar conexiones nuevas los primeros S segundos"));
    printf("  --refuse-after-cut S    %s\n", T("after each cut, refuse new connections for S seconds", "tras cada corte, rechazar conexiones nuevas S segundos"));
    printf("  --client ID             %s\n", T("faults only for connections with this client id", "fallos solo para las conexiones con ese client id"));
    printf("\n%s\n", T("Example, QoS 1's duplicate: mqlab trace --drop down:puback:2 --cut-after down:puback:3\n"
                       "then run your own QoS 1 producer against it (e.g. MQTT_HOST=127.0.0.1 MQTT_PORT=1884\n"
                       "python3 sensor.py): after the cut it reconnects and re-sends the PUBLISH whose PUBACK was lost, with dup=1.",
                       "Ejemplo, el duplicado de QoS 1: mqlab trace --drop down:puback:2 --cut-after down:puback:3\n"
                       "y lanza contra él tu propio productor QoS 1 (p. ej. MQTT_HOST=127.0.0.1 MQTT_PORT=1884\n"
                       "python3 sensor.py): tras el corte se reconecta y reenvía con dup=1 el PUBLISH cuyo PUBACK se perdió."));
}

int trace_parse_spec(const char *spec, int *dir, int *type, unsigned *nth)
{
    char buf[64];
    if (!spec || strlen(spec) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%s", spec);
    char *s = buf;
    *dir = PX_ANY;
    if (strncasecmp(s, "up:", 3) == 0) { *dir = PX_UP; s += 3; }
    else if (strncasecmp(s, "down:", 5) == 0) { *dir = PX_DOWN; s += 5; }
    char *colon = strchr(s, ':');
    if (!colon) return -1;
    *colon = '\0';
    int t = strcasecmp(s, "any") == 0 ? 0 : pkt_type_from_name(s);
    if (t < 0) return -1;
    char *end = NULL;
    unsigned long n = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end || n < 1 || n > 1000000000UL) return -1;
    *type = t;
    *nth = (unsigned)n;
    return 0;
}

/* --delay SPEC:MS: the spec is everything before the last colon. */
static int add_rule(trace_opts *o, const char *flag, px_action action, const char *arg)
{
    if (o->nrules >= MAX_RULES) return usage("%s", T("too many fault flags", "demasiadas opciones de fallo"));
    trace_rule *tr = &o->rules[o->nrules];
    memset(tr, 0, sizeof *tr);
    snprintf(tr->flag, sizeof tr->flag, "--%s %s", flag, arg);
    px_rule *r = &tr->rule;
    r->action = action;
    r->times = 1;
    char spec[64];
    snprintf(spec, sizeof spec, "%s", arg);
    if (action == PX_DELAY) {
        char *last = strrchr(spec, ':');
        char *end = NULL;
        long ms = last ? strtol(last + 1, &end, 10) : -1;
        if (!last || end == last + 1 || *end || ms <= 0 || ms > 600000)
            return usage(T("--delay expects [up:|down:]TYPE:N:MS, not '%s'", "--delay espera [up:|down:]TIPO:N:MS, no '%s'"), arg);
        *last = '\0';
        r->delay_ms = (int)ms;
    }
    if (action == PX_CUT_BYTES) {
        r->dir = PX_ANY;
        const char *n = spec;
        if (strncasecmp(n, "up:", 3) == 0) { r->dir = PX_UP; n += 3; }
        else if (strncasecmp(n, "down:", 5) == 0) { r->dir = PX_DOWN; n += 5; }
        char *end = NULL;
        unsigned long long b = strtoull(n, &end, 10);
        if (end == n || *end || b < 1)
            return usage(T("--cut-bytes expects [up:|down:]N, not '%s'", "--cut-bytes espera [up:|down:]N, no '%s'"), arg);
        r->bytes = b;
    } else if (trace_parse_spec(spec, &r->dir, &r->type, &r->nth) != 0) {
        return usage(T("a fault expects [up:|down:]TYPE:N (e.g. down:puback:2), not '%s'",
                       "un fallo espera [up:|down:]TIPO:N (p. ej. down:puback:2), no '%s'"), arg);
    }
    o->nrules++;
    return 0;
}

static int parse_seconds(const char *s, int *ms)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end || v < 0 || v > 86400) return -1;
    *ms = (int)(v * 1000 + 0.5);
    return 0;
}

static int parse_args(int argc, char **argv, trace_opts *o)
{
    static const struct { const char *name; px_action action; } faults[] = {
        { "drop", PX_DROP }, { "dup", PX_DUPLICATE }, { "delay", PX_DELAY },
        { "cut-before", PX_CUT_BEFORE }, { "cut-after", PX_CUT_AFTER },
        { "cut-bytes", PX_CUT_BYTES }, { "blackhole-after", PX_BLACKHOLE },
        { "reorder", PX_REORDER },
    };
    for (int i = 0; i < argc; i++) {
        char name[40];
        const char *a = argv[i], *val = NULL;
        int split = kit_long_opt(a, name, sizeof name, &val);
        if (split == -1) return usage(T("unexpected argument '%s'", "argumento inesperado '%s'"), a);
        if (split == -2) return usage(T("unknown option %s", "opción desconocida %s"), a);
        if (strcmp(name, "help") == 0) { help(); return 1; }
        if (strcmp(name, "no-color") == 0) { o->color = 0; continue; }
        if (strcmp(name, "quiet") == 0) { o->quiet = 1; continue; }
        if (strcmp(name, "web") == 0 && !val) { o->web = 1; continue; }
        if (!val && i + 1 >= argc) return usage(T("option %s needs a value", "la opción %s necesita un valor"), a);
        if (!val) val = argv[++i];

        int done = 0;
        for (size_t k = 0; k < sizeof faults / sizeof *faults; k++) {
            if (strcmp(name, faults[k].name) == 0) {
                if (add_rule(o, name, faults[k].action, val)) return 2;
                done = 1;
            }
        }
        if (done) continue;
        if (strcmp(name, "port") == 0) {
            char *end = NULL;
            long p = strtol(val, &end, 10);
            if (end == val || *end || p < 0 || p > 65535) return usage(T("--port expects 0..65535, not '%s'", "--port espera 0..65535, no '%s'"), val);
            o->port = (int)p;
        } else if (strcmp(name, "ws-port") == 0) {
            char *end = NULL;
            long p = strtol(val, &end, 10);
            if (end == val || *end || p < 0 || p > 65535)
                return usage(T("--ws-port expects 0..65535, not '%s'", "--ws-port espera 0..65535, no '%s'"), val);
            o->ws_port = (int)p;
        } else if (strcmp(name, "web-port") == 0) {
            char *end = NULL;
            long p = strtol(val, &end, 10);
            if (end == val || *end || p < 0 || p > 65535)
                return usage(T("--web-port expects 0..65535, not '%s'", "--web-port espera 0..65535, no '%s'"), val);
            o->web_port = (int)p;
            o->web = 1;
        } else if (strcmp(name, "to") == 0) {
            const char *c = strrchr(val, ':');
            char *end = NULL;
            long p = c ? strtol(c + 1, &end, 10) : 0;
            struct in_addr ia;
            size_t hl = c ? (size_t)(c - val) : 0;
            if (!c || hl == 0 || hl >= sizeof o->to_host || end == c + 1 || *end || p < 1 || p > 65535)
                return usage(T("--to expects HOST:PORT, not '%s'", "--to espera HOST:PUERTO, no '%s'"), val);
            memcpy(o->to_host, val, hl);
            o->to_host[hl] = '\0';
            if (strcmp(o->to_host, "localhost") == 0) snprintf(o->to_host, sizeof o->to_host, "127.0.0.1");
            if (inet_pton(AF_INET, o->to_host, &ia) != 1)
                return usage(T("--to needs a numeric IPv4 address, not '%s'", "--to necesita una dirección IPv4 numérica, no '%s'"), val);
            o->to_port = (int)p;
        } else if (strcmp(name, "profile") == 0) {
            o->profile = val;
        } else if (strcmp(name, "format") == 0) {
            if (strcmp(val, "json") == 0) o->json = 1;
            else if (strcmp(val, "text") == 0) o->json = 0;
            else return usage(T("--format is text or json, not '%s'", "--format es text o json, no '%s'"), val);
        } else if (strcmp(name, "duration") == 0) {
            if (parse_seconds(val, &o->duration_ms) || o->duration_ms == 0)
                return usage(T("--duration expects seconds > 0, not '%s'", "--duration espera segundos > 0, no '%s'"), val);
        } else if (strcmp(name, "refuse") == 0) {
            if (parse_seconds(val, &o->refuse_ms)) return usage(T("--refuse expects seconds, not '%s'", "--refuse espera segundos, no '%s'"), val);
        } else if (strcmp(name, "refuse-after-cut") == 0) {
            if (parse_seconds(val, &o->refuse_after_cut_ms))
                return usage(T("--refuse-after-cut expects seconds, not '%s'", "--refuse-after-cut espera segundos, no '%s'"), val);
        } else if (strcmp(name, "client") == 0) {
            if (!*val || strlen(val) >= sizeof o->rules[0].rule.client_id)
                return usage(T("--client expects a client id, not '%s'", "--client espera un client id, no '%s'"), val);
            o->client = val;
        } else if (strcmp(name, "lang") == 0) {
            es = strncmp(val, "es", 2) == 0;
        } else {
            return usage(T("unknown option %s", "opción desconocida %s"), a);
        }
    }
    return 0;
}

#define C(code) (color ? "\033[" code "m" : "")

/* Which fault flag made this fate, for the text output. */
static const char *fate_label(int fate)
{
    switch (fate) {
    case PX_DROPPED: return es ? "descartado" : "dropped";
    case PX_DUPLICATED: return es ? "duplicado" : "duplicated";
    case PX_DELAYED: return es ? "retenido" : "delayed";
    case PX_CUT_BEFORE_F: return es ? "corte antes de reenviarlo" : "cut before forwarding";
    case PX_CUT_AFTER_F: return es ? "reenviado y corte" : "forwarded, then cut";
    case PX_CUT_MID: return es ? "corte a mitad del paquete" : "cut in the middle";
    case PX_BLACKHOLED: return es ? "agujero negro" : "black hole";
    case PX_REORDERED: return es ? "adelantado por el siguiente" : "overtaken by the next one";
    default: return "";
    }
}

static void print_text(const px_event *e, int color)
{
    double s = (double)e->t_us / 1e6;
    printf("%s%9.3f s%s  #%-3u ", C("2"), s, C("0"), e->conn);
    /* A browser's connection (MQTT over WebSockets) says so on every
     * line; plain ones keep the lines they always had. */
    if (e->transport != PX_TR_TCP) printf("%s[%s]%s ", C("35"), px_transport_name(e->transport), C("0"));
    if (e->kind != PX_EV_PACKET) {
        const char *what = e->kind == PX_EV_OPEN ? (es ? "conexión abierta" : "connection opened")
                         : e->kind == PX_EV_REFUSED ? (es ? "conexión rechazada" : "connection refused")
                         : e->kind == PX_EV_CLOSE ? (es ? "cerrada" : "closed")
                         : (es ? "error" : "error");
        printf("%s── %s%s%s%s\n", e->kind == PX_EV_ERROR || e->kind == PX_EV_REFUSED ? C("31") : C("2"), what,
               e->text && *e->text ? ": " : "", e->text ? e->text : "", C("0"));
        return;
    }
    int fault = e->fate != PX_SENT;
    const char *arrow = e->dir == PX_UP ? (fault ? "──✗─▶" : "────▶") : (fault ? "◀─✗──" : "◀────");
    if (e->fate == PX_DUPLICATED || e->fate == PX_DELAYED || e->fate == PX_CUT_AFTER_F)
        arrow = e->dir == PX_UP ? "──!─▶" : "◀─!──";
    printf("client %s%s%s broker  %s%s%s", fault ? C("1;31") : e->dir == PX_UP ? C("36") : C("32"), arrow, C("0"),
           e->type == PKT_PUBLISH ? C("1") : "", e->text ? e->text : pkt_type_name(e->type), C("0"));
    if (fault) printf("  %s[%s]%s", C("1;31"), fate_label(e->fate), C("0"));
    printf("\n");
}

static void json_kv_str(FILE *f, const char *k, const char *v, int *first)
{
    if (!v) return;
    fprintf(f, "%s\"%s\":", *first ? "" : ",", k);
    report_json_string(f, v);
    *first = 0;
}

static void json_kv_int(FILE *f, const char *k, long long v, int *first)
{
    fprintf(f, "%s\"%s\":%lld", *first ? "" : ",", k, v);
    *first = 0;
}

static void json_kv_bool(FILE *f, const char *k, int v, int *first)
{
    fprintf(f, "%s\"%s\":%s", *first ? "" : ",", k, v ? "true" : "false");
    *first = 0;
}

/* What the page gets beyond the --format json line: a sequence number
 * (so a page that hears the history twice keeps each event once), the
 * transport, the connection's client id on every event of it, and the
 * payload's first bytes. */
typedef struct {
    unsigned long seq;
    const char *cid;        /* the connection's client id, once known */
} web_extra;

#define WEB_PAYLOAD_EXCERPT 48

/* The payload's first bytes when they are text (UTF-8 without control
 * characters, cut on a character boundary), else NULL. */
static const char *payload_excerpt(const px_event *e, char *buf, size_t cap)
{
    if (!e->payload || e->payload_kept == 0) return NULL;
    size_t n = e->payload_kept < cap - 1 ? e->payload_kept : cap - 1;
    const unsigned char *p = (const unsigned char *)e->payload;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || (c < 0x20 && c != '\t') || c == 0x7f) return NULL;
        if (i + len > n) break;         /* a character cut by the excerpt: end before it */
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80) return NULL;
        i += len;
    }
    memcpy(buf, p, i);
    buf[i] = '\0';
    return buf;
}

/* One event as one JSON object and a newline; x adds the page's fields. */
static void write_json(FILE *f, const px_event *e, const web_extra *x)
{
    int first = 1;
    fprintf(f, "{");
    if (x) fprintf(f, "\"seq\":%lu,", x->seq);
    fprintf(f, "\"t_ms\":%.3f", (double)e->t_us / 1000.0);
    first = 0;
    json_kv_int(f, "conn", e->conn, &first);
    json_kv_str(f, "kind", px_kind_name(e->kind), &first);
    json_kv_str(f, "dir", px_dir_name(e->dir), &first);
    json_kv_str(f, "transport", px_transport_name(e->transport), &first);
    if (x) json_kv_str(f, "cid", x->cid, &first);
    if (e->kind == PX_EV_PACKET) {
        json_kv_str(f, "type", pkt_type_name(e->type), &first);
        json_kv_str(f, "fate", px_fate_name(e->fate), &first);
        json_kv_int(f, "size", e->size, &first);
        if (e->packet_id >= 0) json_kv_int(f, "id", e->packet_id, &first);
        if (e->reason >= 0) json_kv_int(f, "reason", e->reason, &first);
        if (e->type == PKT_PUBLISH) {
            json_kv_int(f, "qos", e->qos, &first);
            json_kv_bool(f, "dup", e->dup, &first);
            json_kv_bool(f, "retain", e->retain, &first);
            json_kv_str(f, "topic", e->topic, &first);
            json_kv_int(f, "payload_len", e->payload_len, &first);
            if (x) {
                char ex[WEB_PAYLOAD_EXCERPT + 1];
                json_kv_str(f, "payload", payload_excerpt(e, ex, sizeof ex), &first);
            }
        } else if (e->type == PKT_CONNECT) {
            json_kv_str(f, "client_id", e->client_id, &first);
            json_kv_int(f, "level", e->level, &first);
            json_kv_bool(f, "clean", e->clean, &first);
            json_kv_int(f, "keepalive", e->keepalive, &first);
            if (e->will) {
                json_kv_str(f, "will_topic", e->topic, &first);
                json_kv_int(f, "will_qos", e->will_qos, &first);
                json_kv_bool(f, "will_retain", e->will_retain, &first);
            }
        } else if (e->type == PKT_CONNACK) {
            json_kv_bool(f, "session_present", e->session_present, &first);
        }
    }
    json_kv_str(f, "text", e->text, &first);
    fprintf(f, "}\n");
}

/* ---- --web: the page, and the events pushed to it ------------------ */

#define WEB_EVENTS_PATH "/events"
#define WEB_PAGE "runner/web/trace.html"
/* A page that connects late gets at most this many of the last events:
 * at ~200 bytes each, well under the 8 MiB a WebSocket client may have
 * waiting before http.c drops it (and every page hears them again). */
#define WEB_HISTORY_RESEND 20000

typedef struct {
    http_server *http;
    char **cids;            /* by connection number: its CONNECT's client id */
    size_t ncids;
    char **hist;            /* every event pushed so far, as sent */
    size_t *hlen, nhist, caphist;
    char *hello;            /* the first message of each page: lang, run, ports,
                               faults; ends in "," for resend_from to follow */
    size_t hello_len;
    int clients;            /* WebSocket clients at the last look */
} trace_web;

static void web_free(trace_web *w)
{
    if (!w) return;
    http_free(w->http);
    for (size_t i = 0; i < w->ncids; i++) free(w->cids[i]);
    free(w->cids);
    for (size_t i = 0; i < w->nhist; i++) free(w->hist[i]);
    free(w->hist);
    free(w->hlen);
    free(w->hello);
    free(w);
}

static int web_start(const trace_opts *o, proxy *p, int bundled, trace_web **out, char *err)
{
    *out = NULL;
    const embedded_file_t *page = embedded_find(WEB_PAGE);
    if (!page) return kit_seterr(err, KIT_ERR, "the web page is not in this build (%s)", WEB_PAGE);
    trace_web *w = kit_xmalloc(sizeof *w);
    memset(w, 0, sizeof *w);
    http_opts ho = { .port = o->web_port };
    int rc = http_start(&ho, &w->http, err);
    if (rc == KIT_OK) rc = http_route_bytes(w->http, "/", "text/html; charset=utf-8", page->data, page->len, err);
    if (rc == KIT_OK) rc = http_route_ws(w->http, WEB_EVENTS_PATH, err);
    if (rc != KIT_OK) {
        web_free(w);
        return rc;
    }
    /* The run's start time tells a page that reconnects whether it is
     * still the same trace (then it keeps its rows) or a new one. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        web_free(w);
        return kit_seterr(err, KIT_ERR, "out of memory");
    }
    int first = 0;
    fprintf(f, "{\"hello\":\"mqlab trace\"");
    json_kv_str(f, "lang", es ? "es" : "en", &first);
    json_kv_int(f, "run", (long long)kit_wall_ms(), &first);
    json_kv_int(f, "proxy_port", proxy_port(p), &first);
    if (proxy_ws_port(p)) json_kv_int(f, "ws_port", proxy_ws_port(p), &first);
    json_kv_str(f, "broker_host", o->to_host, &first);
    json_kv_int(f, "broker_port", o->to_port, &first);
    json_kv_bool(f, "bundled", bundled, &first);
    fprintf(f, ",\"faults\":[");
    for (int i = 0; i < o->nrules; i++) {
        if (i) fputc(',', f);
        report_json_string(f, o->rules[i].flag);
    }
    fprintf(f, "]");
    if (o->client) json_kv_str(f, "fault_client", o->client, &first);
    if (o->refuse_ms) json_kv_int(f, "refuse_ms", o->refuse_ms, &first);
    fputc(',', f);
    fclose(f);
    w->hello = buf;
    w->hello_len = len;
    *out = w;
    return KIT_OK;
}

static void web_event(trace_web *w, const px_event *e, unsigned long seq)
{
    if (e->kind == PX_EV_PACKET && e->type == PKT_CONNECT && e->dir == PX_UP && e->client_id) {
        if (e->conn >= w->ncids) {
            size_t n = (size_t)e->conn + 64;
            w->cids = kit_xrealloc(w->cids, n * sizeof *w->cids);
            memset(w->cids + w->ncids, 0, (n - w->ncids) * sizeof *w->cids);
            w->ncids = n;
        }
        free(w->cids[e->conn]);
        w->cids[e->conn] = kit_strdup(e->client_id);
    }
    web_extra x = { seq, e->conn < w->ncids ? w->cids[e->conn] : NULL };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return;
    write_json(f, e, &x);
    fclose(f);
    if (w->nhist == w->caphist) {
        w->caphist = w->caphist ? w->caphist * 2 : 256;
        w->hist = kit_xrealloc(w->hist, w->caphist * sizeof *w->hist);
        w->hlen = kit_xrealloc(w->hlen, w->caphist * sizeof *w->hlen);
    }
    w->hist[w->nhist] = buf;
    w->hlen[w->nhist++] = len;
    http_broadcast(w->http, WEB_EVENTS_PATH, buf, len);
}

/* A page that connects late gets the whole trace (or its last
 * WEB_HISTORY_RESEND events): when the count of pages grows, the hello
 * and the history go to every page again, and each page drops the
 * sequence numbers it has already drawn. A page
 * that comes while another leaves, between two looks, is missed by the
 * count: it hears no hello, so it reconnects after a moment, and that
 * the count does see. */
static void web_poll(trace_web *w)
{
    int n = http_ws_clients(w->http, WEB_EVENTS_PATH);
    if (n > w->clients) {
        size_t from = w->nhist > WEB_HISTORY_RESEND ? w->nhist - WEB_HISTORY_RESEND : 0;
        char hello[32];
        int hl = snprintf(hello, sizeof hello, "\"resend_from\":%zu}\n", from + 1);
        char *msg = kit_xmalloc(w->hello_len + (size_t)hl);
        memcpy(msg, w->hello, w->hello_len);
        memcpy(msg + w->hello_len, hello, (size_t)hl);
        http_broadcast(w->http, WEB_EVENTS_PATH, msg, w->hello_len + (size_t)hl);
        free(msg);
        for (size_t i = from; i < w->nhist; i++) http_broadcast(w->http, WEB_EVENTS_PATH, w->hist[i], w->hlen[i]);
    }
    w->clients = n;
}

static void describe_rule(const trace_rule *tr, FILE *f)
{
    fprintf(f, "  %s %s\n", T("fault:", "fallo:"), tr->flag);
}

int trace_main(int argc, char **argv, const char *lang)
{
    es = lang && strcmp(lang, "es") == 0;
    trace_opts o;
    memset(&o, 0, sizeof o);
    o.port = DEFAULT_PORT;
    o.ws_port = -1;
    o.profile = "plain";
    o.color = report_color(stdout);
    int rc = parse_args(argc, argv, &o);
    if (rc == 1) return 0;
    if (rc) return 2;
    if (o.json) o.color = 0;

    char err[KIT_ERRLEN] = "";
    broker_t *b = NULL;
    proxy *p = NULL;
    trace_web *w = NULL;
    int exit_code = 0;
    FILE *banner = o.json ? stderr : stdout;

    if (!o.to_port) {
        rc = broker_start_profile(&b, o.profile, NULL, err);
        if (rc == KIT_ENOENT) { exit_code = usage(T("no broker profile '%s'", "no hay perfil de broker '%s'"), o.profile); goto cleanup; }
        if (rc != KIT_OK) {
            fprintf(stderr, "mqlab trace: %s\n", err);
            exit_code = rc == KIT_EMISSING ? 3 : rc == KIT_EINTR ? 130 : 1;
            goto cleanup;
        }
        snprintf(o.to_host, sizeof o.to_host, "127.0.0.1");
        o.to_port = broker_port(b);
    }

    px_opts po = { .upstream_host = o.to_host, .upstream_port = o.to_port, .listen_port = o.port,
                   .websocket = o.ws_port >= 0, .ws_port = o.ws_port > 0 ? o.ws_port : 0 };
    if (proxy_start(&po, &p, err) != KIT_OK) {
        fprintf(stderr, "mqlab trace: %s\n", err);
        if (o.port == DEFAULT_PORT)
            fprintf(stderr, "%s\n", T("Is another trace running? Choose another port with --port (0: any free port).",
                                      "¿Hay otro trace en marcha? Elige otro puerto con --port (0: uno libre)."));
        exit_code = 1;
        goto cleanup;
    }
    for (int i = 0; i < o.nrules; i++) {
        px_rule *r = &o.rules[i].rule;
        if (o.client) snprintf(r->client_id, sizeof r->client_id, "%s", o.client);
        if (r->action == PX_CUT_BEFORE || r->action == PX_CUT_AFTER || r->action == PX_CUT_BYTES)
            r->refuse_ms = o.refuse_after_cut_ms;
        if (proxy_add_rule(p, r, err) < 0) {
            exit_code = usage("%s", err);
            goto cleanup;
        }
    }
    if (o.refuse_ms) proxy_refuse(p, o.refuse_ms);
    if (o.web && web_start(&o, p, b != NULL, &w, err) != KIT_OK) {
        fprintf(stderr, "mqlab trace: %s\n", err);
        if (o.web_port)
            fprintf(stderr, "%s\n", T("Choose another port with --web-port (0: any free port).",
                                      "Elige otro puerto con --web-port (0: uno libre)."));
        exit_code = 1;
        goto cleanup;
    }

    fprintf(banner, T("mqlab trace: proxy on 127.0.0.1:%d -> broker %s:%d%s\n",
                      "mqlab trace: proxy en 127.0.0.1:%d -> broker %s:%d%s\n"),
            proxy_port(p), o.to_host, o.to_port, b ? T(" (bundled, removed on exit)", " (del kit, se borra al salir)") : "");
    fprintf(banner, T("Point your client at 127.0.0.1:%d, e.g.  mosquitto_sub -p %d -t 'acme/#' -q 1 -v\n",
                      "Conecta tu cliente a 127.0.0.1:%d, p. ej.  mosquitto_sub -p %d -t 'acme/#' -q 1 -v\n"),
            proxy_port(p), proxy_port(p));
    if (proxy_ws_port(p))
        fprintf(banner, T("MQTT over WebSockets (mqtt.js in a browser): ws://127.0.0.1:%d\n",
                          "MQTT sobre WebSockets (mqtt.js en un navegador): ws://127.0.0.1:%d\n"), proxy_ws_port(p));
    if (w)
        fprintf(banner, T("Live diagram: open http://127.0.0.1:%d/?lang=en in a browser\n",
                          "Diagrama en vivo: abre http://127.0.0.1:%d/?lang=es en un navegador\n"),
                http_port(w->http));
    for (int i = 0; i < o.nrules; i++) describe_rule(&o.rules[i], banner);
    if (o.refuse_ms) fprintf(banner, T("  refusing new connections for %.1f s\n", "  rechazando conexiones nuevas durante %.1f s\n"),
                             o.refuse_ms / 1000.0);
    fprintf(banner, "%s\n", T("Ctrl-C stops.", "Ctrl-C para."));
    fflush(banner);

    int64_t end = o.duration_ms ? kit_now_ms() + o.duration_ms : 0;
    size_t shown = 0;
    for (;;) {
        size_t n = proxy_count(p);
        for (; shown < n && (!o.quiet || w); shown++) {
            const px_event *e = proxy_event(p, shown);
            if (w) web_event(w, e, (unsigned long)shown + 1);
            if (o.quiet) continue;
            if (o.json) write_json(stdout, e, NULL);
            else print_text(e, o.color);
        }
        fflush(stdout);
        if (w) web_poll(w);
        if (cleanup_interrupted()) break;
        if (end && kit_now_ms() >= end) break;
        if (b && !broker_running(b)) {
            fprintf(stderr, "mqlab trace: %s\n", T("the broker stopped by itself", "el broker se paró solo"));
            exit_code = 1;
            break;
        }
        rc = proxy_wait(p, n, 200);
        if (rc == KIT_EINTR) break;
    }
    cleanup_clear_interrupt();
    px_stats st;
    proxy_stats(p, &st);
    fprintf(banner, T("\n%u connections (%u refused), %llu packets client->broker, %llu broker->client.\n",
                      "\n%u conexiones (%u rechazadas), %llu paquetes cliente->broker, %llu broker->cliente.\n"),
            st.connections, st.refused, (unsigned long long)st.packets[PX_UP], (unsigned long long)st.packets[PX_DOWN]);

cleanup:
    web_free(w);
    proxy_free(p);
    broker_free(b);
    return exit_code;
}
