#!/usr/bin/env python3
"""symbol-order.py: the linker's function order for the firmware binary, from callgrind runs.

Used by scripts/profile-symbol-order.sh; see there. Reads callgrind output files (run with
--demangle=no, one per process), finds which component each process was (`postroom run`,
`mail`, `link`: the word after the binary on its `cmd:` line), and prints one symbol per line:
the functions every component ran first, then those two of them ran, then each component's own.
Within a group the order is by name, so the same runs give the same file.

    symbol-order.py CALLGRIND_FILE... > order.txt
    symbol-order.py --translate NM_OUTPUT < order.txt > other-target.txt

--translate maps the symbols to another build of the same source (another target): a legacy
mangled name ends in a hash (`17h0123456789abcdefE`) and a v0 name names crates with
disambiguators that differ between targets, so a symbol is matched by its name without them,
and every symbol of the other build with that name is kept.
"""

import re
import sys
from collections import defaultdict

COMPONENTS = ("run", "mail", "link")
# Groups from most shared to least: a component's functions then sit in few runs of pages.
GROUPS = (
    ("run", "mail", "link"),
    ("mail", "link"),
    ("run", "mail"),
    ("run", "link"),
    ("mail",),
    ("link",),
    ("run",),
)
HASH = re.compile(r"17h[0-9a-f]{16}E$")
# In a v0 mangled name (`_R...`) a crate is named with a disambiguator (`Cs<base-62>_`) that
# differs between targets too, and back-references (`B<base-62>_`) count bytes, so both vary.
V0_CRATE = re.compile(r"Cs[0-9A-Za-z]*_")
V0_BACKREF = re.compile(r"B[0-9A-Za-z]*_")
RECURSION = re.compile(r"'\d+$")
FN_LINE = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")


def component_of(path):
    """The component a callgrind file profiled, from its `cmd:` line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("cmd:"):
                words = line.split()
                if len(words) >= 3 and words[2] in COMPONENTS:
                    return words[2]
                return None
    return None


def functions_of(path):
    """Every function name a callgrind file gives (each function with cost is named once)."""
    names = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = FN_LINE.match(line.rstrip("\n"))
            if m and m.group(2):
                # Callgrind marks a recursive call's function as NAME'2, NAME'3, ...
                name = RECURSION.sub("", m.group(2))
                # Valgrind's own names for code without a symbol ("0x0000000000401000",
                # "(below main)").
                if not name.startswith(("0x", "(")):
                    names.add(name)
    return names


def order(paths):
    used_by = defaultdict(set)
    seen = set()
    for path in paths:
        component = component_of(path)
        if component is None:
            continue
        seen.add(component)
        for name in functions_of(path):
            used_by[name].add(component)
    missing = [c for c in COMPONENTS if c not in seen]
    if missing:
        sys.exit(f"symbol-order.py: no profile of {', '.join(missing)} among the files")
    out = []
    for group in GROUPS:
        want = set(group)
        out.extend(sorted(n for n, users in used_by.items() if users == want))
    return out


def stem(name):
    """A symbol's name without what differs between targets (see HASH, V0_CRATE)."""
    if name.startswith("_R"):
        return V0_BACKREF.sub("B_", V0_CRATE.sub("Cs_", name))
    return HASH.sub("", name)


def translate(nm_path, names):
    by_stem = defaultdict(list)
    with open(nm_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.split()
            if len(words) == 3 and words[1] in "tTwW":
                by_stem[stem(words[2])].append(words[2])
    out, done = [], set()
    for name in names:
        for other in sorted(by_stem.get(stem(name), ())):
            if other not in done:
                done.add(other)
                out.append(other)
    return out


def main(argv):
    if len(argv) == 3 and argv[1] == "--translate":
        names = [line.strip() for line in sys.stdin if line.strip()]
        result = translate(argv[2], names)
    elif len(argv) >= 2 and not argv[1].startswith("-"):
        result = order(argv[1:])
    else:
        sys.exit(__doc__)
    sys.stdout.write("".join(name + "\n" for name in result))


if __name__ == "__main__":
    main(sys.argv)
