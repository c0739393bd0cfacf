#!/usr/bin/env python3
"""Integration tests: the real mqlab binary against real Mosquitto brokers.

- every reference solution under solutions/ scores full marks;
- every known-bad submission under tests/bad/ loses exactly the checks its
  EXPECT file names (and their points), and nothing else;
- the starter files of every lab score less than full marks;
- the verdict contract (one JSON object, fields, exit codes, NN forms);
- the workspace commands (init, hint, progress, reset) and grade;
- mqlab classroom: the GitHub Classroom workflow's steps, run here, give
  each check's points (reference solution, a known-bad, the starter);
- nothing survives a check: no mosquitto, no student program, no temporary
  folder, also when mqlab gets SIGINT in the middle of one.

REPEAT=N grades each solution and bad submission N times and requires
identical verdicts (make test-repeat). Standard library only.
Output ends with "N passed, N failed".
"""
import json
import re
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MQLAB = os.environ.get("MQLAB_BIN") or os.path.join(ROOT, "mqlab")
REPEAT = int(os.environ.get("REPEAT", "1"))

passed = 0
failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"  ok    {name}")
    else:
        failed += 1
        print(f"  FAIL  {name}")
        if detail:
            for line in str(detail).splitlines()[:30]:
                print(f"        {line}")
    sys.stdout.flush()


# Every run gets a private TMPDIR and progress database, so the leak
# checks can look at exactly what this run made.
RUN_TMP = tempfile.mkdtemp(prefix="mqlab-itest-")

# And a private home: what defaults to ~/.local/share/mqlab (the progress
# database without MQLAB_DB, the kit's certificates when mqlab is not
# built beside a certs/ folder) lands there. The real one is compared
# before and after the run (check_real_home).
RUN_HOME = os.path.join(RUN_TMP, "home")
RUN_DATA = os.path.join(RUN_HOME, ".local", "share")
os.makedirs(RUN_DATA)
REAL_DATA = sorted({os.path.join(os.path.expanduser("~"), ".local", "share", "mqlab")} |
                   ({os.path.join(os.environ["XDG_DATA_HOME"], "mqlab")} if os.environ.get("XDG_DATA_HOME") else set()))


def data_snapshot():
    """Path -> (mtime, size) of everything in the real mqlab data folders."""
    snap = {}
    for top in REAL_DATA:
        for dirpath, dirnames, filenames in os.walk(top):
            for path in [dirpath] + [os.path.join(dirpath, n) for n in filenames]:
                try:
                    st = os.lstat(path)
                    snap[path] = (st.st_mtime_ns, st.st_size)
                except OSError:
                    pass
    return snap


REAL_DATA_BEFORE = data_snapshot()


def env_for(tmpdir):
    env = dict(os.environ)
    env["TMPDIR"] = tmpdir
    env["HOME"] = RUN_HOME
    env["XDG_DATA_HOME"] = RUN_DATA
    env["MQLAB_DB"] = os.path.join(RUN_TMP, "progress.db")
    env["NO_COLOR"] = "1"
    env.pop("MQLAB_STUDENT", None)
    env.pop("MQLAB_LABS", None)
    env["MQLAB_LANG"] = "en"
    return env


def mqlab(args, tmpdir=None, cwd=ROOT, timeout=120, extra_env=None):
    tmpdir = tmpdir or fresh_tmp()
    env = env_for(tmpdir)
    if extra_env:
        env.update(extra_env)
    p = subprocess.run([MQLAB] + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return p


_n = 0


_n_lock = __import__("threading").Lock()


def fresh_tmp():
    global _n
    with _n_lock:
        _n += 1
        n = _n
    d = os.path.join(RUN_TMP, f"t{n}")
    os.mkdir(d)
    return d


def leftovers(tmpdir):
    """What a finished mqlab left behind: files in its TMPDIR, processes
    whose command line names it."""
    files = os.listdir(tmpdir)
    # With a slash: t1 must not match the t12 of a grading running beside it.
    procs = subprocess.run(["pgrep", "-af", tmpdir.rstrip("/") + "/"], capture_output=True, text=True).stdout.strip()
    return files, procs


def grade(lab, folder):
    """Grade once; returns (exit code, verdict dict or None, stderr, leftovers)."""
    tmpdir = fresh_tmp()
    p = mqlab(["check", lab, folder, "--format", "json", "--no-record"], tmpdir=tmpdir)
    verdict = None
    try:
        lines = [l for l in p.stdout.splitlines() if l.strip()]
        if len(lines) == 1:
            verdict = json.loads(lines[0])
    except ValueError:
        verdict = None
    return p.returncode, verdict, p.stderr + p.stdout, leftovers(tmpdir)


def shape(v):
    """The part of a verdict that must not change between runs."""
    return (v["score"], v["max_score"], tuple((c["id"], c["passed"], c["skipped"]) for c in v["checks"]))


# MQLAB_TEST_LABS=11 or 05,11: solutions, known-bads and the lab-11 tests
# for those labs only (a lab's number or its full id).
TEST_LABS = [x.strip() for x in os.environ.get("MQLAB_TEST_LABS", "").split(",") if x.strip()]


def lab_wanted(lab):
    return not TEST_LABS or any(lab == x or lab.split("-")[0] == x for x in TEST_LABS)


def chromium_path():
    """The Chromium the kit would drive: $MQLAB_CHROMIUM, else the first on
    PATH; None when there is none."""
    return os.environ.get("MQLAB_CHROMIUM") or next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def browser_missing():
    """Why a browser lab (11-dashboard) cannot be graded here, or None."""
    chromium = chromium_path()
    if not chromium or not os.access(chromium, os.X_OK):
        return "Chromium is not installed (apt-get install chromium)"
    if not os.environ.get("MQLAB_MQTTJS") and not mqttjs_dir():
        return ("mqtt.js is not installed in build/npm (make deps; it needs Node's npm: apt-get install nodejs npm)"
                if shutil.which("npm") else "Node's npm is not installed, so make deps cannot fetch mqtt.js "
                "(apt-get install nodejs npm)")
    return None


_said_skip = set()


def lab_runnable(lab):
    """Whether this machine can grade lab; says once why not."""
    if not lab_wanted(lab):
        return False
    why = browser_missing() if lab.startswith("11-") else None
    if why:
        if lab not in _said_skip:
            print(f"  skip  {lab}: {why}")
            _said_skip.add(lab)
        return False
    return True


def solution_dirs():
    out = []
    base = os.path.join(ROOT, "solutions")
    for lab in sorted(os.listdir(base)):
        top = os.path.join(base, lab)
        if lab.startswith(".") or not os.path.isdir(top) or not lab_runnable(lab):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
            if any(not f.startswith(".") and f != "README.md" for f in filenames):
                out.append((lab, dirpath))
    return out


def bad_dirs():
    out = []
    base = os.path.join(ROOT, "tests", "bad")
    for lab in sorted(os.listdir(base)):
        top = os.path.join(base, lab)
        if lab.startswith(".") or not os.path.isdir(top) or not lab_runnable(lab):
            continue
        for name in sorted(os.listdir(top)):
            d = os.path.join(top, name)
            if os.path.isfile(os.path.join(d, "EXPECT")):
                out.append((lab, d))
    return out


def read_expect(d):
    ids = []
    with open(os.path.join(d, "EXPECT")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                ids.append(line)
    return ids


def rel(p):
    return os.path.relpath(p, ROOT)


# Solutions and known-bad submissions are graded a few at a time, as a
# class is: each grading has its own brokers, ports and TMPDIR, and the
# kit must give the same verdicts side by side as alone.
PARALLEL = max(1, int(os.environ.get("MQLAB_TEST_PARALLEL", "3")))


def grade_all(items):
    """Grade each (lab, folder) REPEAT times, PARALLEL at a time; returns
    {(lab, folder): [(code, verdict, out, leftovers), ...]} in run order."""
    from concurrent.futures import ThreadPoolExecutor
    jobs = [(lab, d) for lab, d in items for _ in range(REPEAT)]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(lambda job: grade(*job), jobs))
    out = {}
    for job, res in zip(jobs, results):
        out.setdefault(job, []).append(res)
    return out


def test_solutions():
    print("solutions score full marks")
    items = solution_dirs()
    results = grade_all(items)
    for lab, d in items:
        shapes = []
        for i, (code, v, out, (files, procs)) in enumerate(results[(lab, d)]):
            ok = code == 0 and v is not None and v["score"] == v["max_score"] and v["max_score"] > 0
            report(ok, f"{rel(d)} full marks (run {i + 1})", out if not ok else "")
            report(not files and not procs, f"{rel(d)} leaves nothing behind (run {i + 1})", f"{files} {procs}")
            if v:
                shapes.append(shape(v))
        if REPEAT > 1:
            report(len(set(shapes)) == 1 and len(shapes) == REPEAT, f"{rel(d)} same verdict {REPEAT} times", shapes)


def test_bad():
    print("known-bad submissions lose exactly their checks")
    items = bad_dirs()
    results = grade_all(items)
    for lab, d in items:
        expect = set(read_expect(d))
        shapes = []
        for i, (code, v, out, (files, procs)) in enumerate(results[(lab, d)]):
            if v is None:
                report(False, f"{rel(d)} (run {i + 1})", out)
                continue
            lost = {c["id"] for c in v["checks"] if not c["passed"]}
            known = {c["id"] for c in v["checks"]}
            lost_points = sum(c["max_points"] for c in v["checks"] if c["id"] in expect)
            ok = (code == 1 and lost == expect and not (expect - known)
                  and abs(v["score"] - (v["max_score"] - lost_points)) < 1e-9)
            detail = f"exit {code}; lost {sorted(lost)}; expected {sorted(expect)}\n" + "\n".join(
                f"{c['id']}: {c['message']}" for c in v["checks"] if (c["id"] in lost) != (c["id"] in expect))
            report(ok, f"{rel(d)} loses {sorted(expect)} (run {i + 1})", detail if not ok else "")
            report(not files and not procs, f"{rel(d)} leaves nothing behind (run {i + 1})", f"{files} {procs}")
            shapes.append(shape(v))
        if REPEAT > 1:
            report(len(set(shapes)) == 1 and len(shapes) == REPEAT, f"{rel(d)} same verdict {REPEAT} times", shapes)


def test_workspace():
    print("workspace: init, starter files, hint, progress, reset")
    ws = os.path.join(RUN_TMP, "ws")
    p = mqlab(["init", ws, "--student", "ana"])
    report(p.returncode == 0, "init makes a workspace", p.stderr)
    labs = sorted(d for d in os.listdir(ws) if not d.startswith("."))
    report(labs[:2] == ["01-hello", "02-topics"], "one folder per lab", labs)
    readme = open(os.path.join(ws, "01-hello", "README.md")).read()
    report("MQTT_CLIENT_ID" in readme and "{{" not in readme, "lab README has the student's parameters", readme[:300])
    # The workspace's own student and database.
    wenv = {"MQLAB_DB": ""}
    for lab in labs:
        tmpdir = fresh_tmp()
        p = mqlab(["check", lab[:2], "--format", "json"], tmpdir=tmpdir, cwd=os.path.join(ws, lab), extra_env=wenv)
        try:
            v = json.loads(p.stdout)
            ok = p.returncode == 1 and v["score"] < v["max_score"] and v["student"] == "ana"
        except ValueError:
            ok, v = False, p.stdout
        report(ok, f"starter files of {lab} score less than full marks", p.stderr + str(v)[:300])
    # init again keeps the student's edits.
    path = os.path.join(ws, "01-hello", "filters.txt")
    with open(path, "w") as f:
        f.write("F1 mine\n")
    p = mqlab(["init", ws])
    report(p.returncode == 0 and open(path).read() == "F1 mine\n", "init never overwrites a file", p.stdout + p.stderr)
    h1 = mqlab(["hint", "01"], cwd=ws, extra_env=wenv)
    h2 = mqlab(["hint", "1"], cwd=ws, extra_env=wenv)
    report(h1.returncode == 0 and " 1/" in h1.stdout and " 2/" in h2.stdout, "hints come in order", h1.stdout + h2.stdout)
    p = mqlab(["progress", "--json"], cwd=ws, extra_env=wenv)
    try:
        prog = json.loads(p.stdout)
        l1 = [l for l in prog["labs"] if l["lab"] == "01-hello"][0]
        ok = prog["student"] == "ana" and l1["attempts"] == 1 and l1["hints_used"] == 2 and not l1["passed"]
    except (ValueError, KeyError, IndexError):
        ok = False
    report(ok, "progress counts attempts and hints", p.stdout + p.stderr)
    p = mqlab(["reset", "01"], cwd=ws, extra_env=wenv)
    p2 = mqlab(["progress", "--json"], cwd=ws, extra_env=wenv)
    try:
        l1 = [l for l in json.loads(p2.stdout)["labs"] if l["lab"] == "01-hello"][0]
        ok = p.returncode == 0 and l1["attempts"] == 0 and l1["hints_used"] == 0
    except (ValueError, KeyError, IndexError):
        ok = False
    report(ok, "reset forgets a lab", p.stdout + p2.stdout)
    # Without MQLAB_DB, a lookup that missed the workspace would write to
    # the default database: the (private) home's, once a newcomer's real one.
    stray = os.path.join(RUN_DATA, "mqlab", "progress.db")
    report(os.path.isfile(os.path.join(ws, ".mqlab", "progress.db")) and not os.path.exists(stray),
           "the workspace's commands use its own database", stray if os.path.exists(stray) else "no .mqlab/progress.db")


def test_contract():
    print("verdict contract and usage errors")
    sol = os.path.join(ROOT, "solutions", "01-hello")
    for nn in ("1", "01", "01-hello"):
        code, v, out, _ = grade(nn, sol)
        ok = code == 0 and v is not None and v["lab"] == "01-hello"
        report(ok, f"NN may be {nn}", out if not ok else "")
    code, v, out, _ = grade("01", sol)
    keys = {"lab", "student", "score", "max_score", "duration_s", "checks"}
    ckeys = {"id", "title", "passed", "skipped", "points", "max_points", "message"}
    ok = v is not None and keys <= set(v) and all(ckeys <= set(c) for c in v["checks"]) and v["student"] == "reference"
    report(ok, "JSON verdict has every field", out)
    for args, name in ((["check", "99", sol], "unknown lab"), (["check", "01", "/nonexistent"], "missing folder"),
                       (["check"], "no lab"), (["check", "01", "--bogus"], "unknown option"),
                       (["check", "01", sol, "--format", "xml"], "unknown format"), (["frobnicate"], "unknown command")):
        p = mqlab(args)
        report(p.returncode == 2 and p.stderr.strip() != "", f"exit 2 on {name}", f"exit {p.returncode}: {p.stderr}")
    for cmd in ("init", "list", "show", "check", "watch", "hint", "progress", "reset", "run", "broker", "trace", "bench", "certs",
                "grade", "doctor", "tour"):
        p = mqlab([cmd, "--help"])
        report(p.returncode == 0 and "mqlab " + cmd in p.stdout, f"{cmd} --help", p.stdout + p.stderr)
    p = mqlab(["--lang", "es", "check", "--help"])
    report("Uso" in p.stdout, "help in Spanish with --lang es", p.stdout)
    p = mqlab(["check", "01", sol], extra_env={"MQLAB_LANG": "", "LANG": "es_ES.UTF-8"})
    report("Nota:" in p.stdout, "Spanish from LANG", p.stdout[-200:])
    p = mqlab(["doctor"])
    report(p.returncode == 0, "doctor finds everything", p.stdout + p.stderr)
    tmpdir = fresh_tmp()
    p = mqlab(["check", "01", sol], tmpdir=tmpdir, extra_env={"MQLAB_MOSQUITTO": "/nonexistent/mosquitto"})
    files, procs = leftovers(tmpdir)
    report(p.returncode == 3 and "apt-get install -y mosquitto" in p.stderr and not files,
           "exit 3 with the install command when mosquitto is missing", f"exit {p.returncode}: {p.stderr} {files}")


def test_grade():
    print("instructors: grade")
    subs = os.path.join(RUN_TMP, "class")
    os.mkdir(subs)
    for name, src in (("ana", "solutions/01-hello"), ("bea", "tests/bad/01-hello/no-subscribe")):
        dst = os.path.join(subs, name)
        os.mkdir(dst)
        for f in os.listdir(os.path.join(ROOT, src)):
            if f != "EXPECT" and os.path.isfile(os.path.join(ROOT, src, f)):
                with open(os.path.join(ROOT, src, f), "rb") as a, open(os.path.join(dst, f), "wb") as b:
                    b.write(a.read())
    db = os.path.join(RUN_TMP, "gradebook.db")
    # The class's parameters are per student: ana's and bea's differ from
    # the reference ones, so only the program checks can pass. Grade with
    # MQLAB_STUDENT unset: the folder name is the student id.
    tmpdir = fresh_tmp()
    p = mqlab(["grade", "01", os.path.join(subs, "ana"), os.path.join(subs, "bea"), "--format", "csv-checks", "--db", db],
              tmpdir=tmpdir)
    rows = [r for r in p.stdout.splitlines() if r]
    ok = p.returncode == 0 and len(rows) == 3 and rows[0].startswith("student,lab,score") and \
        rows[1].startswith("ana,01-hello") and rows[2].startswith("bea,01-hello")
    report(ok, "grade --format csv-checks: a header and one row per student", p.stdout + p.stderr)
    try:
        con = sqlite3.connect(db)
        n = con.execute("select count(*) from attempts where lab='01-hello'").fetchone()[0]
        students = sorted(r[0] for r in con.execute("select id from students"))
        con.close()
        ok = n == 2 and students == ["ana", "bea"]
    except sqlite3.Error as e:
        ok, n, students = False, str(e), []
    report(ok, "grade keeps results in the gradebook", f"{n} {students}")
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "grade leaves nothing behind", f"{files} {procs}")
    p = mqlab(["grade", "01", os.path.join(subs, "ana"), "--format", "json", "--db", db])
    try:
        doc = json.loads(p.stdout)
        arr = doc["verdicts"]
        ok = isinstance(arr, list) and len(arr) == 1 and arr[0]["student"] == "ana" and \
            doc["summary"]["labs"][0]["lab"] == "01-hello"
    except (ValueError, KeyError, IndexError, TypeError):
        ok = False
    report(ok, "grade --format json: the verdicts and the class summary", p.stdout[:300])


def test_sigint():
    print("Ctrl-C in the middle of a check leaves nothing behind")
    sub = os.path.join(RUN_TMP, "sleeper")
    os.mkdir(sub)
    with open(os.path.join(sub, "hello.sh"), "w") as f:
        f.write("#!/bin/sh\n# connects to nothing and waits: the check is still running when Ctrl-C comes\nexec sleep 287\n")
    tmpdir = fresh_tmp()
    proc = subprocess.Popen([MQLAB, "check", "01", sub, "--no-record"], cwd=ROOT, env=env_for(tmpdir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until the broker and the program are both running.
    deadline = time.time() + 10
    broker = program = ""
    while time.time() < deadline:
        broker = subprocess.run(["pgrep", "-af", f"mosquitto -c {tmpdir}"], capture_output=True, text=True).stdout
        program = subprocess.run(["pgrep", "-af", "sleep 287"], capture_output=True, text=True).stdout
        if broker and program:
            break
        time.sleep(0.05)
    report(bool(broker) and bool(program), "the check was running (broker and program up)", f"{broker!r} {program!r}")
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    report(proc.returncode == 130, "mqlab exits 130 after SIGINT", f"exit {proc.returncode}: {err}")
    time.sleep(0.2)
    files, procs = leftovers(tmpdir)
    sleepers = subprocess.run(["pgrep", "-af", "sleep 287"], capture_output=True, text=True).stdout.strip()
    report(not files, "no temporary folder survives", files)
    report(not procs, "no mosquitto survives", procs)
    report(not sleepers, "no student program survives", sleepers)


def test_sweep():
    print("after kill -9, the next mqlab sweeps what the killed one left")
    sub = os.path.join(RUN_TMP, "sleeper-9")
    os.mkdir(sub)
    with open(os.path.join(sub, "hello.sh"), "w") as f:
        # The background sleep is mqlab's grandchild, which no parent-death
        # signal reaches: it outlives mqlab, holding the program's output
        # files (open on its stdout and stderr) in mqlab's temporary folder.
        f.write("#!/bin/sh\n# connects to nothing and waits: the check is still running when mqlab is killed\n"
                "sleep 3131 &\nexec sleep 3131\n")
    tmpdir = fresh_tmp()
    proc = subprocess.Popen([MQLAB, "check", "01", sub, "--no-record"], cwd=ROOT, env=env_for(tmpdir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def held():
        """pid -> command line of every live process of this check: its
        TMPDIR, its cwd or its command line is in tmpdir. Exact, where
        pgrep would also see another run's sleep 3131."""
        out = {}
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == proc.pid:
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                with open(f"/proc/{name}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
                cwd = os.readlink(f"/proc/{name}/cwd")     # fails for a zombie: it holds nothing
            except OSError:
                continue
            if ("TMPDIR=" + tmpdir).encode() in environ or tmpdir in cmd or cwd.startswith(tmpdir + "/"):
                out[int(name)] = cmd
        return out

    def running(procs):
        cmds = procs.values()
        return any("mosquitto" in c for c in cmds) and any(c == "sleep 3131" for c in cmds)

    deadline = time.time() + 20
    procs = held()
    while time.time() < deadline and proc.poll() is None and not running(procs):
        time.sleep(0.05)
        procs = held()
    report(running(procs), "the check was running (broker and program up)", procs)
    proc.kill()
    proc.wait()
    # Its folders stay, and so may processes that a parent-death signal
    # does not reach (the background sleep, a program in its sandbox).
    left, files = held(), os.listdir(tmpdir)
    report(any(f.startswith("mqlab-") for f in files), "kill -9 leaves mqlab's folders behind", f"{files} {left}")
    # doctor sweeps (cleanup_sweep), and so does every command that makes
    # temporary folders, before it makes its own.
    p = mqlab(["doctor"], tmpdir=tmpdir)
    files, procs = os.listdir(tmpdir), held()
    report(not files, "doctor removes the killed mqlab's folders", f"{files}\n{p.stdout}{p.stderr}")
    report(not procs, "and ends the processes that still held them", procs)
    # Whatever a failure left, so the rest of the run starts clean.
    for pid in held():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(tmpdir, ignore_errors=True)


def check_real_home():
    """The run never created or changed the real ~/.local/share/mqlab."""
    after = data_snapshot()
    changed = sorted(p for p in set(REAL_DATA_BEFORE) | set(after) if REAL_DATA_BEFORE.get(p) != after.get(p))
    report(not changed, f"the real {' or '.join(REAL_DATA)} was left alone", "\n".join(changed))


def start_trace(args, tmpdir):
    """Start `mqlab trace` in the background; returns (proc, port) once its
    banner (stderr with --format json) names the proxy's port."""
    proc = subprocess.Popen([MQLAB, "trace", "--port", "0", "--lang", "en"] + args, cwd=ROOT, env=env_for(tmpdir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = proc.stderr if "json" in args else proc.stdout
    deadline = time.time() + 10
    while time.time() < deadline:
        line = banner.readline()
        if not line:
            break
        m = re.search(r"proxy (?:on|en) 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    proc.communicate()
    return None, 0


def stop_trace(proc):
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def test_trace():
    print("mqlab trace: a live sequence diagram, with faults")
    p = mqlab(["trace", "--help"])
    report(p.returncode == 0 and "--drop" in p.stdout and "--cut-after" in p.stdout, "trace --help lists the faults", p.stdout)
    p = mqlab(["--lang", "es", "trace", "--help"])
    report(p.returncode == 0 and "Uso" in p.stdout, "trace --help in Spanish", p.stdout)
    for bad in (["--drop", "puback"], ["--drop", "down:frob:1"], ["--delay", "up:publish:1"], ["--port", "x"], ["--bogus"]):
        p = mqlab(["trace"] + bad)
        report(p.returncode == 2 and "mqlab trace:" in p.stderr, f"exit 2 on trace {' '.join(bad)}", f"exit {p.returncode}: {p.stderr}")

    # JSON lines, and a dropped PUBACK: the publisher never hears back.
    tmpdir = fresh_tmp()
    proc, port = start_trace(["--format", "json", "--drop", "down:puback:1"], tmpdir)
    report(proc is not None, "trace starts and prints its port", "")
    if proc is None:
        return
    pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-i", "tr-1",
                            "-t", "acme/v1/trace/temp", "-m", "hola"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    still_waiting = pub.poll() is None
    pub.kill()
    pub.wait()
    code, out, err = stop_trace(proc)
    events = []
    for line in out.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"bad": line})
    types = [(e.get("dir"), e.get("type"), e.get("fate")) for e in events if e.get("kind") == "packet"]
    report(all("bad" not in e for e in events) and len(events) > 0, "every stdout line is a JSON object", out)
    connect = [e for e in events if e.get("type") == "CONNECT"]
    report(bool(connect) and connect[0].get("client_id") == "tr-1" and connect[0].get("dir") == "up",
           "CONNECT up with the client id", types)
    pubs = [e for e in events if e.get("type") == "PUBLISH"]
    report(bool(pubs) and pubs[0].get("qos") == 1 and pubs[0].get("topic") == "acme/v1/trace/temp"
           and pubs[0].get("payload_len") == 4, "PUBLISH q1 with topic and size", types)
    report(("down", "PUBACK", "dropped") in types, "the first PUBACK is dropped", types)
    report(still_waiting, "so mosquitto_pub was still waiting for it", "")
    report(code == 0, "Ctrl-C stops trace with exit 0", f"exit {code}: {err}")
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "trace leaves no broker or folder behind", f"{files} {procs}")

    # Text: one line per packet, no colour when not a terminal.
    tmpdir = fresh_tmp()
    proc, port = start_trace(["--cut-after", "up:publish:1"], tmpdir)
    if proc is None:
        report(False, "trace (text) starts", "")
        return
    pub = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-i", "tr-2",
                          "-t", "acme/v1/trace/temp", "-m", "hola"], capture_output=True, text=True, timeout=20)
    code, out, err = stop_trace(proc)
    report("CONNECT id=tr-2" in out and "PUBLISH q1" in out and "\033[" not in out, "text lines, no colour in a pipe", out)
    report("forwarded, then cut" in out and "closed" in out, "--cut-after cuts the link after the PUBLISH",
           f"mosquitto_pub exit {pub.returncode}\n{out}")
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "trace (text) leaves nothing behind", f"{files} {procs}")


class TinyWs:
    """Just enough of a WebSocket client for the trace's push: the opening
    handshake, then the server's frames (unmasked). The text is split on
    newlines, as the page does, since the kit ends each event with one."""

    def __init__(self, port, path, protocol=None):
        import base64
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        proto = f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else ""
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"{proto}\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        head, _, self.raw = head.partition(b"\r\n\r\n")
        self.status = head.split(b"\r\n")[0].decode(errors="replace")
        self.text = b""
        self.objects = []

    def _frame(self, deadline):
        import socket
        def need(n):
            while len(self.raw) < n:
                self.sock.settimeout(max(0.05, deadline - time.time()))
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    return False
                if not chunk:
                    raise EOFError
                self.raw += chunk
            return True
        if not need(2):
            return None
        b0, b1 = self.raw[0], self.raw[1]
        n, at = b1 & 0x7f, 2
        if n == 126:
            if not need(4):
                return None
            n, at = int.from_bytes(self.raw[2:4], "big"), 4
        elif n == 127:
            if not need(10):
                return None
            n, at = int.from_bytes(self.raw[2:10], "big"), 10
        if not need(at + n):
            return None
        payload, self.raw = self.raw[at:at + n], self.raw[at + n:]
        return b0 & 0x0f, payload

    def read_until(self, pred, timeout=5):
        """Read events until pred(objects) holds or the time is up."""
        deadline = time.time() + timeout
        while not pred(self.objects) and time.time() < deadline:
            try:
                f = self._frame(deadline)
            except (EOFError, OSError):
                break
            if f is None:
                continue
            op, payload = f
            if op == 8:
                break
            if op not in (0, 1, 2):
                continue
            self.text += payload
            while b"\n" in self.text:
                line, _, self.text = self.text.partition(b"\n")
                if line.strip():
                    try:
                        self.objects.append(json.loads(line.decode()))
                    except ValueError:
                        self.objects.append({"bad": line.decode(errors="replace")})
        return pred(self.objects)

    def send(self, data):
        """One binary message, masked as a client must."""
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x82, 0x80 | n]) if n < 126 else bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def close(self):
        self.sock.close()


def test_trace_web():
    print("mqlab trace --web: the diagram as a page, its events over a WebSocket")
    import urllib.request
    p = mqlab(["trace", "--help"])
    report(p.returncode == 0 and "--web" in p.stdout and "--web-port" in p.stdout, "trace --help lists --web", p.stdout)
    p = mqlab(["--lang", "es", "trace", "--help"])
    report(p.returncode == 0 and "--web" in p.stdout and "proyector" in p.stdout, "trace --help in Spanish lists --web", p.stdout)
    p = mqlab(["trace", "--web-port", "x"])
    report(p.returncode == 2 and "--web-port" in p.stderr, "exit 2 on trace --web-port x", p.stderr)

    tmpdir = fresh_tmp()
    proc, port = start_trace(["--web", "--web-port", "0", "--ws-port", "0", "--drop", "down:puback:1"], tmpdir)
    report(proc is not None, "trace --web starts and prints its port", "")
    if proc is None:
        return
    web = wsport = 0
    deadline = time.time() + 10
    while time.time() < deadline and not web:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
        if m:
            wsport = int(m.group(1))
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m:
            web = int(m.group(1))
    report(wsport > 0, "--ws-port: the banner prints the ws:// URL", "")
    report(web > 0, "the banner prints the page's URL", "")
    if not web:
        stop_trace(proc)
        return
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=5) as r:
            status, ctype, body = r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except OSError as e:
        status, ctype, body = 0, "", str(e)
    external = re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", body)
    report(status == 200 and ctype.startswith("text/html") and "<title>mqlab trace" in body and "/events" in body
           and "<script>" in body and not external,
           "GET / is the page (HTML, its own script, nothing fetched from elsewhere)", f"{status} {ctype} {body[:300]}")

    early = TinyWs(web, "/events")
    report(early.status.startswith("HTTP/1.1 101"), "a WebSocket client is accepted on /events", early.status)
    got_hello = early.read_until(lambda objs: any(o.get("hello") for o in objs), timeout=5)
    hello = next((o for o in early.objects if o.get("hello")), {})
    report(got_hello and hello.get("lang") == "en" and hello.get("proxy_port") == port
           and hello.get("faults") == ["--drop down:puback:1"], "it hears a hello: lang, proxy port, faults", hello)

    # The PUBACK is dropped, so mosquitto_pub waits: it is stopped once the page has seen it all.
    pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-i", "tw-1",
                            "-t", "acme/v1/web/temp", "-m", "hola"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    early.read_until(lambda objs: any(o.get("type") == "PUBACK" for o in objs), timeout=8)
    pub.kill()
    pub.wait()
    early.read_until(lambda objs: any(o.get("kind") == "close" for o in objs), timeout=5)

    # A client over WebSockets (as a browser's mqtt.js would be): a CONNECT by hand.
    browser_like = TinyWs(wsport, "/mqtt", protocol="mqtt")
    cid = b"tw-ws"
    rest = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    browser_like.send(b"\x10" + bytes([len(rest)]) + rest)
    early.read_until(lambda objs: any(o.get("type") == "CONNACK" and o.get("cid") == "tw-ws" for o in objs), timeout=5)
    browser_like.close()
    early.read_until(lambda objs: any(o.get("kind") == "close" and o.get("cid") == "tw-ws" for o in objs), timeout=5)
    ws_events = [o for o in early.objects if o.get("cid") == "tw-ws"]
    report(ws_events and all(o.get("transport") == "ws" for o in ws_events)
           and any(o.get("type") == "CONNECT" for o in ws_events) and any(o.get("type") == "CONNACK" for o in ws_events),
           "a client over WebSockets: its events say transport ws", ws_events)
    ev = [o for o in early.objects if "seq" in o]
    connect = [o for o in ev if o.get("type") == "CONNECT"]
    pubs = [o for o in ev if o.get("type") == "PUBLISH"]
    report(bool(connect) and connect[0].get("client_id") == "tw-1" and connect[0].get("dir") == "up"
           and connect[0].get("transport") == "tcp", "the CONNECT is pushed, with client id and transport tcp", ev)
    report(bool(pubs) and pubs[0].get("topic") == "acme/v1/web/temp" and pubs[0].get("qos") == 1
           and pubs[0].get("payload") == "hola" and pubs[0].get("cid") == "tw-1",
           "the PUBLISH is pushed, with topic, QoS, payload and its connection's client id", ev)
    report(("down", "PUBACK", "dropped") in [(o.get("dir"), o.get("type"), o.get("fate")) for o in ev],
           "the dropped PUBACK is pushed as dropped", ev)
    seqs = [o["seq"] for o in ev]
    report(seqs == list(range(1, len(seqs) + 1)) and all("bad" not in o for o in early.objects),
           "events are numbered 1, 2, ... in order, each one JSON object", seqs)

    late = TinyWs(web, "/events")
    late.read_until(lambda objs: len([o for o in objs if "seq" in o]) >= len(ev), timeout=5)
    late_ev = {o["seq"]: o for o in late.objects if "seq" in o}
    report(late.status.startswith("HTTP/1.1 101") and all(late_ev.get(o["seq"]) == o for o in ev)
           and any(o.get("hello") for o in late.objects), "a page that connects after the exchange gets all of it",
           f"{len(late_ev)} of {len(ev)}")
    early.close()
    late.close()

    code, out, err = stop_trace(proc)
    report("CONNECT id=tw-1" in out and "PUBLISH q1" in out and "[dropped]" in out,
           "the terminal still prints the text lines", out)
    ws_lines = [l for l in out.splitlines() if "tw-ws" in l or "over ws" in l]
    tcp_lines = [l for l in out.splitlines() if "id=tw-1" in l]
    report(ws_lines and all("[ws]" in l for l in ws_lines) and tcp_lines and not any("[ws]" in l for l in tcp_lines),
           "text lines mark the WebSocket connection [ws], and only it", out)
    report(code == 0, "Ctrl-C stops trace --web with exit 0", f"exit {code}: {err}")
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "trace --web leaves nothing behind", f"{files} {procs}")

    # --quiet: no lines on the terminal, but the page still gets them.
    tmpdir = fresh_tmp()
    proc, port = start_trace(["--web", "--quiet"], tmpdir)
    web = 0
    while proc is not None and not web:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        web = int(m.group(1)) if m else 0
    if web:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "0", "-i", "tw-q",
                        "-t", "acme/q", "-m", "x"], capture_output=True, timeout=20)
        c = TinyWs(web, "/events")
        ok = c.read_until(lambda objs: any(o.get("type") == "PUBLISH" for o in objs), timeout=5)
        c.close()
        code, out, err = stop_trace(proc)
        report(ok and "PUBLISH" not in out and code == 0, "--web --quiet: the page gets the events, the terminal does not",
               out + err)
    else:
        report(False, "trace --web --quiet starts", "")
        if proc is not None:
            stop_trace(proc)
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "trace --web --quiet leaves nothing behind", f"{files} {procs}")

    # Headless Chromium loads the page during a short exchange, checks the
    # rows and the filter, and saves a screenshot (trace_web.lua).
    if not chromium_path():
        print("  skip  the page in headless Chromium: no chromium on PATH (nor MQLAB_CHROMIUM)")
        return
    tmpdir = fresh_tmp()
    # In Spanish: the page takes its language from the kit's --lang.
    proc, port = start_trace(["--web", "--ws-port", "0", "--drop", "down:puback:3", "--lang", "es"], tmpdir)
    web = wsport = 0
    while proc is not None and not web:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
        wsport = int(m.group(1)) if m else wsport
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        web = int(m.group(1)) if m else 0
    if not web:
        report(False, "trace --web starts for the browser", "")
        if proc is not None:
            stop_trace(proc)
        return
    shot = os.path.join(fresh_tmp(), "trace-web.png")   # not in tmpdir, which must end empty
    try:
        p = mqlab(["run", os.path.join("tests", "integration", "trace_web.lua"), str(web), str(port), str(wsport), shot, "es"],
                  tmpdir=tmpdir, timeout=90)
    finally:
        code, out, err = stop_trace(proc)
    skip = re.search(r"^skip: (.*)$", p.stdout, re.M)
    if skip:
        print(f"  skip  the page in headless Chromium: {skip.group(1)}")
    else:
        lines = [l for l in p.stdout.splitlines() if l.startswith(("ok ", "FAIL "))]
        for l in lines:
            if l.startswith("ok "):
                report(True, l[3:])
            else:
                name, _, detail = l[5:].partition(": ")
                report(False, name, detail)
        report(p.returncode == 0 and "done" in p.stdout and len(lines) >= 10, "trace_web.lua ran to the end",
               f"exit {p.returncode}: {p.stdout[-500:]} {p.stderr}")
        with open(shot, "rb") if os.path.exists(shot) else open(os.devnull, "rb") as f:
            head = f.read(8)
        report(head == b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG", head)
    report(code == 0, "Ctrl-C stops the browser's trace with exit 0", f"exit {code}: {err}")
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "the browser's trace leaves nothing behind", f"{files} {procs}")


def test_brokerconf():
    print("a student's mosquitto.conf, made safe to run")
    tmpdir = fresh_tmp()
    p = mqlab(["run", os.path.join("tests", "integration", "brokerconf.lua")], tmpdir=tmpdir, timeout=120)
    lines = [l for l in p.stdout.splitlines() if l.startswith(("ok ", "FAIL "))]
    fails = [l for l in lines if l.startswith("FAIL ")]
    for l in fails:
        name, _, detail = l[5:].partition(": ")
        report(False, name, detail)
    report(not fails and len(lines) >= 100, f"brokerconf.lua: {len(lines) - len(fails)} cases hold", "")
    report(p.returncode == 0 and "done" in p.stdout, "brokerconf.lua ran to the end", f"exit {p.returncode}: {p.stderr}")
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "brokerconf.lua leaves nothing behind", f"{files} {procs}")


def test_bench():
    print("mqlab bench: the pinned JSON contract")
    tmpdir = fresh_tmp()
    p = mqlab(["bench", "steady", "--clients", "5", "--rate", "500", "--qos", "1", "--size", "64", "--duration", "1",
               "--format", "json"], tmpdir=tmpdir, timeout=60)
    v = None
    try:
        v = json.loads(p.stdout)
    except ValueError:
        pass
    keys = {"mode", "clients", "qos", "sent", "acked", "received", "lost", "duplicates", "rate_sent", "rate_received",
            "latency_ms", "errors"}
    ok = (p.returncode == 0 and v is not None and keys <= set(v)
          and {"p50", "p90", "p99", "p999", "max"} <= set(v["latency_ms"]))
    report(ok, "steady --format json has every pinned field", p.stdout + p.stderr)
    if ok:
        report(v["mode"] == "steady" and v["clients"] == 5 and v["qos"] == 1 and v["sent"] > 0
               and v["acked"] == v["sent"] and v["received"] == v["sent"] and v["lost"] == 0 and v["errors"] == 0,
               "a QoS 1 steady run on the bundled broker delivers everything it sent", p.stdout)
    p = mqlab(["bench", "conn", "--clients", "200", "--hold", "0.5", "--format", "json"], tmpdir=tmpdir, timeout=60)
    v = None
    try:
        v = json.loads(p.stdout)
    except ValueError:
        pass
    ok = p.returncode == 0 and v is not None and {"connected", "failed", "connect_rate", "rss_mb"} <= set(v)
    report(ok and v["connected"] == 200 and v["failed"] == 0, "conn --format json: 200 connected, 0 failed",
           p.stdout + p.stderr)
    for bad in (["frob"], ["steady", "--qos", "3"], ["steady", "--bogus"]):
        p = mqlab(["bench"] + bad)
        report(p.returncode == 2 and p.stderr.strip() != "", f"exit 2 on bench {' '.join(bad)}", f"exit {p.returncode}")
    # A broker that goes away is heard at once, not at each publisher's
    # next message: 50 publishers at 2 msg/s in all send 24 messages in
    # 12 s, so most of them never publish after the broker stops; a
    # generator that noticed only when writing would keep them
    # "connected" until the end of the load.
    broker = LocalBroker(tmpdir)
    load_s, first = None, ""
    if broker.up:
        g = subprocess.Popen([MQLAB, "bench", "steady", "--host", "127.0.0.1", "--port", str(broker.port),
                              "--clients", "50", "--rate", "2", "--qos", "1", "--duration", "12",
                              "--format", "json"], cwd=ROOT, env=env_for(tmpdir),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and g.poll() is None and established(broker.port) < 51:
            time.sleep(0.1)
        broker.stop()
        try:
            out, err = g.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            g.kill()
            out, err = g.communicate()
        try:
            v = json.loads(out)
            load_s, first = v.get("load_s"), err
        except ValueError:
            first = out + err
    else:
        broker.stop()
    report(load_s is not None and load_s < 9 and "connection lost" in first,
           "steady: a broker that stops is heard at once, by publishers that rarely write", f"load_s {load_s}: {first}")
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "bench leaves no broker or folder behind", f"{files} {procs}")


def established(port):
    """Established TCP connections to 127.0.0.1:port, from /proc/net/tcp."""
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "01" and int(cols[2].split(":")[1], 16) == port:
                    n += 1
    except OSError:
        pass
    return n


class LocalBroker:
    """`mqlab broker bench` in the background on a free port, for runs
    that must share one broker (bench merge, --id-prefix, the bench Job);
    stopped with Ctrl-C, as a student would, and waited for."""

    def __init__(self, tmpdir):
        import socket
        self.port = free_port()
        self.log = os.path.join(RUN_TMP, f"broker-{self.port}.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([MQLAB, "broker", "bench", "--port", str(self.port), "--ws-port", "none"],
                                         cwd=ROOT, env=env_for(tmpdir), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        self.up = False
        while time.time() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                self.up = True
                break
            except OSError:
                time.sleep(0.2)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def bench_json(p):
    try:
        return json.loads(p.stdout)
    except ValueError:
        return None


def test_bench_merge():
    print("mqlab bench merge and --id-prefix: several generators against one broker")
    tmpdir = fresh_tmp()
    broker = LocalBroker(tmpdir)
    try:
        report(broker.up, "a bundled broker in the background", open(broker.log).read()[-800:])
        if not broker.up:
            return
        port = str(broker.port)
        d = os.path.join(RUN_TMP, "bench-merge")
        os.makedirs(d)

        def start(args, name):
            env = env_for(tmpdir)
            return subprocess.Popen([MQLAB, "bench"] + args + ["--port", port, "--format", "json"], cwd=ROOT, env=env,
                                    stdout=open(os.path.join(d, name), "w"), stderr=subprocess.PIPE, text=True)

        def finish(proc, name):
            try:
                _, err = proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            with open(os.path.join(d, name)) as f:
                text = f.read()
            try:
                v = json.loads(text)
            except ValueError:
                v = None
            return proc.returncode, v, text + err

        # Two bursts at once, different prefixes: both complete, no kicks.
        runs = [("a.json", ["burst", "--clients", "8", "--messages", "20000", "--qos", "1", "--id-prefix", "gen-0-"]),
                ("b.json", ["burst", "--clients", "6", "--messages", "15000", "--qos", "1", "--id-prefix", "gen-1-"])]
        procs = [(start(args, name), name) for name, args in runs]
        res = [finish(pr, name) for pr, name in procs]
        for (name, args), (rc, v, out) in zip(runs, res):
            report(rc == 0 and v is not None and v["errors"] == 0 and v["sent"] == int(args[4])
                   and v["received"] == v["sent"] and v["lost"] == 0,
                   f"burst {args[-1]}*: every message sent and received, no errors, beside the other", out[:1500])
            report(v is not None and {"latency_hist", "windows", "start_unix", "end_unix", "load_s"} <= set(v)
                   and v["latency_hist"]["count"] == v["received"]
                   and sum(n for _, n in v["latency_hist"]["buckets"]) == v["received"],
                   f"{name}: the whole latency histogram and the load window are in the JSON", out[:800])
        a, b = res[0][1], res[1][1]
        p = mqlab(["bench", "merge", os.path.join(d, "a.json"), os.path.join(d, "b.json"), "--format", "json"])
        m = bench_json(p)
        ok = p.returncode == 0 and m is not None and a is not None and b is not None
        report(ok and all(m[k] == a[k] + b[k] for k in ("sent", "acked", "received", "lost", "duplicates", "errors", "clients"))
               and m["runs"] == 2 and m["mode"] == "burst" and m["qos"] == 1
               and m["latency_hist"]["count"] == a["received"] + b["received"]
               and m.get("latency_corrected_hist", {}).get("count") == a["received"] + b["received"]
               and "latency_corrected_ms" in m,
               "merge: counts, clients and samples (raw and corrected latency) add up", p.stdout[:600] + p.stderr)
        if ok:
            lo, hi = min(a["start_unix"], b["start_unix"]), max(a["end_unix"], b["end_unix"])
            report(m["load_s"] <= hi - lo + 1e-3 and m["load_s"] >= max(a["load_s"], b["load_s"]) - 1e-3
                   and abs(m["rate_sent"] - m["sent"] / m["load_s"]) <= 0.1 + 1e-6 * m["rate_sent"],
                   "merge: the rate is the messages over the union of the two windows", json.dumps(
                       {k: m[k] for k in ("load_s", "rate_sent", "start_unix", "end_unix")}))
            report(m["latency_ms"]["max"] == max(a["latency_ms"]["max"], b["latency_ms"]["max"])
                   and min(a["latency_ms"]["p50"], b["latency_ms"]["p50"]) <= m["latency_ms"]["p50"]
                   <= max(a["latency_ms"]["p50"], b["latency_ms"]["p50"]),
                   "merge: the max is the larger max, the p50 lies between the two", json.dumps(m["latency_ms"]))
            with open(os.path.join(d, "ab.json"), "w") as f:
                f.write(p.stdout)
            q = mqlab(["bench", "merge", os.path.join(d, "ab.json")])
            report(q.returncode == 0 and f"{m['sent']}" in q.stdout and "2 runs" in q.stdout,
                   "a merge's JSON merges again; the text summary", q.stdout + q.stderr)
            q = mqlab(["bench", "merge", os.path.join(d, "a.json"), os.path.join(d, "b.json"), "--lang", "es"])
            report(q.returncode == 0 and "enviados" in q.stdout and "tiempo con carga" in q.stdout, "the summary in Spanish",
                   q.stdout)

        # Refusals, with the file named, exit 2.
        with open(os.path.join(d, "other.json"), "w") as f:
            f.write('{"name": "not a bench"}\n')
        with open(os.path.join(d, "text.txt"), "w") as f:
            f.write("mqlab bench burst\n  sent 10\n")
        s = mqlab(["bench", "steady", "--clients", "2", "--rate", "100", "--duration", "1", "--port", port,
                   "--id-prefix", "gen-2-", "--format", "json"], timeout=120)
        with open(os.path.join(d, "steady.json"), "w") as f:
            f.write(s.stdout)
        q0 = mqlab(["bench", "burst", "--clients", "2", "--messages", "500", "--qos", "0", "--port", port,
                    "--format", "json"], timeout=120)
        with open(os.path.join(d, "qos0.json"), "w") as f:
            f.write(q0.stdout)
        for bad, why in (("other.json", "not bench JSON"), ("text.txt", "not JSON"), ("steady.json", "another mode"),
                         ("qos0.json", "another QoS"), ("missing.json", "no such file")):
            p = mqlab(["bench", "merge", os.path.join(d, "a.json"), os.path.join(d, bad)])
            report(p.returncode == 2 and bad in p.stderr and not p.stdout.strip(),
                   f"merge refuses {why} naming {bad} (exit 2)", f"exit {p.returncode}: {p.stderr}")
        p = mqlab(["bench", "merge"])
        report(p.returncode == 2, "merge without files: exit 2", p.stderr)

        # Two steady runs at once, different prefixes: their load windows
        # overlap, and neither loses a client to the other.
        pa = start(["steady", "--clients", "5", "--rate", "200", "--duration", "4", "--id-prefix", "gen-0-"], "pa.json")
        pb = start(["steady", "--clients", "5", "--rate", "200", "--duration", "4", "--id-prefix", "gen-1-"], "pb.json")
        (rca, va, outa), (rcb, vb, outb) = finish(pa, "pa.json"), finish(pb, "pb.json")
        both = rca == 0 and rcb == 0 and va is not None and vb is not None
        report(both and va["start_unix"] < vb["end_unix"] and vb["start_unix"] < va["end_unix"]
               and va["errors"] == vb["errors"] == 0 and va["received"] == va["sent"] > 0
               and vb["received"] == vb["sent"] > 0,
               "two steady runs at the same time, prefixes gen-0- and gen-1-: both complete, no client kicked",
               outa[:700] + outb[:700])

        # Same prefix twice, at once: the broker gives the id to the newer
        # client and drops the older one, so the first run sees errors: an
        # end of stream, or a reset when the broker closed with a PUBLISH
        # of ours still unread (both are "connection lost").
        first = start(["steady", "--clients", "3", "--rate", "100", "--duration", "30", "--id-prefix", "same-"], "s1.json")
        time.sleep(2)
        rc2, v2, out2 = finish(start(["steady", "--clients", "3", "--rate", "100", "--duration", "2",
                                      "--id-prefix", "same-"], "s2.json"), "s2.json")
        rc1, v1, out1 = finish(first, "s1.json")
        report(v1 is not None and v1["errors"] > 0 and "connection lost" in out1 and v1["load_s"] < 30,
               "the same --id-prefix twice: the first run's clients are kicked off", out1[-600:])
        report(bool(broker.proc.poll() is None), "the broker is still up after all of it")
    finally:
        broker.stop()
    files, procs = leftovers(tmpdir)
    report(not procs, "no broker or bench left behind", procs)


def test_bench_k8s():
    """deploy/k8s/bench-job.yaml: every generator pod's exact command, at
    once, against one local broker, then the merge Job's command."""
    print("deploy/k8s/bench-job.yaml: N generators' commands against one broker, then their merge")
    try:
        import yaml
    except ImportError:
        print("  skip  (python3-yaml is not installed: cannot read the manifests)")
        return
    with open(os.path.join(ROOT, "deploy", "k8s", "bench-job.yaml")) as f:
        docs = {(x["kind"], x["metadata"]["name"]): x for x in yaml.safe_load_all(f)}
    gen, merge = docs.get(("Job", "mqlab-bench")), docs.get(("Job", "mqlab-bench-merge"))
    report(gen is not None and merge is not None and ("PersistentVolumeClaim", "mqlab-bench-results") in docs,
           "bench-job.yaml: the results volume, the generators' Job and the merge Job", list(docs))
    if not gen or not merge:
        return
    spec = gen["spec"]
    c = spec["template"]["spec"]["containers"][0]
    mc = merge["spec"]["template"]["spec"]["containers"][0]
    menv = {e["name"]: e.get("value", "") for e in mc.get("env", [])}
    n = int(menv.get("GENERATORS", 0))
    report(spec.get("completionMode") == "Indexed" and spec.get("completions") == n == spec.get("parallelism")
           and c.get("command") == ["sh", "-c"] and '--id-prefix "gen-$JOB_COMPLETION_INDEX-"' in c["args"][0]
           and c["image"] == mc["image"] == "registry.example.org/mqlab:0.1.0",
           "an Indexed Job of GENERATORS pods, all at once, each with --id-prefix gen-$JOB_COMPLETION_INDEX-",
           (spec, menv))

    tmpdir = fresh_tmp()
    broker = LocalBroker(tmpdir)
    root = os.path.join(RUN_TMP, "bench-k8s")
    results = os.path.join(root, "results")
    bindir = os.path.join(root, "bin")
    os.makedirs(results)
    os.makedirs(bindir)
    os.symlink(os.path.abspath(MQLAB), os.path.join(bindir, "mqlab"))

    def pod_env(container, index=None):
        e = env_for(tmpdir)
        e.update({x["name"]: x.get("value", "") for x in container.get("env", [])})
        e["PATH"] = bindir + os.pathsep + e.get("PATH", "")
        e["BROKER_HOST"] = "127.0.0.1"
        e["BROKER_PORT"] = str(broker.port)
        e["BENCH_ARGS"] = "--clients 4 --rate 200 --qos 1 --duration 3"   # small, for this machine
        e["MERGE_TIMEOUT"] = "60"
        if index is not None:
            e["JOB_COMPLETION_INDEX"] = str(index)
        return e

    try:
        report(broker.up, "a local broker for the pods")
        if not broker.up:
            return
        cmd = c["args"][0].replace("/results", results)
        pods = [subprocess.Popen(["sh", "-c", cmd], env=pod_env(c, i), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for i in range(n)]
        outs = []
        for pr in pods:
            try:
                outs.append(pr.communicate(timeout=300) + (pr.returncode,))
            except subprocess.TimeoutExpired:
                pr.kill()
                outs.append(pr.communicate() + (-9,))
        run = pod_env(c)["RUN"]
        runs = []
        for i, (out, err, rc) in enumerate(outs):
            path = os.path.join(results, run, f"gen-{i}.json")
            v = None
            if os.path.exists(path):
                try:
                    v = json.load(open(path))
                except ValueError:
                    pass
            runs.append(v)
            report(rc == 0 and v is not None and v["errors"] == 0 and v["sent"] > 0 and v["received"] == v["sent"],
                   f"pod {i}: gen-{i}.json, everything it sent received, no errors", f"exit {rc}: {err[-800:]}")
        p = subprocess.run(["sh", "-c", mc["args"][0].replace("/results", results)], env=pod_env(mc),
                           capture_output=True, text=True, timeout=300)
        mpath = os.path.join(results, run, "merged.json")
        m = json.load(open(mpath)) if os.path.exists(mpath) else None
        ok = p.returncode == 0 and m is not None and all(runs)
        report(ok and m["runs"] == n and all(m[k] == sum(r[k] for r in runs)
                                            for k in ("sent", "acked", "received", "lost", "errors", "clients"))
               and m["latency_hist"]["count"] == m["received"] and "sent" in p.stdout,
               f"the merge Job's command: merged.json adds up the {n} pods' counts, and prints the summary",
               f"exit {p.returncode}: {p.stdout[-600:]} {p.stderr[-600:]}")
        # Ids: while they ran, no pod was kicked by another (errors 0
        # above); the merge refuses to start before all N are there.
        os.unlink(os.path.join(results, run, f"gen-{n - 1}.json"))
        e = pod_env(mc)
        e["MERGE_TIMEOUT"] = "0"
        p = subprocess.run(["sh", "-c", mc["args"][0].replace("/results", results)], env=e,
                           capture_output=True, text=True, timeout=60)
        report(p.returncode != 0 and f"of {n} results" in p.stderr, "the merge Job fails when a result is missing",
               p.stderr)
    finally:
        broker.stop()
    files, procs = leftovers(tmpdir)
    report(not procs, "no broker or generator left behind", procs)

def test_bench_co():
    print("mqlab bench: corrected latency shows a stall that raw latency hides (coordinated omission)")
    # One publisher, QoS 1, 500 msg/s for 4 s (N = 2000) through the proxy,
    # which holds PUBLISH number 1000 (and what follows it, TCP order) for
    # D = 800 ms. The messages due in those 800 ms (400, 20%) arrive at the
    # end of the stall: corrected latency D - s for the one due at s, so
    # P(corrected > x) = (D - x) / 4 s, p90 about 800 - 400 = 400 ms,
    # p99.9 about 796 ms. Raw latency sees only the 100 written before the
    # window filled (5%): raw p90 is the normal few ms. bench/co.sh checks
    # the 5%; here the bounds are wide enough for a loaded machine.
    tmpdir = fresh_tmp()
    D = 800
    proc, port = start_trace(["--quiet", "--profile", "bench", "--delay", f"up:publish:1000:{D}"], tmpdir)
    report(proc is not None, "mqlab trace --delay up:publish:1000:800 starts")
    if proc is None:
        return
    try:
        p = mqlab(["bench", "steady", "--host", "127.0.0.1", "--port", str(port), "--clients", "1", "--qos", "1",
                   "--rate", "500", "--duration", "4", "--format", "json"], tmpdir=tmpdir, timeout=120)
    finally:
        stop_trace(proc)
    v = None
    try:
        v = json.loads(p.stdout)
    except ValueError:
        pass
    ok = (p.returncode == 0 and v is not None and "latency_ms" in v and "latency_corrected_ms" in v
          and {"p50", "p90", "p99", "p999", "max"} <= set(v["latency_corrected_ms"]))
    report(ok, "steady --format json has latency_ms and latency_corrected_ms", p.stdout + p.stderr)
    if ok:
        c, r = v["latency_corrected_ms"], v["latency_ms"]
        report(v["sent"] == 2000 and v["received"] == 2000 and v["lost"] == 0, "everything arrives after the stall",
               p.stdout)
        report(c["p999"] >= 0.6 * D and c["p999"] <= 3 * D, f"corrected p99.9 shows the {D} ms stall", p.stdout)
        report(c["p90"] >= 0.25 * D, "corrected p90 shows the stall (20% of the messages were due in it)", p.stdout)
        report(r["p90"] < 0.15 * D, "raw p90 hides it (the generator sent them late)", p.stdout)
        report(all(c[k] >= r[k] * 0.99 for k in ("p50", "p90", "p99", "p999", "max")),
               "corrected >= raw at every percentile", p.stdout)
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "the stalled run leaves no broker or folder behind", f"{files} {procs}")


def test_certs():
    print("mqlab certs: the kit's PKI")
    d = os.path.join(RUN_TMP, "pki")
    p = mqlab(["certs", d])
    names = sorted(os.listdir(d)) if os.path.isdir(d) else []
    want = ["ca", "server", "client", "impostor-ca", "impostor", "otherhost", "expired"]
    report(p.returncode == 0 and all(n + ".crt" in names and n + ".key" in names for n in want),
           "certs makes the CA, server, client, impostor, other-host and expired pairs", f"{p.returncode} {names} {p.stderr}")
    modes = {n: os.stat(os.path.join(d, n)).st_mode & 0o777 for n in names}
    report(all(m == 0o600 for n, m in modes.items() if n.endswith(".key")), "keys are readable only by their owner", modes)
    before = {n: os.stat(os.path.join(d, n)).st_mtime_ns for n in names}
    p = mqlab(["certs", d])
    after = {n: os.stat(os.path.join(d, n)).st_mtime_ns for n in names}
    report(p.returncode == 0 and before == after and "made" not in p.stdout, "a second run makes nothing", p.stdout)
    os.unlink(os.path.join(d, "otherhost.key"))
    p = mqlab(["certs", d])
    report(p.returncode == 0 and "otherhost.key" in p.stdout and "ca.crt" not in p.stdout,
           "a missing pair is made again, the CA is kept", p.stdout)
    v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "ca.crt"), os.path.join(d, "server.crt")],
                       capture_output=True, text=True)
    report(v.returncode == 0, "openssl verifies server.crt against ca.crt", v.stdout + v.stderr)
    v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "ca.crt"), os.path.join(d, "impostor.crt")],
                       capture_output=True, text=True)
    report(v.returncode != 0, "and refuses the impostor's certificate", v.stdout)


def report_lua_script(script, args, tmpdir, min_lines):
    """Run tests/integration/SCRIPT with `mqlab run`; each of its
    "ok NAME" / "FAIL NAME: detail" lines is one assertion."""
    p = mqlab(["run", os.path.join("tests", "integration", script)] + args, tmpdir=tmpdir, timeout=60)
    lines = [l for l in p.stdout.splitlines() if l.startswith(("ok ", "FAIL "))]
    for l in lines:
        if l.startswith("ok "):
            report(True, l[3:])
        else:
            name, _, detail = l[5:].partition(": ")
            report(False, name, detail)
    report(p.returncode == 0 and "done" in p.stdout and len(lines) >= min_lines, f"{script} ran to the end",
           f"exit {p.returncode}: {p.stderr}")


def test_proxy_api():
    print("the proxy's Lua module, end to end")
    tmpdir = fresh_tmp()
    report_lua_script("proxy_api.lua", [], tmpdir, 20)
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "proxy_api.lua leaves nothing behind", f"{files} {procs}")


def mqttjs_dir():
    """mqtt.js: $MQLAB_MQTTJS_DIR (a node_modules/mqtt folder), else the one
    `make deps` puts under build/npm; None when there is neither. It must
    hold both what Node loads and the browser bundle the kit serves."""
    for d in (os.environ.get("MQLAB_MQTTJS_DIR"), os.path.join(ROOT, "build", "npm", "node_modules", "mqtt")):
        if d and os.path.isfile(os.path.join(d, "package.json")) and \
                os.path.isfile(os.path.join(d, "dist", "mqtt.min.js")):
            return os.path.abspath(d)
    return None


def ws_round(name, url_fmt, certs, tmpdir):
    """websocket.lua (a broker, a proxy with a WebSocket port) beside
    ws_client.js (mqtt.js) on ws:// or wss://; the script's assertions and
    the client's are reported."""
    script = os.path.join("tests", "integration", "websocket.lua")
    proc = subprocess.Popen([MQLAB, "run", script] + ([certs] if certs else []), cwd=ROOT, env=env_for(tmpdir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports = None
    lines = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.match(r"ports (\d+) (\d+)", line)
        if m:
            ports = (int(m.group(1)), int(m.group(2)))
            break
    if not ports:
        proc.kill()
        out, err = proc.communicate()
        report(False, f"{name}: websocket.lua printed its ports", "".join(lines) + out + err)
        return
    env = dict(os.environ, MQLAB_MQTTJS_DIR=mqttjs_dir())
    args = ["node", os.path.join(ROOT, "tests", "integration", "ws_client.js"), url_fmt % ports[1]]
    if certs:
        args.append(os.path.join(certs, "ca.crt"))
    try:
        c = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
        crc, cout, cerr = c.returncode, c.stdout, c.stderr
    except subprocess.TimeoutExpired as e:
        crc, cout, cerr = -1, e.stdout or "", "timed out"
    try:
        verdict = json.loads(cout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        verdict = {}
    report(crc == 0 and verdict.get("ok") and verdict.get("sizes") == [21, 300 * 1024],
           f"{name}: mqtt.js got both QoS 1 messages back intact (21 B and 300 KiB)", f"exit {crc}: {cout} {cerr}")
    if crc != 0:
        proc.send_signal(signal.SIGINT)     # the script would wait for a DISCONNECT that never comes
    try:
        out, err = proc.communicate(timeout=200)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    for l in out.splitlines():
        if l.startswith("ok "):
            report(True, f"{name}: {l[3:]}")
        elif l.startswith("FAIL "):
            n, _, detail = l[5:].partition(": ")
            report(False, f"{name}: {n}", detail)
    report(proc.returncode == 0 and "done" in out, f"{name}: websocket.lua ran to the end",
           f"exit {proc.returncode}: {err}")


def test_websocket():
    print("MQTT over WebSockets: mqtt.js through the proxy's ws:// and wss:// port")
    node, mj = shutil.which("node"), mqttjs_dir()
    if not node or not mj:
        print("  skip  websocket: " + ("no node on PATH" if not node else
              "no mqtt.js (set MQLAB_MQTTJS_DIR to a node_modules/mqtt folder, or run make deps)"))
        return
    tmpdir = fresh_tmp()
    ws_round("ws://", "ws://127.0.0.1:%d/mqtt", None, tmpdir)
    # wss://: the kit's PKI in a folder of this run, never the real HOME's.
    certs = os.path.join(RUN_TMP, "ws-pki")
    p = mqlab(["certs", certs])
    report(p.returncode == 0 and os.path.isfile(os.path.join(certs, "ca.crt")), "mqlab certs made a PKI for wss://",
           p.stdout + p.stderr)
    ws_round("wss://", "wss://127.0.0.1:%d/mqtt", certs, tmpdir)
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "websocket.lua leaves nothing behind", f"{files} {procs}")

def test_brokerlog():
    print("the broker log parser, against hostile client ids, usernames and topics")
    tmpdir = fresh_tmp()
    report_lua_script("brokerlog.lua", [], tmpdir, 60)
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "brokerlog.lua leaves nothing behind", f"{files} {procs}")


def test_labtools():
    print("lab tools: broker restarts, reorder, read-only SQLite")
    tmpdir = fresh_tmp()
    scratch = os.path.join(tmpdir, "scratch")
    os.makedirs(scratch)
    con = sqlite3.connect(os.path.join(scratch, "readings.db"))
    con.executescript("CREATE TABLE readings(id TEXT PRIMARY KEY, topic TEXT, ts INTEGER, value REAL);"
                      "INSERT INTO readings VALUES('r-1','a/temp',1700000000000,21.5),"
                      "('r-2','a/temp',1700000000100,22.25),('r-3','a/temp',1700000000200,19.0);")
    con.close()
    report_lua_script("labtools.lua", [scratch], tmpdir, 20)
    shutil.rmtree(scratch, ignore_errors=True)
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "labtools.lua leaves nothing behind", f"{files} {procs}")


def test_mqttjs_node():
    print("mqtt.js (the npm package mqtt, pinned in npm/package.json) loads in Node")
    node = shutil.which("node")
    d = mqttjs_dir()
    if not node or not d:
        print("  skip  " + ("node is not installed (apt-get install nodejs npm)" if not node
                            else "mqtt.js is not installed in build/npm (make deps)"))
        return
    want = json.load(open(os.path.join(ROOT, "npm", "package.json")))["dependencies"]["mqtt"]
    p = subprocess.run([node, "-e", "const m = require(process.argv[1]);"
                        "if (typeof m.connect !== 'function') process.exit(1);"
                        "console.log(require(process.argv[1] + '/package.json').version)", d],
                       capture_output=True, text=True, timeout=60)
    report(p.returncode == 0 and p.stdout.strip() == want, f"require('mqtt') has connect, version {want}",
           p.stdout + p.stderr)


def test_browser():
    print("mqlab.browser: headless Chromium loads a page with mqtt.js, outside and inside the sandbox")
    tmpdir = fresh_tmp()
    page = os.path.join(RUN_TMP, "browser-page")
    os.makedirs(page, exist_ok=True)
    os.chmod(RUN_TMP, 0o755)   # the sandbox uid reads the page beside it
    os.chmod(page, 0o777)
    p = mqlab(["run", os.path.join("tests", "integration", "browser.lua"), page], tmpdir=tmpdir, timeout=240)
    for l in p.stdout.splitlines():
        if l.startswith("skip: "):
            print("  skip  " + l[6:])
        elif l.startswith("ok "):
            report(True, l[3:])
        elif l.startswith("FAIL "):
            name, _, detail = l[5:].partition(": ")
            report(False, name, detail)
    report(p.returncode == 0 and "done" in p.stdout, "browser.lua ran to the end", f"exit {p.returncode}: {p.stderr}")
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "no Chromium process nor profile folder left", f"{files} {procs}")
    p = mqlab(["run", os.path.join("tests", "integration", "browser.lua"), page], tmpdir=tmpdir, timeout=60,
              extra_env={"MQLAB_CHROMIUM": "/nonexistent/chromium"})
    report(p.returncode == 0 and "ok no Chromium" in p.stdout, "without Chromium: 'missing' and how to install it",
           p.stdout + p.stderr)
    shutil.rmtree(page, ignore_errors=True)


def test_dashboard():
    print("lab 11 (the browser lab): exit 3 without Chromium or mqtt.js; guided mode with Chromium as the student's browser")
    if not lab_wanted("11-dashboard"):
        return
    sol = os.path.join(ROOT, "solutions", "11-dashboard")
    for env, what, says in (({"MQLAB_CHROMIUM": "/nonexistent/chromium"}, "Chromium", "apt-get install chromium"),
                            ({"MQLAB_MQTTJS": "/nonexistent/mqtt.min.js"}, "mqtt.js", "MQLAB_MQTTJS")):
        tmp = fresh_tmp()
        p = mqlab(["check", "11", sol, "--no-record"], tmpdir=tmp, extra_env=env, timeout=60)
        report(p.returncode == 3 and says in p.stderr, f"check 11 without {what}: exit 3 (environment), saying so",
               f"exit {p.returncode}: {p.stdout}{p.stderr}")
        files, procs = leftovers(tmp)
        report(not files and not procs, f"check 11 without {what} leaves nothing behind", f"{files} {procs}")
    why = browser_missing()
    if why:
        print("  skip  guided mode of lab 11: " + why)
        return
    if not shutil.which("tmux"):
        report(False, "tmux is installed (the guided-mode tests need it)")
        return
    chromium = chromium_path()
    # The student's folder: the reference page, where mqlab start runs.
    site = fresh_tmp()
    shutil.copy(os.path.join(sol, "dashboard.html"), site)
    shutil.copy(os.path.join(sol, "dashboard.js"), site)
    profile = fresh_tmp()
    chrome = []   # the student's browser, with its helpers in its own session

    def lab11(pane, port, procs):
        m = re.search(r"(http://127\.0\.0\.1:\d+/dashboard\.html\?\S+)", pane.screen())
        report(bool(m) and "ws://127.0.0.1:" in pane.screen(), "start 11 prints the page's URL and the WebSocket URL",
               pane.screen()[-1500:])
        if not m:
            return
        chrome.append(subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                                       "--user-data-dir=" + profile, "--remote-debugging-port=0", m.group(1)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        report(pane.wait("✔ CONNECT over WebSockets with your client id", 40), "step 1: the page's CONNECT over ws",
               pane.screen()[-1500:])
        report(pane.wait("✔ SUBSCRIBE at QoS 1 to ", 20), "step 2: its SUBSCRIBE at QoS 1", pane.screen()[-1500:])
        pane.wait("Press Enter and I publish.", 10)
        pane.keys("Enter")
        report(pane.wait("✔ the broker pushed the readings", 20), "step 3: readings pushed to the page",
               pane.screen()[-1500:])
        pane.wait("Press Enter and I cut the link.", 10)
        pane.keys("Enter")
        report(pane.wait("✔ the will's 'offline' reached your page", 20), "step 4: the will reaches the page",
               pane.screen()[-1500:])
        report(pane.wait("EXIT=0", 20), "start 11 ends with every step met", pane.screen()[-800:])

    try:
        guided("11", lab11, cwd=site)
    finally:
        for pr in chrome:
            try:
                os.killpg(pr.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            pr.wait(5)
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(site, ignore_errors=True)


HOSTILE = os.path.join(ROOT, "tests", "hostile")
# What a hostile submission may leave running: the markers in its scripts.
HOSTILE_MARKS = r"sleep 410[1-5]|4103-flood|sleep 0\.4104|mqlab-hostile"
SANDBOX_UID_BASE = 1879048192


def copy_submission(src, dst, subst=None):
    """Copy the files of src into a new folder dst, replacing the keys of
    subst in each file's text."""
    os.makedirs(dst)
    for f in os.listdir(src):
        path = os.path.join(src, f)
        if f == "EXPECT" or not os.path.isfile(path):
            continue
        with open(path, "rb") as a:
            data = a.read()
        for k, v in (subst or {}).items():
            data = data.replace(k.encode(), v.encode())
        with open(os.path.join(dst, f), "wb") as b:
            b.write(data)
        os.chmod(os.path.join(dst, f), os.stat(path).st_mode & 0o777)


def sandbox_processes(tmpdir):
    """Every process that names a hostile marker, or runs as a sandbox uid
    in a folder under tmpdir (another mqlab's sandboxes may run beside)."""
    out = subprocess.run(["ps", "-eo", "uid=,pid=,args="], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        try:
            cwd = os.readlink(f"/proc/{parts[1]}/cwd")
        except OSError:
            cwd = ""
        if re.search(HOSTILE_MARKS, parts[2]) or \
                (int(parts[0]) >= SANDBOX_UID_BASE and cwd.startswith(tmpdir + "/")):
            found.append(line.strip())
    return found


def test_hostile():
    print("a class of hostile submissions (tests/hostile) beside a reference solution")
    base = os.path.join(RUN_TMP, "hostile")
    cls = os.path.join(base, "class")
    os.makedirs(cls)
    db = os.path.join(base, "gradebook.db")
    tmpdir = fresh_tmp()
    subst = {"@DB@": db, "@TMP@": tmpdir, "@CLASS@": cls, "@HOME@": RUN_HOME}
    names = sorted(n for n in os.listdir(HOSTILE) if os.path.isfile(os.path.join(HOSTILE, n, "hello.sh")))
    copy_submission(os.path.join(ROOT, "solutions", "01-hello"), os.path.join(cls, "ana"))
    for n in names:
        copy_submission(os.path.join(HOSTILE, n), os.path.join(cls, n), subst)
    before = {n: sorted(os.listdir(os.path.join(cls, n))) for n in ["ana"] + names}

    # ana alone, into a gradebook of her own: the score to keep.
    p = mqlab(["grade", "01", os.path.join(cls, "ana"), "--format", "json", "--db", os.path.join(base, "alone.db")])
    try:
        alone = json.loads(p.stdout)["verdicts"][0]
    except (ValueError, IndexError, KeyError, TypeError):
        alone = None
    report(alone is not None and alone["score"] > 0, "ana graded alone", p.stdout[:300] + p.stderr)

    t0 = time.time()
    p = mqlab(["grade", "01", os.path.join(cls, "ana")] + [os.path.join(cls, n) for n in names] +
              ["--format", "json", "--db", db], tmpdir=tmpdir, timeout=1200)
    took = time.time() - t0
    try:
        verdicts = {v["student"]: v for v in json.loads(p.stdout)["verdicts"]}
    except (ValueError, KeyError, TypeError):
        verdicts = {}
    report(p.returncode == 0 and sorted(verdicts) == sorted(["ana"] + names),
           f"every submission was graded ({took:.0f} s), none left unfinished",
           f"exit {p.returncode}: {sorted(verdicts)}\n{p.stderr}")
    ana = verdicts.get("ana")
    passed_of = lambda v: sorted(c["id"] for c in v["checks"] if c["passed"])
    report(ana is not None and alone is not None and ana["score"] == alone["score"] and
           passed_of(ana) == passed_of(alone),
           "ana's verdict beside hostile neighbours is the one she gets alone",
           f"{ana and ana['score']} vs {alone and alone['score']}")
    for n in names:
        v = verdicts.get(n)
        ok = v is not None and not v.get("incomplete") and v["score"] == 0 and \
            all(c["message"] for c in v["checks"] if not c["passed"])
        report(ok, f"{n}: graded, no points, every failed check says why",
               json.dumps(v, ensure_ascii=False)[:1500] if v else "no verdict")
        # What a script says got through (it writes GOT: or DETOUR: on
        # stderr, which a failed check quotes).
        text = json.dumps(v, ensure_ascii=False) if v else ""
        report("GOT:" not in text and "DETOUR:" not in text, f"{n}: nothing outside its sandbox was reached",
               "\n".join(l for l in text.replace("\\n", "\n").splitlines() if "GOT:" in l or "DETOUR:" in l))

    # The escape's late child would rewrite the gradebook 3 s after its
    # program ended; the gradebook must still hold what was printed.
    time.sleep(4)
    try:
        con = sqlite3.connect(db)
        rows = {r[0]: (r[1], r[2]) for r in con.execute("select student, score, incomplete from attempts")}
        con.close()
    except sqlite3.Error as e:
        rows = {"error": str(e)}
    want = {s: (v["score"], 1 if v.get("incomplete") else 0) for s, v in verdicts.items()}
    report(rows == want, "the gradebook holds exactly what grade printed, seconds later", f"{rows}\n{want}")
    report(not os.path.exists(os.path.join(RUN_HOME, "pwned")), "no submission wrote HOME")
    stray = [f for f in os.listdir(tmpdir)]
    report(not stray, "nothing left in TMPDIR (no pwned or late file, no kit folder)", stray)
    after = {n: sorted(os.listdir(os.path.join(cls, n))) for n in ["ana"] + names}
    report(after == before, "the submissions' own folders are unchanged", f"{before}\n{after}")
    procs = sandbox_processes(tmpdir)
    report(not procs, "no process of any submission survives", "\n".join(procs))


def test_stuck():
    print("a check stuck inside C: the worker is killed, the verdict says so")
    sub = os.path.join(RUN_TMP, "stuck")
    os.mkdir(sub)
    tmpdir = fresh_tmp()
    db = os.path.join(RUN_TMP, "stuck.db")
    t0 = time.time()
    p = mqlab(["grade", "95", sub, "--format", "csv-checks", "--db", db], tmpdir=tmpdir,
              extra_env={"MQLAB_LABS": os.path.join(HOSTILE, "labs")})
    took = time.time() - t0
    rows = [r for r in p.stdout.splitlines() if r]
    ok = p.returncode == 1 and len(rows) == 2 and rows[1].startswith("stuck,95-stuck,,") and \
        "did not finish" in rows[1] and "stuck-in-c" in rows[1]
    report(ok, f"grade: exit 1, an empty score and why ({took:.0f} s)", p.stdout + p.stderr)
    try:
        con = sqlite3.connect(db)
        row = con.execute("select score, incomplete from attempts").fetchall()
        con.close()
    except sqlite3.Error as e:
        row = str(e)
    report(row == [(0.0, 1)], "the gradebook marks the attempt unfinished", row)
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "the killed worker leaves nothing behind", f"{files} {procs}")


def test_no_sandbox():
    print("where bwrap cannot make a sandbox: check goes on with a notice, grade refuses")
    fake = os.path.join(RUN_TMP, "fake-bwrap")
    os.mkdir(fake)
    with open(os.path.join(fake, "bwrap"), "w") as f:
        f.write("#!/bin/sh\necho 'bwrap: Creating new namespace failed: Operation not permitted' >&2\nexit 1\n")
    os.chmod(os.path.join(fake, "bwrap"), 0o755)
    broken = {"PATH": fake + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
    sol = os.path.join(ROOT, "solutions", "01-hello")
    tmpdir = fresh_tmp()
    p = mqlab(["check", "01", sol, "--no-record"], tmpdir=tmpdir, extra_env=broken)
    notices = [l for l in p.stderr.splitlines() if "runs unconfined" in l]
    report(p.returncode == 0 and len(notices) == 1 and "Operation not permitted" in notices[0] and
           "--privileged" in notices[0],
           "check: full marks, and one line that says why and how to fix it", f"exit {p.returncode}: {p.stderr}")
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "check without a sandbox leaves nothing behind", f"{files} {procs}")
    db = os.path.join(RUN_TMP, "nosandbox.db")
    p = mqlab(["grade", "01", sol, "--db", db], extra_env=broken)
    report(p.returncode == 3 and "cannot sandbox" in p.stderr and "--no-sandbox" in p.stderr and
           not os.path.exists(db), "grade refuses (exit 3) and writes no gradebook", f"exit {p.returncode}: {p.stderr}")
    p = mqlab(["grade", "01", sol, "--db", db, "--no-sandbox", "--format", "csv-checks"], extra_env=broken)
    # solutions/01-hello sits in the workspace solutions/, whose student is
    # reference: every check passes (connects 1, client-id 2, ...).
    report(p.returncode == 0 and "unconfined" in p.stderr and "reference,01-hello,13,13," in p.stdout and
           ",1,2,1,2,2,1,1,1,1,1," in p.stdout,
           "grade --no-sandbox grades, unconfined, and says so", f"exit {p.returncode}: {p.stdout} {p.stderr}")


def test_misnamed():
    print("a misnamed program is named in the verdict, not taken for an empty folder")
    sub = os.path.join(RUN_TMP, "misnamed")
    os.mkdir(sub)
    shutil.copy(os.path.join(ROOT, "solutions", "01-hello", "hello.py"), os.path.join(sub, "Hello.py"))
    p = mqlab(["check", "01", sub, "--no-record", "--format", "json"])
    try:
        msg = json.loads(p.stdout)["checks"][0]["message"]
    except (ValueError, KeyError, IndexError):
        msg = p.stdout + p.stderr
    report(p.returncode == 1 and "there is Hello.py" in msg and "did you mean hello.py?" in msg and "hello.py, hello.c" in msg,
           "check names Hello.py and the names the kit runs", msg)
    os.chmod(os.path.join(sub, "Hello.py"), 0o644)
    os.rename(os.path.join(sub, "Hello.py"), os.path.join(sub, "hello"))
    p = mqlab(["check", "01", sub, "--no-record", "--format", "json", "--lang", "es"])
    try:
        msg = json.loads(p.stdout)["checks"][0]["message"]
    except (ValueError, KeyError, IndexError):
        msg = p.stdout + p.stderr
    report("chmod +x hello" in msg and "no es ejecutable" in msg, "a file that is not executable: chmod +x, in Spanish", msg)


def test_jobs():
    print("grade --jobs: the same verdicts, in the same order, as one at a time")
    cls = os.path.join(RUN_TMP, "jobs-class")
    os.makedirs(cls)
    sources = [("ana", "solutions/01-hello"), ("bea", "tests/bad/01-hello/no-subscribe"),
               ("cid", "tests/hostile/forever"), ("dan", None), ("eva", "tests/bad/01-hello/wrong-client-id"),
               ("fe", "solutions/01-hello/c")]
    for name, src in sources:
        if src:
            copy_submission(os.path.join(ROOT, src), os.path.join(cls, name))
        else:
            os.makedirs(os.path.join(cls, name))
    dirs = [os.path.join(cls, name) for name, _ in sources]

    def shape(v):
        return (v["student"], v["score"], v.get("incomplete", False),
                [(c["id"], c["passed"], c["skipped"]) for c in v["checks"]])

    runs = {}
    for jobs in ("1", "4"):
        db = os.path.join(RUN_TMP, f"jobs-{jobs}.db")
        tmpdir = fresh_tmp()
        t0 = time.time()
        p = mqlab(["grade", "01"] + dirs + ["--format", "json", "--db", db, "--jobs", jobs], tmpdir=tmpdir, timeout=600)
        took = time.time() - t0
        try:
            verdicts = [shape(v) for v in json.loads(p.stdout)["verdicts"]]
        except (ValueError, KeyError, TypeError):
            verdicts = None
        con = sqlite3.connect(db)
        rows = sorted(r[0] for r in con.execute("select student from attempts"))
        con.close()
        files, procs = leftovers(tmpdir)
        runs[jobs] = (verdicts, rows, took)
        report(p.returncode == 0 and verdicts is not None and len(verdicts) == len(sources) and
               [v[0] for v in verdicts] == [n for n, _ in sources] and
               rows == [n for n, _ in sources] and not files and not procs,
               f"--jobs {jobs}: every folder graded, printed in order and recorded once, nothing left ({took:.1f} s)",
               f"exit {p.returncode}: {rows} {files} {procs}\n{p.stderr}")
    report(runs["1"][0] == runs["4"][0], "--jobs 4 gives the verdicts of --jobs 1", f"{runs['1'][0]}\n{runs['4'][0]}")
    p = mqlab(["grade", "01", dirs[0], "--jobs", "0"])
    report(p.returncode == 2 and "--jobs" in p.stderr, "--jobs 0 is a usage error", p.stderr)


def copy_into(src, dst):
    """Copy the files of src over those in dst (made if needed)."""
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        path = os.path.join(src, f)
        if f != "EXPECT" and os.path.isfile(path):
            shutil.copy2(path, os.path.join(dst, f))


def make_class(root):
    """A mixed class for labs 01 and 02: a workspace as mqlab init makes it
    (student 'reference', whose parameters the solutions' data files fit),
    lab folders, a known-bad one, an empty folder, a misnamed program, a
    program in C."""
    ws = os.path.join(root, "ana")
    p = mqlab(["init", ws, "--student", "reference"])
    if p.returncode != 0:
        return p.stderr
    copy_into(os.path.join(ROOT, "solutions", "01-hello"), os.path.join(ws, "01-hello"))
    copy_into(os.path.join(ROOT, "solutions", "02-topics"), os.path.join(ws, "02-topics"))
    copy_into(os.path.join(ROOT, "tests", "bad", "01-hello", "no-subscribe"), os.path.join(root, "ben"))
    os.makedirs(os.path.join(root, "cid"))
    os.makedirs(os.path.join(root, "dan"))
    shutil.copy2(os.path.join(ROOT, "solutions", "01-hello", "hello.py"), os.path.join(root, "dan", "Hello.py"))
    copy_into(os.path.join(ROOT, "tests", "bad", "02-topics", "order"), os.path.join(root, "eva"))
    copy_into(os.path.join(ROOT, "solutions", "01-hello", "c"), os.path.join(root, "fe"))
    return None


def vshape(v):
    return (v["student"], v["lab"], v["score"], v.get("incomplete", False), "missing" in v,
            tuple((c["id"], c["passed"], c["skipped"]) for c in v["checks"]))


def test_class():
    print("grading a class: layouts, missing submissions, --jobs, exports, --resume")
    import csv
    import io
    import pty
    import xml.etree.ElementTree as ET
    root = os.path.join(RUN_TMP, "class-mixed")
    os.makedirs(root)
    why = make_class(root)
    report(why is None, "the class is made", why)
    runs = {}
    for label, extra in (("--jobs 1", ["--jobs", "1"]), ("the default jobs", [])):
        db = os.path.join(RUN_TMP, f"class-{len(runs)}.db")
        tmpdir = fresh_tmp()
        t0 = time.time()
        p = mqlab(["grade", "01,02", root, "--format", "json", "--db", db] + extra, tmpdir=tmpdir, timeout=600)
        took = time.time() - t0
        try:
            doc = json.loads(p.stdout)
            verdicts = doc["verdicts"]
        except (ValueError, KeyError, TypeError):
            doc, verdicts = None, []
        files, procs = leftovers(tmpdir)
        runs[label] = (db, verdicts, doc)
        report(p.returncode == 0 and len(verdicts) == 12 and not files and not procs and "\r" not in p.stderr,
               f"{label}: 6 students x 2 labs graded, nothing left, no progress noise without a terminal ({took:.1f} s)",
               f"exit {p.returncode}: {len(verdicts)} verdicts {files} {procs}\n{p.stderr}\n{p.stdout[:500]}")
    v1 = [vshape(v) for v in runs["--jobs 1"][1]]
    v2 = [vshape(v) for v in runs["the default jobs"][1]]
    report(v1 == v2 and v1, "the default --jobs gives the verdicts of --jobs 1", "\n".join(map(str, v1)) + "\n--\n" + "\n".join(map(str, v2)))
    db, verdicts, doc = runs["the default jobs"]
    by = {(v["student"], v["lab"]): v for v in verdicts}
    students = sorted({v["student"] for v in verdicts})
    report(students == ["ben", "cid", "dan", "eva", "fe", "reference"],
           "the workspace's student comes from .mqlab/student; lab folders are named after their students", students)
    ok = all(by.get(("reference", l), {}).get("score") == by.get(("reference", l), {}).get("max_score", -1) for l in ("01-hello", "02-topics"))
    report(ok, "the workspace's labs are graded from its NN-name/ folders, at full marks",
           [by.get(("reference", l)) for l in ("01-hello", "02-topics")])
    m = by.get(("dan", "01-hello"), {})
    report("missing" in m and "Hello.py" in m["missing"] and "hello.py" in m["missing"] and not m["checks"],
           "a misnamed program is a missing submission that names what was found", m)
    m = by.get(("cid", "02-topics"), {})
    report("missing" in m and "topics.txt" in m["missing"], "an empty folder is a missing submission", m)
    m = by.get(("ben", "01-hello"), {})
    report("missing" not in m and 0 < m.get("score", 0) < m.get("max_score", 0), "a known-bad lab folder is graded, not missing", m)
    m = by.get(("fe", "01-hello"), {})
    report("missing" not in m and m.get("checks") and all(c["passed"] for c in m["checks"] if not c["id"].startswith("filter")),
           "a program in C is a lab folder too (fe's filters fit another student: only the program checks pass)", m)
    summ = doc["summary"] if doc else {}
    checks = summ.get("checks", [])
    rates = [c["passed"] / c["ran"] for c in checks if c["ran"]]
    report(len(summ.get("labs", [])) == 2 and rates == sorted(rates) and
           {(x["student"], x["lab"]) for x in summ.get("missing", [])} == {k for k, v in by.items() if "missing" in v},
           "the summary: both labs, checks worst first, every missing submission", json.dumps(summ)[:600])

    # Exports of the same class, from the gradebook (--resume: nothing changed, nothing is graded again).
    p = mqlab(["grade", "01,02", root, "--format", "junit", "--db", db, "--resume"])
    try:
        xml = ET.fromstring(p.stdout)
        suites = xml.findall("testsuite")
        ok = len(suites) == len(verdicts)
        detail = ""
        for s_, v in zip(suites, verdicts):
            props = {x.get("name"): x.get("value") for x in s_.iter("property")}
            cases = s_.findall("testcase")
            fails = [c for c in cases if c.find("failure") is not None]
            skips = [c for c in cases if c.find("skipped") is not None]
            want_fail = [c for c in v["checks"] if not c["passed"] and not c["skipped"]]
            want_skip = [c for c in v["checks"] if c["skipped"]]
            good = (props.get("student") == v["student"] and props.get("lab") == v["lab"] and
                    len(skips) == len(want_skip) and int(s_.get("failures")) == len(fails) and
                    len(fails) == len(want_fail) + (1 if "missing" in v else 0) and
                    [f.find("failure").get("message") for f in fails if f.get("name") != "submission"] ==
                    [c["message"] for c in want_fail])
            if not good:
                ok = False
                detail += f"{v['student']} {v['lab']}: {props} {len(fails)} failures, {len(skips)} skipped\n"
    except ET.ParseError as e:
        ok, detail = False, f"{e}\n{p.stdout[:800]}"
    report(p.returncode == 0 and ok, "--format junit parses and matches the verdicts", detail + p.stderr)

    out = os.path.join(RUN_TMP, "gradescope")
    p = mqlab(["grade", "01,02", root, "--format", "gradescope", "--out", out, "--db", db, "--resume"])
    ok, detail = p.returncode == 0, p.stderr
    for st in students:
        try:
            with open(os.path.join(out, st, "results.json")) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            ok, detail = False, detail + f"\n{st}: {e}"
            continue
        mine = [v for v in verdicts if v["student"] == st]
        want = sum(v["score"] for v in mine if "missing" not in v)
        tests = r.get("tests", [])
        want_tests = sum(len(v["checks"]) or 1 for v in mine)
        fields = all({"name", "score", "max_score", "output", "visibility"} <= set(t) for t in tests)
        if not (abs(r.get("score", -1) - want) < 1e-9 and len(tests) == want_tests and fields and
                "execution_time" in r and "output" in r and
                abs(sum(t["score"] for t in tests) - want) < 1e-9):
            ok, detail = False, detail + f"\n{st}: {json.dumps(r)[:400]}"
    report(ok, "--format gradescope --out DIR: one results.json per student, matching the verdicts", detail)
    p = mqlab(["grade", "01,02", root, "--format", "gradescope", "--db", db, "--resume"])
    report(p.returncode == 2 and "--out" in p.stderr, "--format gradescope with several students wants --out", p.stderr)
    p = mqlab(["grade", "01", os.path.join(root, "ben"), "--format", "gradescope", "--db", db, "--resume"])
    try:
        r = json.loads(p.stdout)
        ok = r["score"] == by[("ben", "01-hello")]["score"] and len(r["tests"]) == len(by[("ben", "01-hello")]["checks"])
    except (ValueError, KeyError, TypeError):
        ok = False
    report(ok, "--format gradescope with one submission prints its results.json", p.stdout[:300] + p.stderr)

    p = mqlab(["grade", "01,02", root, "--format", "csv", "--db", db, "--resume"])
    rows = list(csv.reader(io.StringIO(p.stdout)))
    ok = bool(rows) and rows[0] == ["student", "01-hello", "02-topics", "total", "max_total", "missing"] and len(rows) == 7
    for row in rows[1:] if ok else []:
        total = 0
        for lab, cell in zip(("01-hello", "02-topics"), row[1:3]):
            v = by[(row[0], lab)]
            if "missing" in v:
                ok = ok and cell == "missing"
            else:
                ok = ok and float(cell) == v["score"]
                total += v["score"]
        ok = ok and float(row[3]) == total and int(row[5]) == sum(1 for l in ("01-hello", "02-topics") if "missing" in by[(row[0], l)])
    report(ok, "--format csv round-trips: a row per student, a column per lab, missing marked, the total", p.stdout + p.stderr)
    csv_first = p.stdout
    p = mqlab(["grade", "01,02", root, "--format", "csv-checks", "--db", db, "--resume"])
    report(p.returncode == 2 and "--out" in p.stderr, "--format csv-checks with several labs wants --out", p.stderr)
    p = mqlab(["grade", "01", root, "--format", "csv-checks", "--db", db, "--resume"])
    rows = list(csv.reader(io.StringIO(p.stdout)))
    ben = next((r for r in rows if r[:2] == ["ben", "01-hello"]), [])
    head = rows[0] if rows else []
    skipped = [c["id"] for c in by[("ben", "01-hello")]["checks"] if c["skipped"]]
    ok = bool(ben) and bool(skipped) and all(ben[head.index(c)] == "skipped" for c in skipped)
    dan = next((r for r in rows if r[:2] == ["dan", "01-hello"]), [])
    ok = ok and len(dan) == len(head) and dan[2] == "" and dan[-1].startswith("missing:")
    report(ok, "--format csv-checks tells a skipped check from a failed one, and marks a missing submission", p.stdout[:800])

    # A re-grade adds attempts; the export still has one result per student and lab.
    p = mqlab(["grade", "01,02", root, "--db", db, "--format", "json"], timeout=600)
    con = sqlite3.connect(db)
    n = con.execute("select count(*) from attempts").fetchone()[0]
    con.close()
    report(p.returncode == 0 and n == 24, "a re-grade without --resume records every submission again", f"{n} attempts\n{p.stderr}")
    p = mqlab(["gradebook", "export", "--db", db])
    report(p.returncode == 0 and p.stdout == csv_first, "gradebook export: one row per student, as grade's CSV, not doubled",
           p.stdout + "\n--\n" + csv_first + p.stderr)
    p = mqlab(["gradebook", "export", "01,02", "--db", db, "--format", "json", "--attempt", "best"])
    try:
        ex = [vshape(v) for v in json.loads(p.stdout)["verdicts"]]
    except (ValueError, KeyError, TypeError):
        ex = None
    report(ex == v2, "gradebook export --attempt best --format json: the class's verdicts, once each", f"{ex}\n{p.stderr}")
    p = mqlab(["gradebook", "export", "--db", db, "--attempt", "worst"])
    report(p.returncode == 2, "--attempt is latest or best", p.stderr)

    # A terminal gets a progress line; NO_COLOR silences it.
    for nocolor in (False, True):
        master, slave = pty.openpty()
        env = env_for(fresh_tmp())
        if not nocolor:
            env.pop("NO_COLOR", None)
        proc = subprocess.Popen([MQLAB, "grade", "01", os.path.join(root, "ben"), "--db", os.path.join(RUN_TMP, "tty.db")],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
        proc.communicate(timeout=120)
        os.close(master)
        text = err.decode(errors="replace")
        if nocolor:
            report(proc.returncode == 0 and "ETA" not in text, "NO_COLOR: no progress line on a terminal", text)
        else:
            report(proc.returncode == 0 and "0/1 graded" in text and "ETA" in text, "a terminal shows done/total, rate and ETA", text)

    # --student names the student of one folder; two workspaces claiming one
    # student (a student writes .mqlab/student) are told apart by their folders.
    p = mqlab(["grade", "01", os.path.join(root, "ben"), "--student", "bruno", "--format", "json",
               "--db", os.path.join(RUN_TMP, "student.db")])
    try:
        who = [v["student"] for v in json.loads(p.stdout)["verdicts"]]
    except (ValueError, KeyError, TypeError):
        who = p.stdout + p.stderr
    report(who == ["bruno"], "--student names the student of a single folder", who)
    twins = os.path.join(RUN_TMP, "class-twins")
    for name in ("uno", "dos"):
        mqlab(["init", os.path.join(twins, name), "--student", "reference"])
        copy_into(os.path.join(ROOT, "solutions", "02-topics"), os.path.join(twins, name, "02-topics"))
    os.symlink("/", os.path.join(twins, "root-link"))
    p = mqlab(["grade", "02", twins, "--format", "json", "--db", os.path.join(RUN_TMP, "twins.db")])
    try:
        who = [v["student"] for v in json.loads(p.stdout)["verdicts"]]
    except (ValueError, KeyError, TypeError):
        who = p.stdout
    report(who == ["dos", "uno"] and "dos/.mqlab/student" in p.stderr and "uno/.mqlab/student" in p.stderr,
           "two workspaces claiming one student are graded under their folders' names, with a warning; a link is not followed",
           f"{who}\n{p.stderr}")

    # A class in which nobody handed in anything gradable is still a class.
    nobody = os.path.join(RUN_TMP, "class-nobody")
    os.makedirs(os.path.join(nobody, "gil"))
    os.makedirs(os.path.join(nobody, "hugo", "__pycache__"))
    shutil.copy2(os.path.join(ROOT, "solutions", "03-qos-loss", "sensor.py"), os.path.join(nobody, "hugo", "sensor_final.py"))
    p = mqlab(["grade", "03", nobody, "--format", "json", "--db", os.path.join(RUN_TMP, "nobody.db")])
    try:
        got = [(v["student"], "sensor_final.py" in v.get("missing", "")) for v in json.loads(p.stdout)["verdicts"]]
    except (ValueError, KeyError, TypeError):
        got = p.stdout + p.stderr
    report(got == [("gil", False), ("hugo", True)], "a class where nobody handed in anything: each student missing", got)

    # Usage errors.
    for args, name in ((["grade", "01,99", root], "an unknown lab in the list"),
                       (["grade", "01", root, "--student", "x"], "--student with a class"),
                       (["grade", "01", root, "--jobs", "x"], "--jobs x"),
                       (["grade", "01", root, "--format", "xml"], "an unknown format")):
        p = mqlab(args + ["--db", os.path.join(RUN_TMP, "usage.db")])
        report(p.returncode == 2 and p.stderr.strip(), f"usage error: {name}", f"exit {p.returncode}: {p.stderr}")


def export_normal(text, fmt):
    """What must differ between two gradings of the same work: when each
    ran and how long it took (started_ms, duration_s, junit's time=, the
    csv-checks duration column). Everything else is compared byte for
    byte."""
    import re
    if fmt == "json":
        return re.sub(r'"(started_ms|duration_s|time_s|seconds)":[0-9.e+-]+', r'"\1":0', text)
    if fmt == "junit":
        return re.sub(r' time="[0-9.]+"', ' time="0"', text)
    if fmt == "csv-checks":
        # student,lab,score,max_score,duration_s,...; the per-student csv has no times.
        return re.sub(r"^([^,\n]*,[^,\n]*,[^,\n]*,[^,\n]*,)[0-9.]+(?=,)", r"\1T", text, flags=re.M)
    return text


def test_shard():
    print("grade --shard I/N and gradebook merge: the parts of a class, merged, export as one grading")
    import re
    root = os.path.join(RUN_TMP, "class-shard")
    os.makedirs(root)
    why = make_class(root)
    report(why is None, "the class is made", why)
    work = os.path.join(RUN_TMP, "shard-dbs")
    os.makedirs(work)

    def graded(args, db):
        tmpdir = fresh_tmp()
        p = mqlab(["grade", "01,02", root, "--format", "json", "--db", db] + args, tmpdir=tmpdir, timeout=600)
        try:
            verdicts = json.loads(p.stdout)["verdicts"]
        except (ValueError, KeyError, TypeError):
            verdicts = None
        files, procs = leftovers(tmpdir)
        return p, verdicts, files, procs

    full_db = os.path.join(work, "full.db")
    p, full, files, procs = graded([], full_db)
    report(p.returncode == 0 and full and len(full) == 12 and not files and not procs,
           "the whole class, unsharded: 6 students x 2 labs", f"exit {p.returncode} {files} {procs}\n{p.stderr[-800:]}")
    everyone = sorted({v["student"] for v in full or []})
    shard_dbs, parts = [], []
    for i in range(3):
        db = os.path.join(work, f"shard{i}.db")
        shard_dbs.append(db)
        p, vs, files, procs = graded(["--shard", f"{i}/3"], db)
        students = {v["student"] for v in vs or []}
        parts.append(students)
        # Every lab of a student in the shard, and nobody else: a student of
        # another shard is not listed as missing either.
        report(p.returncode == 0 and vs is not None and len(vs) == 2 * len(students) and
               f"shard {i}/3: {len(students)} of the {len(everyone)} students" in p.stderr and not files and not procs,
               f"--shard {i}/3 grades its students, each lab once, and says how many ({sorted(students)})",
               f"exit {p.returncode} {files} {procs}\n{p.stderr[-800:]}")
    union = set().union(*parts)
    overlap = [(a, b, parts[a] & parts[b]) for a in range(3) for b in range(a + 1, 3) if parts[a] & parts[b]]
    report(sorted(union) == everyone and not overlap,
           "the shards' students: their union is the class, their intersections are empty", (parts, everyone, overlap))

    # The split is by a hash of the student id (FNV-1a 64, mod N), not by
    # folder order: the same ids give the same parts as this Python copy.
    def fnv(sid):
        h = 14695981039346656037
        for b in sid.encode():
            h = ((h ^ b) * 1099511628211) % (1 << 64)
        return h
    report(all(fnv(sid) % 3 == i for i in range(3) for sid in parts[i]),
           "a student's shard is FNV-1a(id) mod N", parts)

    merged = os.path.join(work, "merged.db")
    p = mqlab(["gradebook", "merge"] + shard_dbs + ["--db", merged])
    report(p.returncode == 0 and "6 students, 12 attempts (0 already there" in p.stderr,
           "gradebook merge joins the three shards", f"exit {p.returncode}\n{p.stderr}")
    # A shard given twice (a pod retried, its gradebook copied twice) does
    # not count twice.
    twice = os.path.join(work, "twice.db")
    p = mqlab(["gradebook", "merge"] + shard_dbs + [shard_dbs[0], "--db", twice])
    n0 = 2 * len(parts[0])
    report(p.returncode == 0 and f"6 students, 12 attempts ({n0} already there" in p.stderr,
           "a shard merged twice is counted once", f"exit {p.returncode}\n{p.stderr}")
    left = [f for f in os.listdir(work) if ".tmp-" in f or f.endswith("-wal") or f.endswith("-shm") or f.endswith("-journal")]
    report(not left, "merge leaves no temporary file or journal beside its output or its inputs", left)


    for db in (merged, twice):
        name = os.path.basename(db)
        for fmt in ("csv", "json", "junit", "csv-checks"):
            outs = []
            for src in (full_db, db):
                args = ["gradebook", "export", "--db", src, "--format", fmt]
                if fmt == "csv-checks":
                    od = os.path.join(work, f"out-{os.path.basename(src)}-{name}")
                    args += ["--out", od]
                p = mqlab(args)
                if fmt == "csv-checks":
                    text = "".join(f"== {f}\n" + open(os.path.join(od, f)).read() for f in sorted(os.listdir(od))) \
                        if p.returncode == 0 else ""
                else:
                    text = p.stdout
                outs.append((p.returncode, export_normal(text, fmt)))
            same = outs[0][0] == 0 and outs[1][0] == 0 and outs[0][1] == outs[1][1] and outs[0][1].strip()
            detail = ""
            if not same:
                import difflib
                detail = "".join(difflib.unified_diff(outs[0][1].splitlines(True), outs[1][1].splitlines(True), "unsharded", name))[:3000]
            report(bool(same), f"export --format {fmt} of {name} is that of the unsharded run", detail)

    # Refusals: each names the file, writes nothing, leaves OUT as it was.
    notdb = os.path.join(work, "notes.db")
    with open(notdb, "w") as f:
        f.write("not a gradebook\n")
    other = os.path.join(work, "other.db")
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    old = os.path.join(work, "old.db")
    shutil.copy2(shard_dbs[1], old)
    con = sqlite3.connect(old)
    con.execute("PRAGMA user_version = 3")
    con.commit()
    con.close()
    out = os.path.join(work, "refused.db")
    with open(out, "wb") as f:
        f.write(b"before")
    for bad, why in ((notdb, "not a gradebook: not an SQLite database"),
                     (other, "not a gradebook: an SQLite database without mqlab's tables"),
                     (old, "schema version 3"),
                     (os.path.join(work, "absent.db"), "no such gradebook")):
        p = mqlab(["gradebook", "merge", shard_dbs[0], bad, "--db", out])
        unchanged = open(out, "rb").read() == b"before"
        left = [f for f in os.listdir(work) if ".tmp-" in f or f.endswith("-wal") or f.endswith("-shm")]
        report(p.returncode == 2 and bad in p.stderr and why in p.stderr and unchanged and not left,
               f"merge refuses {os.path.basename(bad)} ({why}), names it, leaves the output as it was",
               f"exit {p.returncode} unchanged={unchanged} {left}\n{p.stderr}")
    p = mqlab(["gradebook", "merge", shard_dbs[0], shard_dbs[1]])
    report(p.returncode == 2 and "--db" in p.stderr, "merge without --db is a usage error", p.stderr)
    p = mqlab(["gradebook", "merge", shard_dbs[0], merged, "--db", merged])
    report(p.returncode == 2 and "is the output" in p.stderr, "merge refuses its output as an input", p.stderr)
    for arg in ("3/3", "1/0", "x/2", "-1/2", "1/2/3", ""):
        p = mqlab(["grade", "01", root, "--shard", arg, "--db", os.path.join(work, "never.db")])
        report(p.returncode == 2 and "--shard" in p.stderr and not os.path.exists(os.path.join(work, "never.db")),
               f"--shard {arg!r} is a usage error", f"exit {p.returncode}\n{p.stderr}")
    p = mqlab(["--lang", "es", "grade", "--help"])
    q = mqlab(["--lang", "en", "gradebook", "--help"])
    report("--shard I/N" in p.stdout and "empieza en 0" in p.stdout and "merge A.db B.db" in q.stdout,
           "--help tells of --shard (0-based) and merge, in both languages", p.stdout[-600:] + q.stdout[-600:])


def test_k8s():
    """deploy/k8s: the Indexed Job's exact command for every index, then the
    merge Job's, on this machine; their export must be one unsharded run's.
    The container image is built where podman or buildah can (else said)."""
    print("deploy/k8s: every pod's command run here, merged, equals one grading; the image where it can be built")
    try:
        import yaml
    except ImportError:
        print("  skip  (python3-yaml is not installed: cannot read the manifests)")
        return
    k8s = os.path.join(ROOT, "deploy", "k8s")
    with open(os.path.join(k8s, "grade-job.yaml")) as f:
        grade = yaml.safe_load(f)
    with open(os.path.join(k8s, "merge-job.yaml")) as f:
        merge = yaml.safe_load(f)
    spec = grade["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
    report(spec.get("completionMode") == "Indexed" and spec.get("completions") == int(env.get("SHARDS", 0))
           and pod.get("restartPolicy") == "Never" and c.get("command") == ["sh", "-c"]
           and "--shard" in c["args"][0] and "$JOB_COMPLETION_INDEX" in c["args"][0],
           "grade-job.yaml: an Indexed Job, completions = SHARDS, each pod grades --shard $JOB_COMPLETION_INDEX/$SHARDS",
           (spec, env))
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    report(mounts.get("/class", {}).get("readOnly") is True and "/gradebooks" in mounts,
           "the class volume is read-only; the gradebooks volume is written", mounts)

    # The pods, here: the same shell command, with the volumes' mount
    # points replaced by folders of this run and mqlab found on PATH.
    root = os.path.join(RUN_TMP, "k8s")
    klass = os.path.join(root, "class")
    books = os.path.join(root, "gradebooks")
    os.makedirs(klass)
    os.makedirs(books)
    make_class(klass)
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    os.symlink(os.path.abspath(MQLAB), os.path.join(bindir, "mqlab"))

    def run_pod(container, index=None):
        cmd = container["args"][0].replace("/class", klass).replace("/gradebooks", books)
        tmpdir = fresh_tmp()
        e = env_for(tmpdir)
        e.update({x["name"]: x.get("value", "") for x in container.get("env", [])})
        e["PATH"] = bindir + os.pathsep + e.get("PATH", "")
        e["LABS"] = "01,02"             # the class has labs 01 and 02
        e["JOBS"] = "2"
        if index is not None:
            e["JOB_COMPLETION_INDEX"] = str(index)
        p = subprocess.run(["sh", "-c", cmd], env=e, capture_output=True, text=True, timeout=900)
        files, procs = leftovers(tmpdir)
        return p, files, procs

    shards = int(env["SHARDS"])
    for i in range(shards):
        p, files, procs = run_pod(c, i)
        report(p.returncode == 0 and os.path.exists(os.path.join(books, f"shard-{i}.db")) and not files and not procs,
               f"pod {i}: its command grades shard {i}/{shards} into shard-{i}.db", f"exit {p.returncode} {files} {procs}\n{p.stderr[-800:]}")
    mc = merge["spec"]["template"]["spec"]["containers"][0]
    p, files, procs = run_pod(mc)
    report(p.returncode == 0 and os.path.exists(os.path.join(books, "gradebook.db")),
           "the merge Job's command merges the shards and exports", f"exit {p.returncode}\n{p.stderr[-800:]}")

    one = os.path.join(root, "one.db")
    p = mqlab(["grade", "01,02", klass, "--db", one, "--jobs", "2"], timeout=900)
    report(p.returncode == 0, "the same class graded once, unsharded", p.stderr[-800:])
    fmts = mc["env"][0]["value"].split() if mc.get("env") else []
    for fmt in fmts:
        q = mqlab(["gradebook", "export", "all", "--db", one, "--format", fmt])
        path = os.path.join(books, "export", f"gradebook.{fmt}")
        got = open(path).read() if os.path.exists(path) else ""
        want = q.stdout
        same = q.returncode == 0 and want.strip() and export_normal(got, fmt) == export_normal(want, fmt)
        detail = ""
        if not same:
            import difflib
            detail = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "one run", "pods"))[:3000]
        report(bool(same), f"the pods' {fmt} export is the unsharded run's", detail)

    # The image: podman or buildah build deploy/Containerfile where they
    # exist and can reach Debian's registry for the base image.
    builder = shutil.which("podman") or shutil.which("buildah")
    if not builder:
        print("  skip  the image build: neither podman nor buildah is installed here "
              "(deploy/Containerfile builds with: podman build -f deploy/Containerfile .)")
        return
    args = [builder, "build", "-f", "deploy/Containerfile", "-t", "mqlab-test:ci", "."] if builder.endswith("podman") \
        else [builder, "bud", "-f", "deploy/Containerfile", "-t", "mqlab-test:ci", "."]
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0 and ("docker.io" in p.stderr or "registry" in p.stderr or "pull" in p.stderr):
        print("  skip  the image build: the base image debian:12 cannot be pulled here (" +
              p.stderr.strip().splitlines()[-1][:200] + ")")
        return
    report(p.returncode == 0, "deploy/Containerfile builds", p.stderr[-1500:])
    if p.returncode == 0:
        q = subprocess.run([builder.replace("buildah", "podman"), "run", "--rm", "mqlab-test:ci", "list"],
                           capture_output=True, text=True, timeout=300)
        report(q.returncode == 0 and "01-hello" in q.stdout, "the image's entrypoint is mqlab: `list` works", q.stderr)


def test_resume():
    print("Ctrl-C in a class, then --resume grades only what is left")
    root = os.path.join(RUN_TMP, "class-resume")
    for name in ("x1", "x2", "x3"):
        copy_into(os.path.join(ROOT, "solutions", "03-qos-loss"), os.path.join(root, name))
    db = os.path.join(RUN_TMP, "resume.db")
    tmpdir = fresh_tmp()
    proc = subprocess.Popen([MQLAB, "grade", "03", root, "--db", db, "--jobs", "1"], cwd=ROOT, env=env_for(tmpdir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.time() + 300
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("x1 "):
            break
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    files, procs = leftovers(tmpdir)
    con = sqlite3.connect(db)
    rows = sorted(r[0] for r in con.execute("select student from attempts"))
    con.close()
    report(proc.returncode == 130 and rows == ["x1"] and not files and not procs,
           "Ctrl-C: exit 130, what was graded stays in the gradebook, nothing left behind",
           f"exit {proc.returncode}: {rows} {files} {procs}\n{''.join(seen)}{out}\n{err}")
    tmpdir = fresh_tmp()
    p = mqlab(["grade", "03", root, "--db", db, "--resume"], tmpdir=tmpdir, timeout=600)
    con = sqlite3.connect(db)
    rows = sorted(r[0] for r in con.execute("select student from attempts"))
    con.close()
    x1 = next((l for l in p.stdout.splitlines() if l.startswith("x1 ")), "")
    report(p.returncode == 0 and rows == ["x1", "x2", "x3"] and "kept" in x1,
           "--resume grades only what is left, and keeps x1's result", f"exit {p.returncode}: {rows}\n{p.stdout}\n{p.stderr}")
    with open(os.path.join(root, "x1", "sensor.py"), "a") as f:
        f.write("\n# changed\n")
    p = mqlab(["grade", "03", root, "--db", db, "--resume"], tmpdir=fresh_tmp(), timeout=600)
    con = sqlite3.connect(db)
    rows = sorted(r[0] for r in con.execute("select student from attempts"))
    con.close()
    report(p.returncode == 0 and rows == ["x1", "x1", "x2", "x3"], "--resume grades again a submission whose files changed",
           f"{rows}\n{p.stdout}\n{p.stderr}")


def test_fair():
    print("a heavy lab stays fair under load: lab 10 beside seven more lab-10 gradings")
    root = os.path.join(RUN_TMP, "class-lab10")
    # Only the folder named reference has the data files of its own
    # parameters; the other seven are there to load the machine.
    for name in ("reference", "s2", "s3", "s4", "s5", "s6", "s7", "s8"):
        copy_into(os.path.join(ROOT, "solutions", "10-load"), os.path.join(root, name))
    tmpdir = fresh_tmp()
    p = mqlab(["grade", "10", root, "--jobs", "8", "--format", "json", "--db", os.path.join(RUN_TMP, "fair.db")],
              tmpdir=tmpdir, timeout=600)
    try:
        ref = next(v for v in json.loads(p.stdout)["verdicts"] if v["student"] == "reference")
        lost = [(c["id"], c["message"]) for c in ref["checks"] if not c["passed"]]
    except (ValueError, KeyError, TypeError, StopIteration):
        ref, lost = None, p.stdout[:500] + p.stderr
    files, procs = leftovers(tmpdir)
    report(ref is not None and ref["score"] == ref["max_score"] and not files and not procs,
           "lab 10's reference gets full marks with --jobs 8", f"{lost} {files} {procs}")


# ------------------------------------------------------------ authoring


def guide_files(path):
    """The worked example of the authoring guide: every fenced block that
    follows a line <!-- file: PATH -->, as {PATH: text}."""
    files, want, block = {}, None, None
    with open(path) as f:
        for line in f:
            if block is not None:
                if line.startswith("```"):
                    files[want] = "".join(block)
                    want, block = None, None
                else:
                    block.append(line)
                continue
            m = re.match(r"<!-- file: (\S+) -->", line)
            if m:
                want = m.group(1)
            elif want and line.startswith("```"):
                block = []
    return files


def write_tree(root, files):
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)


def test_guide():
    print("the authoring guide's worked example verifies")
    files = guide_files(os.path.join(ROOT, "docs", "authoring.md"))
    labdir = "90-retained-config"
    need = {f"{labdir}/lab.lua", f"{labdir}/instructions.es.md", f"{labdir}/instructions.en.md",
            f"{labdir}/starter/config.py", f"{labdir}/solution/config.py", f"{labdir}/bad/not-retained/EXPECT"}
    report(need <= set(files), "the guide holds the whole example", sorted(need - set(files)))
    root = fresh_tmp()
    write_tree(root, files)
    tmp = fresh_tmp()
    p = mqlab(["verify", os.path.join(root, labdir)], tmpdir=tmp, cwd=root, timeout=300)
    report(p.returncode == 0 and "all 6 hold" in p.stdout, "mqlab verify passes on the guide's lab",
           p.stdout + p.stderr)
    files_left, procs = leftovers(tmp)
    report(not files_left and not procs, "verify leaves nothing behind", f"{files_left} {procs}")


def scaffold(parent, lab_id):
    p = mqlab(["new-lab", lab_id, parent])
    return p, os.path.join(parent, lab_id)


def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text, (path, old)
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


def line_of(path, needle):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if needle in line:
                return n
    return -1


def test_newlab():
    print("new-lab makes a lab that verify passes, and refuses to overwrite")
    parent = fresh_tmp()
    p, lab = scaffold(parent, "91-greet")
    want = ["lab.lua", "instructions.es.md", "instructions.en.md", "starter/client.py", "solution/client.py",
            "bad/qos0/client.py", "bad/qos0/EXPECT", "slides.es.md", "slides.en.md"]
    missing = [w for w in want if not os.path.isfile(os.path.join(lab, w))]
    report(p.returncode == 0 and not missing, "new-lab 91-greet writes the scaffold", p.stderr + str(missing))
    with open(os.path.join(lab, "lab.lua")) as f:
        report('id = "91-greet"' in f.read(), "the scaffold's lab id is its folder's name")
    before = open(os.path.join(lab, "lab.lua")).read()
    p2, _ = scaffold(parent, "91-greet")
    report(p2.returncode == 2 and "already exists" in p2.stderr and open(os.path.join(lab, "lab.lua")).read() == before,
           "a second new-lab 91-greet is refused and changes nothing", p2.stderr)
    p3 = mqlab(["new-lab", "greet", parent])
    report(p3.returncode == 2 and "not a lab id" in p3.stderr and not os.path.exists(os.path.join(parent, "greet")),
           "new-lab with a bad id is refused", p3.stderr)
    report(not [n for n in os.listdir(parent) if n.startswith(".")], "new-lab leaves no temporary folder", os.listdir(parent))
    tmp = fresh_tmp()
    v = mqlab(["verify", lab], tmpdir=tmp, cwd=parent, timeout=300)
    report(v.returncode == 0 and "all 6 hold" in v.stdout, "verify passes on the fresh scaffold", v.stdout + v.stderr)
    p4 = mqlab(["new-lab", "--help"])
    report(p4.returncode == 0 and "new-lab" in p4.stdout, "new-lab --help")
    p5 = mqlab(["verify", "--help"])
    report(p5.returncode == 0 and "EXPECT" in p5.stdout, "verify --help")


def test_verify():
    print("verify fails a lab broken in each way, with the right message")
    parent = fresh_tmp()

    def broken(name, change):
        lab_id = "92-" + name
        _, lab = scaffold(parent, lab_id)
        change(lab)
        tmp = fresh_tmp()
        v = mqlab(["verify", lab], tmpdir=tmp, cwd=parent, timeout=300)
        files_left, procs = leftovers(tmp)
        return v, lab, (not files_left and not procs)

    def fails(v, row, text):
        rows = [l for l in v.stdout.splitlines() if l.strip().startswith("FAIL") and row in l]
        return v.returncode == 1 and any(text in l for l in rows)

    # English-only feedback, at its line.
    def english_only(lab):
        edit(os.path.join(lab, "lab.lua"), 't:fail({ es = "el saludo iba con QoS %d; se pide QoS 1\\n%s",\n', "t:fail({\n")
    v, lab, clean = broken("english", english_only)
    n = line_of(os.path.join(lab, "lab.lua"), 'en = "the greeting went at QoS')
    report(fails(v, "texts", f"lab.lua:{n - 1}: a text in English only"), "English-only feedback is reported at its line",
           v.stdout + v.stderr)
    report(clean, "verify leaves nothing behind")

    # A check title in one language only.
    def plain_title(lab):
        edit(os.path.join(lab, "lab.lua"), 'title = { es = "Publica el saludo en su topic con QoS 1", en = "It publishes the greeting on its topic at QoS 1" },',
             'title = "It publishes the greeting",')
    v, lab, _ = broken("title", plain_title)
    report(fails(v, "texts", "check 'publishes': its title needs es and en"), "a check title in English only", v.stdout)

    # A placeholder typo, at its line in the .md file.
    def typo(lab):
        edit(os.path.join(lab, "instructions.en.md"), "`{{topic}}`", "`{{topik}}`")
    v, lab, _ = broken("typo", typo)
    n = line_of(os.path.join(lab, "instructions.en.md"), "{{topik}}")
    report(fails(v, "placeholders", f"instructions.en.md:{n}: no parameter 'topik'"), "a placeholder typo names the .md line",
           v.stdout + v.stderr)

    # A lab without its id, at the lab's own line (not a check's).
    def no_id(lab):
        edit(os.path.join(lab, "lab.lua"), '  id = "92-noid",\n', "")
    v, lab, _ = broken("noid", no_id)
    n = line_of(os.path.join(lab, "lab.lua"), "return lab {")
    report(fails(v, "lab file", f"lab.lua:{n}: lab: 'id' must look like"), "a missing lab id names the lab's line",
           v.stdout + v.stderr)

    # A reference solution that does not score full marks.
    def weak_solution(lab):
        edit(os.path.join(lab, "solution", "client.py"), "qos=1)", "qos=0)")
    v, _, _ = broken("weak", weak_solution)
    report(fails(v, "reference", "not full marks"), "a solution short of full marks", v.stdout)

    # Starter files that already solve the lab.
    def solved_starter(lab):
        shutil.copy(os.path.join(lab, "solution", "client.py"), os.path.join(lab, "starter", "client.py"))
    v, _, _ = broken("solved", solved_starter)
    report(fails(v, "starter", "score full marks"), "starter files that solve the lab", v.stdout)

    # A built-in lab, with the repository's solutions/ and tests/bad/.
    tmp = fresh_tmp()
    v = mqlab(["verify", "02"], tmpdir=tmp, timeout=300)
    report(v.returncode == 0 and "solutions/02-topics: 16/16, 3 times" in v.stdout
           and "tests/bad/02-topics/order: loses general-to-specific" in v.stdout and "02-topics: all" in v.stdout,
           "verify 02 passes on the built-in lab, with the repository's solutions and known-bads", v.stdout + v.stderr)

    # A known-bad whose EXPECT is wrong, and one that names no check.
    def wrong_expect(lab):
        with open(os.path.join(lab, "bad", "qos0", "EXPECT"), "w") as f:
            f.write("# nothing lost, it claims\n")
    v, _, _ = broken("expect", wrong_expect)
    report(fails(v, "known-bad", "loses publishes; EXPECT says -"), "a known-bad that loses more than its EXPECT", v.stdout)

    def unknown_expect(lab):
        with open(os.path.join(lab, "bad", "qos0", "EXPECT"), "w") as f:
            f.write("publishes\nno-such-check\n")
    v, _, _ = broken("unknown", unknown_expect)
    report(fails(v, "known-bad", "'no-such-check', which is no check"), "an EXPECT naming no check of the lab", v.stdout)

    # A known-bad that loses nothing, and a lab with no solution at all.
    def no_solution(lab):
        shutil.rmtree(os.path.join(lab, "solution"))
    v, _, _ = broken("nosol", no_solution)
    report(fails(v, "reference", "no reference solution"), "a lab without a reference solution", v.stdout)


def test_own_labs():
    print("own labs beside the built-in ones (MQLAB_LABS, paths)")
    a, b = fresh_tmp(), fresh_tmp()
    _, x = scaffold(a, "05-x")
    _, hello = scaffold(b, "01-hello")
    env = {"MQLAB_LABS": f"{a}:{b}"}
    p = mqlab(["list"], extra_env=env)
    lines = {l.split()[0]: l for l in p.stdout.splitlines() if l[:2].isdigit()}
    report(p.returncode == 0 and "05-x" in lines and x in lines["05-x"] and "05-retain-lwt" in lines
           and "built in" in lines["05-retain-lwt"] and "10-load" in lines, "list shows the built-in labs and the own one, with sources",
           p.stdout + p.stderr)
    report("01-hello" in lines and hello in lines["01-hello"] and "replaces" in lines["01-hello"]
           and "replaces the built-in" in p.stderr, "an own 01-hello replaces the built-in one, with a notice", p.stdout + p.stderr)
    p = mqlab(["check", "05", os.path.join(x, "solution"), "--no-record"], extra_env=env)
    report(p.returncode == 2 and "05-retain-lwt" in p.stderr and "05-x" in p.stderr and "full id" in p.stderr,
           "check 05 names both labs numbered 05 and asks for the full id", p.stderr)
    p = mqlab(["check", "05-x", os.path.join(x, "solution"), "--no-record", "--student", "reference"], extra_env=env)
    report(p.returncode == 0, "check 05-x grades the own lab", p.stdout + p.stderr)
    p = mqlab(["show", "01", "--student", "reference"], extra_env=env)
    report(p.returncode == 0 and "Publish a greeting" in p.stdout, "show 01 shows the replacing lab", p.stdout + p.stderr)
    # By path, without MQLAB_LABS.
    p = mqlab(["check", x, os.path.join(x, "solution"), "--no-record", "--student", "reference"])
    report(p.returncode == 0, "check PATH grades a lab folder", p.stdout + p.stderr)
    p = mqlab(["show", x, "--student", "reference"])
    report(p.returncode == 0 and "Publish a greeting" in p.stdout, "show PATH", p.stderr)
    cls = fresh_tmp()
    copy_into(os.path.join(x, "solution"), os.path.join(cls, "ana"))
    copy_into(os.path.join(x, "bad", "qos0"), os.path.join(cls, "bea"))
    if os.path.exists(os.path.join(cls, "bea", "EXPECT")):
        os.remove(os.path.join(cls, "bea", "EXPECT"))
    p = mqlab(["grade", x, cls, "--format", "csv", "--db", os.path.join(cls, "gb.db")], timeout=300)
    report(p.returncode == 0 and "ana" in p.stdout and "bea" in p.stdout, "grade PATH CLASS", p.stdout + p.stderr)
    # A lab folder must be named after its lab's id.
    odd = os.path.join(fresh_tmp(), "greet")
    shutil.copytree(x, odd)
    p = mqlab(["show", odd])
    report(p.returncode == 2 and "named after its lab's id" in p.stderr, "a lab folder not named after an id is refused", p.stderr)
    renamed = os.path.join(fresh_tmp(), "06-y")
    shutil.copytree(x, renamed)
    p = mqlab(["show", renamed])
    report(p.returncode == 2 and "06-y/lab.lua" in p.stderr and "'05-x'" in p.stderr,
           "a lab whose id differs from its folder's name is refused", p.stderr)
    p = mqlab(["list"], extra_env={"MQLAB_LABS": "/nonexistent-labs"})
    report(p.returncode == 0 and "10-load" in p.stdout and "not a folder" in p.stderr,
           "a wrong MQLAB_LABS keeps the built-in labs, with a word", p.stdout + p.stderr)


# ------------------------------------------------------------ guided mode


def free_port():
    import socket
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


class Pane:
    """mqlab start in a tmux pane of its own server, driven as a student
    would: read the screen, press Enter, Ctrl-C."""

    def __init__(self, args, tmpdir, db, cwd=None):
        self.sock = os.path.join(tmpdir, "tmux.sock")
        self.tmpdir = tmpdir
        env = " ".join(f"{k}={v}" for k, v in (("TMPDIR", tmpdir), ("HOME", RUN_HOME), ("MQLAB_DB", db),
                                                ("MQLAB_LANG", "en"), ("NO_COLOR", "1")))
        cmd = f"env {env} {MQLAB} " + " ".join(args) + "; echo EXIT=$?; sleep 600"
        subprocess.run(["tmux", "-S", self.sock, "new-session", "-d", "-x", "200", "-y", "200"]
                       + (["-c", cwd] if cwd else []) + [cmd], check=True)

    def screen(self):
        p = subprocess.run(["tmux", "-S", self.sock, "capture-pane", "-p", "-J", "-S", "-1000"],
                           capture_output=True, text=True)
        return p.stdout

    def wait(self, text, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if text in self.screen():
                return True
            time.sleep(0.2)
        return False

    def keys(self, *keys):
        subprocess.run(["tmux", "-S", self.sock, "send-keys"] + list(keys))

    def param(self, name):
        m = re.search(rf"^\s+{name}\s+(\S+)\s*$", self.screen(), re.M)
        return m.group(1) if m else None

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True)


def bg(cmd, cwd=None, env=None):
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_all(procs):
    for pr in procs:
        if pr.poll() is None:
            pr.terminate()
    for pr in procs:
        try:
            pr.wait(5)
        except subprocess.TimeoutExpired:
            pr.kill()


def guided(lab, body, cwd=None):
    """Run mqlab start LAB on a free port in tmux (in cwd); body(pane, port,
    procs) drives it. Afterwards: nothing left behind, even after Ctrl-C."""
    tmp = fresh_tmp()
    db = os.path.join(tmp, "progress.db")
    port = free_port()
    pane = Pane(["start", lab, "--port", str(port), "--student", "ana"], tmp, db, cwd=cwd)
    procs = []
    try:
        ok = pane.wait(f"127.0.0.1:{port}", 20)
        report(ok, f"start {lab} listens on the port asked for", pane.screen()[-1500:])
        if ok:
            body(pane, port, procs)
    finally:
        stop_all(procs)
        if not pane.wait("EXIT=", 5):
            pane.keys("C-c")
            report(pane.wait("EXIT=130", 20) and "Stopped after" in pane.screen(), f"start {lab} stops on Ctrl-C",
                   pane.screen()[-800:])
        else:
            scr = pane.screen()
            report("EXIT=0" in scr or ("EXIT=130" in scr and "Stopped after" in scr),
                   f"start {lab} ends cleanly (0 once every step is met, 130 on Ctrl-C)", scr[-800:])
        check_guided_leftovers(tmp, lab)
        pane.close()
    return db


def check_guided_leftovers(tmp, lab):
    time.sleep(0.3)
    files, procs = leftovers(tmp)
    files = [f for f in files if f not in ("tmux.sock", "progress.db", "progress.db-wal", "progress.db-shm")]
    procs = "\n".join(l for l in procs.splitlines() if "tmux" not in l and "sleep 600" not in l)
    report(not files and not procs, f"start {lab} leaves nothing behind", f"{files} {procs}")


def test_guided():
    print("guided mode (mqlab start), driven in tmux")
    if not shutil.which("tmux"):
        report(False, "tmux is installed (the guided-mode tests need it)")
        return
    sub = shutil.which("mosquitto_sub")
    pub = shutil.which("mosquitto_pub")

    def lab01(pane, port, procs):
        cid, topic = pane.param("client_id"), pane.param("topic")
        report(bool(cid and topic), "start 01 prints the student's parameters", pane.screen()[-800:])
        base = [ "-h", "127.0.0.1", "-p", str(port)]
        # Wrong first: a subscription at QoS 0.
        subprocess.run(["timeout", "2", sub] + base + ["-i", cid, "-t", topic, "-q", "0"])
        report(pane.wait("your SUBSCRIBE asked for QoS 0; this step needs 1"), "a QoS 0 SUBSCRIBE gets the right correction",
               pane.screen()[-1500:])
        procs.append(bg([sub] + base + ["-i", cid, "-t", topic, "-q", "1", "-v"]))
        report(pane.wait("✔ SUBSCRIBE to " + topic + " at QoS 1"), "step 1 is met by a QoS 1 subscription", pane.screen()[-1500:])
        # Wrong: the publisher takes the subscriber's client id.
        subprocess.run([pub] + base + ["-i", cid, "-t", topic, "-q", "1", "-m", "hola"])
        report(pane.wait("with your subscriber's client id"), "a publisher with the subscriber's id is told about the takeover",
               pane.screen()[-1500:])
        time.sleep(1.5)   # mosquitto_sub reconnects by itself
        subprocess.run([pub] + base + ["-i", "pub-" + cid, "-t", topic, "-q", "0", "-m", "hola"])
        report(pane.wait("your PUBLISH went at QoS 0; this step needs 1"), "a QoS 0 PUBLISH gets the right correction",
               pane.screen()[-1500:])
        subprocess.run([pub] + base + ["-i", "pub-" + cid, "-t", topic, "-q", "1", "-m", "hola"])
        report(pane.wait("All 2 steps done", 20), "step 2 is met once the broker delivers hola to the subscriber",
               pane.screen()[-1500:])

    db = guided("01", lab01)
    con = sqlite3.connect(db)
    steps = sorted(r[0] for r in con.execute("SELECT step FROM guide_steps WHERE student='ana' AND lab='01-hello'"))
    con.close()
    report(steps == ["publish", "subscribe"], "the steps met are recorded", steps)
    pr = mqlab(["progress", "--student", "ana"], extra_env={"MQLAB_DB": db})
    report(pr.returncode == 0 and re.search(r"01-hello .*guided 2/2", pr.stdout), "progress shows the guided steps met",
           pr.stdout)

    def lab03(pane, port, procs):
        cid, topic = pane.param("client_id"), pane.param("topic")
        env = dict(os.environ, MQTT_HOST="127.0.0.1", MQTT_PORT=str(port), MQTT_CLIENT_ID=cid, MQTT_TOPIC=topic,
                   LAB_COUNT="3", LAB_INTERVAL_MS="100")
        py = os.environ.get("MQLAB_PYTHON", "/usr/bin/python3")
        # Wrong first: the known-bad sensor that publishes at QoS 0.
        subprocess.run([py, "sensor.py"], cwd=os.path.join(ROOT, "tests", "bad", "03-qos-loss", "qos0"), env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        report(pane.wait("its PUBLISH went at QoS 0; this lab needs QoS 1"), "a QoS 0 sensor gets the right correction",
               pane.screen()[-1500:])
        env["LAB_COUNT"] = "400"
        env["LAB_INTERVAL_MS"] = "150"
        procs.append(bg([py, "sensor.py"], cwd=os.path.join(ROOT, "solutions", "03-qos-loss"), env=env))
        report(pane.wait("✔ PUBLISH at QoS 1 and its PUBACK"), "step 1 is met by the reference sensor", pane.screen()[-1500:])
        report(pane.wait("Press Enter and I cut your link."), "the fault step waits for Enter", pane.screen()[-800:])
        pane.keys("Enter")
        report(pane.wait("✔ it sent the reading again with DUP=1", 40), "after the cut the sensor re-sends with DUP=1",
               pane.screen()[-2000:])
        report(pane.wait("All 2 steps done", 10), "start 03 ends its steps", pane.screen()[-800:])

    guided("03", lab03)

    def lab05(pane, port, procs):
        cid = pane.param("client_id")
        out = mqlab(["show", "05", "--student", "ana"]).stdout
        m = re.search(r"`([^`]*/estado)`", out)
        state = m.group(1) if m else None
        report(bool(cid and state), "start 05: the parameters and the state topic", (cid, state))
        base = ["-h", "127.0.0.1", "-p", str(port)]
        will = ["--will-topic", state, "--will-payload", "offline", "--will-qos", "1"]
        # Wrong first: a will that is not retained.
        subprocess.run(["timeout", "2", sub] + base + ["-i", cid, "-k", "5", "-t", "x/cmd"] + will)
        report(pane.wait("your will is not retained"), "a will without retain gets the right correction", pane.screen()[-1500:])
        procs.append(bg([sub] + base + ["-i", cid, "-k", "5", "-t", "x/cmd"] + will + ["--will-retain"]))
        report(pane.wait("✔ CONNECT with a Last Will"), "step 1 is met by a retained will", pane.screen()[-1500:])
        subprocess.run([pub] + base + ["-i", "pub-" + cid, "-t", state, "-q", "1", "-m", "online"])
        report(pane.wait("is not retained: a dashboard"), "an online that is not retained gets the right correction",
               pane.screen()[-1500:])
        subprocess.run([pub] + base + ["-i", "pub-" + cid, "-t", state, "-q", "1", "-r", "-m", "online"])
        report(pane.wait("✔ \"online\" retained"), "step 2 is met by a retained online", pane.screen()[-1500:])
        report(pane.wait("Press Enter and I cut the link."), "the power cut waits for Enter", pane.screen()[-800:])
        pane.keys("Enter")
        report(pane.wait("Cut. Now the dashboard"), "the link is cut", pane.screen()[-800:])
        time.sleep(0.5)
        subprocess.run(["timeout", "5", sub] + base + ["-t", state, "-v", "-C", "1"], stdout=subprocess.DEVNULL)
        report(pane.wait("✔ the dashboard that came late got \"offline\""), "the late dashboard gets the will",
               pane.screen()[-1500:])

    guided("05", lab05)

    py = os.environ.get("MQLAB_PYTHON", "/usr/bin/python3")

    def lab04(pane, port, procs):
        cid, topic = pane.param("client_id"), pane.param("topic")
        m = re.search(r"-i (watch-\w+)", pane.screen())
        watch = m.group(1) if m else None
        report(bool(cid and topic and watch), "start 04 prints the parameters and the subscriber's command", pane.screen()[-800:])
        base = ["-h", "127.0.0.1", "-p", str(port)]
        # Wrong first: the subscriber at QoS 1.
        subprocess.run(["timeout", "2", sub] + base + ["-i", watch, "-t", topic, "-q", "1"])
        report(pane.wait("your SUBSCRIBE asked for QoS 1: the broker delivers at the lower"), "a QoS 1 subscriber gets the right correction",
               pane.screen()[-1500:])
        procs.append(bg([sub] + base + ["-i", watch, "-t", topic, "-q", "2", "-v"]))
        report(pane.wait("✔ SUBSCRIBE to " + topic + " at QoS 2"), "step 1 is met by a QoS 2 subscriber", pane.screen()[-1500:])
        cmd = '{"id": "dosis-1", "v": 5}'
        subprocess.run([pub] + base + ["-i", cid, "-t", topic, "-q", "1", "-m", cmd])
        report(pane.wait("your PUBLISH went at QoS 1: the broker delivers it as soon as it comes"), "a QoS 1 command gets the right correction",
               pane.screen()[-1500:])
        subprocess.run([pub] + base + ["-i", cid, "-t", topic, "-q", "2", "-m", cmd])
        report(pane.wait("✔ PUBLISH, PUBREC, PUBREL and PUBCOMP"), "step 2 is met by the four packets of QoS 2", pane.screen()[-1500:])
        report(pane.wait("Press Enter and I lose the next PUBCOMP."), "the lost PUBCOMP waits for Enter", pane.screen()[-800:])
        pane.keys("Enter")
        report(pane.wait("Ready: the next PUBCOMP"), "the PUBCOMP is about to be lost", pane.screen()[-800:])
        env = dict(os.environ, MQTT_HOST="127.0.0.1", MQTT_PORT=str(port), MQTT_CLIENT_ID=cid, MQTT_TOPIC=topic, LAB_COUNT="3")
        # Wrong first: the known-bad dispenser with a clean session re-sends the PUBLISH.
        subprocess.run([py, "dispenser.py"], cwd=os.path.join(ROOT, "tests", "bad", "04-qos-dup", "clean-qos2"), env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=40)
        report(pane.wait("your client reconnected with clean session 1"), "a clean-session reconnection gets the right correction",
               pane.screen()[-2000:])
        report(pane.wait("instead of the PUBREL: the broker had already delivered it"), "the re-sent PUBLISH is named",
               pane.screen()[-2000:])
        report(pane.wait("2 times: two doses for one command"), "the double delivery to the subscriber is named", pane.screen()[-2000:])
        report(pane.wait("I lose the next PUBCOMP again"), "the fault is armed again for another try", pane.screen()[-2000:])
        subprocess.run([py, "dispenser.py"], cwd=os.path.join(ROOT, "solutions", "04-qos-dup"), env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=40)
        report(pane.wait("✔ after reconnecting with its session it sent the PUBREL again", 20)
               and "your subscriber got it exactly once" in pane.screen(),
               "the reference dispenser re-sends the PUBREL, and the command arrives once", pane.screen()[-2000:])
        report(pane.wait("All 3 steps done", 10), "start 04 ends its steps", pane.screen()[-800:])

    guided("04", lab04)

    def lab06(pane, port, procs):
        m = re.search(r"-i (collector-\S+) -c -q 1 -t '([^']+)'", pane.screen())
        report(bool(m), "start 06 prints the collector's command", pane.screen()[-800:])
        if not m:
            return
        cid, filt = m.group(1), m.group(2)
        topic = filt.replace("/+/temp", "/sensor-01/temp")
        base = ["-h", "127.0.0.1", "-p", str(port)]
        # Wrong first: a collector with clean session 1.
        subprocess.run(["timeout", "2", sub] + base + ["-i", cid, "-q", "1", "-t", filt])
        report(pane.wait("your CONNECT asks for clean session 1"), "a clean-session collector gets the right correction",
               pane.screen()[-1500:])
        col = bg([sub] + base + ["-i", cid, "-c", "-q", "1", "-t", filt, "-v"])
        procs.append(col)
        report(pane.wait(f"✔ '{cid}' with clean session 0"), "step 1 is met by a persistent collector", pane.screen()[-1500:])
        subprocess.run([pub] + base + ["-i", "pub-g", "-t", topic, "-q", "1", "-m", "live-1"])
        report(pane.wait("your collector is still connected, so it gets it live"), "publishing with the collector there gets the right correction",
               pane.screen()[-1500:])
        stop_all([col])
        report(pane.wait("your collector is gone"), "the collector's leaving is seen", pane.screen()[-1500:])
        subprocess.run([pub] + base + ["-i", "pub-g", "-t", topic, "-q", "0", "-m", "hola-0"])
        report(pane.wait("you published at QoS 0: the broker keeps no QoS 0 message"), "a QoS 0 publish while away gets the right correction",
               pane.screen()[-1500:])
        subprocess.run([pub] + base + ["-i", "pub-g", "-t", topic, "-q", "1", "-m", "hola-1"])
        report(pane.wait("hola-1 published at QoS 1 and acknowledged"), "step 2 is met by a QoS 1 publish while away", pane.screen()[-1500:])
        report(pane.wait("Press Enter and I restart the broker."), "the restart waits for Enter", pane.screen()[-800:])
        pane.keys("Enter")
        report(pane.wait("Broker restarted", 20), "the broker is restarted", pane.screen()[-800:])
        # Wrong first: a subscriber with no client id of its own.
        subprocess.run(["timeout", "2", sub] + base + ["-q", "1", "-t", filt])
        report(pane.wait("a new client id is a new, empty session"), "a subscriber without the collector's id gets the right correction",
               pane.screen()[-1500:])
        out = subprocess.run(["timeout", "4", sub] + base + ["-i", cid, "-c", "-q", "1", "-t", filt, "-v", "-C", "1"],
                             capture_output=True, text=True).stdout
        report(pane.wait("✔ the collector received " + topic + " hola-1") and "session present 1" in pane.screen(),
               "step 3: session present after the restart, and the queued message delivered", pane.screen()[-1500:])
        report("hola-1" in out, "the collector printed the message kept across the restart", out)
        report(pane.wait("All 3 steps done", 10), "start 06 ends its steps", pane.screen()[-800:])

    guided("06", lab06)

    def lab09(pane, port, procs):
        cid, topic = pane.param("client_id"), pane.param("topic")
        report(bool(cid and topic), "start 09 prints the student's parameters", pane.screen()[-800:])
        base = ["-h", "127.0.0.1", "-p", str(port)]
        dbfile = os.path.join(fresh_tmp(), "lab09.db")
        env = dict(os.environ, MQTT_HOST="127.0.0.1", MQTT_PORT=str(port), MQTT_CLIENT_ID=cid, MQTT_TOPIC=topic, LAB_DB=dbfile)
        # Wrong first: a subscription at QoS 0.
        subprocess.run(["timeout", "2", sub] + base + ["-i", cid, "-t", topic, "-q", "0"])
        report(pane.wait("your SUBSCRIBE asked for QoS 0: at most once"), "a QoS 0 consumer gets the right correction",
               pane.screen()[-1500:])
        # Then a consumer that subscribes well but chokes on the malformed message.
        badc = bg([py, "consumer.py"], cwd=os.path.join(ROOT, "tests", "bad", "09-idempotent", "crash-on-malformed"), env=env)
        procs.append(badc)
        report(pane.wait("✔ SUBSCRIBE to " + topic + " at QoS 1"), "step 1 is met by a QoS 1 consumer", pane.screen()[-1500:])
        report(pane.wait("Press Enter and I publish."), "the publishing waits for Enter", pane.screen()[-800:])
        pane.keys("Enter")
        report(pane.wait("Did it choke on it?", 20), "a consumer that stops at the malformed message gets the right correction",
               pane.screen()[-2000:])
        stop_all([badc])
        good = bg([py, "consumer.py"], cwd=os.path.join(ROOT, "solutions", "09-idempotent"), env=env)
        procs.append(good)
        report(pane.wait("your consumer subscribed: published", 20), "the kit publishes again when the consumer is back",
               pane.screen()[-2000:])
        report(pane.wait("✔ your consumer got and acknowledged everything", 20), "step 2 is met by the reference consumer",
               pane.screen()[-2000:])
        # Wrong first: a consumer with another client id.
        subprocess.run(["timeout", "2", sub] + base + ["-i", "other-" + cid, "-t", topic, "-q", "1"])
        report(pane.wait("with another client id it is another consumer"), "a consumer with another id gets the right correction",
               pane.screen()[-1500:])
        stop_all([good])
        procs.append(bg([py, "consumer.py"], cwd=os.path.join(ROOT, "solutions", "09-idempotent"), env=env))
        report(pane.wait("✔ after the restart your consumer got and acknowledged", 20), "step 3 is met after a restart and a replay",
               pane.screen()[-2000:])
        report(pane.wait("All 3 steps done", 10), "start 09 ends its steps", pane.screen()[-800:])
        con = sqlite3.connect(dbfile)
        rows, ids = con.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM readings").fetchone()
        con.close()
        report(rows == ids and rows >= 5, "the reference consumer's table holds each id once", (rows, ids))

    guided("09", lab09)

    def lab02(pane, port, procs):
        base = ["-h", "127.0.0.1", "-p", str(port)]
        # Wrong first: '#' from the root, then a '+' short of levels.
        subprocess.run(["timeout", "2", sub] + base + ["-t", "#"])
        report(pane.wait("you subscribed to '#' from the root"), "start 02: '#' from the root gets the right correction",
               pane.screen()[-1500:])
        subprocess.run(["timeout", "2", sub] + base + ["-t", "demo/v1/+/temp"])
        report(pane.wait("selects none of the 8 topics: it has 4 levels"), "start 02: a filter short of levels is told so",
               pane.screen()[-1500:])
        procs.append(bg([sub] + base + ["-t", "demo/v1/+/+/+/temp", "-v"]))
        report(pane.wait("✔ demo/v1/+/+/+/temp selects just the 2 topics"), "start 02: step 1 met by demo/v1/+/+/+/temp",
               pane.screen()[-1500:])
        subprocess.run(["timeout", "2", sub] + base + ["-t", "demo/v1/planta-b/+"])
        report(pane.wait("demo/v1/planta-b/+ selects none"), "start 02: planta-b/+ is told it selects nothing",
               pane.screen()[-1500:])
        procs.append(bg([sub] + base + ["-t", "demo/v1/planta-b/#", "-v"]))
        report(pane.wait("✔ demo/v1/planta-b/# selects just the 3 topics"), "start 02: step 2 met by demo/v1/planta-b/#",
               pane.screen()[-1500:])
        report(pane.wait("Press Enter and I publish the whole fleet."), "start 02: the publish waits for Enter",
               pane.screen()[-800:])
        pane.keys("Enter")
        report(pane.wait("✔ the broker delivered to each subscriber only what its filter selects"),
               "start 02: each subscriber gets just its topics", pane.screen()[-1500:])
        report(pane.wait("All 3 steps done", 10), "start 02 ends its steps", pane.screen()[-800:])

    guided("02", lab02)

    def lab07(pane, port, procs):
        cid, topic = pane.param("client_id"), pane.param("topic")
        base = ["-h", "127.0.0.1", "-p", str(port), "-i", cid, "-t", topic, "-q", "1"]
        # Wrong first: no user name or password, so nothing to see in clear.
        subprocess.run([pub] + base + ["-m", '{"v": 1}'])
        report(pane.wait("carries no user name and password"), "start 07: a CONNECT without credentials gets the right correction",
               pane.screen()[-1500:])
        subprocess.run([pub] + base + ["-u", cid, "-P", "secret", "-m", '{"v": 21.5}'])
        report(pane.wait("✔ the proxy read, deciphering nothing"), "start 07: step 1 shows credentials and payload in clear",
               pane.screen()[-1500:])
        report(pane.wait("Press Enter and I open the TLS listener."), "start 07: the TLS listener waits for Enter",
               pane.screen()[-800:])
        pane.keys("Enter")
        pane.wait("TLS listener open on port")
        m = re.search(r"TLS listener open on port (\d+)", pane.screen())
        ca = re.search(r"--cafile (\S+/ca\.crt)", pane.screen())
        report(bool(m and ca), "start 07 opens a TLS listener and names the CA", pane.screen()[-800:])
        if not (m and ca):
            return
        tls = ["-h", "localhost", "-p", m.group(1), "-i", cid, "-t", topic, "-q", "1", "-m", '{"v": 21.5}']
        # Wrong: no --cafile, so plain MQTT to the TLS port.
        subprocess.run(["timeout", "5", pub] + tls, stderr=subprocess.DEVNULL)
        report(pane.wait("Without --cafile, mosquitto_pub sends plain MQTT to a TLS port"),
               "start 07: plain MQTT to the TLS port gets the right correction", pane.screen()[-1500:])
        subprocess.run(["timeout", "5", pub] + tls + ["--cafile", ca.group(1)])
        report(pane.wait("✔ the broker got over TLS the CONNECT of '" + cid + "'"), "start 07: step 2 met over TLS",
               pane.screen()[-1500:])
        report(pane.wait("Press Enter and I start the impostor."), "start 07: the impostor waits for Enter", pane.screen()[-800:])
        pane.keys("Enter")
        pane.wait("Impostor listening on port")
        m = re.search(r"Impostor listening on port (\d+)", pane.screen())
        report(bool(m), "start 07 starts an impostor", pane.screen()[-800:])
        if not m:
            return
        tls[3] = m.group(1)
        subprocess.run(["timeout", "5", pub] + tls + ["--cafile", ca.group(1)], stderr=subprocess.DEVNULL)
        report(pane.wait("✔ your client aborted the handshake"), "start 07: mosquitto_pub refuses the impostor",
               pane.screen()[-1500:])
        report(pane.wait("All 3 steps done", 10), "start 07 ends its steps", pane.screen()[-800:])

    guided("07", lab07)

    def lab08(pane, port, procs):
        base = ["-h", "127.0.0.1", "-p", str(port)]
        m = re.search(r"-i (dashboard-\w+) -u \S+ -P (\w+) -t '([^']+)'", pane.screen())
        report(bool(m), "start 08 shows the dashboard's command", pane.screen()[-800:])
        if not m:
            return
        dash, dpw, plant = m.groups()
        # Wrong first: an anonymous dashboard, then one that asks for '#'.
        subprocess.run(["timeout", "2", sub] + base + ["-i", dash, "-t", plant])
        report(pane.wait("your CONNECT carries no user name"), "start 08: an anonymous dashboard gets the right correction",
               pane.screen()[-1500:])
        subprocess.run(["timeout", "2", sub] + base + ["-i", dash, "-u", dash, "-P", dpw, "-t", "#"])
        report(pane.wait("subscribed to '#': Mosquitto grants it (SUBACK)"), "start 08: '#' from the dashboard is told about the ACL",
               pane.screen()[-1500:])
        procs.append(bg([sub] + base + ["-i", dash, "-u", dash, "-P", dpw, "-t", plant, "-v"]))
        report(pane.wait("✔ dashboard " + dash), "start 08: step 1 met by the dashboard with its user", pane.screen()[-1500:])
        m = re.search(r"mosquitto_pub .* -i (sensor-\w+) -u \S+ -P (\w+) -t '([^']+)/(\w+)'", pane.screen())
        report(bool(m), "start 08 shows the sensor's command", pane.screen()[-800:])
        if not m:
            return
        s1, spw, root, _ = m.groups()
        # Wrong: the sensor publishes a command on its own cmd topic.
        subprocess.run([pub] + base + ["-i", s1, "-u", s1, "-P", spw, "-t", root + "/cmd", "-q", "1", "-m", "reinicio"])
        report(pane.wait(f"{s1} may not publish on {root}/cmd: the broker will answer PUBACK all the same"),
               "start 08: a sensor publishing a command is told the ACL drops it", pane.screen()[-1500:])
        subprocess.run([pub] + base + ["-i", s1, "-u", s1, "-P", spw, "-t", root + "/temp", "-q", "1", "-m", "21.5"])
        report(pane.wait("✔ the ACL let " + s1 + "'s reading"), "start 08: step 2 met by a reading on the sensor's topic",
               pane.screen()[-1500:])
        report(pane.wait("Press Enter and the compromised sensor publishes."), "start 08: the attack waits for Enter",
               pane.screen()[-800:])
        pane.keys("Enter")
        report(pane.wait("which the ACL forbids") and pane.wait("✔ the dashboard got only", 20),
               "start 08: the forbidden publishes get PUBACK and are not delivered", pane.screen()[-1500:])
        report(pane.wait("All 3 steps done", 10), "start 08 ends its steps", pane.screen()[-800:])

    guided("08", lab08)

    def lab10(pane, port, procs):
        cid = pane.param("client_id")
        base = ["-h", "127.0.0.1", "-p", str(port)]
        # Wrong first: '#' (no $SYS), then the filter a shell leaves of "$SYS/...".
        subprocess.run(["timeout", "2", sub] + base + ["-t", "#"])
        report(pane.wait("never takes topics that start with $"), "start 10: '#' is told it gets no $SYS", pane.screen()[-1500:])
        subprocess.run(["timeout", "2", sub] + base + ["-t", "/broker/clients/connected"])
        report(pane.wait("the shell replaced '$SYS' with nothing"), "start 10: a $SYS eaten by the shell is named",
               pane.screen()[-1500:])
        procs.append(bg([sub] + base + ["-i", cid, "-t", "$SYS/broker/clients/connected", "-v"]))
        report(pane.wait("✔ the broker tells you how many clients are connected"), "start 10: step 1 met by the $SYS subscriber",
               pane.screen()[-1500:])
        report(pane.wait("Press Enter and I connect the fleet."), "start 10: the fleet waits for Enter", pane.screen()[-800:])
        pane.keys("Enter")
        report(pane.wait("the count rose from", 20), "start 10: the student sees the count rise", pane.screen()[-1500:])
        report(pane.wait("✔ it rose to", 20), "start 10: and fall", pane.screen()[-1500:])
        report(pane.wait("All 2 steps done", 10), "start 10 ends its steps", pane.screen()[-800:])

    guided("10", lab10)

    # Ctrl-C in the middle of a step, with a client connected: the broker
    # and the proxy go, the steps met so far are kept.
    def interrupted(pane, port, procs):
        cid, topic = pane.param("client_id"), pane.param("topic")
        procs.append(bg([sub, "-h", "127.0.0.1", "-p", str(port), "-i", cid, "-t", topic, "-q", "1"]))
        report(pane.wait("✔ SUBSCRIBE to"), "start 01: step 1 met before the Ctrl-C", pane.screen()[-800:])
        pane.keys("C-c")
        report(pane.wait("EXIT=130", 20) and "Stopped after 1 of 2 steps" in pane.screen(),
               "Ctrl-C mid-step stops with the count of steps met", pane.screen()[-800:])

    guided("01", interrupted)

    # Two students on one machine: the second start takes a free port.
    tmp = fresh_tmp()
    port = free_port()
    a = Pane(["start", "01", "--port", str(port), "--student", "ana"], tmp, os.path.join(tmp, "a.db"))
    try:
        a.wait(f"127.0.0.1:{port}", 20)
        tmp2 = fresh_tmp()
        b = Pane(["start", "01", "--port", str(port), "--student", "bea"], tmp2, os.path.join(tmp2, "b.db"))
        try:
            ok = b.wait("was taken: use -p", 20)
            m = re.search(r"127\.0\.0\.1:(\d+)", b.screen())
            report(ok and m and int(m.group(1)) != port, "a second start on a taken port gets a free one, printed clearly",
                   b.screen()[-800:])
        finally:
            b.keys("C-c")
            b.wait("EXIT=", 20)
            b.close()
    finally:
        a.keys("C-c")
        a.wait("EXIT=", 20)
        a.close()
    # A lab without a guide says so: the scaffold without its guide.
    parent = fresh_tmp()
    mqlab(["new-lab", "94-noguide", parent])
    edit(os.path.join(parent, "94-noguide", "lab.lua"), "  guide = guide,\n", "")
    p = mqlab(["start", os.path.join(parent, "94-noguide")])
    report(p.returncode == 2 and "no guided mode yet" in p.stderr, "a lab without a guide says so", p.stderr)


def test_tour():
    print("a fresh clone: make run, then the tour's first commands exactly as printed")
    tmp = fresh_tmp()
    clone, prefix, home = os.path.join(tmp, "clone"), os.path.join(tmp, "prefix"), os.path.join(tmp, "home")
    os.makedirs(home)
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
    env = env_for(tmp)
    env["HOME"] = home
    env["XDG_DATA_HOME"] = os.path.join(home, ".local", "share")
    env.pop("MQLAB_DB", None)
    env["USER"] = "ana"
    # A new shell with the install prefix on its PATH, as ~/.local/bin is.
    env["PATH"] = os.path.join(prefix, "bin") + ":" + env.get("PATH", "")
    p = subprocess.run(["make", "-j2", "run", f"RUN_PREFIX={prefix}"], cwd=clone, env=env, capture_output=True,
                       text=True, timeout=900)
    report(p.returncode == 0 and "Your first steps:" in p.stdout, "make run builds, links and starts the tour",
           (p.stdout + p.stderr)[-2000:])
    link = os.path.join(prefix, "bin", "mqlab")
    report(os.path.islink(link) and os.path.realpath(link) == os.path.join(clone, "mqlab"),
           "mqlab is linked into the prefix", link)
    steps = p.stdout.split("Your first steps:", 1)[-1].splitlines()
    cmds = [re.sub(r"\s+#.*$", "", l).strip() for l in steps if l.startswith("  ")]
    report(len(cmds) >= 3 and cmds[0].startswith("cd ") and cmds[1] == "mqlab show 01" and cmds[2] == "mqlab check 01",
           "the tour prints cd, mqlab show 01, mqlab check 01 (mqlab is on PATH)", cmds)
    script = " && ".join(cmds[:2]) + " && { " + cmds[2] + "; echo check-exit=$?; }"
    r = subprocess.run(["sh", "-c", script], cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    report(r.returncode == 0 and "Lab 01" in r.stdout and "check-exit=1" in r.stdout and "Score:" in r.stdout,
           "the first three commands work exactly as printed", (r.stdout + r.stderr)[-2000:])
    # Without the prefix on PATH, the tour prints the full path, which works as printed too.
    env2 = dict(env, PATH=env["PATH"].split(":", 1)[1])
    t = subprocess.run([os.path.join(clone, "mqlab"), "tour", os.path.join(tmp, "ws2")], cwd=tmp, env=env2,
                       capture_output=True, text=True, timeout=120)
    steps = t.stdout.split("Your first steps:", 1)[-1].splitlines()
    cmds = [re.sub(r"\s+#.*$", "", l).strip() for l in steps if l.startswith("  ")]
    report(len(cmds) >= 2 and cmds[1] == os.path.join(clone, "mqlab") + " show 01" and "not on your PATH" in t.stdout,
           "off PATH, the tour prints the full path and says why", cmds)
    r = subprocess.run(["sh", "-c", " && ".join(cmds[:2])], cwd=tmp, env=env2, capture_output=True, text=True, timeout=60)
    report(r.returncode == 0 and "Lab 01" in r.stdout, "and those commands work as printed", r.stderr[-800:])
    files, procs = leftovers(tmp)
    report(not procs, "the tour leaves no process behind", procs)


class Lines:
    """Reads a pipe in a thread; each line is kept with the time it came."""

    def __init__(self, pipe):
        import threading
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        for line in pipe:
            with self.lock:
                self.lines.append((time.time(), line))

    def text(self):
        with self.lock:
            return "".join(l for _, l in self.lines)

    def wait(self, pred, timeout):
        """Wait until pred(text) is true; returns it (or False)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = pred(self.text())
            if v:
                return v
            time.sleep(0.05)
        return pred(self.text())


def pgrep(pattern):
    return subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout.strip()


def test_watch():
    print("watch: a verdict on every change, a stale grading cancelled, Ctrl-C leaves nothing")
    sub = os.path.join(RUN_TMP, "watched")
    os.mkdir(sub)
    bad = os.path.join(ROOT, "tests", "bad", "01-hello", "qos0")
    for f in os.listdir(bad):
        if f != "EXPECT":
            shutil.copy(os.path.join(bad, f), os.path.join(sub, f))
    solution = os.path.join(ROOT, "solutions", "01-hello", "hello.py")
    hello = os.path.join(sub, "hello.py")

    def replace(src_text):
        # As editors save: a hidden temporary file (ignored), then a rename.
        tmp = os.path.join(sub, ".hello.py.tmp")
        with open(tmp, "w") as f:
            f.write(src_text)
        os.replace(tmp, hello)

    with open(solution) as f:
        good = f.read()
    tmpdir = fresh_tmp()
    env = env_for(tmpdir)
    env.pop("NO_COLOR", None)       # the pipe alone must keep escapes out
    env.pop("CI", None)
    proc = subprocess.Popen([MQLAB, "watch", "01", sub, "--no-record", "--student", "reference"], cwd=sub, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    scores = lambda t: re.findall(r"Score: (\d+) / (\d+)", t)
    watching = lambda n: lambda t: t.count("watching " + os.path.realpath(sub)) >= n
    try:
        ok = out.wait(watching(1), 30)
        s = scores(out.text())
        report(ok and len(s) == 1 and s[0][0] != s[0][1], "the first verdict: the known-bad loses points",
               out.text()[-800:] + err.text())
        report(out.text().lstrip().startswith("────") and "\r" not in out.text() + err.text()
               and "\x1b" not in out.text() + err.text(),
               "in a pipe: a separator line, no live line nor escapes", repr(out.text()[:300]) + repr(err.text()))
        # A file that does not count changes nothing.
        with open(os.path.join(sub, "hello.py~"), "w") as f:
            f.write("backup\n")
        with open(os.path.join(sub, ".hello.py.swp"), "w") as f:
            f.write("swap\n")
        time.sleep(1.0)
        report(len(scores(out.text())) == 1, "editor backups and swap files do not count", out.text()[-400:])
        t0 = time.time()
        replace(good)
        ok = out.wait(watching(2), 30)
        s = scores(out.text())
        report(ok and len(s) == 2 and s[1][0] == s[1][1], "after the fix, a new verdict with full marks",
               out.text()[-800:] + err.text())
        report(ok and time.time() - t0 < 30, f"verdict {time.time() - t0:.1f} s after the change", "")

        # A change during a grading: the grading under way is stopped.
        replace("import os\nos.execvp('sleep', ['sleep', '293'])\n")
        running = False
        deadline = time.time() + 20
        while time.time() < deadline and not running:
            running = bool(pgrep("sleep 293")) and bool(pgrep(f"mosquitto -c {tmpdir}/"))
            time.sleep(0.05)
        report(running, "the slow grading is under way (broker and program up)", out.text()[-300:] + err.text())
        replace(good)
        ok = err.wait(lambda t: "changed during the grading" in t, 15)
        report(ok, "the change is seen during the grading, which is stopped", err.text()[-500:])
        gone = False
        deadline = time.time() + 8
        while time.time() < deadline and not gone:
            gone = not pgrep("sleep 293")
            time.sleep(0.05)
        report(gone, "the old grading's program is stopped", pgrep("sleep 293"))
        ok = out.wait(watching(3), 30)
        s = scores(out.text())
        report(ok and len(s) == 3 and s[2][0] == s[2][1], "then a new verdict, and none for the stale grading",
               out.text()[-800:] + err.text())
        time.sleep(0.3)
        files, procs = leftovers(tmpdir)
        report(not files and not procs, "while watching, nothing of the gradings is left", f"{files} {procs}")
        # The Ctrl-C below comes in the middle of a grading.
        replace("import os\nos.execvp('sleep', ['sleep', '293'])\n")
        deadline = time.time() + 20
        while time.time() < deadline and not pgrep("sleep 293"):
            time.sleep(0.05)
        report(bool(pgrep("sleep 293")), "a grading is under way when Ctrl-C comes", err.text()[-300:])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    report(proc.returncode == 130, "Ctrl-C in a grading ends the watch (exit 130)", f"exit {proc.returncode}: {err.text()[-300:]}")
    time.sleep(0.2)
    files, procs = leftovers(tmpdir)
    report(not files and not procs and not pgrep("sleep 293"), "Ctrl-C leaves nothing behind", f"{files} {procs}")


def run_pty(args, extra_env=None, tmpdir=None, timeout=120):
    """Run mqlab on a pseudo-terminal (stdout and stderr); returns (exit code, output)."""
    import pty
    import select
    env = env_for(tmpdir or fresh_tmp())
    env.pop("NO_COLOR", None)
    env.pop("CI", None)
    env["TERM"] = "xterm"
    env.update(extra_env or {})
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(ROOT)
            os.execve(MQLAB, [MQLAB] + args, env)
        finally:
            os._exit(127)
    buf = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), buf.decode("utf-8", "replace")


def test_live():
    print("check on a terminal: a live line, fed by the lab's ctx:status; none in pipes, JSON or CI")
    sol = os.path.join(ROOT, "solutions", "01-hello")
    p = mqlab(["check", "01", sol, "--no-record"], extra_env={"NO_COLOR": "", "CI": ""})
    both = p.stdout + p.stderr
    report(p.returncode == 0 and "\r" not in both and "\x1b" not in both, "check in a pipe: no \\r, no escapes",
           repr(both[:300]))
    tmpdir = fresh_tmp()
    code, out = run_pty(["check", "03", os.path.join(ROOT, "solutions", "03-qos-loss"), "--no-record"], tmpdir=tmpdir)
    lines = [part.split("\n")[0] for part in out.split("\r\x1b[K")]
    report(code == 0 and any(l.startswith("setup: starting the broker") for l in lines),
           "the live line names the step under way", repr(out[:400]))
    report(any(re.match(r"check \d+/10: .+… \d+ s$", l) for l in lines), "and each check, with its seconds",
           repr(lines[:20]))
    report(any(l.startswith("setup: cutting the link after PUBLISH") for l in lines) and
           any(l.startswith("setup: waiting for your reconnection") for l in lines),
           "the lab's ctx:status reaches it through the worker", repr(lines[:20]))
    last = out.rfind("\r\x1b[K")
    report(last >= 0 and out[last + 4:].lstrip("\r\n").startswith(("\x1b[1m03-qos-loss", "03-qos-loss")),
           "it is erased before the verdict", repr(out[last:last + 80]))
    files, procs = leftovers(tmpdir)
    report(not files and not procs, "a check on a terminal leaves nothing behind", f"{files} {procs}")
    code, out = run_pty(["check", "01", sol, "--no-record"], extra_env={"CI": "true"})
    report(code == 0 and "\x1b[K" not in out and "setup:" not in out, "no live line in CI", repr(out[:300]))
    code, out = run_pty(["check", "01", sol, "--no-record", "--format", "json"])
    report(code == 0 and "\x1b[K" not in out and out.strip().startswith("{"), "no live line with --format json",
           repr(out[:300]))


# ------------------------------------------------------------ a first hour without friction

def friction_workspace(name):
    """A fresh workspace of student ana under RUN_TMP, and the env that
    makes the commands use its own database."""
    ws = os.path.join(RUN_TMP, name)
    p = mqlab(["init", ws, "--student", "ana"])
    if p.returncode != 0:
        report(False, f"init {name}", p.stderr)
    return ws, {"MQLAB_DB": ""}


def verdict_of(p):
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"checks": [], "raw": p.stdout + p.stderr}


def check_msg(v, cid):
    for c in v.get("checks", []):
        if c["id"] == cid:
            return c
    return {"message": "", "passed": None, "skipped": None}


def test_friction_hint():
    print("friction: hint past the last one says so and records nothing")
    ws, wenv = friction_workspace("fr-hint")
    outs = [mqlab(["hint", "01"], cwd=ws, extra_env=wenv) for _ in range(4)]
    report(all(p.returncode == 0 for p in outs) and [f" {i}/4:" in p.stdout for i, p in enumerate(outs, 1)] == [True] * 4,
           "hints 1 to 4 come in order", "".join(p.stdout for p in outs))
    p5 = mqlab(["hint", "01"], cwd=ws, extra_env=wenv)
    p6 = mqlab(["hint", "01", "--lang", "es"], cwd=ws, extra_env=wenv)
    report(p5.returncode == 0 and "no more hints" in p5.stdout and "Hint 4/4" in p5.stdout,
           "the fifth says there are no more, and shows the last again", p5.stdout + p5.stderr)
    report(p6.returncode == 0 and "No quedan más pistas" in p6.stdout, "the same in Spanish", p6.stdout + p6.stderr)
    p = mqlab(["progress", "--json"], cwd=ws, extra_env=wenv)
    try:
        l1 = [l for l in json.loads(p.stdout)["labs"] if l["lab"] == "01-hello"][0]
        ok = l1["hints_used"] == 4
    except (ValueError, KeyError, IndexError):
        ok, l1 = False, p.stdout + p.stderr
    report(ok, "progress counts 4 hints for a lab with 4, not 6", l1)


def test_friction_progress():
    print("friction: progress says '-' for a lab never graded, and attempt/attempts right")
    ws, wenv = friction_workspace("fr-progress")
    p = mqlab(["progress"], cwd=ws, extra_env=wenv)
    report(p.returncode == 0 and "0/0" not in p.stdout and re.search(r"01-hello\s+0 attempts\s+best -", p.stdout),
           "never graded: best -, no 0/0", p.stdout + p.stderr)
    c = mqlab(["check", "01"], cwd=os.path.join(ws, "01-hello"), extra_env=wenv)
    mqlab(["hint", "01"], cwd=ws, extra_env=wenv)
    p = mqlab(["progress"], cwd=ws, extra_env=wenv)
    line = [l for l in p.stdout.splitlines() if "01-hello" in l]
    line = line[0] if line else p.stdout
    report(c.returncode == 1 and re.search(r"\b1 attempt\b", line) and "attempts" not in line and "/13" in line
           and re.search(r"\b1 hint\b", line) and "0/0" not in p.stdout,
           "graded once: 1 attempt, score/max, 1 hint", p.stdout + c.stderr)
    p = mqlab(["progress", "--lang", "es"], cwd=ws, extra_env=wenv)
    line = [l for l in p.stdout.splitlines() if "01-hello" in l]
    line = line[0] if line else p.stdout
    report(re.search(r"\b1 intento\b", line) and "intentos" not in line and re.search(r"\b1 pista\b", line)
           and re.search(r"02-topics\s+0 intentos\s+mejor -", p.stdout), "the same in Spanish", p.stdout)


def test_friction_broker():
    print("friction: broker --port is validated, and the profiles are listed")
    for bad in ("1884x", "99999", "0", "-5", ""):
        p = mqlab(["broker", "--port", bad], timeout=20)
        report(p.returncode == 2 and "1 to 65535" in p.stderr and "--help" in p.stderr and not p.stdout,
               f"--port '{bad}' is a usage error (exit 2)", p.stdout + p.stderr)
    p = mqlab(["broker", "--port", "7x", "--lang", "es"], timeout=20)
    report(p.returncode == 2 and "de 1 a 65535" in p.stderr, "the same in Spanish", p.stderr)
    p = mqlab(["broker", "nope"], timeout=20)
    report(p.returncode == 2 and "nope" in p.stderr and all(n in p.stderr for n in ("plain", "tls", "persistence", "sys")),
           "an unknown profile: exit 2, and the profiles named", p.stderr)
    p = mqlab(["broker", "--help"])
    report(p.returncode == 0 and re.search(r"Profiles: .*plain", p.stdout) and "tls" in p.stdout,
           "broker --help lists the profiles", p.stdout)


def test_friction_outside():
    print("friction: check outside a workspace, in a folder with nothing of the lab, grades nothing")
    db = os.path.join(RUN_TMP, "fr-outside.db")
    env = {"MQLAB_DB": db}
    p = mqlab(["check", "3"], cwd=ROOT, extra_env=env)
    report(p.returncode == 2 and "not inside an mqlab workspace" in p.stderr and "sensor.py" in p.stderr and not p.stdout,
           "check 3 from the repository root: exit 2, says why", p.stdout + p.stderr)
    report(not os.path.exists(db) or sqlite3.connect(db).execute("select count(*) from attempts").fetchone()[0] == 0,
           "and records no attempt", db)
    here = os.path.join(RUN_TMP, "fr-outside")
    os.makedirs(here)
    ws = os.path.join(here, "mqlab-work")
    mqlab(["init", ws, "--student", "ana"])
    p = mqlab(["check", "01", "--lang", "es"], cwd=here, extra_env=env)
    report(p.returncode == 2 and "no está dentro de un espacio de trabajo" in p.stderr and f"cd {os.path.realpath(ws)}" in p.stderr,
           "it points at ./mqlab-work when there is one (Spanish)", p.stderr)
    p = mqlab(["check", "01", here], cwd=ROOT, extra_env=env)
    report(p.returncode == 2 and "Your workspace is" not in p.stderr and "mqlab init" in p.stderr,
           "a folder given explicitly, no workspace around: how to make one", p.stderr)
    # Inside a workspace an emptied lab folder is still graded.
    lab = os.path.join(ws, "01-hello")
    for f in os.listdir(lab):
        os.remove(os.path.join(lab, f))
    p = mqlab(["check", "01", "--no-record", "--format", "json"], cwd=lab)
    report(p.returncode == 1 and verdict_of(p).get("max_score") == 13, "an empty lab folder inside a workspace is graded", p.stderr)


def test_friction_variants():
    print("friction: with several forms of a program, the verdict says which ran")
    sub = os.path.join(RUN_TMP, "fr-variants")
    os.makedirs(sub)
    for f in os.listdir(os.path.join(ROOT, "labs", "01-hello", "starter")):
        shutil.copy(os.path.join(ROOT, "labs", "01-hello", "starter", f), sub)
    with open(os.path.join(sub, "hello.sh"), "w") as f:
        f.write("#!/bin/sh\necho 'hello.sh ran' >&2\nexit 3\n")
    p = mqlab(["check", "01", sub, "--no-record", "--format", "json"])
    msg = check_msg(verdict_of(p), "connects")["message"]
    report("hello.sh ran, and hello.py was ignored" in msg and "starter file, unchanged" in msg
           and "hello.sh ran" in msg.split("\n", 1)[1] and "not written yet" not in msg,
           "hello.sh beside the unchanged starter hello.py: hello.sh runs, and the verdict says so", msg)
    p = mqlab(["check", "01", sub, "--no-record", "--format", "json", "--lang", "es"])
    msg = check_msg(verdict_of(p), "connects")["message"]
    report("se ejecutó hello.sh y se ignoró hello.py" in msg, "the same in Spanish", msg)
    # The student's own hello.py (not the starter) still comes first.
    shutil.copy(os.path.join(ROOT, "solutions", "01-hello", "hello.py"), sub)
    p = mqlab(["check", "01", sub, "--no-record", "--format", "json"])
    v = verdict_of(p)
    msg = check_msg(v, "connects")["message"]
    report(check_msg(v, "connects")["passed"] and "hello.py ran, and hello.sh was ignored" in msg,
           "a written hello.py runs before hello.sh, said too", msg)
    # One form only: nothing to say.
    os.remove(os.path.join(sub, "hello.sh"))
    p = mqlab(["check", "01", sub, "--no-record", "--format", "json"])
    v = verdict_of(p)
    report(check_msg(v, "connects")["passed"] and "several versions" not in p.stdout, "a single form: no note", p.stdout[:400])


def test_friction_missing():
    print("friction: the missing program, a misnamed one, and no filters.txt")
    ws, wenv = friction_workspace("fr-missing")
    lab = os.path.join(ws, "01-hello")
    for f in os.listdir(lab):
        os.remove(os.path.join(lab, f))
    open(os.path.join(lab, "helo.py"), "w").close()
    p = mqlab(["check", "01", "--no-record", "--format", "json"], cwd=lab)
    msg = check_msg(verdict_of(p), "connects")["message"]
    report("did you mean hello.py?" in msg and "helo.py" in msg and msg.count("\n") == 0, "helo.py: did you mean hello.py?", msg)
    p = mqlab(["check", "01", "--no-record", "--format", "json", "--lang", "es"], cwd=lab)
    msg = check_msg(verdict_of(p), "connects")["message"]
    english = [w for w in ("cannot", "found", "the kit", "program '", "tried") if w in msg]
    report("¿querías decir hello.py?" in msg and not english, "in Spanish, all Spanish", msg)
    os.remove(os.path.join(lab, "helo.py"))
    p = mqlab(["check", "01", "--no-record", "--format", "json"], cwd=lab)
    v = verdict_of(p)
    msg = check_msg(v, "connects")["message"]
    report(msg.startswith("there is no program hello in") and msg.count("hello.py") == 1, "an empty folder: one clean sentence", msg)
    text = json.dumps(v)
    f1, f2 = check_msg(v, "filter-1"), check_msg(v, "filter-2")
    skipped = [check_msg(v, f"filter-{i}")["skipped"] for i in (2, 3, 4)]
    report(text.count("there is no filters.txt in your folder") == 1 and "has no answer" not in text
           and not f1["passed"] and not f1["skipped"] and skipped == [True] * 3 and "see F1" in f2["message"],
           "no filters.txt: said once (F1), F2 to F4 not run", [c["message"] for c in v.get("checks", [])][-4:])


def test_friction_version():
    print("friction: lab 01 names the MQTT version, not a level number")
    p = mqlab(["check", "01", os.path.join(ROOT, "solutions", "01-hello"), "--no-record", "--format", "json"])
    msg = check_msg(verdict_of(p), "connects")["message"]
    report(p.returncode == 0 and "MQTT 3.1.1" in msg and "level" not in msg, "CONNECT from paho: MQTT 3.1.1", msg)
    p = mqlab(["check", "01", os.path.join(ROOT, "solutions", "01-hello"), "--no-record", "--format", "json", "--lang", "es"])
    msg = check_msg(verdict_of(p), "connects")["message"]
    report("MQTT 3.1.1" in msg and "nivel" not in msg, "the same in Spanish", msg)


def test_friction_lab03():
    print("friction: lab 03 numbers connections one way, and skips 'every reading arrives' with no program")
    p = mqlab(["check", "03", os.path.join(ROOT, "solutions", "03-qos-loss"), "--no-record", "--format", "json"])
    v = verdict_of(p)
    conn = check_msg(v, "connects")["message"]
    rec = check_msg(v, "reconnects")["message"]
    head = conn.split("\n")[0]
    sent = re.search(r"all (\d+) connections that sent one \(([^;)]*)", head)
    listed = set(re.findall(r"#(\d+)", sent.group(2))) if sent else set()
    refused = set(re.findall(r"#(\d+)", head.split(";", 1)[1])) if ";" in head else set()
    named = set(re.findall(r"connection #(\d+)", rec))
    report(p.returncode == 0 and sent and int(sent.group(1)) == len(listed) and named and named <= listed
           and refused and not refused & listed and "refused" in head,
           "the connections counted are the ones numbered", conn + "\n" + rec)
    ws, wenv = friction_workspace("fr-lab03")
    lab = os.path.join(ws, "03-qos-loss")
    for f in os.listdir(lab):
        os.remove(os.path.join(lab, f))
    p = mqlab(["check", "03", "--no-record", "--format", "json"], cwd=lab)
    v = verdict_of(p)
    arrive = check_msg(v, "all-arrive")
    report(p.returncode == 1 and arrive["skipped"] and not check_msg(v, "connects")["passed"],
           "no program: every-reading-arrives is skipped, after connects", arrive)


def test_friction_python():
    print("friction: show fills in the Python the kit uses; doctor says which and why")
    fake = os.path.join(RUN_TMP, "fr-python")
    os.makedirs(fake)
    mine = os.path.join(fake, "my-python")
    os.symlink("/usr/bin/python3", mine)
    p = mqlab(["show", "03"], extra_env={"MQLAB_PYTHON": mine})
    report(p.returncode == 0 and f"{mine} sensor.py" in p.stdout and "{{" not in p.stdout,
           "show 03 with MQLAB_PYTHON: that Python in the command line", p.stdout[-400:] + p.stderr)
    chosen = subprocess.run([MQLAB, "doctor"], env=env_for(fresh_tmp()), capture_output=True, text=True, timeout=120)
    used = re.search(r"Python with paho-mqtt \(for \.py programs\): (\S+)", chosen.stdout)
    p = mqlab(["show", "09", "--lang", "es"])
    report(used and f"{used.group(1)} consumer.py" in p.stdout, "show 09 (Spanish) names the Python doctor found", chosen.stdout + p.stdout[-300:])
    report(used and re.search(r"used: it imports paho", chosen.stdout) and re.search(r"python3.*: (not found|not used|the same|used)", chosen.stdout),
           "doctor lists the Pythons tried, and why each was or was not used", chosen.stdout)
    p = mqlab(["doctor"], extra_env={"MQLAB_PYTHON": mine})
    report(re.search(r"MQLAB_PYTHON \(" + re.escape(mine) + r"\): used", p.stdout) and "MQLAB_PYTHON names the one to use" in p.stdout,
           "with MQLAB_PYTHON, doctor says it decides", p.stdout)


def classroom_workflow(path):
    """The generated workflow as a dict: PyYAML when it is there, else a
    reader for exactly the shape `mqlab classroom` writes (a check on that
    shape too)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        import yaml
        return yaml.safe_load(text)
    except ImportError:
        pass

    def scalar(v):
        v = v.strip()
        if v.startswith('"'):
            return json.loads(v)
        if v.startswith("'"):
            return v[1:-1]
        return int(v) if re.fullmatch(r"-?\d+", v) else v
    wf = {"on": [], "env": {}, "permissions": {}}
    steps, step, block, section = [], None, None, None
    for line in text.splitlines():
        if block is not None:
            if line.startswith(" " * 8) or not line.strip():
                step["run"] += line[8:] + "\n"
                continue
            block = None
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if section == "on" and line.startswith("- "):
            wf["on"].append(line[2:].strip())
        elif not line.startswith(" "):
            key, _, val = line.partition(":")
            section = key.strip("'")
            if val.strip():
                wf[section] = scalar(val)
        elif section in ("env", "permissions") and line.startswith("  ") and not line.startswith("   "):
            k, _, v = line.strip().partition(":")
            wf[section][k] = scalar(v)
        elif line.startswith("    runs-on:"):
            wf["runs-on"] = line.split(":", 1)[1].strip()
        elif line.startswith("    - "):
            step = {}
            steps.append(step)
            k, _, v = line[6:].partition(":")
            step[k] = scalar(v)
        elif step is not None and line.startswith("      ") and not line.startswith("       "):
            k, _, v = line.strip().partition(":")
            if v.strip() == "|":
                step["run"], block = "", True
            elif v.strip():
                step[k] = scalar(v)
            else:
                step[k] = {}
                sub = k
        elif step is not None and line.startswith("        "):
            k, _, v = line.strip().partition(":")
            step[sub][k] = scalar(v)
    wf["jobs"] = {"run-autograding-tests": {"runs-on": wf.pop("runs-on", None), "steps": steps}}
    return wf


def classroom_run(repo, wf, owner, tmp):
    """Run the workflow's steps here, in order, as GitHub would: run steps
    under bash -eo pipefail with the workflow's env, except the kit's
    install (the mqlab built here stands in, through MQLAB); each
    autograding-command-grader's command under /bin/sh with only PATH and
    HOME, as that action does. Returns ({step id: exit code}, {step id:
    max-score}, problems)."""
    job = wf["jobs"]["run-autograding-tests"]
    env = env_for(tmp)
    env.update({k: str(v) for k, v in wf["env"].items()})
    env.update({"GITHUB_REPOSITORY_OWNER": owner, "MQLAB": MQLAB, "RUNNER_TEMP": tmp,
                "GITHUB_ENV": os.path.join(tmp, "github_env"), "GITHUB_WORKSPACE": repo})
    codes, scores, problems = {}, {}, []
    for st in job["steps"]:
        sid = st.get("id", st.get("name"))
        if "run" in st:
            if sid == "mqlab-install":
                continue
            script = os.path.join(tmp, f"step-{sid}.sh")
            with open(script, "w") as f:
                f.write(st["run"])
            p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", script], cwd=repo, env=env,
                               capture_output=True, text=True, timeout=300)
            codes[sid] = p.returncode
            if p.returncode != 0:
                problems.append(f"step {sid} exited {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}")
        elif st.get("uses", "").startswith("classroom-resources/autograding-command-grader@"):
            w = st["with"]
            genv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env["HOME"]}
            if w.get("setup-command"):
                subprocess.run(["/bin/sh", "-c", w["setup-command"]], cwd=repo, env=genv, timeout=60)
            p = subprocess.run(["/bin/sh", "-c", w["command"]], cwd=repo, env=genv, capture_output=True, text=True,
                               timeout=60 * int(w.get("timeout", 10)))
            codes[sid] = p.returncode
            scores[sid] = int(str(w["max-score"]))
    return codes, scores, problems


def test_classroom():
    tmp = fresh_tmp()
    work = tempfile.mkdtemp(prefix="classroom-", dir=RUN_TMP)
    try:
        # Refusals: unknown lab, a folder that is not empty, no folder.
        p = mqlab(["classroom", "99", os.path.join(work, "x")], tmpdir=tmp)
        report(p.returncode == 2 and "99" in p.stderr and not os.path.exists(os.path.join(work, "x")),
               "classroom: an unknown lab is refused", p.stderr)
        busy = os.path.join(work, "busy")
        os.makedirs(busy)
        open(os.path.join(busy, "notes.txt"), "w").close()
        p = mqlab(["classroom", "01", busy, "--lang", "es"], tmpdir=tmp)
        report(p.returncode == 2 and "no está vacía" in p.stderr and os.listdir(busy) == ["notes.txt"],
               "classroom: a folder that is not empty is refused (es)", p.stderr)
        p = mqlab(["classroom", "01"], tmpdir=tmp)
        report(p.returncode == 2 and "DIR" in p.stderr, "classroom: no folder is a usage error", p.stderr)
        h_en = mqlab(["classroom", "--help"], tmpdir=tmp)
        h_es = mqlab(["--lang", "es", "classroom", "--help"], tmpdir=tmp)
        report(h_en.returncode == 0 and "GitHub Classroom" in h_en.stdout and h_es.returncode == 0
               and "repositorio de partida" in h_es.stdout, "classroom: --help in en and es", h_en.stdout + h_es.stdout)

        # The repository: into an empty folder.
        repo = os.path.join(work, "repo")
        os.makedirs(repo)
        p = mqlab(["classroom", "01", repo + "/"], tmpdir=tmp)
        files = sorted(os.path.relpath(os.path.join(d, f), repo) for d, _, fs in os.walk(repo) for f in fs)
        report(p.returncode == 0 and files == [".github/workflows/classroom.yml", ".gitignore", "01-hello/filters.txt",
                                               "01-hello/hello.py", "README.md"]
               and not [f for f in os.listdir(work) if ".partial" in f],
               "classroom: writes the lab's workspace, README and workflow", f"{p.returncode} {p.stderr} {files}")
        with open(os.path.join(repo, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        with open(os.path.join(ROOT, "labs", "01-hello", "starter", "hello.py"), "rb") as a, \
                open(os.path.join(repo, "01-hello", "hello.py"), "rb") as b:
            same_starter = a.read() == b.read()
        with open(os.path.join(ROOT, "labs", "01-hello", "instructions.es.md"), encoding="utf-8") as f:
            es_head = f.readline().strip()
        report(same_starter and "# Lab 01" in readme and es_head in readme and "**English.**" in readme
               and "**Español.**" in readme and "| `receives-own` | 2 |" in readme,
               "classroom: README in en and es with each check's points; the starter files as init writes them")

        # The workflow's structure.
        wf = classroom_workflow(os.path.join(repo, ".github", "workflows", "classroom.yml"))
        on = wf.get("on", wf.get(True))
        job = wf["jobs"]["run-autograding-tests"]
        steps = job["steps"]
        graders = [s for s in steps if s.get("uses", "").startswith("classroom-resources/autograding-command-grader@v1")]
        reporter = [s for s in steps if s.get("uses", "").startswith("classroom-resources/autograding-grading-reporter@v1")]
        install = [s for s in steps if s.get("id") == "mqlab-install"]
        grade_steps = [s for s in steps if s.get("id") == "mqlab-grade"]
        info = mqlab(["check", "01", os.path.join(ROOT, "solutions", "01-hello"), "--format", "json", "--no-record"],
                     tmpdir=tmp)
        ref = json.loads(info.stdout)
        want_ids = [c["id"] for c in ref["checks"]]
        want_pts = {c["id"]: c["max_points"] for c in ref["checks"]}
        problems = []
        if "push" not in (on or []):
            problems.append(f"on: {on}")
        if job.get("runs-on") != "ubuntu-latest":
            problems.append(f"runs-on: {job.get('runs-on')}")
        if wf.get("permissions") != {"checks": "write", "actions": "read", "contents": "read"}:
            problems.append(f"permissions: {wf.get('permissions')}")
        if not re.fullmatch(r"v\d+\.\d+\.\d+", str(wf["env"].get("MQLAB_REF", ""))) or "MQLAB_REPO" not in wf["env"]:
            problems.append(f"env: {wf['env']}")
        if not install or not all(w in install[0]["run"] for w in ("apt-get install", "git clone", "$MQLAB_REF", "make")):
            problems.append("no install step that builds the kit at MQLAB_REF")
        if len(grade_steps) != 1 or '--student "$GITHUB_REPOSITORY_OWNER"' not in grade_steps[0]["run"] \
                or len(re.findall(r'mqlab\}" check ', grade_steps[0]["run"])) != 1:
            problems.append("no single grading step for the repository owner")
        if [s["id"] for s in graders] != ["check-" + i for i in want_ids]:
            problems.append(f"graders: {[s['id'] for s in graders]} for checks {want_ids}")
        for s in graders:
            w = s["with"]
            cid = s["id"][len("check-"):]
            if not all(k in w for k in ("test-name", "command", "timeout", "max-score")) or \
                    float(w["max-score"]) != want_pts.get(cid):
                problems.append(f"{s['id']}: {w}")
        if len(reporter) != 1 or steps[-1] is not reporter[0]:
            problems.append("the reporter is not the last step")
        else:
            r = reporter[0]
            if r["with"]["runners"].split(",") != [s["id"] for s in graders]:
                problems.append(f"runners: {r['with']['runners']}")
            for s in graders:
                key = s["id"].upper() + "_RESULTS"
                if r["env"].get(key) != "${{steps.%s.outputs.result}}" % s["id"]:
                    problems.append(f"reporter env {key}: {r['env'].get(key)}")
        report(not problems and sum(want_pts.values()) == ref["max_score"],
               "classroom: the workflow has one pinned grader per check (its points) and the reporter", problems)

        # The reference solution, through the workflow's steps run here.
        copy_into(os.path.join(ROOT, "solutions", "01-hello"), os.path.join(repo, "01-hello"))
        codes, scores, probs = classroom_run(repo, wf, "reference", tmp)
        earned = sum(scores[s] for s in scores if codes[s] == 0)
        report(not probs and codes.get("mqlab-grade") == 0 and len(scores) == len(want_ids)
               and all(codes[s] == 0 for s in scores) and earned == ref["max_score"],
               f"classroom: the reference solution passes every check's step ({earned}/{ref['max_score']} points)",
               probs + [f"{s}: {codes[s]}" for s in scores if codes[s] != 0])

        # A known-bad submission loses exactly its checks, and their points.
        bad = os.path.join(ROOT, "tests", "bad", "01-hello", "qos0")
        repo2 = os.path.join(work, "repo-bad")
        p = mqlab(["classroom", "01", repo2], tmpdir=tmp)
        copy_into(bad, os.path.join(repo2, "01-hello"))
        wf2 = classroom_workflow(os.path.join(repo2, ".github", "workflows", "classroom.yml"))
        codes, scores, probs = classroom_run(repo2, wf2, "reference", tmp)
        lost = sorted(s[len("check-"):] for s in scores if codes[s] != 0)
        expect = sorted(read_expect(bad))
        earned = sum(scores[s] for s in scores if codes[s] == 0)
        want = ref["max_score"] - sum(want_pts[c] for c in expect)
        report(p.returncode == 0 and not probs and lost == expect and earned == want,
               f"classroom: known-bad qos0 loses exactly {expect} ({earned}/{ref['max_score']} points)",
               probs + [f"lost {lost}, earned {earned}, want {want}"])

        # Only the starter files: every check fails, and its step says why.
        repo3 = os.path.join(work, "repo-starter")
        mqlab(["classroom", "01", repo3], tmpdir=tmp)
        wf3 = classroom_workflow(os.path.join(repo3, ".github", "workflows", "classroom.yml"))
        codes, scores, probs = classroom_run(repo3, wf3, "ana", tmp)
        with open(os.path.join(repo3, ".mqlab-grading", "connects"), encoding="utf-8") as f:
            why = f.read()
        report(not probs and scores and all(codes[s] != 0 for s in scores) and why.startswith("failed\nconnects (0/1)")
               and len(why.strip().splitlines()) > 2,
               "classroom: the unchanged starter scores 0, each check saying why", probs + [why])

        files, procs = leftovers(tmp)
        report(not procs and not [f for f in files if f.startswith("mqlab")],
               "classroom: nothing left running or in TMPDIR", f"{files} {procs}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

def test_gradescope():
    print("make autograder: a Gradescope bundle whose run_autograder grades a fake /autograder")
    import zipfile
    base = os.path.join(RUN_TMP, "gradescope-bundle")
    os.makedirs(base)
    outdir = os.path.join(base, "build")
    env = env_for(fresh_tmp())
    mk = lambda *a: subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "autograder",
                                    "BUILD=" + outdir] + list(a), env=env, capture_output=True, text=True, timeout=120)
    p = mk()
    report(p.returncode == 2 and "LAB=NN" in p.stdout + p.stderr, "make autograder without LAB says how", p.stdout + p.stderr)
    p = mk("LAB=11")
    report(p.returncode == 2 and "snap" in p.stderr and not os.path.exists(os.path.join(outdir, "autograder-11-dashboard.zip")),
           "lab 11 is refused: Chromium is only a snap on Ubuntu", p.stdout + p.stderr)
    p = mk("LAB=1")
    zpath = os.path.join(outdir, "autograder-01-hello.zip")
    names, modes = [], {}
    try:
        with zipfile.ZipFile(zpath) as z:
            names = z.namelist()
            modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
    except (OSError, zipfile.BadZipFile) as e:
        p.stderr += f"\n{e}"
    want = ["setup.sh", "run_autograder", "autograder.conf", "kit/Makefile", "kit/debian-packages.txt",
            "kit/tests/deps.sh", "kit/runner/main.c", "kit/runner/tools/embed.c", "kit/labs/01-hello/lab.lua",
            "kit/broker-config/README.md"]
    report(p.returncode == 0 and all(n in names for n in want) and modes.get("setup.sh") == 0o755 and
           modes.get("run_autograder") == 0o755 and not [n for n in os.listdir(outdir) if n.startswith(".")] and
           not any(n.startswith(("kit/build/", "kit/solutions/", "kit/tests/bad/")) or n == "kit/mqlab" for n in names),
           "make autograder LAB=1 writes autograder-01-hello.zip: setup.sh, run_autograder, the kit's source",
           p.stdout + p.stderr + f"\n{sorted(names)[:20]} {modes.get('run_autograder')}")

    def fake_root(name, files_from, meta, student_file=None):
        """An /autograder as Gradescope lays it out: the bundle unzipped in
        source/, run_autograder copied to the top, the submission, and the
        submission's metadata (None: no metadata file)."""
        root = os.path.join(base, name)
        src = os.path.join(root, "source")
        with zipfile.ZipFile(zpath) as z:
            for info in z.infolist():
                z.extract(info, src)
                os.chmod(os.path.join(src, info.filename), (info.external_attr >> 16) & 0o777 or 0o644)
        shutil.copy2(os.path.join(src, "run_autograder"), os.path.join(root, "run_autograder"))
        sub = os.path.join(root, "submission")
        os.makedirs(sub)
        # With a .mqlab/student, the submission is a workspace as mqlab init
        # makes it (its lab in 01-hello/); else the lab's files at the top.
        lab_dir = os.path.join(sub, "01-hello") if student_file else sub
        os.makedirs(lab_dir, exist_ok=True)
        for f in os.listdir(files_from):
            if os.path.isfile(os.path.join(files_from, f)):
                shutil.copy2(os.path.join(files_from, f), lab_dir)
        if student_file:
            os.makedirs(os.path.join(sub, ".mqlab"))
            with open(os.path.join(sub, ".mqlab", "student"), "w") as f:
                f.write(student_file + "\n")
        if meta is not None:
            with open(os.path.join(root, "submission_metadata.json"), "w") as f:
                json.dump({"id": 1, "created_at": "2026-12-07T05:00:00Z", "assignment": {"title": "Lab 01"},
                           "users": meta}, f)
        return root

    def run_root(root, extra=None):
        tmpdir = fresh_tmp()
        e = env_for(tmpdir)
        e.update({"AUTOGRADER_ROOT": root, "MQLAB_BIN": MQLAB})
        e.update(extra or {})
        p = subprocess.run([os.path.join(root, "run_autograder")], env=e, capture_output=True, text=True, timeout=300)
        try:
            with open(os.path.join(root, "results", "results.json")) as f:
                r = json.load(f)
        except (OSError, ValueError) as ex:
            r, p.stderr = None, p.stderr + f"\nresults.json: {ex}"
        left = [n for n in os.listdir(tmpdir)]
        procs = subprocess.run(["pgrep", "-af", root + "/"], capture_output=True, text=True).stdout.strip()
        return p, r, left, procs, os.listdir(os.path.join(root, "results"))

    def verdict_of(folder, student):
        p = mqlab(["check", "01", folder, "--format", "json", "--no-record", "--student", student])
        return json.loads(p.stdout)

    def matches(r, v, lost=None):
        """results.json says what the verdict says: the score, one test per
        check with its points, and exactly `lost` failing (if given)."""
        if not r or abs(r.get("score", -1) - v["score"]) > 1e-9:
            return False
        tests = r.get("tests", [])
        if len(tests) != len(v["checks"]):
            return False
        for t, c in zip(tests, v["checks"]):
            if not (t["name"].startswith(f"01-hello {c['id']}:") and t["score"] == c["points"] and
                    t["max_score"] == c["max_points"] and t["visibility"] == "visible"):
                return False
        if lost is not None:
            failing = sorted(c["id"] for c in v["checks"] if c["points"] < c["max_points"])
            if failing != sorted(lost):
                return False
        return True

    sol = os.path.join(ROOT, "solutions", "01-hello")
    bad = os.path.join(ROOT, "tests", "bad", "01-hello", "bad-filters")
    ref = verdict_of(sol, "reference")
    badv = verdict_of(bad, "reference")

    # The reference solution, from a student with no SID: the email's local part.
    root = fake_root("ref", sol, [{"name": "Ref", "email": "reference@uni.example", "sid": ""}])
    p, r, left, procs, res = run_root(root)
    report(p.returncode == 0 and matches(r, ref, []) and r["score"] == ref["max_score"] and
           "reference" in r["output"] and "email" in r["output"] and res == ["results.json"],
           "reference solution: full marks, as mqlab check says, student id from the email's local part",
           p.stdout + p.stderr + json.dumps(r)[:600])
    report(not left and not procs, "run_autograder leaves nothing behind", f"{left} {procs}")

    # A known-bad submission, with a SID: loses exactly what its EXPECT says.
    root = fake_root("bad", bad, [{"name": "Ref", "email": "x@uni.example", "sid": "reference"}])
    p, r, left, procs, res = run_root(root)
    report(p.returncode == 0 and matches(r, badv, read_expect(bad)) and r["score"] < ref["max_score"] and
           "SID" in r["output"],
           f"known-bad {rel(bad)}: the verdict's score, failing exactly {read_expect(bad)}",
           p.stdout + p.stderr + json.dumps(r)[:600])

    # The id decides the parameters: the same solution under another SID
    # loses the checks that depend on them (its filters are the reference's).
    other = verdict_of(sol, "someone-else")
    root = fake_root("other", sol, [{"name": "Eve", "email": "eve@uni.example", "sid": "someone-else"}])
    p, r, left, procs, res = run_root(root)
    report(other["score"] < ref["max_score"] and matches(r, other) and "someone-else" in r["output"],
           "the SID seeds the parameters: the reference's answers lose points under another SID",
           p.stdout + p.stderr + json.dumps(r)[:600])

    # No metadata: the .mqlab/student of a workspace handed in whole.
    root = fake_root("file", sol, None, student_file="reference")
    p, r, left, procs, res = run_root(root)
    report(p.returncode == 0 and matches(r, ref, []) and ".mqlab/student" in r["output"],
           "without submission_metadata.json, the id comes from .mqlab/student", p.stdout + p.stderr + json.dumps(r)[:600])

    # Where bwrap cannot make a sandbox (Docker may refuse namespaces): it
    # grades unconfined, and says so.
    fake = os.path.join(base, "fake-bwrap")
    os.mkdir(fake)
    with open(os.path.join(fake, "bwrap"), "w") as f:
        f.write("#!/bin/sh\necho 'bwrap: Creating new namespace failed: Operation not permitted' >&2\nexit 1\n")
    os.chmod(os.path.join(fake, "bwrap"), 0o755)
    root = fake_root("nosbx", sol, [{"name": "Ref", "email": "r@uni.example", "sid": "reference"}])
    p, r, left, procs, res = run_root(root, {"PATH": fake + ":" + os.environ.get("PATH", "/usr/bin:/bin")})
    report(p.returncode == 0 and matches(r, ref, []) and "sandbox" in r["output"] and "--no-sandbox" in p.stdout,
           "no sandbox here: graded with --no-sandbox, and the output says so", p.stdout + p.stderr + json.dumps(r)[:600])
    report(not left and not procs, "unsandboxed run_autograder leaves nothing behind", f"{left} {procs}")

    # mqlab cannot run: still a results.json, score 0, saying why, in Spanish
    # when the bundle says so.
    p = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "autograder", "LAB=01-hello",
                        "BUILD=" + os.path.join(base, "build-es")], env=dict(env, MQLAB_LANG="es"),
                       capture_output=True, text=True, timeout=120)
    zpath = os.path.join(base, "build-es", "autograder-01-hello.zip")
    root = fake_root("broken", sol, [{"name": "Ref", "email": "r@uni.example", "sid": "reference"}])
    p2, r, left, procs, res = run_root(root, {"MQLAB_BIN": "/bin/false"})
    report(p.returncode == 0 and p2.returncode == 0 and r is not None and r.get("score") == 0 and
           "no pudo evaluar" in r.get("output", "") and "SID" in r["output"],
           "mqlab fails: results.json still written, score 0, why (in Spanish: MQLAB_LANG=es at bundle time)",
           p.stdout + p.stderr + p2.stdout + p2.stderr + json.dumps(r)[:600])

    # setup.sh's package list: debian-packages.txt without the browser lab's.
    p = subprocess.run(["sh", os.path.join(root, "source", "setup.sh"), "--print-packages"],
                       capture_output=True, text=True, timeout=60)
    pk = p.stdout.split()
    report(p.returncode == 0 and {"mosquitto", "liblua5.4-dev", "python3-paho-mqtt", "bubblewrap", "build-essential"} <= set(pk)
           and not {"chromium", "nodejs", "npm"} & set(pk),
           "setup.sh installs the kit's packages but the browser lab's", p.stdout + p.stderr)

# ---------------------------------------------------------------- deb

DEB_DIR = os.path.join(ROOT, "build", "deb")


def deb_sources():
    """The repository's files (tracked and new, not ignored): what a clean
    clone has. Without git, everything but build output."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, check=True).stdout
        files = [f for f in out.decode().split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]
        if files:
            return sorted(files)
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        dirnames[:] = [d for d in dirnames if not (rel == "." and d in (".git", "build", "certs", "mqlab-work"))
                       and not (rel == "debian" and d in ("build", "mqlab", ".debhelper"))]
        for f in filenames:
            path = os.path.normpath(os.path.join(rel, f))
            if path not in ("mqlab", "gradebook.db") and not f.endswith((".o", ".d")):
                files.append(path)
    return sorted(files)


def deb_build():
    """Build mqlab_*.deb from a copy of the sources in build/deb (once:
    reused while the sources are the same). Returns (deb path, source
    copy, error)."""
    import hashlib
    files = deb_sources()
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0")
        with open(os.path.join(ROOT, f), "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    key = h.hexdigest()
    top = os.path.join(DEB_DIR, "out")
    src = os.path.join(top, "mqlab")
    stamp = os.path.join(DEB_DIR, "stamp")
    def found():
        debs = [n for n in os.listdir(top) if re.match(r"mqlab_[^_]+_[^_]+\.deb$", n)] if os.path.isdir(top) else []
        return os.path.join(top, debs[0]) if len(debs) == 1 else None
    try:
        with open(stamp) as fh:
            if fh.read().strip() == key and found():
                print("  (reusing build/deb: the sources have not changed)")
                return found(), src, None
    except OSError:
        pass
    shutil.rmtree(DEB_DIR, ignore_errors=True)
    os.makedirs(src)
    for f in files:
        os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(src, f))
    env = dict(os.environ)
    # The unit tests run in make test; no debug-symbols package here.
    env["DEB_BUILD_OPTIONS"] = "nocheck noddebs"
    env["HOME"] = RUN_HOME
    t0 = time.time()
    p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b", "-j2"], cwd=src, env=env,
                       capture_output=True, text=True, timeout=900)
    print(f"  (dpkg-buildpackage: {time.time() - t0:.0f} s)")
    if p.returncode != 0:
        return None, src, p.stdout[-3000:] + p.stderr[-3000:]
    warnings = [l for l in (p.stdout + p.stderr).splitlines() if re.search(r"\bwarning:", l)]
    if warnings:
        return None, src, "the package's build has warnings:\n" + "\n".join(warnings[:20])
    if not found():
        return None, src, "no mqlab_*.deb in " + top
    with open(stamp, "w") as fh:
        fh.write(key + "\n")
    return found(), src, None


def deb_complete(root, line):
    """What the installed bash completion offers for a command line (its
    last word is the one being completed)."""
    words = line.split(" ")
    script = ('source "$1"; COMP_WORDS=(' + " ".join("'%s'" % w for w in words) + '); '
              'COMP_CWORD=%d; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; _mqlab; '
              'printf "%%s\\n" "${COMPREPLY[@]}"' % (len(words) - 1))
    env = env_for(fresh_tmp())
    env["PATH"] = os.path.join(root, "usr", "bin") + ":" + env.get("PATH", "/usr/bin:/bin")
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash",
                        os.path.join(root, "usr/share/bash-completion/completions/mqlab"), line],
                       env=env, capture_output=True, text=True, timeout=60)
    return p.stdout.split()


def test_deb():
    print("deb: the Debian package (dpkg-buildpackage), installed with dpkg -x")
    missing = [t for t in ("dpkg-buildpackage", "dh", "fakeroot", "dpkg-deb") if not shutil.which(t)]
    if missing:
        print("  skip  deb: %s not installed (make deps installs the [package] section of debian-packages.txt)"
              % ", ".join(missing))
        return
    deb, src, err = deb_build()
    report(deb is not None, "dpkg-buildpackage -us -uc -b builds mqlab_*.deb without warnings", err)
    if not deb:
        return

    # lintian: no errors (warnings are listed, not failed).
    if shutil.which("lintian"):
        p = subprocess.run(["lintian", "--tag-display-limit", "0", deb], capture_output=True, text=True, timeout=300)
        errors = [l for l in p.stdout.splitlines() if l.startswith("E:")]
        report(not errors, "lintian reports no errors", "\n".join(errors))
        for l in p.stdout.splitlines():
            if l.startswith("W:"):
                print("        lintian " + l)
    else:
        print("  skip  lintian: not installed")

    # Version and relations: the changelog's version is MQLAB_VERSION, and
    # Depends/Recommends are debian-packages.txt's [run] and [recommends].
    field = lambda f: subprocess.run(["dpkg-deb", "-f", deb, f], capture_output=True, text=True).stdout.strip()
    with open(os.path.join(ROOT, "runner", "cli.h")) as fh:
        version = re.search(r'#define MQLAB_VERSION "([^"]+)"', fh.read()).group(1)
    report(field("Version") == version, f"the package's version is MQLAB_VERSION ({version})", field("Version"))
    listed = lambda tag: subprocess.run(["sh", os.path.join(ROOT, "tests", "deps.sh"), "--list", tag],
                                        capture_output=True, text=True).stdout.split()
    rel = lambda f: {x.strip().split(" ")[0] for x in field(f).split(",") if x.strip()}
    run_pkgs, rec_pkgs, build_pkgs = listed("run"), listed("recommends"), listed("build") + listed("package")
    depends, recommends = rel("Depends"), rel("Recommends")
    report(run_pkgs and set(run_pkgs) <= depends and not set(build_pkgs) & depends and set(rec_pkgs) == recommends,
           "Depends holds debian-packages.txt's [run] packages, Recommends its [recommends], no build-only one",
           f"Depends: {field('Depends')}\nRecommends: {field('Recommends')}\n[run]: {run_pkgs}")

    # debian/control's Build-Depends are all in the list too.
    with open(os.path.join(ROOT, "debian", "control")) as fh:
        m = re.search(r"^Build-Depends:(.*?)^\S", fh.read(), re.M | re.S)
    bdeps = {x.strip().split(" ")[0] for x in (m.group(1) if m else "").split(",") if x.strip()} - {"debhelper-compat"}
    listed_all = set(listed("build") + listed("run") + listed("package"))
    report(bdeps and bdeps <= listed_all, "debian/control's Build-Depends are in debian-packages.txt",
           f"not listed: {sorted(bdeps - listed_all)}")

    root = os.path.join(fresh_tmp(), "root")
    p = subprocess.run(["dpkg", "-x", deb, root], capture_output=True, text=True)
    report(p.returncode == 0, "dpkg -x unpacks it into a scratch root", p.stderr)
    want = ["usr/bin/mqlab", "usr/share/man/man1/mqlab.1.gz", "usr/share/man/es/man1/mqlab.1.gz",
            "usr/share/bash-completion/completions/mqlab", "usr/share/doc/mqlab/README.md",
            "usr/share/doc/mqlab/docs/authoring.md", "usr/share/doc/mqlab/slides/html/index.html",
            "usr/share/doc/mqlab/slides/01-hello.es.md", "usr/share/doc/mqlab/slides/html/11-dashboard.en.html",
            "usr/share/doc/mqlab/README.Debian", "usr/share/doc/mqlab/copyright"]
    absent = [w for w in want if not os.path.isfile(os.path.join(root, w))]
    report(not absent, "it carries the binary, mqlab(1) in en and es, bash completion, slides and docs",
           "missing: " + ", ".join(absent))
    binary = os.path.join(root, "usr", "bin", "mqlab")
    if not os.access(binary, os.X_OK):
        return

    # The installed binary, run from a folder that is not the repository.
    away = fresh_tmp()
    env = env_for(fresh_tmp())
    p = subprocess.run([binary, "--version"], cwd=away, env=env, capture_output=True, text=True, timeout=30)
    report(p.returncode == 0 and version in p.stdout, "mqlab --version from the package", p.stdout + p.stderr)
    p = subprocess.run([binary, "list", "--no-record"], cwd=away, env=env, capture_output=True, text=True,
                       timeout=60)
    labs = re.findall(r"^(\d\d-[a-z0-9-]+)\s", p.stdout, re.M)
    report(p.returncode == 0 and "01-hello" in labs and len(labs) == len(os.listdir(os.path.join(ROOT, "labs"))),
           f"mqlab list from the package lists every built-in lab ({len(labs)})", p.stdout + p.stderr)
    tmpdir = fresh_tmp()
    p = subprocess.run([binary, "check", "01", os.path.join(ROOT, "solutions", "01-hello"), "--format", "json",
                        "--no-record"], cwd=away, env=env_for(tmpdir), capture_output=True, text=True, timeout=180)
    try:
        v = json.loads(p.stdout)
    except ValueError:
        v = None
    files, procs = leftovers(tmpdir)
    report(p.returncode == 0 and v is not None and v["score"] == v["max_score"] and not files and not procs,
           "mqlab check 01 from the package: solutions/01-hello scores full marks, leaves nothing",
           p.stdout[-2000:] + p.stderr[-2000:] + f"\nleft: {files} {procs}")

    # mqlab(1) covers every command and the options of trace, bench and broker.
    import gzip
    ok, why = True, []
    cmds = re.findall(r"^  ([a-z][a-z-]*) +\S",
                      subprocess.run([binary, "--lang", "en", "--help"], env=env, capture_output=True,
                                     text=True).stdout, re.M)
    for man, lang in (("usr/share/man/man1/mqlab.1.gz", "en"), ("usr/share/man/es/man1/mqlab.1.gz", "es")):
        with gzip.open(os.path.join(root, man), "rt", encoding="utf-8") as fh:
            text = fh.read().replace("\\-", "-")
        for c in cmds:
            if not re.search(r"^\.SS mqlab %s\b" % re.escape(c), text, re.M):
                ok = False
                why.append(f"{lang}: no section for {c}")
        for o in ("--ws-port", "--web-port", "--web", "--drop", "--cut-after", "--client", "--clients", "--rate",
                  "--plot", "--connect-rate", "--jobs", "--resume", "--attempt", "--no-sandbox"):
            if o not in text:
                ok = False
                why.append(f"{lang}: {o} is not in it")
    report(ok and len(cmds) >= 20, f"mqlab(1), en and es, covers all {len(cmds)} commands and their options",
           "\n".join(why))
    if shutil.which("man"):
        p = subprocess.run(["man", "--warnings", "-l", os.path.join(root, "usr/share/man/man1/mqlab.1.gz")],
                           env=dict(env, MANWIDTH="80", MAN_KEEP_FORMATTING="0"), capture_output=True,
                           text=True, timeout=60)
        report(p.returncode == 0 and not p.stderr.strip() and "mqlab check" in p.stdout,
               "man --warnings formats it without a warning", p.stderr)

    # Bash completion: commands, lab ids, options, option values.
    cases = [("mqlab ch", {"check"}), ("mqlab gra", {"grade", "gradebook"}), ("mqlab check ", {"01-hello", "11-dashboard"}),
             ("mqlab show 03", {"03-qos-loss"}), ("mqlab trace --w", {"--ws-port", "--web", "--web-port"}),
             ("mqlab broker --ws", {"--ws-port"}), ("mqlab bench ", {"conn", "steady", "burst", "ramp", "merge"}),
             ("mqlab bench steady --id", {"--id-prefix"}),
             ("mqlab bench steady --cl", {"--clients"}), ("mqlab --lang ", {"es", "en"}),
             ("mqlab grade --format ", {"csv", "junit", "gradescope"}), ("mqlab broker ", {"plain", "tls"}),
             ("mqlab grade ", {"all", "01-hello"})]
    for line, expect in cases:
        got = set(deb_complete(root, line))
        report(expect <= got, f"bash completion: '{line}' offers {', '.join(sorted(expect))}", f"got: {sorted(got)}")

    # make install puts the same files where the package does.
    # With the package's build flags, so that make reuses its objects.
    dest = os.path.join(fresh_tmp(), "dest")
    menv = dict(os.environ, HOME=RUN_HOME, DEB_BUILD_MAINT_OPTIONS="hardening=+all")
    for f in ("CFLAGS", "CPPFLAGS", "LDFLAGS"):
        menv[f] = subprocess.run(["dpkg-buildflags", "--get", f], cwd=src, env=menv, capture_output=True,
                                 text=True).stdout.strip()
    p = subprocess.run(["make", "--no-print-directory", "BUILD=debian/build", "BIN=debian/build/mqlab", "install",
                        "PREFIX=/usr", "DESTDIR=" + dest], cwd=src, capture_output=True, text=True, timeout=600,
                       env=menv)
    def tree(top, debian):
        out = set()
        for dirpath, _, filenames in os.walk(top):
            for f in filenames:
                rel = os.path.relpath(os.path.join(dirpath, f), top)
                if debian:
                    if rel in ("usr/share/doc/mqlab/changelog.gz", "usr/share/doc/mqlab/copyright",
                               "usr/share/doc/mqlab/README.Debian"):
                        continue
                    if rel.endswith(".gz"):
                        rel = rel[:-3]
                out.add(rel)
        return out
    mine, theirs = tree(dest, False), tree(root, True)
    report(p.returncode == 0 and mine == theirs, f"make install PREFIX=/usr installs the package's {len(theirs)} files",
           p.stdout[-1500:] + p.stderr[-1500:] + f"\nonly make install: {sorted(mine - theirs)}"
           f"\nonly the .deb: {sorted(theirs - mine)}")


def main():
    if not os.access(MQLAB, os.X_OK):
        print("mqlab is not built; run make first")
        print("0 passed, 1 failed")
        return 1
    only = sys.argv[1:]
    tests = [("solutions", test_solutions), ("bad", test_bad)]
    if REPEAT == 1:
        tests += [("contract", test_contract), ("workspace", test_workspace), ("grade", test_grade),
                  ("sigint", test_sigint), ("sweep", test_sweep), ("hostile", test_hostile), ("stuck", test_stuck), ("no-sandbox", test_no_sandbox), ("misnamed", test_misnamed), ("jobs", test_jobs), ("class", test_class), ("shard", test_shard), ("k8s", test_k8s), ("resume", test_resume), ("fair", test_fair), ("guide", test_guide), ("guided", test_guided), ("tour", test_tour), ("new-lab", test_newlab), ("verify", test_verify), ("own-labs", test_own_labs), ("trace", test_trace), ("trace-web", test_trace_web), ("proxy-api", test_proxy_api), ("websocket", test_websocket), ("brokerlog", test_brokerlog), ("lab-tools", test_labtools), ("certs", test_certs), ("brokerconf", test_brokerconf),
                  ("bench", test_bench), ("bench-merge", test_bench_merge), ("bench-k8s", test_bench_k8s), ("bench-co", test_bench_co), ("watch", test_watch), ("live", test_live),
                  ("friction-hint", test_friction_hint), ("friction-progress", test_friction_progress),
                  ("friction-broker", test_friction_broker), ("friction-outside", test_friction_outside),
                  ("friction-variants", test_friction_variants), ("friction-missing", test_friction_missing),
                  ("friction-version", test_friction_version), ("friction-lab03", test_friction_lab03),
                  ("friction-python", test_friction_python), ("classroom", test_classroom),
                  ("mqttjs-node", test_mqttjs_node), ("browser", test_browser), ("dashboard", test_dashboard),
                  ("gradescope", test_gradescope), ("deb", test_deb)]
    t0 = time.time()
    try:
        for name, fn in tests:
            if not only or name in only:
                fn()
        check_real_home()
    finally:
        subprocess.run(["rm", "-rf", RUN_TMP])
    print(f"\nintegration: {time.time() - t0:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
