#!/usr/bin/python3
"""build_labelled.py — builds tests/data/ua/labelled.tsv (TYPE<TAB>user agent), the
DeviceType corpus of tests/unit/test_device.c, from labels that other projects wrote
down; no line is labelled by evpipe's classifier.

Sources (Debian bookworm packages):
  uap-core 1:0.16.0-1             tests/test_device.yaml: expected device family, brand
                                  and model -> type by the rules in label_device() below;
                                  tests/test_os.yaml + test_resources: DESKTOP for
                                  agents labelled with a desktop OS family there and
                                  with a desktop browser family in the UA test files
  golang-github-mssola-user-agent-dev 0.5.1-1   all_test.go: "Bot:true" -> BOT,
                                  "Mobile:true" -> MOBILE (TABLET when the case title
                                  says iPad/Tablet), "Mobile:false" on a Windows,
                                  Macintosh, X11 or Linux platform -> DESKTOP
  python3-user-agents 2.2.0-3     user_agents/tests.py: the is_bot / is_tablet /
                                  is_mobile / is_pc assertions
  ruby-voight-kampff 1.1.3-4      config/crawler-user-agents.json: every "instances"
                                  agent of the crawler list -> BOT

Usage (the non-uap packages need not be installed, only unpacked):
  apt-get download golang-github-mssola-user-agent-dev python3-user-agents \\
      ruby-voight-kampff
  for f in *.deb; do dpkg -x "$f" pkgroot; done
  /usr/bin/python3 tests/data/ua/build_labelled.py pkgroot > tests/data/ua/labelled.tsv

Needs Debian's python3-yaml (/usr/bin/python3). An agent given two different labels by
two sources is left out (and counted in the header).
"""
import json
import os
import re
import sys

import yaml

UAP = "/usr/share/uap-core"


def load_yaml_cases(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["test_cases"]


def starts(model, prefixes):
    m = model.upper()
    return any(m.startswith(p.upper()) for p in prefixes)


SAMSUNG_TABLETS = ["SM-T", "SM-P", "SM-X", "GT-P", "GT-N80", "GT-N51", "SCH-I800",
                   "SCH-I905", "SCH-I705", "SCH-I815", "SCH-I915", "SCH-I925", "SGH-T849",
                   "SGH-T779", "SGH-T859", "SGH-T869", "SGH-I987", "SGH-I957", "SGH-I467",
                   "SGH-I497", "SPH-P100", "SPH-P500"]
SAMSUNG_PHONES = ["GT-S", "GT-I", "GT-C", "GT-B", "GT-E", "GT-M", "GT-N7", "GT-N9", "SM-G",
                  "SM-N", "SM-A", "SM-J", "SM-C", "SM-E", "SM-M", "SM-F", "SM-S", "SGH-",
                  "SCH-", "SPH-"]
DESKTOP_OS = re.compile(r"^(Windows(?! (Phone|Mobile|CE|RT))|Mac OS X|Linux|Ubuntu|Kubuntu|"
                        r"Xubuntu|Debian|Fedora|Red Hat|SUSE|openSUSE|Mint|Gentoo|Slackware|"
                        r"CentOS|Chrome OS|FreeBSD|OpenBSD|NetBSD|Solaris|Haiku|BeOS)\b")


def label_device(family, brand, model):
    """DeviceType of a uap-core device (family, brand, model), or None when the device
    is not plainly a phone, tablet, computer or crawler (TVs, consoles, watches,
    players, makers of both phones and tablets without a model rule)."""
    brand = brand or ""
    model = model or ""
    if family == "Spider":
        return "BOT"
    if re.search(r"(?i)TV\b|NetCast|HbbTV|Web0S|Inettv|Browser", family or ""):
        return None  # televisions, set-top boxes and disc players
    if brand == "Generic":
        return {"Feature Phone": "MOBILE", "Smartphone": "MOBILE", "Tablet": "TABLET"}.get(model)
    if brand == "Apple":
        if model.startswith("iPad"):
            return "TABLET"
        if model.startswith(("iPhone", "iPod")):
            return "MOBILE"
        if model.startswith(("Mac", "MacBook", "iMac")):
            return "DESKTOP"
        return None
    if brand == "Amazon":
        if model.startswith("Kindle") or model in ("Jem", "Otter", "Tate"):
            return "TABLET"
        return None
    if brand.lower() == "samsung":
        if starts(model, SAMSUNG_TABLETS):
            return "TABLET"
        if starts(model, SAMSUNG_PHONES):
            return "MOBILE"
        return None
    if brand == "HTC":
        if re.search(r"(?i)flyer|p51[02]|p715|evo tab|evo view|jetstream|nexus 9", model):
            return "TABLET"
        if re.search(r"(?i)ipad", model):
            return None
        return "MOBILE"
    if brand == "Motorola":
        if re.search(r"(?i)xoom|^mz6", model):
            return "TABLET"
        return "MOBILE"
    if brand == "LG":
        if re.search(r"(?i)^v50[07]|^v510|^v9\d\d|pad", model):
            return "TABLET"
        if re.search(r"^\d{2}L|AppAdvisor", model):
            return None
        return "MOBILE"
    if brand == "Google":
        if model == "Pixel C":
            return "TABLET"
        if model.startswith("Pixel") and not model.startswith("Pixelbook"):
            return "MOBILE"
        return None
    if brand == "Sony":
        if re.search(r"(?i)^sgp|tablet", model):
            return "TABLET"
        if re.search(r"^(BDV|KDL|COM|PlayStation)", model):
            return None
        if re.match(r"^([A-Z]{1,3}-?\d{2,4}|Xperia)", model):
            return "MOBILE"
        return None
    if brand == "Asus":
        if re.search(r"(?i)transformer|eee pad|memo|^ME\d{3}|^K0[01]|^TF\d|^Nexus (7|10)$", model):
            return "TABLET"
        if re.search(r"(?i)zenfone|^Z0\d|^T00|^Z[BCES]\d", model):
            return "MOBILE"
        return None
    if brand == "Nokia":
        if re.search(r"(?i)^(N800|N810|2520|T2\d|N1)$|tab", model) or model in ("", "0"):
            return None
        return "MOBILE"
    if brand == "BlackBerry":
        if re.search(r"(?i)playbook", model):
            return "TABLET"
        return "MOBILE" if model else None
    if brand in ("SonyEricsson", "Siemens"):
        return "MOBILE"
    if brand == "DoCoMo":
        return None if re.search(r"(?i)tab", model) else "MOBILE"
    if brand in ("CobyKyros", "Ainol", "Ployer"):
        return "TABLET"
    if brand == "Yarvik":
        if model.upper().startswith("TAB"):
            return "TABLET"
        if model.upper().startswith("SMP"):
            return "MOBILE"
        return None
    if brand == "POV":
        if re.search(r"(?i)^tab|mobii|protab|playtab", model):
            return "TABLET"
        return None
    return None


def from_uap_device():
    out = []
    for c in load_yaml_cases(os.path.join(UAP, "tests/test_device.yaml")):
        t = label_device(c["family"], c.get("brand"), c.get("model"))
        if t:
            out.append((t, c["user_agent_string"]))
    return out


DESKTOP_BROWSERS = re.compile(r"^(Chrome|Chromium|Firefox|Firefox Beta|Firefox Alpha|Safari|IE|"
                              r"Edge|Opera|Konqueror|Epiphany|SeaMonkey|Iceweasel|Camino|"
                              r"Vivaldi|Yandex Browser|Maxthon|Baidu Browser|Pale Moon|"
                              r"Waterfox|Brave)$")


def from_uap_os():
    """DESKTOP for agents that uap-core's tests label twice: a desktop browser family in a
    user-agent test file and a desktop operating system in an OS test file."""
    families = {}
    for f in ("tests/test_ua.yaml", "test_resources/firefox_user_agent_strings.yaml",
              "test_resources/pgts_browser_list.yaml"):
        for c in load_yaml_cases(os.path.join(UAP, f)):
            families[c["user_agent_string"]] = c["family"]
    out = []
    for f in ("tests/test_os.yaml", "test_resources/additional_os_tests.yaml"):
        for c in load_yaml_cases(os.path.join(UAP, f)):
            ua = c["user_agent_string"]
            if DESKTOP_OS.match(c["family"] or "") and DESKTOP_BROWSERS.match(families.get(ua, "")):
                out.append(("DESKTOP", ua))
    return out


def go_string(s):
    return json.loads(s)  # Go's interpreted string literals are JSON compatible here


def from_mssola(root):
    path = os.path.join(root, "usr/share/gocode/src/github.com/mssola/user_agent/all_test.go")
    text = open(path, encoding="utf-8").read()
    out = []
    pat = re.compile(r'title:\s*("(?:[^"\\]|\\.)*"),\s*ua:\s*("(?:[^"\\]|\\.)*"),\s*'
                     r'expected:\s*("(?:[^"\\]|\\.)*")')
    for m in pat.finditer(text):
        title, ua, exp = (go_string(g) for g in m.groups())
        bot = "Bot:true" in exp
        mobile = "Mobile:true" in exp
        platform = re.search(r"Platform:(\S+)", exp)
        platform = platform.group(1) if platform else ""
        if not ua:
            continue
        if bot:
            out.append(("BOT", ua))
        elif re.search(r"(?i)ipad|tablet", title):
            if platform != "Windows":
                out.append(("TABLET", ua))
        elif mobile:
            out.append(("MOBILE", ua))
        elif platform in ("Windows", "Macintosh", "X11", "Linux"):
            out.append(("DESKTOP", ua))
    return out


def from_user_agents(root):
    path = os.path.join(root, "usr/lib/python3/dist-packages/user_agents/tests.py")
    text = open(path, encoding="utf-8").read()
    strings = dict(re.findall(r"^(\w+)_ua_string = '([^']*)'", text, re.M))
    strings["outlook"] = re.search(r"^outlook_usa_string = '([^']*)'", text, re.M).group(1)
    var_to_key = {}
    for var, key in re.findall(r"^(\w+) = parse\((\w+)_ua_string\)", text, re.M):
        var_to_key[var] = key
    for var, key in re.findall(r"^(\w+) = parse\((\w+)_usa_string\)", text, re.M):
        var_to_key[var] = key
    facts = {}
    for truth, var, prop in re.findall(r"self\.assert(True|False)\((\w+)\.(is_\w+)\)", text):
        facts.setdefault(var, {})[prop] = truth == "True"
    out = []
    for var, f in facts.items():
        key = var_to_key.get(var)
        if not key or key not in strings:
            continue
        if f.get("is_bot"):
            t = "BOT"
        elif f.get("is_tablet"):
            t = "TABLET"
        elif f.get("is_mobile"):
            t = "MOBILE"
        elif f.get("is_pc"):
            t = "DESKTOP"
        else:
            continue
        out.append((t, strings[key]))
    return sorted(out, key=lambda x: x[1])


def from_crawler_list(root):
    path = os.path.join(root, "usr/share/rubygems-integration/all/gems/voight_kampff-1.1.3/"
                              "config/crawler-user-agents.json")
    out = []
    for entry in json.load(open(path, encoding="utf-8")):
        for ua in entry.get("instances", []):
            out.append(("BOT", ua))
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "/"
    sources = [
        ("uap-core tests/test_device.yaml (device family/brand/model rules)", from_uap_device()),
        ("uap-core OS + UA test files (desktop OS and desktop browser)", from_uap_os()),
        ("golang-github-mssola-user-agent-dev all_test.go", from_mssola(root)),
        ("python3-user-agents user_agents/tests.py", from_user_agents(root)),
        ("ruby-voight-kampff config/crawler-user-agents.json", from_crawler_list(root)),
    ]
    labels = {}
    for _, rows in sources:
        for t, ua in rows:
            ua = ua.replace("\t", " ").replace("\r", " ").replace("\n", " ")
            labels.setdefault(ua, set()).add(t)
    conflicts = {ua for ua, ts in labels.items() if len(ts) > 1}
    seen = set()
    blocks = []
    for name, rows in sources:
        kept = []
        for t, ua in rows:
            ua = ua.replace("\t", " ").replace("\r", " ").replace("\n", " ")
            if ua in conflicts or ua in seen or not ua.strip():
                continue
            seen.add(ua)
            kept.append((t, ua))
        blocks.append((name, kept))
    total = sum(len(k) for _, k in blocks)
    print("# labelled.tsv — DeviceType<TAB>user agent, labelled by other projects' test data")
    print("# (never by evpipe's classifier). Built by tests/data/ua/build_labelled.py; see it")
    print("# for the exact labelling rules and the Debian package versions.")
    print("# Lines: %d; agents dropped for conflicting labels: %d." % (total, len(conflicts)))
    print("# Each block below starts with a '## source:' line naming where its lines come from:")
    for name, kept in blocks:
        counts = {}
        for t, _ in kept:
            counts[t] = counts.get(t, 0) + 1
        print("#   %s: %d lines (%s)" % (name, len(kept),
              ", ".join("%s %d" % (k, counts[k]) for k in sorted(counts))))
    for name, kept in blocks:
        print("## source: %s" % name)
        for t, ua in kept:
            print("%s\t%s" % (t, ua))


if __name__ == "__main__":
    main()
