#!/usr/bin/python3
"""Independent reference implementations for the mpimap end-to-end tests.

Nothing here calls mpimap: every expected output is computed from the
definitions in shared/DESIGN.md and the kernels' --help texts.

  oracle.py wordcount [-s] [--top K] FILE...     text output ('-' = stdin)
  oracle.py fib N...                             'n<TAB>fib(n)' lines
  oracle.py fib --file FILE                      same, integers one per line
  oracle.py primes [--list] A B                  count, or the primes
  oracle.py convert tsv|json COL[,COL...]        mpimap tsv/json output on
                                                 stdin -> text rows, validated
  oracle.py check-bindings NP THREADS HOST [--spread]   --report-bindings
                                                 lines on stdin
  oracle.py gen-synthetic OUT SEED               wordcount edge-case text
  oracle.py gen-utf8 OUT SEED                    valid UTF-8 text
  oracle.py gen-line OUT PATTERN BYTES           one huge line (no newline
                                                 inside) repeating PATTERN
"""
import json
import math
import random
import re
import sys

WORD = re.compile(rb"[A-Za-z0-9_\x80-\xff]+")


def read_input(name):
    if name == "-":
        return sys.stdin.buffer.read()
    with open(name, "rb") as f:
        return f.read()


def cmd_wordcount(args):
    case_sensitive = False
    top = None
    files = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-s", "--case-sensitive"):
            case_sensitive = True
        elif a in ("-k", "--top"):
            i += 1
            top = int(args[i])
        else:
            files.append(a)
        i += 1
    if not files:
        files = ["-"]
    counts = {}
    for name in files:
        data = read_input(name)  # words never span two files
        for m in WORD.finditer(data):
            w = m.group(0)
            if not case_sensitive:
                w = w.lower()  # bytes.lower() changes ASCII letters only
            counts[w] = counts.get(w, 0) + 1
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if top is not None:
        rows = rows[:top]
    out = sys.stdout.buffer
    for w, c in rows:
        out.write(b"%d\t%s\n" % (c, w))


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def cmd_fib(args):
    if args[:1] in (["--file"], ["-F"]):
        nums = [int(x) for x in read_input(args[1]).split()]
    else:
        nums = [int(x) for x in args]
    for n in nums:
        sys.stdout.write("%d\t%d\n" % (n, fib(n)))


def primes_between(a, b):
    """Primes p with a <= p <= b, by a segmented sieve."""
    if b < 2 or a > b:
        return []
    a = max(a, 2)
    r = math.isqrt(b)
    base = bytearray([1]) * (r + 1)
    base[0:2] = b"\x00\x00"[: min(2, r + 1)]
    for p in range(2, math.isqrt(r) + 1):
        if base[p]:
            base[p * p :: p] = bytes(len(range(p * p, r + 1, p)))
    seg = bytearray([1]) * (b - a + 1)
    for p in range(2, r + 1):
        if base[p]:
            start = max(p * p, (a + p - 1) // p * p)
            if start <= b:
                seg[start - a :: p] = bytes(len(range(start - a, b - a + 1, p)))
    return [a + i for i, v in enumerate(seg) if v]


def cmd_primes(args):
    lst = False
    if args and args[0] in ("-l", "--list"):
        lst = True
        args = args[1:]
    a, b = int(args[0]), int(args[1])
    ps = primes_between(a, b)
    if lst:
        sys.stdout.write("".join("%d\n" % p for p in ps))
    else:
        sys.stdout.write("%d\n" % len(ps))


NUMERIC = {"count", "n", "fib", "prime", "lines", "bytes", "words"}


def die(msg):
    sys.stderr.write("convert: " + msg + "\n")
    sys.exit(1)


def tsv_unescape(field):
    out = bytearray()
    i = 0
    while i < len(field):
        c = field[i]
        if c == 0x5C and i + 1 < len(field):  # backslash
            n = field[i + 1]
            out += {0x74: b"\t", 0x6E: b"\n", 0x72: b"\r", 0x5C: b"\\"}.get(
                n, bytes([c, n])
            )
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def cmd_convert(args):
    fmt, cols = args[0], args[1].split(",")
    data = sys.stdin.buffer.read()
    rows = []
    if fmt == "tsv":
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        else:
            die("tsv output does not end with a newline")
        if not lines:
            die("tsv output has no header line")
        header = lines[0].decode("ascii", "replace")
        if header != "\t".join(cols):
            die("tsv header is %r, expected %r" % (header, "\t".join(cols)))
        for k, line in enumerate(lines[1:], 2):
            fields = line.split(b"\t")
            if len(fields) != len(cols):
                die("tsv line %d has %d fields, expected %d: %r"
                    % (k, len(fields), len(cols), line[:100]))
            rows.append([tsv_unescape(f) for f in fields])
    elif fmt == "json":
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            die("json output does not parse: %s" % e)
        if not isinstance(doc, list):
            die("json output is a %s, expected an array" % type(doc).__name__)
        for k, obj in enumerate(doc):
            if not isinstance(obj, dict):
                die("json element %d is not an object: %r" % (k, obj))
            if sorted(obj.keys()) != sorted(cols):
                die("json element %d has keys %s, expected %s"
                    % (k, sorted(obj.keys()), sorted(cols)))
            row = []
            for c in cols:
                v = obj[c]
                if c in NUMERIC:
                    if not isinstance(v, int) or isinstance(v, bool):
                        die("json element %d: %s is %r, expected an integer" % (k, c, v))
                    row.append(b"%d" % v)
                else:
                    if not isinstance(v, str):
                        die("json element %d: %s is %r, expected a string" % (k, c, v))
                    row.append(v.encode("utf-8"))
            rows.append(row)
    else:
        die("unknown format " + fmt)
    out = sys.stdout.buffer
    for row in rows:
        out.write(b"\t".join(row) + b"\n")


def parse_cpulist(s):
    """'0-3,8' -> {0,1,2,3,8}"""
    out = set()
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-")
            out.update(range(int(lo), int(hi) + 1))
        else:
            out.add(int(part))
    return out


BIND_LINE = re.compile(
    r"bindings: host (\S+) rank (\d+): cpuset given (\S+), (\d+) cores? for this rank"
    r"(?: \(cpuset shared by \d+ ranks, this is share \d+\))?, (\d+) threads?(.*)$"
)
THREAD = re.compile(r"thread (\d+) -> core L#(\d+) \(PU ([0-9,\-]+)\)")


def cmd_check_bindings(args):
    np_, nthreads, host = int(args[0]), int(args[1]), args[2]
    spread = "--spread" in args
    problems = []
    seen = {}
    for line in sys.stdin.read().splitlines():
        if "bindings:" not in line:
            continue
        m = BIND_LINE.search(line)
        if not m:
            problems.append("unparsable bindings line: %r" % line)
            continue
        h, rank, cpuset, ncores, nt, rest = m.groups()
        rank, ncores, nt = int(rank), int(ncores), int(nt)
        if h != host:
            problems.append("rank %d names host %r, expected %r" % (rank, h, host))
        if rank in seen:
            problems.append("rank %d reported twice" % rank)
        allowed = parse_cpulist(cpuset)
        if nt != nthreads:
            problems.append("rank %d reports %d threads, expected %d" % (rank, nt, nthreads))
        threads = THREAD.findall(rest)
        if [int(t[0]) for t in threads] != list(range(nthreads)):
            problems.append("rank %d: expected one 'thread i -> core' entry for i in 0..%d, got %r"
                            % (rank, nthreads - 1, rest))
        cores = []
        for t, core, pus in threads:
            pu = parse_cpulist(pus)
            if not pu or not pu <= allowed:
                problems.append("rank %d thread %s pinned to PU %s, outside its cpuset %s"
                                % (rank, t, pus, cpuset))
            cores.append(int(core))
        if nthreads <= ncores and len(set(cores)) != len(cores):
            problems.append("rank %d: %d threads on %d cores but cores repeat: %r"
                            % (rank, nthreads, ncores, cores))
        seen[rank] = (frozenset(allowed), ncores, cores)
    if sorted(seen) != list(range(np_)):
        problems.append("expected one bindings line for each rank 0..%d, got ranks %s"
                        % (np_ - 1, sorted(seen)))
    if spread:
        # Ranks given the same cpuset must not stack their threads on the same
        # cores while other cores of that cpuset stay idle.
        groups = {}
        for rank, (cs, ncores, cores) in seen.items():
            groups.setdefault(cs, []).append((rank, ncores, cores))
        for cs, members in groups.items():
            total = sum(len(c) for _, _, c in members)
            ncores = members[0][1]
            used = [core for _, _, c in members for core in c]
            if len(members) > 1 and total <= ncores and len(set(used)) != len(used):
                problems.append(
                    "ranks %s share cpuset %s (%d cores) with %d threads in all, "
                    "but pin them to cores %r: some cores are shared, others idle"
                    % ([r for r, _, _ in members], sorted(cs), ncores, total,
                       [(r, c) for r, _, c in members]))
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


def cmd_gen_synthetic(args):
    """Text exercising every wordcount rule and chunk boundaries."""
    out, rnd = args[0], random.Random(int(args[1]))
    letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    utf8 = ["é", "ß", "日本", "Ωmega", "naïve", "Ä", "ﬁ"]
    raw_high = [b"\x80", b"\xff", b"\xfe\xfd", b"\xc3", b"\xa9"]
    seps = [b" ", b"  ", b"\t", b"\n", b"\r\n", b",", b". ", b"-", b"'", b"\"",
            b"(", b")", b"\x01", b"\x7f", b"/", b"\\", b":;", b"\x0b\x0c", b"@#$%^&*+="]
    vocab = []
    for _ in range(400):
        w = bytes(rnd.choice(letters) for _ in range(rnd.randint(1, 12)))
        if rnd.random() < 0.2:
            w += rnd.choice(utf8).encode()
        if rnd.random() < 0.1:
            w = rnd.choice(raw_high) + w
        vocab.append(w)
    # Case variants of a few words: equal when folded, distinct with -s.
    for w in (b"Mpimap", b"MPIMAP", b"mpimap", b"mPiMaP", b"Word_1", b"WORD_1"):
        vocab.append(w)
    parts = []
    size = 0
    while size < 1_200_000:
        r = rnd.random()
        if r < 0.0005:
            w = bytes(rnd.choice(letters) for _ in range(rnd.randint(5000, 90000)))
        elif r < 0.001:
            # a long line without newline: many words, only spaces
            w = b" ".join(rnd.choice(vocab) for _ in range(30000))
        else:
            # Zipf-like: low indices much more frequent
            w = vocab[min(int(rnd.paretovariate(1.2)) - 1, len(vocab) - 1)]
        parts.append(w)
        parts.append(rnd.choice(seps))
        size += len(w) + 2
    parts.pop()
    parts.append(b"\nlast_word_without_newline")
    with open(out, "wb") as f:
        f.write(b"".join(parts))


def cmd_gen_utf8(args):
    out, rnd = args[0], random.Random(int(args[1]))
    words = ["Straße", "straße", "café", "Café", "naïve", "日本語", "テキスト", "Ωmega",
             "hello", "Hello", "HELLO", "wörld", "x_1", "çà", "émigré", "ÉMIGRÉ", "q"]
    punct = [" ", ", ", ". ", "\n", "\t", " – ", " « ", " » ", "\"", "'"]
    lines = []
    for _ in range(20000):
        lines.append("".join(rnd.choice(words) + rnd.choice(punct) for _ in range(rnd.randint(0, 12))))
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def cmd_gen_line(args):
    out, pattern, nbytes = args[0], args[1].encode(), int(args[2])
    reps = nbytes // len(pattern)
    with open(out, "wb") as f:
        chunk = pattern * max(1, (1 << 20) // len(pattern))
        left = reps
        per = (1 << 20) // len(pattern)
        while left > 0:
            n = min(left, per)
            f.write(chunk if n == per else pattern * n)
            left -= n
        f.write(b"\n")
    print(reps)


def main():
    cmds = {
        "wordcount": cmd_wordcount,
        "fib": cmd_fib,
        "primes": cmd_primes,
        "convert": cmd_convert,
        "check-bindings": cmd_check_bindings,
        "gen-synthetic": cmd_gen_synthetic,
        "gen-utf8": cmd_gen_utf8,
        "gen-line": cmd_gen_line,
    }
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.stderr.write(__doc__)
        sys.exit(2)
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
