/*
 * cmd_classroom.c - `mqlab classroom NN DIR`: a GitHub Classroom starter
 * repository for one lab.
 *
 * DIR gets the lab's folder as `mqlab init` writes it (its starter
 * files), a README with the lab's instructions in English and Spanish,
 * a .gitignore, and .github/workflows/classroom.yml. The workflow builds
 * the kit from source at a pinned tag (MQLAB_REF, from MQLAB_REPO: no
 * release .deb is published yet), grades the lab once with `mqlab check
 * --format json` for the repository owner's login, splits the verdict
 * into one small file per check under .mqlab-grading/, and then has one
 * classroom-resources/autograding-command-grader step per check, worth
 * the check's points, that only reads its file. The reporter step sums
 * them for Classroom.
 *
 * The command graders run their command with /bin/sh, in the checkout,
 * with only PATH and HOME in the environment: so the per-check commands
 * use relative paths and nothing else.
 *
 * Everything is written into a sibling folder first and renamed into
 * place at the end: DIR is either complete or not there.
 */
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The tag the workflow builds by default, and the placeholder URL of the
 * kit's repository (the instructor sets the real one). */
#define CLASSROOM_REF "v0.1.0"
#define CLASSROOM_REPO "https://github.com/YOUR-ORG/mqlab.git"
/* The Ubuntu (ubuntu-latest) packages the kit needs to build and to run
 * the terminal labs: debian-packages.txt minus the unit tests' CUnit and
 * the browser lab's chromium, nodejs and npm. */
#define CLASSROOM_APT "build-essential pkg-config libmosquitto-dev liblua5.4-dev libsqlite3-dev libssl-dev " \
                      "mosquitto mosquitto-clients lua5.4 sqlite3 python3 python3-paho-mqtt bubblewrap openssl procps"

typedef struct {
    char *id, *step, *title_en, *title_es;
    double points;
} cr_check_t;

static void yaml_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\x%02x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static char *check_name(const cr_check_t *c)
{
    if (strcmp(c->title_en, c->title_es) == 0) return kit_strdup_printf("%s: %s", c->id, c->title_en);
    return kit_strdup_printf("%s: %s · %s", c->id, c->title_en, c->title_es);
}

static char *workflow_text(const char *lab, const cr_check_t *cs, int n, int browser)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fprintf(f,
        "# GitHub Classroom autograding for mqlab lab %s, written by `mqlab classroom`.\n"
        "# On every push: build the kit from source at MQLAB_REF, grade the lab once with\n"
        "# `mqlab check` for the repository owner's GitHub login, and report each check\n"
        "# as a Classroom test worth that check's points.\n"
        "# MQLAB_REPO is a placeholder: set it to the URL of the mqlab repository your\n"
        "# course uses, and MQLAB_REF to a tag of it. MQLAB_LANG (es or en) is the\n"
        "# language of the feedback.\n"
        "name: Autograding Tests\n"
        "'on':\n"
        "- push\n"
        "- workflow_dispatch\n"
        "- repository_dispatch\n"
        "permissions:\n"
        "  checks: write\n"
        "  actions: read\n"
        "  contents: read\n"
        "env:\n"
        "  MQLAB_REPO: \"" CLASSROOM_REPO "\"\n"
        "  MQLAB_REF: \"" CLASSROOM_REF "\"\n"
        "  MQLAB_LAB: \"%s\"\n"
        "  MQLAB_DIR: \"%s\"\n"
        "  MQLAB_LANG: \"%s\"\n"
        "jobs:\n"
        "  run-autograding-tests:\n"
        "    runs-on: ubuntu-latest\n"
        "    if: github.actor != 'github-classroom[bot]'\n"
        "    steps:\n"
        "    - name: Checkout code\n"
        "      uses: actions/checkout@v4\n"
        "    - name: Install the mqlab kit (built from source at MQLAB_REF)\n"
        "      id: mqlab-install\n"
        "      timeout-minutes: 15\n"
        "      run: |\n"
        "        sudo apt-get update -q\n"
        "        sudo apt-get install -y -q --no-install-recommends " CLASSROOM_APT "\n"
        "        # The package starts a system broker on 1883; the kit starts its own.\n"
        "        sudo systemctl disable --now mosquitto || true\n"
        "        git clone --quiet --depth 1 --branch \"$MQLAB_REF\" \"$MQLAB_REPO\" \"$RUNNER_TEMP/mqlab\"\n"
        "        make -C \"$RUNNER_TEMP/mqlab\" -j\"$(nproc)\"\n"
        "        echo \"MQLAB=$RUNNER_TEMP/mqlab/mqlab\" >> \"$GITHUB_ENV\"\n"
        "%s"
        "    - name: Grade lab %s once (mqlab check)\n"
        "      id: mqlab-grade\n"
        "      timeout-minutes: 10\n"
        "      run: |\n"
        "        rm -rf .mqlab-grading\n"
        "        mkdir .mqlab-grading\n"
        "        echo \"::group::mqlab show $MQLAB_LAB --student $GITHUB_REPOSITORY_OWNER\"\n"
        "        \"${MQLAB:-mqlab}\" show \"$MQLAB_LAB\" --student \"$GITHUB_REPOSITORY_OWNER\" || true\n"
        "        echo \"::endgroup::\"\n"
        "        rc=0\n"
        "        \"${MQLAB:-mqlab}\" check \"$MQLAB_LAB\" \"$MQLAB_DIR\" --student \"$GITHUB_REPOSITORY_OWNER\" \\\n"
        "          --no-record --format json > .mqlab-grading/verdict.json 2> .mqlab-grading/stderr.txt || rc=$?\n"
        "        cat .mqlab-grading/stderr.txt >&2\n"
        "        # One file per check: its first line passed, failed or skipped, then\n"
        "        # what the kit says about it. Without a verdict every check failed.\n"
        "        python3 - \"$rc\" <<'PY'\n"
        "        import json, sys\n"
        "        rc = int(sys.argv[1])\n"
        "        ids = \"",
        lab, lab, lab, opt.lang,
        browser ? "        # A page graded in headless Chrome: the runner's own Chrome, and the\n"
                  "        # mqtt.js the kit pins (npm ci into the kit's build/npm).\n"
                  "        echo \"MQLAB_CHROMIUM=$(command -v google-chrome || command -v chromium)\" >> \"$GITHUB_ENV\"\n"
                  "        sh \"$RUNNER_TEMP/mqlab/tests/deps.sh\" --npm\n" : "",
        lab);
    for (int i = 0; i < n; i++) fprintf(f, "%s%s", i ? " " : "", cs[i].id);
    fprintf(f, "\".split()\n"
        "        try:\n"
        "            with open(\".mqlab-grading/verdict.json\", encoding=\"utf-8\") as f:\n"
        "                checks = {c[\"id\"]: c for c in json.load(f).get(\"checks\", [])}\n"
        "        except (OSError, ValueError):\n"
        "            checks = {}\n"
        "        with open(\".mqlab-grading/stderr.txt\", encoding=\"utf-8\", errors=\"replace\") as f:\n"
        "            why = f.read().strip()\n"
        "        for cid in ids:\n"
        "            c = checks.get(cid)\n"
        "            if c:\n"
        "                state = \"passed\" if c.get(\"passed\") else \"skipped\" if c.get(\"skipped\") else \"failed\"\n"
        "                text = \"%%s (%%g/%%g): %%s\\n%%s\" %% (cid, c.get(\"points\", 0), c.get(\"max_points\", 0),\n"
        "                                              c.get(\"title\", \"\"), c.get(\"message\", \"\"))\n"
        "            else:\n"
        "                state = \"failed\"\n"
        "                text = \"%%s: mqlab check exited %%d without grading it\\n%%s\" %% (cid, rc, why)\n"
        "            with open(\".mqlab-grading/\" + cid, \"w\", encoding=\"utf-8\") as f:\n"
        "                f.write(state + \"\\n\" + text + \"\\n\")\n"
        "            print(state.upper(), text)\n"
        "        PY\n"
        "        # 0 and 1 are verdicts, 2 a folder that is no submission (every check\n"
        "        # failed, and says why); anything else is this machine's problem.\n"
        "        if [ \"$rc\" -gt 2 ]; then echo \"::error::mqlab check could not grade here (exit $rc)\"; exit \"$rc\"; fi\n");
    for (int i = 0; i < n; i++) {
        char *name = check_name(&cs[i]);
        fprintf(f, "    - name: ");
        yaml_quoted(f, name);
        fprintf(f, "\n      id: %s\n"
                   "      uses: classroom-resources/autograding-command-grader@v1\n"
                   "      with:\n"
                   "        test-name: ", cs[i].step);
        yaml_quoted(f, name);
        fprintf(f, "\n        setup-command: \"\"\n"
                   "        command: \"sed 1d .mqlab-grading/%s && head -n 1 .mqlab-grading/%s | grep -qx passed\"\n"
                   "        timeout: 1\n"
                   "        max-score: %g\n", cs[i].id, cs[i].id, cs[i].points);
        free(name);
    }
    fprintf(f, "    - name: Autograding Reporter\n"
               "      uses: classroom-resources/autograding-grading-reporter@v1\n"
               "      env:\n");
    for (int i = 0; i < n; i++) {
        char up[160];
        size_t k = 0;
        for (; cs[i].step[k] && k < sizeof up - 1; k++) up[k] = (char)toupper((unsigned char)cs[i].step[k]);
        up[k] = '\0';
        fprintf(f, "        %s_RESULTS: \"${{steps.%s.outputs.result}}\"\n", up, cs[i].step);
    }
    fprintf(f, "      with:\n        runners: ");
    for (int i = 0; i < n; i++) fprintf(f, "%s%s", i ? "," : "", cs[i].step);
    fputc('\n', f);
    if (fclose(f) != 0) { free(buf); return NULL; }
    return buf;
}

static char *readme_text(lab_t *lab, const char *lab_id, const char *nn, const char *title_en, const char *title_es,
                         const char *programs, const char *files, const cr_check_t *cs, int n, double total,
                         const char *example, char *err, size_t errlen)
{
    char *en = lab_instructions(lab, example, "en", err, errlen);
    if (!en) return NULL;
    char *esp = lab_instructions(lab, example, "es", err, errlen);
    if (!esp) { free(en); return NULL; }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) { free(en); free(esp); return NULL; }
    char *what = kit_strdup_printf("%s%s%s", programs, *programs && *files ? ", " : "", files);
    fprintf(f, "# mqlab %s · %s\n\n", lab_id, strcmp(title_en, title_es) ? title_en : title_es);
    if (strcmp(title_en, title_es)) fprintf(f, "*%s*\n\n", title_es);
    fprintf(f,
        "**English.** Your work goes in `%s/` (%s). Every push is graded by GitHub\n"
        "Classroom with the [mqlab](" CLASSROOM_REPO ") kit: the workflow in\n"
        "`.github/workflows/classroom.yml` runs `mqlab check %s` once, with your GitHub\n"
        "login as your student id, and each check below is a test worth its points: the\n"
        "Actions tab shows them on every push, with what the wire showed. Your own\n"
        "parameters (client ids, topics, the answers of the data files) come from your\n"
        "login: the ones in the instructions below are an example, for the student\n"
        "`%s`. Your own are in the log of the step \"Grade lab %s once\" (the group\n"
        "`mqlab show`), or on your machine:\n\n"
        "```sh\n"
        "mqlab show %s --student YOUR-GITHUB-LOGIN\n"
        "mqlab check %s %s --student YOUR-GITHUB-LOGIN --no-record\n"
        "```\n\n"
        "**Español.** Tu trabajo va en `%s/` (%s). GitHub Classroom evalúa cada push\n"
        "con el kit [mqlab](" CLASSROOM_REPO "): el workflow de\n"
        "`.github/workflows/classroom.yml` ejecuta `mqlab check %s` una vez, con tu\n"
        "usuario de GitHub como id de estudiante, y cada comprobación de abajo es un\n"
        "test que vale sus puntos: la pestaña Actions los muestra en cada push, con lo\n"
        "que se vio en el cable. Tus parámetros (ids de cliente, topics, las respuestas\n"
        "de los ficheros de datos) salen de tu usuario: los de las instrucciones de\n"
        "abajo son un ejemplo, para el estudiante `%s`. Los tuyos están en el registro\n"
        "del paso \"Grade lab %s once\" (el grupo `mqlab show`), o en tu máquina con\n"
        "`mqlab show %s --student TU-USUARIO-DE-GITHUB` y\n"
        "`mqlab check %s %s --student TU-USUARIO-DE-GITHUB --no-record`.\n\n"
        "| check | points · puntos | en | es |\n|---|---|---|---|\n",
        lab_id, what, nn, example, lab_id, nn, nn, lab_id,
        lab_id, what, nn, example, lab_id, nn, nn, lab_id);
    for (int i = 0; i < n; i++)
        fprintf(f, "| `%s` | %g | %s | %s |\n", cs[i].id, cs[i].points, cs[i].title_en, cs[i].title_es);
    fprintf(f, "| | **%g** | | |\n\n---\n\n", total);
    fputs(en, f);
    if (*en && en[strlen(en) - 1] != '\n') fputc('\n', f);
    fputs("\n---\n\n", f);
    fputs(esp, f);
    if (*esp && esp[strlen(esp) - 1] != '\n') fputc('\n', f);
    free(en);
    free(esp);
    free(what);
    if (fclose(f) != 0) { free(buf); return NULL; }
    return buf;
}

typedef struct {
    const char *dir;
    int failed;
} cr_starter_t;

/* A lab whose starter is a web page is graded in a browser. */
static int html_cb(void *ud, const char *name, const char *data, size_t len)
{
    (void)data;
    (void)len;
    size_t k = strlen(name);
    if (k > 5 && strcmp(name + k - 5, ".html") == 0) *(int *)ud = 1;
    return KIT_OK;
}

static int cr_starter_cb(void *ud, const char *name, const char *data, size_t len)
{
    cr_starter_t *c = ud;
    char err[KIT_ERRLEN];
    char *path = kit_strdup_printf("%s/%s", c->dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = kit_mkdir_p(path, 0755, err);
    *slash = '/';
    if (rc == KIT_OK) rc = kit_write_file_atomic(path, data, len, strstr(name, ".sh") ? 0755 : 0644, err);
    if (rc != KIT_OK) { fprintf(stderr, "mqlab classroom: %s\n", err); c->failed = 1; }
    free(path);
    return rc == KIT_OK ? KIT_OK : KIT_ERR;
}

static int write_in(const char *root, const char *name, const char *text)
{
    char err[KIT_ERRLEN];
    char *path = kit_strdup_printf("%s/%s", root, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = kit_mkdir_p(path, 0755, err);
    *slash = '/';
    if (rc == KIT_OK) rc = kit_write_file_atomic(path, text, strlen(text), 0644, err);
    if (rc != KIT_OK) fprintf(stderr, "mqlab classroom: %s\n", err);
    free(path);
    return rc;
}

/* 1 when dir exists and holds anything. */
static int non_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)))
        any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

static int valid_check_id(const char *s)
{
    if (!*s || *s == '-' || *s == '.') return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.')) return 0;
    return 1;
}

int cmd_classroom(int argc, char **argv)
{
    if (argc != 2)
        return usage_error("classroom", "%s", T("expects a lab and a folder: mqlab classroom 01 DIR",
                                                "espera un laboratorio y una carpeta: mqlab classroom 01 DIR"));
    /* "repo/" and "repo" are one folder: the sibling built beside it and
     * renamed into place must not land inside it. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    for (size_t k = strlen(dir); k > 1 && dir[k - 1] == '/'; k--) dir[k - 1] = '\0';
    if (!*dir || strcmp(dir, "/") == 0)
        return usage_error("classroom", T("%s cannot hold the repository: give a new or empty folder",
                                          "%s no puede contener el repositorio: indica una carpeta nueva o vacía"), argv[1]);
    if (kit_file_exists(dir) && !kit_is_dir(dir))
        return usage_error("classroom", T("%s exists and is not a folder", "%s existe y no es una carpeta"), dir);
    if (non_empty_dir(dir))
        return usage_error("classroom", T("%s is not empty: give a new or empty folder",
                                          "%s no está vacía: indica una carpeta nueva o vacía"), dir);
    host_t *h = new_host();
    if (!h) return EXIT_ENV;
    lab_t *lab;
    int rc = load_lab(h, "classroom", argv[0], &lab);
    if (rc != EXIT_PASS) { host_free(h); return rc; }
    const char *id = lab_id(lab);
    char nn[8];
    snprintf(nn, sizeof nn, "%.2s", id);

    lab_info_t ien, ies;
    lab_describe(lab, "en", &ien);
    lab_describe(lab, "es", &ies);
    int n = ien.nchecks;
    cr_check_t *cs = calloc((size_t)(n > 0 ? n : 1), sizeof *cs);
    double total = 0;
    char err[4096];
    for (int i = 0; i < n && rc == EXIT_PASS; i++) {
        char *cid, *ces;
        double pes;
        if (lab_check_info(lab, i, "en", &cs[i].id, &cs[i].title_en, &cs[i].points) != KIT_OK ||
            lab_check_info(lab, i, "es", &cid, &ces, &pes) != KIT_OK) {
            fprintf(stderr, "mqlab classroom: %s: %s %d\n", id, T("cannot read check", "no se puede leer la comprobación"), i + 1);
            rc = EXIT_USAGE;
            break;
        }
        free(cid);
        cs[i].title_es = ces;
        total += cs[i].points;
        if (!valid_check_id(cs[i].id)) {
            fprintf(stderr, T("mqlab classroom: %s: check id '%s' has characters a file name or a workflow step id cannot hold "
                              "(letters, digits, '-', '_' and '.' only)\n",
                              "mqlab classroom: %s: el id de comprobación «%s» tiene caracteres que no caben en un nombre de "
                              "fichero ni en el id de un paso (solo letras, dígitos, '-', '_' y '.')\n"), id, cs[i].id);
            rc = EXIT_USAGE;
        } else if (cs[i].points != (double)(long)cs[i].points || cs[i].points < 0) {
            /* autograding-command-grader reads max-score with parseInt. */
            fprintf(stderr, T("mqlab classroom: %s: check '%s' is worth %g points; GitHub Classroom's tests take whole points only\n",
                              "mqlab classroom: %s: la comprobación «%s» vale %g puntos; los tests de GitHub Classroom solo admiten puntos enteros\n"),
                    id, cs[i].id, cs[i].points);
            rc = EXIT_USAGE;
        }
        char *step = kit_strdup_printf("check-%s", cs[i].id);
        for (char *p = step; *p; p++) *p = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '-';
        cs[i].step = step;
    }
    for (int i = 0; i < n && rc == EXIT_PASS; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(cs[i].step, cs[j].step) == 0) {
                fprintf(stderr, "mqlab classroom: %s: %s '%s' / '%s'\n", id,
                        T("two checks give the same workflow step id:", "dos comprobaciones dan el mismo id de paso:"),
                        cs[j].id, cs[i].id);
                rc = EXIT_USAGE;
            }

    /* Build everything in a sibling folder, then rename it into place. */
    char *tmp = kit_strdup_printf("%s.partial-%d", dir, (int)getpid());
    char *wf = NULL, *readme = NULL;
    if (rc == EXIT_PASS) {
        int browser = 0;
        lab_starter_files(id, html_cb, &browser);
        wf = workflow_text(id, cs, n, browser);
        readme = readme_text(lab, id, nn, ien.title, ies.title, ien.programs, ien.files, cs, n, total,
                             opt.student ? opt.student : "your-github-login", err, sizeof err);
        if (!wf || !readme) {
            fprintf(stderr, "mqlab classroom: %s\n", readme ? strerror(errno) : err);
            rc = EXIT_USAGE;
        }
    }
    if (rc == EXIT_PASS) {
        kit_rm_rf(tmp);
        char *ldir = kit_strdup_printf("%s/%s", tmp, id);
        cr_starter_t sc = { .dir = ldir };
        static const char gitignore[] =
            "# what grading leaves in the checkout (the workflow's, and mqlab's own)\n"
            ".mqlab-grading/\n.mqlab/progress.db*\n__pycache__/\n";
        if (kit_mkdir_p(ldir, 0755, err) != KIT_OK) { fprintf(stderr, "mqlab classroom: %s\n", err); rc = EXIT_USAGE; }
        else if (lab_starter_files(id, cr_starter_cb, &sc) != KIT_OK || sc.failed) rc = EXIT_USAGE;
        else if (write_in(tmp, "README.md", readme) != KIT_OK || write_in(tmp, ".gitignore", gitignore) != KIT_OK ||
                 write_in(tmp, ".github/workflows/classroom.yml", wf) != KIT_OK) rc = EXIT_USAGE;
        free(ldir);
        if (rc == EXIT_PASS) {
            if (kit_is_dir(dir) && rmdir(dir) != 0) {
                fprintf(stderr, "mqlab classroom: %s: %s\n", dir, strerror(errno));
                rc = EXIT_USAGE;
            } else if (rename(tmp, dir) != 0) {
                fprintf(stderr, "mqlab classroom: %s -> %s: %s\n", tmp, dir, strerror(errno));
                rc = EXIT_USAGE;
            }
        }
        if (rc != EXIT_PASS) kit_rm_rf(tmp);
    }
    if (rc == EXIT_PASS) {
        printf(T("GitHub Classroom starter repository for lab %s in %s: %d checks, %g points.\n",
                 "Repositorio de partida de GitHub Classroom para el laboratorio %s en %s: %d comprobaciones, %g puntos.\n"),
               id, dir, n, total);
        printf(T("Before you use it as the assignment's template, set MQLAB_REPO (now %s) and MQLAB_REF (now %s)\n"
                 "in %s/.github/workflows/classroom.yml.\n",
                 "Antes de usarlo como plantilla de la tarea, fija MQLAB_REPO (ahora %s) y MQLAB_REF (ahora %s)\n"
                 "en %s/.github/workflows/classroom.yml.\n"), CLASSROOM_REPO, CLASSROOM_REF, dir);
    }
    free(tmp);
    free(wf);
    free(readme);
    for (int i = 0; i < n; i++) { free(cs[i].id); free(cs[i].step); free(cs[i].title_en); free(cs[i].title_es); }
    free(cs);
    lab_info_clear(&ien);
    lab_info_clear(&ies);
    lab_free(lab);
    host_free(h);
    return rc;
}
