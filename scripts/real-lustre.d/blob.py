#!/usr/bin/env python3
"""Blob reads and writes for the real-Lustre scenarios (Azurite's public development key, signed
with scripts/lib/azblob.py's SharedKey signer).
  blob.py URL sha CONTAINER NAME         "SIZE SHA256" of the blob's body, or "absent"
  blob.py URL sha-many CONTAINER         the same for each blob name on stdin: "SIZE SHA256 NAME"
  blob.py URL put CONTAINER NAME FILE    uploads FILE as a block blob (no metadata)
  blob.py URL names CONTAINER [PREFIX]   one blob name a line
"""
import hashlib, os, sys, urllib.error, urllib.parse, urllib.request
from email.utils import formatdate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import azblob  # noqa: E402


def call(method, url, body=None, extra=None):
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": azblob.VERSION,
               "Content-Length": str(len(body) if body is not None else 0)}
    if body is not None:
        # urllib would add its own form Content-Type after signing; sign the one sent.
        headers["Content-Type"] = "application/octet-stream"
    headers.update(extra or {})
    azblob.sign(method, url, headers)
    req = urllib.request.Request(url, method=method, headers=headers, data=body)
    with urllib.request.urlopen(req) as resp:
        return resp.read()


def blob_url(base, container, name):
    return f"{base}/{container}/" + urllib.parse.quote(name, safe="/")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    base, cmd, container = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    if cmd == "sha":
        try:
            data = call("GET", blob_url(base, container, sys.argv[4]))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                print("absent")
                return
            raise
        print(len(data), hashlib.sha256(data).hexdigest())
    elif cmd == "sha-many":
        for name in sys.stdin.read().splitlines():
            try:
                data = call("GET", blob_url(base, container, name))
                print(len(data), hashlib.sha256(data).hexdigest(), name)
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    raise
                print("absent", "-", name)
    elif cmd == "put":
        with open(sys.argv[5], "rb") as f:
            data = f.read()
        call("PUT", blob_url(base, container, sys.argv[4]), data, {"x-ms-blob-type": "BlockBlob"})
    elif cmd == "names":
        import xml.etree.ElementTree as ET
        prefix = sys.argv[4] if len(sys.argv) > 4 else ""
        marker = ""
        while True:
            q = {"restype": "container", "comp": "list"}
            if prefix:
                q["prefix"] = prefix
            if marker:
                q["marker"] = marker
            root = ET.fromstring(call("GET", f"{base}/{container}?" +
                                      urllib.parse.urlencode(q, quote_via=urllib.parse.quote)))
            for b in root.iter("Blob"):
                print(b.findtext("Name"))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                break
    else:
        sys.exit(f"blob.py: unknown command {cmd!r}")


if __name__ == "__main__":
    main()
