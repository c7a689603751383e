#!/usr/bin/python3
"""bench/fetch_threads.py - the thread-pool anchor of scripts/bench-fetch.sh.

    fetch_threads.py [--concurrency N] URLS.txt

concurrent.futures.ThreadPoolExecutor(max_workers=N) (default 64) mapping
urllib.request.urlopen(url).read() over the URLs (standard library only;
urllib opens a connection per request). Prints, in input order, one line per
URL: `url<TAB>status<TAB>bytes<TAB>sha256 of the body<TAB>error` (status 0
and an error message when there was no response). Exit status 1 when any URL
did not get a 2xx status.
"""
import argparse
import concurrent.futures
import hashlib
import sys
import urllib.error
import urllib.request


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        body = e.read()
        return url, e.code, len(body), hashlib.sha256(body).hexdigest(), "HTTP %d" % e.code
    except (OSError, ValueError) as e:
        return url, 0, 0, "", "%s: %s" % (type(e).__name__, e)
    err = "" if 200 <= status < 300 else "HTTP %d" % status
    return url, status, len(body), hashlib.sha256(body).hexdigest(), err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("urls")
    a = ap.parse_args()
    with open(a.urls) as f:
        urls = [line.strip() for line in f]
    urls = [u for u in urls if u and not u.startswith("#")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.concurrency) as ex:
        rows = list(ex.map(fetch, urls))
    failed = 0
    for url, status, nbytes, digest, err in rows:
        sys.stdout.write("%s\t%d\t%d\t%s\t%s\n" % (url, status, nbytes, digest, err))
        failed += bool(err)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
