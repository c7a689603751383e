#!/usr/bin/python3
"""bench/results_json.py - writes bench/results/SECTION.json for scripts/bench.sh.

  results_json.py add RECORDS KEY=VALUE...          one measured command
  results_json.py param RECORDS KEY=VALUE...        section-level parameters
  results_json.py write RECORDS OUT.json KEY=VALUE...

RECORDS is a scratch file of JSON lines; `write` assembles them, with the
date, host, CPU model and core count, into OUT.json (atomically), the
commands in the order they were added. A value is a number when it parses as
one, true/false as booleans, else a string; KEY:str=VALUE forces a string and
KEY:list=V1 V2... makes a list of numbers (empty: []).
"""
import datetime
import json
import os
import platform
import subprocess
import sys


def value(text):
    if text in ("true", "false"):
        return text == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse(pairs):
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            sys.exit("results_json.py: expected KEY=VALUE, got %r" % pair)
        key, _, kind = key.partition(":")
        if kind == "str":
            out[key] = text
        elif kind == "list":
            out[key] = [value(x) for x in text.split()]
        elif kind == "":
            out[key] = value(text)
        else:
            sys.exit("results_json.py: unknown type %r in %r" % (kind, pair))
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_version(root):
    try:
        return subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, records = sys.argv[1], sys.argv[2]
    if cmd in ("add", "param"):
        with open(records, "a") as f:
            f.write(json.dumps({cmd: parse(sys.argv[3:])}) + "\n")
        return
    if cmd != "write" or len(sys.argv) < 4:
        sys.exit(__doc__)
    out_path = sys.argv[3]
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "mpimap_version": git_version(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    }
    doc.update(parse(sys.argv[4:]))
    params, commands = {}, []
    with open(records) as f:
        for line in f:
            rec = json.loads(line)
            if "param" in rec:
                params.update(rec["param"])
            else:
                commands.append(rec["add"])
    doc["params"] = params
    doc["commands"] = commands
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main()
