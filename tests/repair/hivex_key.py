"""Print the values of one key of a hive as JSON {name: [type, hex]}, read by Debian's python3-hivex.

Run by /usr/bin/python3 (python3-hivex is only importable there): ``hivex_key.py HIVE 'Key\\Path'``.
"""

import json
import sys

sys.path.append("/usr/lib/python3/dist-packages")
import hivex  # noqa: E402


def main() -> None:
    h = hivex.Hivex(sys.argv[1])
    node = h.root()
    for part in [p for p in sys.argv[2].split("\\") if p]:
        node = h.node_get_child(node, part)
        if node is None:
            json.dump(None, sys.stdout)
            return
    out = {}
    for v in h.node_values(node):
        t, d = h.value_value(v)
        out[h.value_key(v)] = [t, d.hex()]
    json.dump(out, sys.stdout)


main()
