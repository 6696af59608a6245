#!/usr/bin/env python3
"""Get an access token from login-bridge as a service user (RFC 7523 jwt-bearer grant).

    python3 clients/service_user_token.py KEY_FILE BRIDGE_URL [SCOPE]

KEY_FILE is what `login-bridge service-user create` wrote:
{"type": "serviceaccount", "keyId": ..., "key": "-----BEGIN PRIVATE KEY-----...", "userId": ...}.
Needs PyJWT with cryptography (`pip install pyjwt[crypto]`). Prints the access token.
"""
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt  # PyJWT


def assertion(key_file: dict, audience: str, alg: str) -> str:
    now = int(time.time())
    claims = {
        "iss": key_file["userId"],
        "sub": key_file["userId"],
        "aud": audience,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),  # the bridge refuses a jti it has seen
    }
    return jwt.encode(claims, key_file["key"], algorithm=alg, headers={"kid": key_file["keyId"]})


def key_algorithm(pem: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem.encode(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise SystemExit("unsupported key type")


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        key_file = json.load(f)
    bridge = sys.argv[2].rstrip("/")
    with urllib.request.urlopen(f"{bridge}/.well-known/openid-configuration") as r:
        metadata = json.load(r)
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": assertion(key_file, metadata["issuer"], key_algorithm(key_file["key"])),
    }
    if len(sys.argv) > 3:
        form["scope"] = sys.argv[3]
    request = urllib.request.Request(
        metadata["token_endpoint"], data=urllib.parse.urlencode(form).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request) as r:
            print(json.load(r)["access_token"])
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{e.code}: {e.read().decode()}")


if __name__ == "__main__":
    main()
