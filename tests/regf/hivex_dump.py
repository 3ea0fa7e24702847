"""Dump a hive with Debian's python3-hivex as JSON (run by /usr/bin/python3 in a subprocess).

Output: a list of [key path, [[value name, type, data hex], ...]] in hivex's order (list order), the
independent reader our tests compare our reader and writer with.
"""

import json
import sys

sys.path.append("/usr/lib/python3/dist-packages")
import hivex  # noqa: E402


def main() -> None:
    h = hivex.Hivex(sys.argv[1])
    out = []
    stack = [(h.root(), "")]
    while stack:
        node, path = stack.pop()
        vals = []
        for v in h.node_values(node):
            t, d = h.value_value(v)
            vals.append([h.value_key(v), t, d.hex()])
        out.append([path, vals])
        children = h.node_children(node)
        for c in reversed(children):
            name = h.node_name(c)
            stack.append((c, f"{path}\\{name}" if path else name))
    json.dump(out, sys.stdout)


main()
