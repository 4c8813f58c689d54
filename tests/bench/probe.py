#!/usr/bin/env python3
"""Ask many containers at once, for tests/bench/density.sh (no ping or dig needed).

    probe.py ping                 < "NAME ADDRESS" lines: ICMP echo to each address
    probe.py dns SERVER DOMAIN    < "NAME ADDRESS" lines: NAME.DOMAIN's A record at SERVER

Each round sends to all that have not answered, then waits up to a second for replies;
at most ROUNDS rounds (env PROBE_ROUNDS, default 10). Prints "answered/total" and, on
stderr, the first few that never answered (or answered wrong); exits 1 if any did not.
"""
import os
import random
import select
import socket
import struct
import sys
import time

ROUNDS = int(os.environ.get("PROBE_ROUNDS", "10"))


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping(targets):
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    pending = {ip: name for name, ip in targets}
    for rnd in range(ROUNDS):
        if not pending:
            break
        for ip in list(pending):
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, rnd)
            payload = b"rlxc-density"
            pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + payload), ident, rnd) + payload
            try:
                sock.sendto(pkt, (ip, 0))
            except OSError:
                pass
        deadline = time.monotonic() + 1.0
        while pending and time.monotonic() < deadline:
            r, _, _ = select.select([sock], [], [], max(0, deadline - time.monotonic()))
            if not r:
                break
            data, (src, _) = sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            typ, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and rid == ident:
                pending.pop(src, None)
    return [(n, ip) for ip, n in pending.items()]


def dns_query(qid, fqdn):
    q = b"".join(bytes([len(p)]) + p.encode() for p in fqdn.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)


def dns_answers(data):
    """The A records of a response, and its id."""
    qid, _, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    off = 12

    def skip_name(off):
        while True:
            n = data[off]
            if n == 0:
                return off + 1
            if n & 0xC0 == 0xC0:
                return off + 2
            off += n + 1

    for _ in range(qd):
        off = skip_name(off) + 4
    out = []
    for _ in range(an):
        off = skip_name(off)
        typ, _, _, rdlen = struct.unpack("!HHIH", data[off:off + 10])
        off += 10
        if typ == 1 and rdlen == 4:
            out.append(socket.inet_ntoa(data[off:off + 4]))
        off += rdlen
    return qid, out


def dns(targets, server, domain):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ids = {}
    base = random.randrange(0, 65536 - len(targets))
    for i, (name, ip) in enumerate(targets):
        ids[base + i] = (name, ip)
    pending = dict(ids)
    wrong = {}
    for _ in range(ROUNDS):
        if not pending:
            break
        for qid, (name, _) in list(pending.items()):
            sock.sendto(dns_query(qid, f"{name}.{domain}"), (server, 53))
            # dnsmasq drops what overflows its socket: a little pacing.
            if qid % 64 == 0:
                time.sleep(0.002)
        deadline = time.monotonic() + 1.0
        while pending and time.monotonic() < deadline:
            r, _, _ = select.select([sock], [], [], max(0, deadline - time.monotonic()))
            if not r:
                break
            data, _ = sock.recvfrom(4096)
            qid, addrs = dns_answers(data)
            if qid in pending:
                name, ip = pending[qid]
                if ip in addrs:
                    pending.pop(qid)
                    wrong.pop(qid, None)
                else:
                    wrong[qid] = addrs
    return [(n, f"{ip} (answered {wrong.get(q, 'nothing')})") for q, (n, ip) in pending.items()]


def main():
    targets = [tuple(l.split()[:2]) for l in sys.stdin if l.strip()]
    if sys.argv[1] == "ping":
        missing = ping(targets)
    else:
        missing = dns(targets, sys.argv[2], sys.argv[3])
    print(f"{len(targets) - len(missing)}/{len(targets)}")
    for name, why in missing[:10]:
        print(f"   no answer: {name} {why}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
