#!/usr/bin/python3
"""Regenerates tests/bad-inputs/files/: the malformed inputs of the bad-input
corpus (see README.md next to this script). The files are checked in; this
script only documents how each one was made and rebuilds them:

    /usr/bin/python3 tests/bad-inputs/make_files.py

Needs python3-pil (JPEG encoding) only. Every file is small (< 20 KB) and
deterministic; run tests/e2e/test_badcorpus.sh afterwards.
"""
import io
import os
import shutil
import struct
import sys
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "files")


def w(name, data):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)


def gradient(wd, ht, mode="RGB"):
    img = Image.new(mode, (wd, ht))
    px = img.load()
    for y in range(ht):
        for x in range(wd):
            if mode == "RGB":
                px[x, y] = ((x * 7 + y) % 256, (y * 5) % 256, (x * y) % 256)
            elif mode == "CMYK":
                px[x, y] = ((x * 7) % 256, (y * 5) % 256, (x + y) % 256, 17)
            else:
                px[x, y] = (x * 3 + y * 2) % 256
    return img


def png_chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(wd, ht, color=2, depth=8, rows=None, bad_ihdr_crc=False):
    sig = b"\x89PNG\r\n\x1a\n"
    ihdr = struct.pack(">IIBBBBB", wd, ht, depth, color, 0, 0, 0)
    ch = png_chunk(b"IHDR", ihdr)
    if bad_ihdr_crc:
        ch = ch[:-4] + bytes(b ^ 0xFF for b in ch[-4:])
    if rows is None:
        bpp = {0: 1, 2: 3, 6: 4}[color]
        rows = b"".join(b"\x00" + bytes((x * 13 + y * 7) % 256 for x in range(wd * bpp))
                        for y in range(ht))
    return sig + ch + png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b"")


def jpeg(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", quality=85, **kw)
    return b.getvalue()


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    # ---- wordcount
    w("wc/nul.txt", b"first line\nsecond line\nthird \x00 line\nfourth\n")
    w("wc/empty.txt", b"")
    w("wc/elf.bin", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)

    # ---- fib --file
    w("fib/word.txt", "1\n2\nthree\n4\n")
    w("fib/negative.txt", "5\n6\n-7\n")
    w("fib/94.txt", "10\n93\n94\n")
    w("fib/huge.txt", "1\n99999999999999999999999999\n")
    w("fib/fraction.txt", "1\n2\n3\n4.5\n")
    w("fib/empty.txt", "")
    w("fib/nul.txt", b"1\n2\n\x00\n")

    # ---- test kernel
    w("test/lines.txt", "".join("line %d\n" % i for i in range(1, 301)))

    # ---- image
    ok = png(16, 12)
    w("img/ok.png", ok)
    full = png(64, 48)
    w("img/truncated.png", full[: len(full) // 2])
    w("img/garbage.png", b"\x89PNG\r\n\x1a\n" + bytes((i * 131 + 7) % 256 for i in range(600)))
    w("img/bad-crc.png", png(16, 12, bad_ihdr_crc=True))
    w("img/zero-width.png", png(0, 12, rows=b""))
    w("img/huge.png", png(100000, 100000, rows=b"\x00" * 3001))
    w("img/text.png", "this is not an image, whatever its name says\n")
    w("img/empty.png", b"")
    j = jpeg(gradient(64, 48))
    w("img/truncated.jpg", j[: len(j) // 2])
    # The scan cut in its middle and closed with EOI: libjpeg only warns
    # ("premature end of data segment") and pads the rows with gray.
    big = jpeg(gradient(256, 256))
    sos = big.find(b"\xff\xda")
    w("img/early-eoi.jpg", big[: sos + (len(big) - sos) // 2] + b"\xff\xd9")
    w("img/garbage.jpg", b"\xff\xd8\xff" + bytes((i * 57 + 3) % 256 for i in range(700)))
    w("img/cmyk.jpg", jpeg(gradient(32, 24, "CMYK")))
    w("img/huge.ppm", b"P6\n100000 100000\n255\n" + b"\x00" * 64)
    w("img/overflow.ppm", b"P6\n99999999999999999999 1\n255\n" + b"\x00" * 64)
    w("img/zero-height.pgm", b"P5\n30 0\n255\n")
    w("img/maxval0.pgm", b"P5\n2 2\n0\n\x00\x00\x00\x00")
    w("img/maxval70000.pgm", b"P5\n2 2\n70000\n" + b"\x00" * 8)
    w("img/ascii.pgm", b"P2\n2 2\n255\n0 1\n2 3\n")
    w("img/truncated.ppm", b"P6\n8 8\n255\n" + bytes(range(100)))
    w("img/over-maxval.pgm", b"P5\n2 2\n100\n\x01\x02\xc8\x03")
    w("img/bad-number.pgm", b"P5\n12x 4\n255\n" + b"\x00" * 48)
    w("img/ok.pgm", b"P5\n4 3\n255\n" + bytes(range(0, 240, 20)))
    # many-images mode: a directory of bad images only
    w("img/dir/a.pgm", b"P5\n4 4\n255\n\x00\x01")
    w("img/dir/b.png", full[:100])

    # ---- kmeans
    w("km/ragged.csv", "a,b,c,d\n1,2,3,4\n5,6,7,8\n9,10,11\n12,13,14,15\n")
    w("km/nonnum.csv", "1,2\n3,4\n5,abc\n7,8\n")
    w("km/nan.csv", "x,y\n1,2\n3,nan\n5,6\n")
    w("km/inf.csv", "1.5,2\n3,4\n-inf,6\n")
    w("km/overflow.csv", "1,2\n3,4\n5,6\n7,1e999\n")
    w("km/empty.csv", "")
    w("km/header-only.csv", "x,y,z\n")
    w("km/three.csv", "1,2\n3,4\n5,6\n")
    w("km/unterminated.csv", '1,2\n3,"4\n5,6\n')
    w("km/partial.f64", struct.pack("<5d", 1, 2, 3, 4, 5))
    w("km/nan.f64", struct.pack("<6d", 1, 2, 3, float("nan"), 5, 6))
    w("km/init2.csv", "x,y\n0,0\n1,1\n")
    w("km/init-ragged.csv", "x,y\n0,0\n1\n2,2\n")
    w("km/named.csv", "height,weight\n1,2\n3,4\n5,6\n7,8\n")
    w("km/ok.csv", "1,2\n3,4\n5,6\n7,8\n9,10\n")

    # ---- hash --check manifests (paths relative to the input directory,
    # the runner's working directory)
    w("hash/data.txt", "hello\n")
    good = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"  # sha256("hello\n")
    w("hash/bad-hex.sha256", "zz91b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  hash/data.txt\n")
    w("hash/short.sha256", good[:63] + "  hash/data.txt\n")
    w("hash/missing.sha256", good + "  hash/no-such-file.txt\n")
    w("hash/mismatch.sha256", "0" * 64 + "  hash/data.txt\n")
    w("hash/ambiguous.md", "b1946ac92492d2347c6235b4d2611184  hash/data.txt\n")
    w("hash/strict.sha256", good + "  hash/data.txt\nthis line is not a checksum line\n")
    w("hash/empty.sha256", "")
    w("hash/bsd-bad.sha256", "SHA256 (hash/data.txt) = " + good[:40] + "\n")

    # ---- fetch URL lists (no network: invalid syntax, unsupported schemes,
    # a local port nothing listens on)
    w("fetch/garbage.txt", "# a comment\nnot a url at all\n")
    w("fetch/schemes.txt", "ftp://127.0.0.1/file\nfile:///etc/hostname\ngopher://127.0.0.1/x\n")
    w("fetch/refused.txt", "http://127.0.0.1:1/nothing-listens-here\n")
    w("fetch/long-line.txt", "http://127.0.0.1:1/" + "a" * 12000 + "\n")
    w("fetch/nul.txt", b"http://127.0.0.1:1/a\x00b\n")

    # ---- exec
    w("exec/items.txt", "a\nb\nc\n")
    w("exec/not-executable.sh", "#!/bin/sh\necho never\n")

    # ---- journals (--journal J --resume)
    w("journal/garbage.journal", "this is a shopping list, not a journal\neggs\nmilk\n")
    w("journal/truncated.journal", "MPIMAP JOUR")
    w("journal/empty.journal", "")
    hdr = ("MPIMAP JOURNAL 1\nkernel wordcount\nkernel-abi 5\nchunk-size 4194304\nrecords words\n"
           "format text\noption top=0\noption case-sensitive=0\noption binary=0\ninputs 1\n"
           "input 0 file \"/elsewhere/text.txt\" size 12 mtime 1700000000.000000000\n")
    w("journal/foreign.journal", hdr + "end 0123456789abcdef\n")
    # A primes journal whose header lines match 'primes 1:1000' but whose
    # checksum line does not.
    hdr = ("MPIMAP JOURNAL 1\nkernel primes\nkernel-abi 5\nchunk-size 8388608\nrecords lines\n"
           "format text\noption list=0\ninputs 1\ninput 0 range 1 1001\n")
    w("journal/damaged.journal", hdr + "end 0000000000000000\n")

    # ---- --kernel: not a plugin
    w("plugin/text.so", "not a shared library\n")
    w("plugin/empty.so", b"")
    w("plugin/truncated.so", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56)

    total = 0
    for root, _, names in os.walk(OUT):
        for n in names:
            size = os.path.getsize(os.path.join(root, n))
            assert size < 20 * 1024, (n, size)
            total += size
    assert total < 300 * 1024, total
    print("%s: %d bytes" % (OUT, total), file=sys.stderr)


if __name__ == "__main__":
    main()
