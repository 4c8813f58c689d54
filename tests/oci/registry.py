#!/usr/bin/env python3
"""A small read-only registry for rlxc's OCI tests: the distribution API's GET side over
OCI layouts (ROOT/REPO/index.json tags, ROOT/REPO/blobs/sha256/HEX), with basic or
bearer-token auth and faults a real registry does not make on request (schema 1, a
wrong blob, a cut blob). Used where Debian's docker-registry cannot produce a fault.

registry.py ROOT PORTFILE [--auth basic|token] [--user U --password P]
            [--corrupt HEX] [--truncate HEX] [--schema1 REPO:TAG] [--tls CERT KEY]
"""
import argparse, base64, hashlib, http.server, json, os, re, ssl, sys

ap = argparse.ArgumentParser()
ap.add_argument("root"); ap.add_argument("portfile")
ap.add_argument("--auth", choices=["basic", "token"])
ap.add_argument("--user", default="u"); ap.add_argument("--password", default="p")
ap.add_argument("--corrupt", action="append", default=[])
ap.add_argument("--truncate", action="append", default=[])
ap.add_argument("--schema1", action="append", default=[])
ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
a = ap.parse_args()
TOKEN = hashlib.sha256(os.urandom(16)).hexdigest()
BASIC = "Basic " + base64.b64encode(f"{a.user}:{a.password}".encode()).decode()

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *x): pass
    def send(self, code, body=b"", ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    def authorized(self):
        h = self.headers.get("Authorization", "")
        if a.auth is None: return True
        if a.auth == "basic": return h == BASIC
        return h == "Bearer " + TOKEN
    def challenge(self):
        host = self.headers.get("Host")
        if a.auth == "basic":
            c = 'Basic realm="test"'
        else:
            scheme = "https" if a.tls else "http"
            c = f'Bearer realm="{scheme}://{host}/token",service="test-registry"'
        self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', extra=[("WWW-Authenticate", c)])
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/token":
            if self.headers.get("Authorization", "") != BASIC:
                return self.send(401, b'{"details":"bad credentials"}')
            return self.send(200, json.dumps({"token": TOKEN}).encode())
        if not self.authorized():
            return self.challenge()
        if path == "/v2/":
            return self.send(200, b"{}")
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
        t = re.fullmatch(r"/v2/(.+)/tags/list", path)
        if t:
            idx = self.index(t.group(1))
            if idx is None: return self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
            tags = [d["annotations"]["org.opencontainers.image.ref.name"] for d in idx["manifests"]]
            return self.send(200, json.dumps({"name": t.group(1), "tags": tags}).encode())
        if not m: return self.send(404)
        repo, kind, ref = m.groups()
        idx = self.index(repo)
        if idx is None: return self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
        if f"{repo}:{ref}" in a.schema1:
            body = json.dumps({"schemaVersion": 1, "name": repo, "tag": ref, "fsLayers": []}).encode()
            return self.send(200, body, "application/vnd.docker.distribution.manifest.v1+prettyjws")
        ctype = "application/octet-stream"
        if kind == "manifests" and not ref.startswith("sha256:"):
            d = [d for d in idx["manifests"] if d["annotations"].get("org.opencontainers.image.ref.name") == ref]
            if not d: return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            ref, ctype = d[0]["digest"], d[0]["mediaType"]
        hexd = ref.split(":", 1)[1]
        p = os.path.join(a.root, repo, "blobs", "sha256", hexd)
        if not os.path.isfile(p): return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
        body = open(p, "rb").read()
        if kind == "manifests":
            ctype = json.loads(body).get("mediaType", ctype)
        if hexd in a.corrupt:
            body = body[:-1] + bytes([body[-1] ^ 1])
        if hexd in a.truncate:
            # Says the whole length, sends half, closes: a cut transfer.
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send(200, body, ctype, [("Docker-Content-Digest", ref)])
    def index(self, repo):
        p = os.path.join(a.root, repo, "index.json")
        if ".." in repo or not os.path.isfile(p): return None
        return json.load(open(p))

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
if a.tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*a.tls)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(a.portfile + ".tmp", "w") as f: f.write(str(srv.server_address[1]))
os.rename(a.portfile + ".tmp", a.portfile)
srv.serve_forever()
