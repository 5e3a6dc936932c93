#!/usr/bin/python3
"""build_heldout.py — builds tests/data/ua/heldout.tsv (TYPE<TAB>user agent), the
held-out DeviceType corpus of tests/unit/test_device.c and bench/bench_device.c.

Its labels come from projects whose data the classifier neither loads nor was tuned on
(the classifier loads uap-core and Matomo device-detector; it was tuned on labelled.tsv):
  crawler-user-agents 1.60.0 (npm; MIT)  crawler-user-agents.json: every "instances"
                                         agent of the crawler list -> BOT, except the
                                         agents already in labelled.tsv (which holds an
                                         older copy of the list through ruby-voight-kampff)
  user-agents 2.1.198 (npm; BSD-2-Clause, Intoli)  dist/user-agents.json: real browser
                                         agents with the "deviceCategory" that Intoli's
                                         pipeline sets from ua-parser-js's device type:
                                         desktop -> DESKTOP, mobile -> MOBILE,
                                         tablet -> TABLET
Usage:
  mkdir pkgs && cd pkgs && npm pack crawler-user-agents@1.60.0 user-agents@2.1.198 && \\
      for f in *.tgz; do mkdir -p "${f%.tgz}" && tar -xzf "$f" -C "${f%.tgz}"; done && cd ..
  python3 tests/data/ua/build_heldout.py pkgs > tests/data/ua/heldout.tsv
An agent with two different labels, with a tab or line break, or longer than 2048 bytes
is left out (counted in the header).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    root = sys.argv[1]
    seen = set()
    with open(os.path.join(HERE, "labelled.tsv"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or "\t" not in line:
                continue
            seen.add(line.rstrip("\n").split("\t", 1)[1])
    blocks = []
    crawlers = json.load(open(os.path.join(root, "crawler-user-agents-1.60.0", "package",
                                           "crawler-user-agents.json"), encoding="utf-8"))
    bots = {}
    for entry in crawlers:
        for ua in entry.get("instances", []):
            if ua not in seen:
                bots[ua] = "BOT"
    blocks.append(("crawler-user-agents 1.60.0 crawler-user-agents.json (instances not in "
                   "labelled.tsv)", bots))
    intoli = json.load(open(os.path.join(root, "user-agents-2.1.198", "package", "dist",
                                         "user-agents.json"), encoding="utf-8"))
    cat = {"desktop": "DESKTOP", "mobile": "MOBILE", "tablet": "TABLET"}
    browsers = {}
    conflicts = set()
    for e in intoli:
        ua, label = e["userAgent"], cat[e["deviceCategory"]]
        if ua in browsers and browsers[ua] != label:
            conflicts.add(ua)
        browsers[ua] = label
    for ua in conflicts:
        del browsers[ua]
    blocks.append(("user-agents 2.1.198 dist/user-agents.json (Intoli; deviceCategory from "
                   "ua-parser-js)", browsers))
    dropped = len(conflicts)
    out, counts = [], []
    both = set(bots) & set(browsers)
    for name, d in blocks:
        lines = []
        for ua in sorted(d):
            if ua in both or "\t" in ua or "\n" in ua or "\r" in ua or len(ua.encode()) > 2048 \
                    or not ua.strip():
                dropped += 1
                continue
            lines.append("%s\t%s" % (d[ua], ua))
        counts.append((name, lines))
        out.append("## source: " + name)
        out.extend(lines)
    total = sum(len(lines) for _, lines in counts)
    print("# heldout.tsv — DeviceType<TAB>user agent, labelled by projects whose data the")
    print("# classifier does not load and was not tuned on. Built by build_heldout.py; see")
    print("# README.md. Never tune the classifier on this file.")
    for name, lines in counts:
        per = {}
        for l in lines:
            per[l.split("\t")[0]] = per.get(l.split("\t")[0], 0) + 1
        print("#   %s: %d lines (%s)" % (name, len(lines),
                                        ", ".join("%s %d" % kv for kv in sorted(per.items()))))
    print("# Lines: %d; agents dropped (conflicting labels, tabs, over 2048 bytes): %d." %
          (total, dropped))
    print("\n".join(out))


if __name__ == "__main__":
    main()
