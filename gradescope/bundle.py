#!/usr/bin/env python3
"""make autograder LAB=NN: a Gradescope autograder bundle for one lab.

    python3 gradescope/bundle.py LAB [OUTDIR]

writes OUTDIR/autograder-NN-name.zip (OUTDIR defaults to build/) holding,
in Gradescope's layout (the zip's top is /autograder/source):

    setup.sh         installs the Ubuntu packages and builds mqlab (as root)
    run_autograder   grades /autograder/submission into results/results.json
    autograder.conf  LAB=<the lab's full id>, MQLAB_LANG=<en|es>
    kit/             the source tree `make` needs to build mqlab

LAB is 3, 03 or 03-qos-loss. The language of the feedback is MQLAB_LANG
from the environment (en by default). The zip is written to a temporary
name and renamed, so a failed run leaves no half-written bundle.
Exit codes: 0 written, 2 bad usage or an unknown lab.
Standard library only.
"""
import os
import re
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "gradescope")
# What `make` needs to build ./mqlab (and nothing of the tests but the
# package list's reader).
KIT_PATHS = ["Makefile", "debian-packages.txt", "runner", "labs", "broker-config", "npm",
             "tests/deps.sh", "certs/README.md"]
# A fixed date for every entry, so that the same tree makes the same zip.
STAMP = (2020, 1, 1, 0, 0, 0)


def die(msg):
    print(f"make autograder: {msg}", file=sys.stderr)
    sys.exit(2)


def lab_id(arg):
    labs = sorted(d for d in os.listdir(os.path.join(ROOT, "labs"))
                  if re.match(r"^\d\d-", d) and os.path.isfile(os.path.join(ROOT, "labs", d, "lab.lua")))
    if re.fullmatch(r"\d{1,2}", arg):
        found = [d for d in labs if d[:2] == f"{int(arg):02d}"]
    else:
        found = [d for d in labs if d == arg]
    if len(found) != 1:
        die(f"no lab '{arg}' in labs/ (LAB=NN: one of {', '.join(l[:2] for l in labs)})")
    return found[0]


def kit_files():
    """(path in the repository, path in the zip) of every file the build needs."""
    out = []
    for top in KIT_PATHS:
        full = os.path.join(ROOT, top)
        if os.path.isfile(full):
            out.append(top)
            continue
        if not os.path.isdir(full):
            die(f"{top} is missing from {ROOT}")
        for dirpath, dirnames, filenames in os.walk(full):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "node_modules") and not d.startswith("."))
            for f in sorted(filenames):
                if f.endswith(("~", ".o", ".d", ".swp", ".pyc")) or f.startswith("."):
                    continue
                out.append(os.path.relpath(os.path.join(dirpath, f), ROOT))
    return out


def add(z, src, name, mode=None):
    st = os.stat(src)
    info = zipfile.ZipInfo(name, STAMP)
    info.external_attr = ((mode if mode is not None else st.st_mode & 0o777) | 0o100000) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(src, "rb") as f:
        z.writestr(info, f.read())


def main(argv):
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(argv) not in (1, 2) or not argv[0]:
        print("usage: make autograder LAB=NN   (python3 gradescope/bundle.py LAB [OUTDIR])", file=sys.stderr)
        return 2
    lab = lab_id(argv[0])
    if lab.startswith("11-"):
        die("lab 11 is graded in headless Chromium, and on Ubuntu (Gradescope's images) Chromium is only a "
            "snap, which does not run inside Gradescope's Docker containers; grade lab 11 with "
            "`mqlab grade 11 DIR` on a Debian machine instead")
    lang = os.environ.get("MQLAB_LANG", "en") or "en"
    if lang not in ("en", "es"):
        die(f"MQLAB_LANG is '{lang}': en or es")
    outdir = argv[1] if len(argv) == 2 else os.path.join(ROOT, "build")
    os.makedirs(outdir, exist_ok=True)
    dest = os.path.join(outdir, f"autograder-{lab}.zip")
    fd, tmp = tempfile.mkstemp(prefix=".autograder-", suffix=".zip", dir=outdir)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            add(z, os.path.join(HERE, "setup.sh"), "setup.sh", 0o755)
            add(z, os.path.join(HERE, "run_autograder"), "run_autograder", 0o755)
            info = zipfile.ZipInfo("autograder.conf", STAMP)
            info.external_attr = 0o100644 << 16
            z.writestr(info, f"# written by make autograder LAB={argv[0]}\nLAB={lab}\nMQLAB_LANG={lang}\n")
            files = kit_files()
            for rel in files:
                add(z, os.path.join(ROOT, rel), "kit/" + rel)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"{os.path.relpath(dest)}: lab {lab}, feedback in {lang}, {len(files)} files of the kit's source")
    print("Upload it in Gradescope: Assignment > Configure Autograder > Zip file upload "
          "(base image Ubuntu 22.04 or 24.04).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
