"""Creates a privacyIDEA 3.14 template instance for the black-box tests, in one Python process.

Usage: tools/privacyidea-venv/bin/python tests/privacyidea/make_template.py DIR

DIR receives pi.cfg, the SQLite database, the encryption key, the audit signing keys, a passwd-format
user file and an empty trusted_jwt.json. The tests copy DIR per test and write that copy's
trusted_jwt.json (the PI_TRUSTED_JWT list) before starting the server; pi.cfg reads it at start-up.

Why not `pi-manage`: each of its six set-up calls spends ~2 s importing privacyIDEA; here the import
happens once, and the same lib functions pi-manage calls do the work.

Every path in pi.cfg is relative to pi.cfg's own directory (pi.cfg computes it from `__file__`), and
the resolver's user file is relative to the working directory, so a copy of DIR is a complete,
independent instance when the server is started with the copy as its working directory.
"""

import os
import secrets
import sys
from pathlib import Path

# Users of the passwd resolver: alice and bob for the common cases, the others so that a test can
# have a user of its own. Fields: name:password:uid:gid:gecos:home:shell (the password is unused).
USERS = ["alice", "bob", "carol", "dave", "erin"]

PI_CFG = '''\
# privacyIDEA configuration of one black-box test instance (written by make_template.py).
import json as _json
import logging as _logging
import os as _os

_dir = _os.path.dirname(_os.path.abspath(__file__))

SQLALCHEMY_DATABASE_URI = "sqlite:///" + _os.path.join(_dir, "privacyidea.sqlite")
SECRET_KEY = {secret_key!r}
PI_PEPPER = {pepper!r}
PI_ENCFILE = _os.path.join(_dir, "enckey")
PI_AUDIT_KEY_PRIVATE = _os.path.join(_dir, "audit-private.pem")
PI_AUDIT_KEY_PUBLIC = _os.path.join(_dir, "audit-public.pem")
PI_LOGFILE = _os.path.join(_dir, "privacyidea.log")
PI_LOGLEVEL = _logging.WARNING
# A fixed node id: otherwise privacyIDEA reads or writes /etc/privacyidea/uuid.txt.
PI_NODE_UUID = {node_uuid!r}
PI_UUID_FILE = _os.path.join(_dir, "uuid.txt")
PI_BASE_URL = "http://127.0.0.1/"

# The externally signed JWTs this instance trusts: a JSON list of
# {{public_key, algorithm, role, realm, resolver, username}}, written per test.
with open(_os.path.join(_dir, "trusted_jwt.json")) as _f:
    PI_TRUSTED_JWT = _json.load(_f)
'''


def write_instance_files(target: Path) -> None:
    """The files pi.cfg names, written before the app exists (create_app reads pi.cfg)."""
    import uuid

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    (target / "pi.cfg").write_text(PI_CFG.format(
        secret_key=secrets.token_hex(32),
        pepper=secrets.token_hex(16),
        node_uuid=str(uuid.uuid4()),
    ))
    (target / "trusted_jwt.json").write_text("[]\n")
    # The same key formats `pi-manage setup create_enckey` and `create_audit_keys` write.
    (target / "enckey").write_bytes(secrets.token_bytes(96))
    audit_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (target / "audit-private.pem").write_bytes(audit_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    (target / "audit-public.pem").write_bytes(audit_key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    (target / "users.passwd").write_text("".join(
        f"{name}:x:{1000 + i}:{1000 + i}:{name.capitalize()},,,:/home/{name}:/bin/sh\n"
        for i, name in enumerate(USERS)))


def populate_database(target: Path) -> None:
    """Tables, admin, resolver and realm, through privacyIDEA's own app factory and lib."""
    os.environ["PRIVACYIDEA_CONFIGFILE"] = str(target / "pi.cfg")
    from flask_migrate import stamp

    from privacyidea.app import create_app
    from privacyidea.lib.auth import create_db_admin
    from privacyidea.lib.realm import set_default_realm, set_realm
    from privacyidea.lib.resolver import save_resolver
    from privacyidea.models import db

    app = create_app(config_name="production", silent=True)
    with app.app_context():
        # `pi-manage setup create_tables`: create, then stamp the migration head.
        db.create_all()
        stamp()
        db.session.commit()
        # `pi-manage admin add admin`: the password is never used (tests sign their own JWTs).
        create_db_admin("admin", password=secrets.token_urlsafe(16))
        # A relative file name, resolved against the working directory: the server runs in its
        # copy of DIR, so each copy reads its own users.passwd (main() chdirs into DIR here).
        save_resolver({"resolver": "deflocal", "type": "passwdresolver",
                       "fileName": "users.passwd"})
        added, failed = set_realm("defrealm", [{"name": "deflocal"}])
        if failed:
            raise SystemExit(f"could not add resolvers to defrealm: {failed}")
        set_default_realm("defrealm")
        db.session.commit()
        db.engine.dispose()


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} DIR")
    target = Path(sys.argv[1]).resolve()
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise SystemExit(f"{target} is not empty")
    os.chdir(target)
    write_instance_files(target)
    populate_database(target)


if __name__ == "__main__":
    main()
