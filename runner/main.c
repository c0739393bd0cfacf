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
      "The student id (default: $USER) chooses your own topics, ids and plant.\n"
      "If your course grades in Gradescope, use the id it grades you with: your student id (SID)\n"
      "there, else your email before the @ (mqlab init --student SID).",
      "DIR es ./mqlab-work si no se indica. Nunca se sobrescriben ficheros existentes.\n"
      "El id de estudiante (por defecto: $USER) elige tus propios topics, ids y planta.\n"
      "Si tu curso corrige en Gradescope, usa el id con el que te corrige: tu id de estudiante (SID)\n"
      "allí, si no tu email antes de la @ (mqlab init --student SID)." },
    { "list", "", "the labs, their status and your best score", "los laboratorios, su estado y tu mejor nota", "", "" },
    { "show", "NN", "a lab's instructions, with your own parameters", "las instrucciones de un laboratorio, con tus parámetros",
      "NN may be 1, 01 or 01-hello.", "NN puede ser 1, 01 o 01-hello." },
    { "start", "NN [--port P] [--no-record]", "guided mode: a live broker, the lab's steps, and what the wire shows",
      "modo guiado: un broker en marcha, los pasos del laboratorio y lo que se ve en el cable",
      "It starts the lab's broker behind the kit's proxy on 127.0.0.1:1883 (or --port P; a free port\n"
      "when that one is taken, printed clearly), prints your parameters, then the steps one at a time.\n"
      "Do each step in another terminal (mosquitto_sub, mosquitto_pub or your own program): the kit\n"
      "says what it saw on the wire and moves on when the step is met. Fault steps happen when you\n"
      "press Enter. Steps met are recorded (mqlab progress shows them). Ctrl-C leaves nothing running.",
      "Arranca el broker del laboratorio tras el proxy del kit en 127.0.0.1:1883 (o --port P; uno libre\n"
      "si ese está ocupado, y lo dice), muestra tus parámetros y luego los pasos, uno a uno. Haz cada\n"
      "paso en otra terminal (mosquitto_sub, mosquitto_pub o tu programa): el kit dice lo que vio en el\n"
      "cable y sigue cuando el paso se cumple. Los fallos ocurren cuando pulsas Enter. Los pasos\n"
      "cumplidos se guardan (mqlab progress los muestra). Ctrl-C no deja nada en marcha." },
    { "check", "NN [DIR] [--format text|json] [--no-record] [--no-sandbox]", "grade your work for lab NN and record the attempt",
      "evalúa tu trabajo del laboratorio NN y guarda el intento",
      "DIR defaults to the lab's folder in your workspace (or the current folder). A folder outside any\n"
      "workspace that holds none of the lab's files is not graded: check says where your workspace is.\n"
      "With several forms of a program (hello.py, hello.sh), the first of .py, .lua, .c, .sh, executable\n"
      "runs, except that an unchanged starter file counts only when there is nothing else; the verdict\n"
      "says which one ran.\n"
      "--format json prints exactly one JSON object (the verdict) on stdout.\n"
      "Your programs run in a sandbox (a private copy of the folder, a private /tmp, nothing of your home);\n"
      "where there is none (see mqlab doctor) they run unconfined, with a notice.\n"
      "Exit code: 0 full marks, 1 a check failed, 2 bad usage or input, 3 something is missing here.",
      "DIR es la carpeta del laboratorio en tu espacio de trabajo (o la carpeta actual). Una carpeta fuera\n"
      "de todo espacio de trabajo sin ninguno de los ficheros del laboratorio no se evalúa: check te dice\n"
      "dónde está tu espacio de trabajo. Si hay varias formas de un programa (hello.py, hello.sh), se\n"
      "ejecuta la primera de .py, .lua, .c, .sh, ejecutable, salvo un fichero de partida sin cambios, que\n"
      "solo cuenta si no hay otra; el veredicto dice cuál se ejecutó.\n"
      "--format json imprime exactamente un objeto JSON (el veredicto) en stdout.\n"
      "Tus programas corren aislados (una copia privada de la carpeta, un /tmp propio, nada de tu home);\n"
      "donde no se puede (mira mqlab doctor) corren sin aislar, con un aviso.\n"
      "Código de salida: 0 nota máxima, 1 alguna comprobación falló, 2 uso o entrada incorrectos, 3 falta algo en esta máquina." },
    { "watch", "NN [DIR] [--format text|json] [--no-record] [--no-sandbox]",
      "grade lab NN like check, then again each time you save a file",
      "evalúa el laboratorio NN como check, y otra vez cada vez que guardas un fichero",
      "DIR is found as check finds it. Every verdict is recorded, as check does (not with --no-record).\n"
      "A change during a grading stops it and grades again. Hidden files, editor backups and swap files\n"
      "(.x, x~, x.swp, 4913) do not count. On a terminal the screen is cleared before each verdict;\n"
      "in a pipe a separator line comes first. Ctrl-C stops it, and everything it started.",
      "DIR se busca como en check. Cada veredicto se guarda, como en check (salvo con --no-record).\n"
      "Un cambio durante una corrección la para y se evalúa de nuevo. Los ficheros ocultos, las copias\n"
      "y ficheros de intercambio de los editores (.x, x~, x.swp, 4913) no cuentan. En un terminal se\n"
      "borra la pantalla antes de cada veredicto; en una tubería va antes una línea separadora.\n"
      "Ctrl-C lo para, con todo lo que arrancó." },
    { "hint", "NN", "the next hint for lab NN (hints used are recorded)", "la siguiente pista del laboratorio NN (se registran)",
      "Past the last hint it says there are none left, shows the last again and records nothing more.",
      "Pasada la última pista dice que no quedan más, repite la última y no registra nada más." },
    { "progress", "[--json]", "where you stand in every lab", "cómo vas en cada laboratorio", "", "" },
    { "reset", "NN | --all", "forget your attempts and hints for a lab (or all)", "olvida tus intentos y pistas de un laboratorio (o de todos)", "", "" },
    { "run", "FILE.lua [ARGS...]", "run a Lua MQTT client with the kit's mqtt module", "ejecuta un cliente MQTT en Lua con el módulo mqtt del kit",
      "The script gets the globals `mqtt` (require \"mqlab.mqtt\") and `arg`.\n"
      "Example: local c = mqtt.connect{port = 1883, id = \"gw-1\"}; c:publish(\"acme/v1/x\", \"hola\", {qos = 1})\n"
      "A script that runs until SIGTERM calls mqtt.catch_sigterm() first, then leaves its loop once mqtt.sigterm() is true.",
      "El script recibe las globales `mqtt` (require \"mqlab.mqtt\") y `arg`.\n"
      "Ejemplo: local c = mqtt.connect{port = 1883, id = \"gw-1\"}; c:publish(\"acme/v1/x\", \"hola\", {qos = 1})\n"
      "Un script que funciona hasta recibir SIGTERM llama antes a mqtt.catch_sigterm() y sale de su bucle cuando mqtt.sigterm() es true." },
    { "broker", "[PROFILE] [--port P] [--ws-port P|0|none]",
      "a bundled Mosquitto in the foreground, to explore freely (Ctrl-C stops it)",
      "un Mosquitto del kit en primer plano para explorar (Ctrl-C lo para)",
      "PROFILE defaults to plain. It listens on 127.0.0.1 only and prints its log as it goes.\n"
      "It also takes MQTT over WebSockets (a browser's mqtt.js) through the kit's proxy, on the course's\n"
      "port 9001 when it is free, else on a free one: --ws-port picks it (0: any free port; none: no\n"
      "WebSocket port). Debian's mosquitto has no WebSockets of its own.",
      "PROFILE es plain por defecto. Escucha solo en 127.0.0.1 y muestra su log en vivo.\n"
      "También acepta MQTT sobre WebSockets (el mqtt.js de un navegador) por el proxy del kit, en el\n"
      "puerto 9001 del curso si está libre, si no en uno libre: --ws-port lo elige (0: uno libre; none:\n"
      "sin puerto WebSocket). El mosquitto de Debian no trae WebSockets propios." },
    { "trace", "[--port P] [--to HOST:PORT] [--format text|json] [--ws-port P] [--web] [FAULTS...]",
      "a proxy that prints the live packet exchange, and can break the link on purpose",
      "un proxy que imprime en vivo el intercambio de paquetes, y puede romper el enlace a propósito",
      "`mqlab trace --help` lists the fault flags (--drop, --dup, --delay, --cut-before, --cut-after, ...).\n"
      "--web also draws the diagram live on a web page, for a projector.",
      "`mqlab trace --help` lista las opciones de fallo (--drop, --dup, --delay, --cut-before, --cut-after, ...).\n"
      "--web dibuja además el diagrama en vivo en una página web, para el proyector." },
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
    { "grade", "LABS DIR... [--jobs N] [--resume] [--shard I/N] [--format F] [--out DIR] [--db FILE] [--student ID]",
      "instructors: grade a class, lab by lab or the whole course, into a gradebook",
      "docentes: evalúa una clase, por laboratorio o el curso entero, en un libro de notas",
      "LABS is one lab (03), a list (01,03,05) or all. Each DIR is looked at by one rule:\n"
      "  - a folder holding .mqlab/, or folders named after labs (03-qos-loss/), is one student's\n"
      "    workspace, as mqlab init made it: the student is the id in .mqlab/student, else the\n"
      "    folder's name, and lab NN is graded from its NN-name/ folder;\n"
      "  - a folder holding a lab's files (a program in any form the kit runs: sensor.py, sensor.c,\n"
      "    sensor.lua, sensor.sh, sensor; or a data file: topics.txt) is one lab folder, of the student\n"
      "    the folder is named after;\n"
      "  - any other folder holding folders is a class: each child goes through the same rule;\n"
      "  - anything else (and, inside a class, a folder with no submission anywhere in it) is a\n"
      "    student who handed in nothing.\n"
      "A lab a student did not hand in (no files, misnamed ones, or only the unchanged starter files)\n"
      "is reported as missing, with what was found, not as a 0. --student ID names the student of a\n"
      "single submission folder.\n"
      "Each submission is graded in its own worker process, with its own brokers, network and\n"
      "sandbox (grade refuses to run unsandboxed unless given --no-sandbox). --jobs N grades N at a\n"
      "time; the default keeps every core busy (eight per core, fewer when memory or descriptors are\n"
      "short). The verdicts are those of --jobs 1, printed in the order of students and labs. On a\n"
      "terminal a progress line shows what is done, what failed, the rate and the time left.\n"
      "Every grading is recorded in the gradebook (default ./gradebook.db) as soon as it ends. Ctrl-C\n"
      "stops everything and keeps what was graded; --resume then skips every student and lab whose\n"
      "files (by a hash of their contents) have not changed since their latest grading.\n"
      "--shard I/N grades one part of N of the students (I is 0-based: 0/3, 1/3, 2/3, as Kubernetes'\n"
      "JOB_COMPLETION_INDEX), each run into its own --db; mqlab gradebook merge joins them. A student's\n"
      "part is a hash of the student id, so it does not depend on the order or place of the folders;\n"
      "students of other parts are neither graded nor listed as missing.\n"
      "--format: text (a table and a class summary), json (the verdicts and the summary), csv (a row\n"
      "per student, a column per lab, the total), csv-checks (a row per submission, a column per\n"
      "check; one file per lab in --out DIR when there are several labs), junit (JUnit XML), gradescope\n"
      "(results.json; with several students, one DIR/STUDENT/results.json each, with --out DIR).\n"
      "Exit code: 0 when every submission was graded, 1 when some could not be, 2 bad usage, 3 missing\n"
      "tools, 130 interrupted.",
      "LABS es un laboratorio (03), una lista (01,03,05) o all. Cada DIR se mira con una regla:\n"
      "  - una carpeta con .mqlab/, o con carpetas con nombre de laboratorio (03-qos-loss/), es el\n"
      "    espacio de trabajo de un estudiante, como lo crea mqlab init: el estudiante es el id de\n"
      "    .mqlab/student, si no el nombre de la carpeta, y el laboratorio NN se evalúa en NN-nombre/;\n"
      "  - una carpeta con ficheros de un laboratorio (un programa en cualquier forma que el kit\n"
      "    ejecuta: sensor.py, sensor.c, sensor.lua, sensor.sh, sensor; o un fichero de datos:\n"
      "    topics.txt) es una carpeta de laboratorio, del estudiante que le da nombre;\n"
      "  - cualquier otra carpeta que contenga carpetas es una clase: cada hija pasa por la misma regla;\n"
      "  - lo demás (y, dentro de una clase, una carpeta sin ninguna entrega dentro) es un estudiante\n"
      "    que no entregó nada.\n"
      "Un laboratorio que un estudiante no entregó (sin ficheros, con nombres equivocados, o solo con los\n"
      "ficheros de partida sin cambios) sale como «sin entrega», con lo que se encontró, no como un 0.\n"
      "--student ID da el estudiante de una sola carpeta de entrega.\n"
      "Cada entrega se evalúa en su propio proceso, con sus brokers, su red y su aislamiento (grade no\n"
      "evalúa sin aislar salvo con --no-sandbox). --jobs N evalúa N a la vez; por defecto mantiene\n"
      "ocupados todos los núcleos (ocho por núcleo, menos si falta memoria o descriptores). Los\n"
      "veredictos son los de --jobs 1, en el orden de estudiantes y laboratorios. En un terminal, una\n"
      "línea de progreso muestra lo hecho, lo fallido, el ritmo y el tiempo que queda.\n"
      "Cada evaluación se guarda en el libro de notas (por defecto ./gradebook.db) en cuanto termina.\n"
      "Ctrl-C lo para todo y conserva lo evaluado; --resume se salta luego cada estudiante y\n"
      "laboratorio cuyos ficheros (por un hash de su contenido) no han cambiado desde su última evaluación.\n"
      "--shard I/N evalúa una parte de N de los estudiantes (I empieza en 0: 0/3, 1/3, 2/3, como\n"
      "JOB_COMPLETION_INDEX de Kubernetes), cada una en su propio --db; mqlab gradebook merge las une.\n"
      "La parte de un estudiante es un hash de su id, así que no depende del orden ni del sitio de las\n"
      "carpetas; los estudiantes de otras partes ni se evalúan ni salen como «sin entrega».\n"
      "--format: text (una tabla y un resumen de la clase), json (los veredictos y el resumen), csv (una\n"
      "fila por estudiante, una columna por laboratorio, el total), csv-checks (una fila por entrega, una\n"
      "columna por comprobación; un fichero por laboratorio en --out DIR si hay varios), junit (XML de\n"
      "JUnit), gradescope (results.json; con varios estudiantes, un DIR/ESTUDIANTE/results.json cada uno,\n"
      "con --out DIR).\n"
      "Código de salida: 0 si se evaluaron todas, 1 si alguna no se pudo, 2 uso incorrecto, 3 faltan\n"
      "herramientas, 130 interrumpido." },
    { "gradebook", "export [LABS] [--format F] [--attempt latest|best] [--db FILE] [--out DIR] | merge A.db B.db... --db OUT.db",
      "instructors: the gradebook's results, one per student and lab (merge: join shards)",
      "docentes: los resultados del libro de notas, uno por estudiante y laboratorio (merge: une partes)",
      "export writes one result per student and lab from the gradebook (default ./gradebook.db): the\n"
      "latest attempt (--attempt latest, the default) or the best (--attempt best). A re-grade replaces\n"
      "a result instead of counting twice. LABS (03, 01,03 or all) narrows it; the default is all.\n"
      "--format: csv (default; a row per student, a column per lab), csv-checks, json, junit,\n"
      "gradescope or text, as in mqlab grade.\n"
      "merge joins gradebooks (the parts of mqlab grade --shard, graded apart) into a new one, --db\n"
      "OUT.db, written whole or not at all (built beside it, then renamed): students, attempts with their\n"
      "checks, hints and guided steps. An attempt found in two inputs counts once, so its export is that\n"
      "of one grading of the whole class. A file that is not a gradebook, or of another schema version,\n"
      "is refused with its name, and nothing is written. Exit code: 0 merged, 2 bad usage or a refused\n"
      "input, 1 the output could not be written.",
      "export escribe un resultado por estudiante y laboratorio a partir del libro de notas (por defecto\n"
      "./gradebook.db): el último intento (--attempt latest, por defecto) o el mejor (--attempt best).\n"
      "Una reevaluación sustituye un resultado en vez de contar dos veces. LABS (03, 01,03 o all) lo\n"
      "acota; por defecto, todos.\n"
      "--format: csv (por defecto; una fila por estudiante, una columna por laboratorio), csv-checks,\n"
      "json, junit, gradescope o text, como en mqlab grade.\n"
      "merge une libros de notas (las partes de mqlab grade --shard, evaluadas por separado) en uno nuevo,\n"
      "--db SALIDA.db, escrito entero o nada (se hace a su lado y luego se renombra): estudiantes,\n"
      "intentos con sus comprobaciones, pistas y pasos guiados. Un intento que está en dos entradas cuenta\n"
      "una vez, así que su exportación es la de una sola evaluación de toda la clase. Un fichero que no es\n"
      "un libro de notas, o de otra versión del esquema, se rechaza con su nombre, y no se escribe nada.\n"
      "Código de salida: 0 unidos, 2 uso incorrecto o una entrada rechazada, 1 no se pudo escribir la salida." },
    { "classroom", "NN DIR [--student ID]", "instructors: a GitHub Classroom starter repository for lab NN",
      "docentes: un repositorio de partida de GitHub Classroom para el laboratorio NN",
      "DIR (new, or empty) gets the lab's folder with its starter files, a README with the lab's\n"
      "instructions in English and Spanish, and .github/workflows/classroom.yml. On every push the\n"
      "workflow builds the kit from source at a pinned tag (MQLAB_REF, from MQLAB_REPO: set both at the\n"
      "top of the file; no .deb is published), grades the lab once with mqlab check for the repository\n"
      "owner's GitHub login, and reports each check as a Classroom test worth its points\n"
      "(classroom-resources/autograding-command-grader@v1 and autograding-grading-reporter@v1).\n"
      "The feedback's language is the workflow's MQLAB_LANG (from --lang). The README's example\n"
      "parameters are those of --student ID (default: your-github-login).\n"
      "Exit code: 0 written, 2 an unknown lab, a DIR that is not empty, or a lab GitHub Classroom\n"
      "cannot take (fractional points).",
      "DIR (nueva o vacía) recibe la carpeta del laboratorio con sus ficheros de partida, un README con\n"
      "las instrucciones en inglés y en español, y .github/workflows/classroom.yml. En cada push el\n"
      "workflow compila el kit desde el código fuente en una etiqueta fija (MQLAB_REF, de MQLAB_REPO:\n"
      "fija las dos al principio del fichero; no se publica un .deb), evalúa el laboratorio una vez con\n"
      "mqlab check para el usuario de GitHub dueño del repositorio, y da cada comprobación como un test\n"
      "de Classroom que vale sus puntos (classroom-resources/autograding-command-grader@v1 y\n"
      "autograding-grading-reporter@v1). El idioma de los mensajes es el MQLAB_LANG del workflow (el de\n"
      "--lang). Los parámetros de ejemplo del README son los de --student ID (por defecto,\n"
      "your-github-login).\n"
      "Código de salida: 0 escrito, 2 un laboratorio desconocido, una DIR que no está vacía o un\n"
      "laboratorio que GitHub Classroom no admite (puntos con decimales)." },
    { "verify", "[NN... | PATH...]", "instructors: is a lab fit for a class? (every lab when none is named)",
      "docentes: ¿está un laboratorio listo para una clase? (todos si no se nombra ninguno)",
      "It checks, printing a row for each:\n"
      "  - the lab file loads (errors name file:line);\n"
      "  - every {{placeholder}} of the instructions and hints resolves, in es and en, for 8 sample students;\n"
      "  - the lab's title, check titles, hints and every inline {es=, en=} text have both languages;\n"
      "  - each reference solution scores full marks 3 times with the same verdict;\n"
      "  - the starter files score less than full marks;\n"
      "  - each known-bad submission loses exactly the checks its EXPECT names.\n"
      "A built-in lab's solutions and known-bads are solutions/NN-name/ and tests/bad/NN-name/ of the\n"
      "repository (the current folder, or where mqlab is); a lab on disk keeps them in its own folder,\n"
      "solution/ and bad/<case>/EXPECT, as mqlab new-lab makes it. Everything is graded as the student\n"
      "'reference'. PATH is a lab folder (./90-retained-config). Exit code: 0 when every row holds, 1 when\n"
      "one does not, 2 bad usage, 3 something is missing here.",
      "Comprueba, con una fila por cada cosa:\n"
      "  - el fichero del laboratorio carga (los errores dicen fichero:línea);\n"
      "  - cada {{marcador}} de las instrucciones y pistas se rellena, en es y en, para 8 estudiantes de muestra;\n"
      "  - el título, los títulos de las comprobaciones, las pistas y cada texto {es=, en=} tienen los dos idiomas;\n"
      "  - cada solución de referencia saca la nota máxima 3 veces con el mismo veredicto;\n"
      "  - los ficheros de partida sacan menos que la nota máxima;\n"
      "  - cada entrega mal a propósito pierde exactamente las comprobaciones que nombra su EXPECT.\n"
      "Las soluciones y entregas de un laboratorio incluido son solutions/NN-nombre/ y tests/bad/NN-nombre/\n"
      "del repositorio (la carpeta actual, o donde está mqlab); un laboratorio en disco las guarda en su\n"
      "carpeta, solution/ y bad/<caso>/EXPECT, como las crea mqlab new-lab. Todo se evalúa como el\n"
      "estudiante «reference». PATH es la carpeta de un laboratorio. Código de salida: 0 si todo se cumple,\n"
      "1 si algo no, 2 uso incorrecto, 3 falta algo en esta máquina." },
    { "new-lab", "NN-name [DIR]", "instructors: start a new lab (a folder that mqlab verify passes)",
      "docentes: empieza un laboratorio nuevo (una carpeta que pasa mqlab verify)",
      "Makes DIR/NN-name/ (DIR defaults to the current folder): a commented lab.lua with one working\n"
      "check, instructions.es.md and instructions.en.md, starter/, solution/, a known-bad submission\n"
      "bad/qos0/ with its EXPECT, and slides.es.md/slides.en.md. It never overwrites: an existing folder\n"
      "is an error. Use the lab with MQLAB_LABS=DIR (it is listed beside the built-in labs) or by its path:\n"
      "mqlab check ./NN-name. The guide is docs/authoring.md.",
      "Crea DIR/NN-nombre/ (DIR es la carpeta actual si no se indica): un lab.lua comentado con una\n"
      "comprobación que funciona, instructions.es.md e instructions.en.md, starter/, solution/, una\n"
      "entrega mal a propósito bad/qos0/ con su EXPECT, y slides.es.md/slides.en.md. Nunca sobrescribe:\n"
      "si la carpeta existe, es un error. Usa el laboratorio con MQLAB_LABS=DIR (sale junto a los\n"
      "incluidos) o por su ruta: mqlab check ./NN-nombre. La guía es docs/authoring.md." },
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
    if (strcmp(h->name, "broker") == 0) {
        char list[1024];
        broker_profile_list(list, sizeof list);
        printf("%s: %s\n", T("Profiles", "Perfiles"), list);
    }
    printf("\n%s\n", T("Common options: --lang es|en, --student ID, --help",
                       "Opciones comunes: --lang es|en, --student ID, --help"));
    return EXIT_PASS;
}

/* ------------------------------------------------------------ main */

typedef int (*command_fn)(int argc, char **argv);

static const struct { const char *name; command_fn fn; } commands[] = {
    { "init", cmd_init }, { "list", cmd_list }, { "show", cmd_show }, { "start", cmd_start }, { "check", cmd_check }, { "watch", cmd_watch },
    { "hint", cmd_hint }, { "progress", cmd_progress }, { "reset", cmd_reset }, { "run", cmd_run },
    { "broker", cmd_broker }, { "trace", cmd_trace }, { "bench", cmd_bench }, { "certs", cmd_certs }, { "grade", cmd_grade }, { "gradebook", cmd_gradebook },
    { "classroom", cmd_classroom }, { "verify", cmd_verify }, { "new-lab", cmd_new_lab }, { "doctor", cmd_doctor }, { "tour", cmd_tour },
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
        { "resume", no_argument, 0, 'R' }, { "out", required_argument, 0, 'o' },
        { "attempt", required_argument, 0, 'A' }, { "ws-port", required_argument, 0, 'W' },
        { "shard", required_argument, 0, 'K' },
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
        const char *port_arg = NULL, *ws_port_arg = NULL;
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
            case 'J': {
                char *end = NULL;
                long j = strtol(optarg, &end, 10);
                opt.jobs = end && *end == '\0' && j >= 1 && j <= 64 ? (int)j : -1;
                break;
            }
            case 'R': opt.resume = 1; break;
            case 'o': opt.out = optarg; break;
            case 'A': opt.attempt = optarg; break;
            case 'K': opt.shard = optarg; break;
            case 'p': port_arg = optarg; break;
            case 'W': ws_port_arg = optarg; break;
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
        const char *parg[2] = { port_arg, ws_port_arg };
        int *pdst[2] = { &opt.port, &opt.ws_port };
        for (int k = 0; k < 2; k++) {
            if (!parg[k]) continue;
            /* Checked once every option is read, so that --lang after it
             * still counts. Digits only, 1..65535: "1884x" or "99999" is
             * a usage error, not a broker that fails to start. --ws-port
             * also takes 0 (a free port) and "none". */
            if (k == 1 && strcmp(parg[k], "none") == 0) {
                opt.ws_port = -1;
                continue;
            }
            long v = 0;
            int ok = *parg[k] != '\0';
            for (const char *q = parg[k]; *q && ok; q++) {
                ok = *q >= '0' && *q <= '9';
                if (ok) v = v * 10 + (*q - '0');
                if (v > 65535) ok = 0;
            }
            if (!ok || v < (k == 1 ? 0 : 1)) {
                int r = k == 0 ? usage_error(cmd, T("--port wants a port number from 1 to 65535, digits only (not '%s')",
                                                    "--port quiere un número de puerto de 1 a 65535, solo dígitos (no «%s»)"), parg[k])
                               : usage_error(cmd, T("--ws-port wants a port number from 0 to 65535, or none (not '%s')",
                                                    "--ws-port quiere un número de puerto de 0 a 65535, o none (no «%s»)"), parg[k]);
                free(av);
                return r;
            }
            *pdst[k] = k == 1 && v == 0 ? -2 : (int)v;
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
    static const char *const makes_folders[] = { "check", "watch", "grade", "broker", "trace", "bench", "tour", "start" };
    for (size_t k = 0; k < sizeof makes_folders / sizeof *makes_folders; k++)
        if (strcmp(cmd, makes_folders[k]) == 0) sweep_leftovers();
    mq_init();
    int rc = fn(sub_argc, sub_argv);
    if (sub_argv != argv + i) free(sub_argv);
    mq_cleanup();
    fflush(stdout);
    return rc;
}
