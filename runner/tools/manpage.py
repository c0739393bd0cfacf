#!/usr/bin/env python3
"""manpage.py - write mqlab(1) from mqlab's own help, in English or Spanish.

    python3 runner/tools/manpage.py MQLAB en|es OUT.1

The commands come from `mqlab --help` and each command's text from
`mqlab COMMAND --help` (trace's and bench's carry their own options), so
the man page covers every command and option the binary has, in the
language asked for, and cannot drift from it. The sections around them
(environment, files, exit status) are written here, in both languages.

The binary runs with a throw-away HOME and MQLAB_DB: nothing of the
caller's home is read or written. OUT is written whole or not at all.
Standard library only. Exit codes: 0 written, 1 mqlab failed or the
file could not be written, 2 wrong usage.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

TEXT = {
    "en": {
        "name": "MQTT labs graded from what happens on the wire",
        "synopsis": "Synopsis", "description": "Description", "commands": "Commands",
        "environment": "Environment", "files_h": "Files", "exit": "Exit status", "see": "See also",
        "intro": (
            "mqlab runs graded MQTT labs against real Mosquitto brokers it starts itself, on "
            "127.0.0.1, behind a proxy that sees every packet. The labs, their instructions and the "
            "kit's Lua modules are built into the binary. Options may come before or after the "
            "command. Every command takes --help, --lang es|en and --student ID."),
        "env": [
            ("MQLAB_LANG", "the language (es or en) when --lang is not given; then LC_ALL and LANG."),
            ("MQLAB_STUDENT", "the student id (default: $USER) that chooses a student's topics, ids and plant."),
            ("MQLAB_DB", "the attempts database (default: .mqlab/progress.db in the workspace, else "
                         "$XDG_DATA_HOME/mqlab/progress.db or ~/.local/share/mqlab/progress.db)."),
            ("MQLAB_LABS", "folders of labs on disk, listed beside the built-in ones (see new-lab)."),
            ("MQLAB_CERTS", "the folder of the kit's PKI for the TLS labs (see certs)."),
            ("MQLAB_MOSQUITTO", "the mosquitto binary to run (default: the one on PATH or in /usr/sbin)."),
            ("MQLAB_PYTHON", "the Python (with paho-mqtt) that runs students' .py programs."),
            ("MQLAB_CHROMIUM", "the Chromium that grades the browser labs (default /usr/bin/chromium)."),
            ("MQLAB_MQTTJS", "a mqtt.min.js for the browser labs (default: "
                             "/usr/share/mqlab/npm/node_modules/mqtt/dist/mqtt.min.js)."),
            ("NO_COLOR", "no colours in the output."),
        ],
        "files": [
            ("~/.local/share/mqlab/", "the attempts database and, in certs/, the kit's PKI."),
            ("./mqlab-work/", "the workspace mqlab init makes: one folder per lab."),
            ("./gradebook.db", "the gradebook of mqlab grade and mqlab gradebook."),
            ("/usr/share/doc/mqlab/", "the README (with the instructor guide), docs/authoring.md "
                                      "(writing labs) and the slides of each lab, in Markdown and HTML."),
        ],
        "exits": [("0", "all passed, or done"), ("1", "a check failed"),
                  ("2", "wrong usage or a bad input file"),
                  ("3", "the machine lacks something, and mqlab says what"),
                  ("130", "interrupted (Ctrl-C)")],
    },
    "es": {
        "name": "laboratorios MQTT evaluados con lo que pasa en el cable",
        "synopsis": "Sinopsis", "description": "Descripción", "commands": "Órdenes",
        "environment": "Entorno", "files_h": "Ficheros", "exit": "Código de salida", "see": "Véase también",
        "intro": (
            "mqlab ejecuta laboratorios MQTT evaluados contra brokers Mosquitto reales que arranca él "
            "mismo, en 127.0.0.1, tras un proxy que ve cada paquete. Los laboratorios, sus "
            "instrucciones y los módulos Lua del kit van dentro del binario. Las opciones pueden ir "
            "antes o después de la orden. Toda orden acepta --help, --lang es|en y --student ID."),
        "env": [
            ("MQLAB_LANG", "el idioma (es o en) si no se da --lang; después LC_ALL y LANG."),
            ("MQLAB_STUDENT", "el id de estudiante (por defecto: $USER), que elige sus topics, ids y planta."),
            ("MQLAB_DB", "la base de datos de intentos (por defecto: .mqlab/progress.db en el espacio de trabajo, "
                         "si no $XDG_DATA_HOME/mqlab/progress.db o ~/.local/share/mqlab/progress.db)."),
            ("MQLAB_LABS", "carpetas de laboratorios en disco, que salen junto a los incluidos (véase new-lab)."),
            ("MQLAB_CERTS", "la carpeta de la PKI del kit para los laboratorios TLS (véase certs)."),
            ("MQLAB_MOSQUITTO", "el binario mosquitto que se ejecuta (por defecto: el del PATH o de /usr/sbin)."),
            ("MQLAB_PYTHON", "el Python (con paho-mqtt) que ejecuta los programas .py."),
            ("MQLAB_CHROMIUM", "el Chromium que evalúa los laboratorios del navegador (por defecto /usr/bin/chromium)."),
            ("MQLAB_MQTTJS", "un mqtt.min.js para los laboratorios del navegador (por defecto: "
                             "/usr/share/mqlab/npm/node_modules/mqtt/dist/mqtt.min.js)."),
            ("NO_COLOR", "sin colores en la salida."),
        ],
        "files": [
            ("~/.local/share/mqlab/", "la base de datos de intentos y, en certs/, la PKI del kit."),
            ("./mqlab-work/", "el espacio de trabajo que crea mqlab init: una carpeta por laboratorio."),
            ("./gradebook.db", "el libro de notas de mqlab grade y mqlab gradebook."),
            ("/usr/share/doc/mqlab/", "el README (con la guía docente), docs/authoring.md (escribir "
                                      "laboratorios) y las diapositivas de cada laboratorio, en Markdown y HTML."),
        ],
        "exits": [("0", "todo correcto, o hecho"), ("1", "alguna comprobación falló"),
                  ("2", "uso incorrecto o un fichero de entrada erróneo"),
                  ("3", "falta algo en esta máquina, y mqlab dice qué"),
                  ("130", "interrumpido (Ctrl-C)")],
    },
}


def esc(s):
    """roff-escape one line of text: backslashes, hyphens, a leading . or '."""
    s = s.replace("\\", "\\e").replace("-", "\\-")
    if s[:1] in (".", "'"):
        s = "\\&" + s
    return s


def run(mqlab, env, lang, *args):
    r = subprocess.run([mqlab, "--lang", lang, *args], env=env, capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError("%s --lang %s %s exited %d: %s"
                           % (mqlab, lang, " ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout


def page(mqlab, lang, home):
    t = TEXT[lang]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
           "MQLAB_DB": os.path.join(home, "db"), "NO_COLOR": "1", "LANG": "C.UTF-8"}
    main = run(mqlab, env, lang, "--help")
    first = main.splitlines()[0]
    m = re.match(r"mqlab (\S+) - ", first)
    if not m:
        raise RuntimeError("unexpected first line of mqlab --help: %r" % first)
    version = m.group(1)
    cmds = re.findall(r"^  ([a-z][a-z-]*) +\S", main, re.M)
    if not cmds:
        raise RuntimeError("no commands in mqlab --help")

    # The date of the source (reproducible builds), else none.
    sde = os.environ.get("SOURCE_DATE_EPOCH", "")
    date = time.strftime("%Y-%m-%d", time.gmtime(int(sde))) if sde.isdigit() else ""
    out = ['.\\" Generated by runner/tools/manpage.py from mqlab %s\'s --help: do not edit.' % version,
           '.TH MQLAB 1 "%s" "mqlab %s" "mqlab"' % (date, version),
           ".SH %s" % ("NAME" if lang == "en" else "NOMBRE"),
           "mqlab \\- " + esc(t["name"]),
           ".SH " + t["synopsis"].upper(),
           ".B mqlab",
           "[\\-\\-lang es|en] \\fICOMMAND\\fR [\\fIARGS\\fR]" if lang == "en" else
           "[\\-\\-lang es|en] \\fIORDEN\\fR [\\fIARGS\\fR]",
           ".SH " + t["description"].upper(),
           esc(t["intro"]),
           ".SH " + t["commands"].upper()]
    for cmd in cmds:
        text = run(mqlab, env, lang, cmd, "--help").rstrip("\n").splitlines()
        usage = text[0].split(":", 1)[1].strip() if text and ":" in text[0] else "mqlab " + cmd
        out.append(".SS " + esc(usage))
        out.append(".nf")
        for line in text[1:]:
            out.append(esc(line) if line.strip() else "")
        out.append(".fi")
    out.append(".SH " + t["environment"].upper())
    for name, what in t["env"]:
        out += [".TP", ".B " + name, esc(what)]
    out.append(".SH " + t["files_h"].upper())
    for name, what in t["files"]:
        out += [".TP", ".I " + esc(name), esc(what)]
    out.append(".SH " + t["exit"].upper())
    for code, what in t["exits"]:
        out += [".TP", ".B " + code, esc(what)]
    out += [".SH " + t["see"].upper(), ".BR mosquitto (8),", ".BR mosquitto_sub (1),",
            ".BR mosquitto_pub (1)"]
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 4 or argv[2] not in TEXT:
        print("usage: manpage.py MQLAB en|es OUT.1", file=sys.stderr)
        return 2
    mqlab, lang, dest = os.path.abspath(argv[1]), argv[2], argv[3]
    try:
        with tempfile.TemporaryDirectory(prefix="mqlab-man-") as home:
            text = page(mqlab, lang, home)
        d = os.path.dirname(os.path.abspath(dest))
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".man-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        print("manpage.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
