#!/usr/bin/env python3
"""Tiny Azure Blob REST client for the demo and benchmark scripts (stdlib only).

Talks to Azurite with the emulator's well-known shared key (public, documented by
Microsoft); never used against a real account. Commands:
  azblob.py URL mkcontainer CONTAINER
  azblob.py URL ls CONTAINER [PREFIX]      # one line per blob: size, name, selected metadata
URL is the account endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1
"""
import base64, hashlib, hmac, sys, urllib.parse, urllib.request, urllib.error
from email.utils import formatdate
import xml.etree.ElementTree as ET

ACCOUNT = "devstoreaccount1"
KEY = base64.b64decode(
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
VERSION = "2021-08-06"


def sign(method, url, headers):
    u = urllib.parse.urlsplit(url)
    canon_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-"))
    canon_res = f"/{ACCOUNT}{u.path}"
    for k, vs in sorted(urllib.parse.parse_qs(u.query, keep_blank_values=True).items()):
        canon_res += f"\n{k.lower()}:{','.join(sorted(vs))}"
    length = headers.get("Content-Length", "")
    if length == "0":
        length = ""
    to_sign = "\n".join([method, "", "", length, "", headers.get("Content-Type", ""), "", "", "", "", "", ""])
    to_sign += "\n" + canon_headers + canon_res
    sig = base64.b64encode(hmac.new(KEY, to_sign.encode(), hashlib.sha256).digest()).decode()
    headers["Authorization"] = f"SharedKey {ACCOUNT}:{sig}"


def request(method, url):
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": VERSION, "Content-Length": "0"}
    sign(method, url, headers)
    req = urllib.request.Request(url, method=method, headers=headers, data=None)
    with urllib.request.urlopen(req) as resp:
        return resp.read()


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    base, cmd, container = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    if cmd == "mkcontainer":
        try:
            request("PUT", f"{base}/{container}?restype=container")
        except urllib.error.HTTPError as e:
            if e.code != 409:  # 409 = already exists
                sys.exit(f"azblob: create container {container}: HTTP {e.code}")
    elif cmd == "ls":
        prefix = sys.argv[4] if len(sys.argv) > 4 else ""
        marker = ""
        while True:
            q = {"restype": "container", "comp": "list", "include": "metadata"}
            if prefix:
                q["prefix"] = prefix
            if marker:
                q["marker"] = marker
            body = request("GET", f"{base}/{container}?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote))
            root = ET.fromstring(body)
            for b in root.iter("Blob"):
                name = b.findtext("Name")
                size = b.findtext("Properties/Content-Length")
                md = {m.tag: m.text for m in (b.find("Metadata") or [])}
                keys = ["permissions", "owner", "group", "modtime", "hdi_isfolder", "lustre_type"]
                extra = " ".join(f"{k}={md[k]}" for k in keys if k in md)
                print(f"{int(size):>10}  {name}  {extra}")
            marker = root.findtext("NextMarker") or ""
            if not marker:
                break
    else:
        sys.exit(f"azblob: unknown command {cmd!r}")


if __name__ == "__main__":
    main()
