#!/usr/bin/python3
"""Reference side of tests/e2e/test_hash.sh (never runs mpimap).

  mktree DIR          the test tree: ~300 files of varied sizes (empty to a few
                      MiB), nested directories, awkward names (spaces, `\\`,
                      LF, CR, TAB, non-UTF-8 bytes, names that sort trickily)
  mkmany DIR N        N empty files in 4 sub-directories of DIR
  manifest ALGO [--tag] [--follow] PATH...
                      the manifest the real tools print for the regular files
                      under PATH... (find -H, or find -L with --follow), sorted
                      bytewise by path: sha256sum, sha512sum, b2sum, md5sum
                      output verbatim; xxhsum -H1/-H2/-H3 output verbatim for
                      names without `\\`, LF, CR (xxhsum 0.8.1 does not escape
                      names), coreutils 9.1 escaping for the others
  state PATH...       a fingerprint of everything under PATH (type, mode,
                      size, mtime, content digest, link target) to prove that
                      inputs were left unchanged
  bind SOCKET         create a Unix-domain socket file at SOCKET
"""
import hashlib
import os
import random
import socket
import stat
import subprocess
import sys

TOOLS = {
    "sha256": ["sha256sum"],
    "sha512": ["sha512sum"],
    "blake2b": ["b2sum"],
    "md5": ["md5sum"],
    "xxh64": ["xxhsum", "-H1"],
    "xxh128": ["xxhsum", "-H2"],
    "xxh3": ["xxhsum", "-H3"],
}


def mktree(root):
    rnd = random.Random(7)
    root = os.fsencode(root)

    def put(rel, size):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(rnd.randbytes(size))

    # sizes around the 1 MiB read size of the kernel, and a few MiB
    put(b"empty", 0)
    put(b"one", 1)
    put(b"big/three-mib-plus", 3 * 1048576 + 123)
    put(b"big/mib", 1048576)
    put(b"big/mib-1", 1048575)
    put(b"big/mib+1", 1048577)
    put(b"big/two-mib", 2 * 1048576)
    # names with spaces, a leading '*', dots
    put(b"with space", 10)
    put(b" leading space", 11)
    put(b"trailing space ", 12)
    put(b"*star", 13)
    put(b".hidden", 14)
    put(b".dotdir/inside", 15)
    put(b"dir with spaces/file with spaces", 16)
    put(b"-dash", 17)
    put(b"paren (x) = y", 18)
    # names that need escaping, and non-UTF-8
    put(b"odd/back\\slash", 20)
    put(b"odd/new\nline", 21)
    put(b"odd/carriage\rreturn", 22)
    put(b"odd/all\\three\n\r", 23)
    put(b"odd/tab\there", 24)
    put(b"odd/\xff", 25)
    put(b"odd/latin1-\xe9t\xe9", 26)
    put(b"odd/utf8-\xc3\xa9t\xc3\xa9", 27)
    put(b"odd/\\", 28)
    put(b"odd/empty\\", 0)
    # names that sort trickily: 'a/' (a directory) sorts between 'a.b' and 'a0'
    for n in [b"a-b", b"a.b", b"a0", b"B", b"b", b"A", b"a/a", b"a/a-b", b"a/A",
              b"a/b/c", b"a-/x", b"a.b.c", b"aa", b"a /sp"]:
        put(b"sort/" + n, rnd.randrange(0, 300))
    # nested tree of small files, some empty directories
    n = 0
    for d1 in range(6):
        for d2 in range(5):
            d = b"n/d%d/e%d" % (d1, d2)
            if d2 == 4:
                d += b"/f/g/h"
            for i in range(rnd.randrange(5, 12)):
                size = rnd.choice([0, 1, 7, 64, 100, 4095, 4096, 4097, 65536,
                                   rnd.randrange(0, 200000)])
                put(d + b"/file%03d.dat" % i, size)
                n += 1
        os.makedirs(os.path.join(root, b"n/d%d/empty-dir" % d1), exist_ok=True)
    for i in range(40):
        put(b"n/flat%02d" % i, rnd.randrange(0, 3000))


def mkmany(root, count):
    for k in range(4):
        os.makedirs(os.path.join(root, "d%d" % k), exist_ok=True)
    for i in range(count):
        open(os.path.join(root, "d%d" % (i % 4), "f%06d" % i), "wb").close()


def list_files(paths, follow):
    cmd = ["find", "-L" if follow else "-H"] + paths + ["-type", "f", "-print0"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if r.returncode != 0 and not follow:  # with -L a loop makes find exit 1
        sys.exit("hashref: %s failed" % " ".join(cmd))
    return sorted(p for p in r.stdout.split(b"\0") if p)


def special(p):
    return b"\\" in p or b"\n" in p or b"\r" in p


def escape(p):
    return p.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")


def run_tool(cmd, files=None, stdin=None):
    r = subprocess.run(cmd + (files or []), stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, stdin=stdin)
    if r.returncode != 0:
        sys.exit("hashref: %s failed (exit %d)" % (" ".join(cmd), r.returncode))
    return r.stdout


def manifest(algo, tag, follow, paths):
    files = list_files(paths, follow)
    cmd = list(TOOLS[algo]) + (["--tag"] if tag else [])
    out = sys.stdout.buffer
    if not algo.startswith("xxh"):
        if files:
            out.write(run_tool(cmd + ["--"], files))
        return
    bsd = tag or algo == "xxh3"
    run = []
    for f in files + [None]:
        if f is not None and not special(f):
            run.append(f)
            continue
        if run:
            out.write(run_tool(cmd, run))
            run = []
        if f is None:
            break
        with open(f, "rb") as fh:
            line = run_tool(cmd, stdin=fh).split()
        if bsd:  # "XXH3 (stdin) = HEX"
            out.write(b"\\%s (%s) = %s\n" % (line[0], escape(f), line[-1]))
        else:  # "HEX  stdin"
            out.write(b"\\%s  %s\n" % (line[0], escape(f)))


def state(paths):
    for top in paths:
        for dirpath, dirs, files in os.walk(os.fsencode(top)):
            dirs.sort()
            for name in sorted(dirs + files) + ([b""] if dirpath == os.fsencode(top) else []):
                p = os.path.join(dirpath, name) if name else dirpath
                st = os.lstat(p)
                extra = b""
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        extra = hashlib.sha256(f.read()).hexdigest().encode()
                elif stat.S_ISLNK(st.st_mode):
                    extra = os.readlink(p)
                line = b"%r %o %d %d %d %s\n" % (p, st.st_mode, st.st_size,
                                                 st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0,
                                                 st.st_uid, extra)
                sys.stdout.buffer.write(line)


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd = a.pop(0)
    if cmd == "mktree":
        mktree(a[0])
    elif cmd == "mkmany":
        mkmany(a[0], int(a[1]))
    elif cmd == "manifest":
        algo = a.pop(0)
        tag = "--tag" in a
        follow = "--follow" in a
        paths = [x for x in a if x not in ("--tag", "--follow")]
        manifest(algo, tag, follow, paths)
    elif cmd == "state":
        state(a)
    elif cmd == "bind":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(a[0])
        s.close()
    else:
        sys.exit("hashref: unknown command " + cmd)


if __name__ == "__main__":
    main()
