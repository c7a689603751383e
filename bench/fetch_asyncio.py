#!/usr/bin/python3
"""bench/fetch_asyncio.py - the asyncio anchor of scripts/bench-fetch.sh.

    fetch_asyncio.py [--concurrency N] URLS.txt

The seeds' asyncio approach (one coroutine per URL, asyncio.gather), with the
standard library only: every URL is a raw HTTP/1.1 GET over its own
asyncio.open_connection (`Connection: close`), at most N (default 64) at a
time (asyncio.Semaphore). Prints, in input order, one line per URL:
`url<TAB>status<TAB>bytes<TAB>sha256 of the body<TAB>error` (status 0 and an
error message when there was no response). Exit status 1 when any URL did
not get a 2xx status. http:// URLs only, bodies with a Content-Length, read
to the end of the connection otherwise (no chunked decoding: the benchmark's
server always sends a Content-Length).
"""
import argparse
import asyncio
import hashlib
import sys
import urllib.parse


async def fetch(url, sem):
    async with sem:
        try:
            u = urllib.parse.urlsplit(url)
            if u.scheme != "http":
                return url, 0, 0, "", "unsupported scheme"
            port = u.port or 80
            path = u.path or "/"
            if u.query:
                path += "?" + u.query
            reader, writer = await asyncio.open_connection(u.hostname, port)
            try:
                writer.write(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                              % (path, u.netloc)).encode("latin-1"))
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length = None
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v.strip())
                if length is not None:
                    body = await reader.readexactly(length)
                else:
                    body = await reader.read()
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except OSError:
                    pass
            err = "" if 200 <= status < 300 else "HTTP %d" % status
            return url, status, len(body), hashlib.sha256(body).hexdigest(), err
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as e:
            return url, 0, 0, "", "%s: %s" % (type(e).__name__, e)


async def main_async(urls, n):
    sem = asyncio.Semaphore(n)
    return await asyncio.gather(*(fetch(u, sem) for u in urls))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("urls")
    a = ap.parse_args()
    with open(a.urls) as f:
        urls = [line.strip() for line in f]
    urls = [u for u in urls if u and not u.startswith("#")]
    rows = asyncio.run(main_async(urls, a.concurrency))
    out = sys.stdout
    failed = 0
    for url, status, nbytes, digest, err in rows:
        out.write("%s\t%d\t%d\t%s\t%s\n" % (url, status, nbytes, digest, err))
        failed += bool(err)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
