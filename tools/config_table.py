#!/usr/bin/env python3
"""config_table.py — the README's configuration table, generated from the binary's own
option tables (`evpipe COMMAND --help`, itself generated from each command's ev_opt_t
table), so the documentation cannot drift from the parser.

    python3 tools/config_table.py [--bin build/evpipe] [--check] README.md

Rewrites the text between the markers <!-- config-table:begin --> and
<!-- config-table:end --> in README.md; with --check, changes nothing and exits 1 when
that text is not what the binary generates now (tests/e2e/readme_config.sh)."""
import re
import subprocess
import sys

BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"
OPT = re.compile(r"^\s+(?:-(\w), )?--([\w-]+)(?: (\S+))?\s+(.*)$")


def run(binary, args):
    return subprocess.run([binary] + args, capture_output=True, text=True).stdout


def commands(binary):
    """Subcommands listed by `evpipe --help`, with `dlq` as `dlq replay`."""
    out, names, inside = run(binary, ["--help"]), [], False
    for line in out.splitlines():
        if line.startswith("Commands:"):
            inside = True
        elif inside and line.startswith("  "):
            name = line.split()[0]
            names.append(["dlq", "replay"] if name == "dlq" else [name])
        elif inside and line.strip() == "":
            inside = False
    return names


def options(binary, cmd):
    rows, inside = [], False
    for line in run(binary, cmd + ["--help"]).splitlines():
        if line.startswith("Options:"):
            inside = True
            continue
        if not inside:
            continue
        if not line.startswith("  "):
            if line.strip() == "":
                break
            continue
        m = OPT.match(line)
        if not m:
            continue
        short, name, metavar, text = m.groups()
        env = default = ""
        e = re.search(r" \[env (\w+)\]$", text)
        if e:
            env, text = e.group(1), text[: e.start()]
        d = re.search(r" \(default: (.*)\)$", text)
        if d:
            default, text = d.group(1), text[: d.start()]
        flag = "--" + name + (" " + metavar if metavar else "")
        if short:
            flag = "-" + short + ", " + flag
        rows.append((flag, env, default, text.strip()))
    return rows


def cell(s):
    return s.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def table(binary):
    out = ["", "Generated from `evpipe COMMAND --help` by `tools/config_table.py`; flags win over",
           "the environment, which wins over the default.", ""]
    for cmd in commands(binary):
        rows = options(binary, cmd)
        if not rows:
            continue
        out += ["#### `evpipe %s`" % " ".join(cmd), "",
                "| option | environment | default | meaning |", "|---|---|---|---|"]
        for flag, env, default, text in rows:
            out.append("| `%s` | %s | %s | %s |" % (
                cell(flag), "`%s`" % env if env else "", "`%s`" % cell(default) if default else "",
                cell(text)))
        out.append("")
    return "\n".join(out)


def main(argv):
    binary, check, paths = "build/evpipe", False, []
    i = 0
    while i < len(argv):
        if argv[i] == "--bin":
            binary, i = argv[i + 1], i + 2
            continue
        if argv[i] == "--check":
            check = True
        else:
            paths.append(argv[i])
        i += 1
    if len(paths) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    text = open(paths[0], encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        print("config_table: %s has no %s ... %s section" % (paths[0], BEGIN, END), file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + table(binary) + "\n" + END + tail
    if check:
        if new != text:
            print("config_table: the configuration table in %s is stale: run "
                  "python3 tools/config_table.py %s" % (paths[0], paths[0]), file=sys.stderr)
            return 1
        return 0
    if new != text:
        open(paths[0], "w", encoding="utf-8").write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
