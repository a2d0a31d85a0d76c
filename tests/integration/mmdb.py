"""A tiny writer of MaxMind DB files (format 2.0), for tests: IPv4 networks mapped to a
country record {"country": {"iso_code": "NL", "names": {"en": "Netherlands"}}}, the
shape of GeoLite2-Country and DB-IP's country databases.  Only what a test needs:
24-bit records, IPv4 tree, maps, strings, unsigned integers, arrays.

Format: https://maxmind.github.io/MaxMind-DB/ (search tree, 16 zero bytes, data
section, metadata after \\xab\\xcd\\xefMaxMind.com).
"""

import ipaddress
import struct
import time


def _ctrl(type_, size):
    """Control byte(s) for a type (1-15) and payload size."""
    out = b""
    if size < 29:
        first = size
        extra = b""
    elif size < 29 + 256:
        first, extra = 29, bytes([size - 29])
    else:
        first, extra = 30, struct.pack(">H", size - 285)
    if type_ <= 7:
        out = bytes([(type_ << 5) | first])
    else:
        out = bytes([first, type_ - 7])
    return out + extra


def _uint(type_, v):
    b = v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""
    return _ctrl(type_, len(b)) + b


def encode(v):
    if isinstance(v, str):
        b = v.encode()
        return _ctrl(2, len(b)) + b
    if isinstance(v, dict):
        return _ctrl(7, len(v)) + b"".join(encode(k) + encode(x) for k, x in v.items())
    if isinstance(v, list):
        return _ctrl(11, len(v)) + b"".join(encode(x) for x in v)
    if isinstance(v, tuple):  # ("u16"|"u32"|"u64", n)
        kind, n = v
        return _uint({"u16": 5, "u32": 6, "u64": 9}[kind], n)
    raise TypeError(v)


def write(path, networks):
    """networks: {"127.0.0.0/24": ("NL", "Netherlands"), ...} (IPv4)."""
    data = b""
    offsets = {}
    for net, (iso, name) in networks.items():
        offsets[net] = len(data)
        data += encode({"country": {"iso_code": iso, "names": {"en": name}}})
    # The tree: nodes[i] = [left, right]; a record is ("n", index), ("d", offset) or None.
    nodes = [[None, None]]
    for net, off in offsets.items():
        n = ipaddress.ip_network(net)
        bits = int(n.network_address)
        node = 0
        for depth in range(n.prefixlen):
            bit = (bits >> (31 - depth)) & 1
            if depth == n.prefixlen - 1:
                nodes[node][bit] = ("d", off)
                break
            rec = nodes[node][bit]
            if rec is None or rec[0] != "n":
                # A shorter network's data is pushed down to both halves.
                nodes.append([rec, rec])
                nodes[node][bit] = ("n", len(nodes) - 1)
            node = nodes[node][bit][1]
    count = len(nodes)

    def value(rec):
        if rec is None:
            return count
        if rec[0] == "n":
            return rec[1]
        return count + 16 + rec[1]

    tree = b"".join(value(l).to_bytes(3, "big") + value(r).to_bytes(3, "big") for l, r in nodes)
    meta = encode({
        "binary_format_major_version": ("u16", 2),
        "binary_format_minor_version": ("u16", 0),
        "build_epoch": ("u64", int(time.time())),
        "database_type": "mxbait-test-Country",
        "description": {"en": "mxbait test countries"},
        "ip_version": ("u16", 4),
        "languages": ["en"],
        "node_count": ("u32", count),
        "record_size": ("u16", 24),
    })
    with open(path, "wb") as f:
        f.write(tree + b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com" + meta)
