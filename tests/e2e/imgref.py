#!/usr/bin/python3
"""Independent reference for the image kernel's tests (tests/e2e/test_image.sh).

Reads and writes PNM with numpy (its own code, not mpimap's), other formats
with PIL, and computes every filter with scipy.ndimage in float64 with
mode='nearest' (edges replicate the nearest pixel), rounding half up.

  imgref.py gen W H CHANNELS MAXVAL SEED OUT.(pgm|ppm|png)   test image
  imgref.py ref FILTER [--sigma S] [--amount A] [--radius R] IN OUT.pnm
  imgref.py cmp A B TOL        max |A - B| per sample <= TOL (exit 1 if not)
  imgref.py info FILE          "W H CHANNELS MAXVAL" as PIL/numpy sees it
  imgref.py alpha A B          alpha channels of A and B identical
  imgref.py bad DIR            writes the malformed files of the bad-input cases
"""
import math
import os
import sys

import numpy as np


# ---- PNM, written here from the format's definition --------------------------------------

def _tokens(data, count):
    """The first `count` header tokens of a PNM and the offset after them."""
    toks, i, n = [], 0, len(data)
    while len(toks) < count:
        while i < n and data[i:i + 1] in b" \t\r\n":
            i += 1
        if i < n and data[i:i + 1] == b"#":
            while i < n and data[i:i + 1] not in b"\r\n":
                i += 1
            continue
        j = i
        while j < n and data[j:j + 1] not in b" \t\r\n#":
            j += 1
        if j == i:
            raise ValueError("truncated header")
        toks.append(data[i:j])
        i = j
    return toks, i + 1  # exactly one whitespace byte after maxval


def read_pnm(path):
    data = open(path, "rb").read()
    toks, off = _tokens(data, 4)
    magic, w, h, maxval = toks[0], int(toks[1]), int(toks[2]), int(toks[3])
    c = {b"P5": 1, b"P6": 3}[magic]
    dt = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
    a = np.frombuffer(data, dtype=dt, count=w * h * c, offset=off)
    return a.reshape(h, w, c).astype(np.int64), maxval


def write_pnm(path, a, maxval):
    h, w, c = a.shape
    magic = {1: b"P5", 3: b"P6"}[c]
    dt = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
    with open(path, "wb") as f:
        f.write(b"%s\n%d %d\n%d\n" % (magic, w, h, maxval))
        f.write(a.astype(dt).tobytes())


def read_png(path):
    """A non-interlaced PNG of 8 or 16 bits (gray, GA, RGB, RGBA), decoded here with
    zlib from the PNG specification: PIL reads 16-bit colour PNGs as 8-bit."""
    import struct
    import zlib
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, bits, ctype, _, _, interlace = ihdr
    assert interlace == 0 and bits in (8, 16) and ctype in (0, 2, 4, 6), ihdr
    c = {0: 1, 4: 2, 2: 3, 6: 4}[ctype]
    bpp = c * bits // 8
    stride = w * bpp
    raw = zlib.decompress(idat)
    out = np.zeros((h, stride), dtype=np.int64)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int64)
        cur = np.zeros(stride, dtype=np.int64)
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            cc = prev[i - bpp] if i >= bpp else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            cur[i] = (line[i] + pred) & 0xFF
        out[y] = cur
        prev = cur
    if bits == 16:
        out = out[:, 0::2] * 256 + out[:, 1::2]
    return out.reshape(h, w, c), 65535 if bits == 16 else 255


def read_pfm(path):
    """A float PFM (PF colour, Pf gray; rows top first, as vips writes them), rounded half up to 0..255."""
    data = open(path, "rb").read()
    toks, off = _tokens(data, 4)
    c = 3 if toks[0] == b"PF" else 1
    w, h, scale = int(toks[1]), int(toks[2]), float(toks[3])
    dt = np.dtype("<f4") if scale < 0 else np.dtype(">f4")
    a = np.frombuffer(data, dtype=dt, count=w * h * c, offset=off).reshape(h, w, c)
    return np.clip(np.floor(a.astype(np.float64) + 0.5), 0, 255).astype(np.int64), 255


def read_any(path):
    """(array h x w x c of int64, maxval)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:2] in (b"P5", b"P6"):
        return read_pnm(path)
    if head[:2] in (b"PF", b"Pf"):
        return read_pfm(path)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16:
        return read_png(path)
    from PIL import Image
    im = Image.open(path)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16B", "I"):
        return np.asarray(im).astype(np.int64)[:, :, None], 65535
    a = np.asarray(im)
    if a.ndim == 2:
        a = a[:, :, None]
    return a.astype(np.int64), 255


# ---- test images --------------------------------------------------------------------------

def gen(w, h, c, maxval, seed):
    """Smooth gradients, hard-edged shapes and noise: every filter has work."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for k in range(c):
        g = (x * (k + 1) / max(w, 1) + y * (c - k) / max(h, 1)) / 2.0
        g += 0.35 * ((((x // 7) + (y // 5) + k) % 3) == 0)
        g += 0.25 * (((x - w / 2) ** 2 + (y - h / 3) ** 2) < (min(w, h) / 4) ** 2)
        g += rng.normal(0, 0.08, size=(h, w))
        planes.append(g)
    a = np.stack(planes, axis=2)
    a = (a - a.min()) / (a.max() - a.min() + 1e-12)
    a = np.floor(a * maxval + 0.5).astype(np.int64)
    a[0, 0, :] = 0
    a[-1, -1, :] = maxval
    return np.clip(a, 0, maxval)


def save(path, a, maxval):
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pgm", ".ppm", ".pnm"):
        write_pnm(path, a, maxval)
        return
    from PIL import Image
    c = a.shape[2]
    if maxval > 255:
        if c != 1:
            raise SystemExit("PIL writes 16-bit PNG only for gray")
        Image.fromarray(a[:, :, 0].astype(np.uint16)).save(path)
        return
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
    arr = a.astype(np.uint8)
    Image.fromarray(arr[:, :, 0] if c == 1 else arr, mode).save(path)


# ---- filters (scipy.ndimage, float64) ---------------------------------------------------

def rhu(v):
    return np.floor(v + 0.5)


def luma(a):
    c = a.shape[2]
    f = a.astype(np.float64)
    if c in (1, 2):
        return f[:, :, 0]
    return 0.299 * f[:, :, 0] + 0.587 * f[:, :, 1] + 0.114 * f[:, :, 2]


def gauss(plane, sigma):
    from scipy import ndimage
    # scipy's radius is int(truncate * sigma + 0.5); mpimap's is ceil(3 sigma): make them equal.
    r = math.ceil(3 * sigma)
    return ndimage.gaussian_filter(plane, sigma, mode="nearest", truncate=(r + 0.25) / sigma)


def ref(filt, a, maxval, sigma, amount, radius):
    from scipy import ndimage
    c = a.shape[2]
    alpha = a[:, :, c - 1:] if c in (2, 4) else None
    colour = a[:, :, : c - 1] if alpha is not None else a
    if filt in ("gray", "sobel"):
        L = luma(a)
        if filt == "gray":
            out = rhu(L)
        else:
            gx = ndimage.sobel(L, axis=1, mode="nearest")
            gy = ndimage.sobel(L, axis=0, mode="nearest")
            out = rhu(np.hypot(gx, gy))
        out = np.clip(out, 0, maxval)[:, :, None]
    else:
        planes = []
        for k in range(colour.shape[2]):
            p = colour[:, :, k].astype(np.float64)
            if filt == "blur":
                q = rhu(gauss(p, sigma))
            elif filt == "sharpen":
                q = rhu(p + amount * (p - gauss(p, sigma)))
            elif filt == "box":
                n = 2 * radius + 1
                padded = np.pad(colour[:, :, k], radius, mode="edge")
                s = np.zeros(p.shape, dtype=np.int64)
                for dy in range(n):
                    for dx in range(n):
                        s += padded[dy:dy + p.shape[0], dx:dx + p.shape[1]]
                q = (2 * s + n * n) // (2 * n * n)
            else:
                raise SystemExit("unknown filter " + filt)
            planes.append(np.clip(q, 0, maxval))
        out = np.stack(planes, axis=2)
    if alpha is not None:
        out = np.concatenate([out, alpha], axis=2)
    return out.astype(np.int64)


# ---- malformed files -----------------------------------------------------------------------

def bad(d):
    os.makedirs(d, exist_ok=True)
    good = gen(40, 30, 3, 255, 7).astype(np.uint8).tobytes()

    def w(name, data):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    w("truncated.ppm", b"P6\n40 30\n255\n" + good[: 40 * 3 * 12 + 5])
    w("header_only.ppm", b"P6\n40 30\n255\n")
    w("width0.ppm", b"P6\n0 30\n255\n")
    w("height0.pgm", b"P5\n40 0\n255\n")
    w("maxval0.pgm", b"P5\n4 4\n0\n" + bytes(16))
    w("maxval70000.pgm", b"P5\n4 4\n70000\n" + bytes(32))
    w("huge.ppm", b"P6\n100000 100000\n255\n" + good[:1000])
    w("overflow.ppm", b"P6\n4294967295 4294967295\n65535\n" + good[:1000])
    w("ascii.pgm", b"P2\n2 2\n255\n0 1\n2 3\n")
    w("garbage_dims.ppm", b"P6\n40 x30\n255\n" + good)
    w("sample_gt_maxval.pgm", b"P5\n4 2\n100\n" + bytes([1, 2, 3, 4, 5, 6, 200, 8]))
    w("text.ppm", b"this is not an image at all\n" * 10)
    w("empty.png", b"")
    # Comments inside the header are valid: this one must work.
    w("comments.ppm", b"P6 # a comment\n# another\n40 # width\n30\n# maxval next\n255\n" + good)
    # PNG and JPEG made by PIL, then cut short or damaged.
    from PIL import Image
    import io
    img = Image.frombytes("RGB", (40, 30), good)
    b = io.BytesIO()
    img.save(b, "PNG")
    png = b.getvalue()
    w("truncated.png", png[: len(png) // 2])
    w("badcrc.png", png[:40] + bytes([png[40] ^ 0xFF]) + png[41:])
    b = io.BytesIO()
    img.save(b, "JPEG", quality=90)
    jpg = b.getvalue()
    w("truncated.jpg", jpg[: len(jpg) // 2])
    b = io.BytesIO()
    Image.new("CMYK", (16, 16), (10, 20, 30, 40)).save(b, "JPEG")
    w("cmyk.jpg", b.getvalue())
    # A PNG whose IHDR claims 2^31-1 x 2^31-1 pixels (CRC fixed up).
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 0x7FFFFFFF, 0x7FFFFFFF, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    w("huge.png", png[:8] + chunk + png[33:])


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        w, h, c, maxval, seed, out = sys.argv[2:8]
        save(out, gen(int(w), int(h), int(c), int(maxval), int(seed)), int(maxval))
    elif cmd == "ref":
        args = sys.argv[2:]
        opts = {"--sigma": 1.0, "--amount": 1.0, "--radius": 1}
        filt = args.pop(0)
        while args and args[0] in opts:
            k = args.pop(0)
            opts[k] = type(opts[k])(args.pop(0))
        src, out = args
        a, maxval = read_any(src)
        r = ref(filt, a, maxval, opts["--sigma"], opts["--amount"], opts["--radius"])
        if r.shape[2] in (2, 4):
            r = r[:, :, :-1]  # PNM has no alpha: compare colour channels
        write_pnm(out, r, maxval)
    elif cmd == "cmp":
        a, _ = read_any(sys.argv[2])
        b, _ = read_any(sys.argv[3])
        tol = int(sys.argv[4])
        if a.shape != b.shape:
            print("shapes differ: %s vs %s" % (a.shape, b.shape))
            sys.exit(1)
        d = np.abs(a - b)
        print("max diff %d, %d of %d samples differ" % (d.max(), int((d > 0).sum()), d.size))
        sys.exit(0 if d.max() <= tol else 1)
    elif cmd == "info":
        a, maxval = read_any(sys.argv[2])
        print(a.shape[1], a.shape[0], a.shape[2], maxval)
    elif cmd == "alpha":
        a, _ = read_any(sys.argv[2])
        b, _ = read_any(sys.argv[3])
        same = a.shape[2] in (2, 4) and b.shape[2] in (2, 4) and np.array_equal(a[:, :, -1], b[:, :, -1])
        print("alpha identical" if same else "alpha differs")
        sys.exit(0 if same else 1)
    elif cmd == "bad":
        bad(sys.argv[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
