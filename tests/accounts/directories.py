"""The real servers of the sign-in tests, started on loopback for the test and stopped after it.

- ``IdentityProvider``: an OIDC provider (django-oauth-toolkit in a Django process of its own,
  ``tests/identity_provider/``) with a client for Enclave and people in groups; the test changes their groups and
  disables them in the provider's own database, as its admins would.
- ``LdapDirectory``: Debian's ``slapd`` with a small directory (people, groups) loaded by ``slapadd``; the test
  changes it over LDAP as the directory's admin.
"""

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import ldap
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.processes import free_port, wait_until
from tests.workers import ROOT

CLIENT_ID = "enclave-tests"
CLIENT_SECRET = "enclave-tests-client-secret"


class LoopbackServer:
    """A server process of the test's, with its log in the test's folder."""

    process: "subprocess.Popen[bytes]"
    log: Path
    name: str

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class IdentityProvider(LoopbackServer):
    name = "the OIDC provider"

    def __init__(self, folder: Path, *, redirect_uris: list[str], users: list[dict[str, Any]]) -> None:
        self.folder = folder
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/o"
        self.database = folder / "idp.sqlite3"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file = folder / "idp-rsa.pem"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        setup = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": redirect_uris,
            "users": users,
        }
        self.log = folder / "idp.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.identity_provider.server"],
            cwd=ROOT,
            env={
                "PATH": "/usr/bin:/bin",
                "IDP_DATABASE": str(self.database),
                "IDP_ISSUER": self.issuer,
                "IDP_RSA_KEY": str(key_file),
                "IDP_PORT": str(self.port),
                "IDP_SETUP": json.dumps(setup),
                "PYTHONPATH": str(ROOT),
            },
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, f"the OIDC provider (log: {self.log})", 60, ignoring=(requests.ConnectionError,))

    def _ready(self) -> bool:
        self.check_running()
        return requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200

    def settings(self) -> dict[str, Any]:
        """Enclave's settings for this provider, as the environment variables would set them."""
        return {
            "OIDC_ISSUER": self.issuer,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_PROVIDER_NAME": "the test provider",
        }

    def _sql(self, statement: str, *args: Any) -> None:
        with sqlite3.connect(self.database) as db:
            db.execute(statement, args)

    def set_groups(self, username: str, groups: list[str]) -> None:
        with sqlite3.connect(self.database) as db:
            (user_id,) = db.execute("SELECT id FROM auth_user WHERE username = ?", (username,)).fetchone()
            db.execute("DELETE FROM auth_user_groups WHERE user_id = ?", (user_id,))
            for name in groups:
                db.execute("INSERT OR IGNORE INTO auth_group (name) VALUES (?)", (name,))
                (group_id,) = db.execute("SELECT id FROM auth_group WHERE name = ?", (name,)).fetchone()
                db.execute("INSERT INTO auth_user_groups (user_id, group_id) VALUES (?, ?)", (user_id, group_id))

    def set_active(self, username: str, active: bool) -> None:
        self._sql("UPDATE auth_user SET is_active = ? WHERE username = ?", int(active), username)


SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"
BASE = "dc=bank,dc=example"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PASSWORD = "directory-admin-password"

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
database mdb
maxsize 10485760
suffix "{base}"
rootdn "{admin}"
rootpw {password}
directory {folder}/data
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
"""


def person(uid: str, password: str, name: str) -> str:
    return textwrap.dedent(f"""\
        dn: uid={uid},ou=people,{BASE}
        objectClass: inetOrgPerson
        uid: {uid}
        cn: {name}
        sn: {name.split()[-1]}
        mail: {uid}@bank.example
        userPassword: {password}
        """)


def group(cn: str, members: list[str]) -> str:
    # groupOfNames needs a member: the admin stays in every group, so the last person can leave it.
    lines = [f"dn: cn={cn},ou=groups,{BASE}", "objectClass: groupOfNames", f"cn: {cn}", f"member: {ADMIN_DN}"]
    lines += [f"member: uid={uid},ou=people,{BASE}" for uid in members]
    return "\n".join(lines) + "\n"


class LdapDirectory(LoopbackServer):
    """slapd on a free port with ``people`` (uid, password, name) and ``groups`` (cn → member uids)."""

    name = "slapd"

    def __init__(self, folder: Path, *, people: list[tuple[str, str, str]], groups: dict[str, list[str]]) -> None:
        slapd = shutil.which("slapd", path=SBIN) or "/usr/sbin/slapd"
        slapadd = shutil.which("slapadd", path=SBIN) or "/usr/sbin/slapadd"
        self.folder = folder
        (folder / "data").mkdir()
        conf = folder / "slapd.conf"
        conf.write_text(SLAPD_CONF.format(folder=folder, base=BASE, admin=ADMIN_DN, password=ADMIN_PASSWORD))
        entries = [
            f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Bank\ndc: bank\n",
            f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n",
            f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n",
            *(person(*p) for p in people),
            *(group(cn, members) for cn, members in groups.items()),
        ]
        ldif = folder / "directory.ldif"
        ldif.write_text("\n".join(entries))
        subprocess.run([slapadd, "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
        self.port = free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.log = folder / "slapd.log"
        # -d 0: in the foreground, so the test owns the process; no privileges dropped (the test's own user).
        self.process = subprocess.Popen(
            [slapd, "-f", str(conf), "-h", self.uri + "/", "-d", "0"],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, f"slapd (log: {self.log})", 30, ignoring=(ldap.SERVER_DOWN,))

    def _ready(self) -> bool:
        self.check_running()
        self.admin().unbind_s()
        return True

    def admin(self) -> Any:
        connection = ldap.initialize(self.uri)
        connection.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
        return connection

    def settings(self, *, require_group: str = "") -> dict[str, Any]:
        from enclave.settings.directory import ldap_settings

        return ldap_settings(
            {
                "uri": self.uri,
                "bind_dn": ADMIN_DN,
                "bind_password": ADMIN_PASSWORD,
                "start_tls": False,
                "user_base": f"ou=people,{BASE}",
                "user_filter": "(uid=%(user)s)",
                "group_base": f"ou=groups,{BASE}",
                "group_type": "groupOfNames",
                "require_group": f"cn={require_group},ou=groups,{BASE}" if require_group else "",
                "email_attr": "mail",
                "name_attr": "cn",
                "timeout": 5,
            }
        )

    def remove_from_group(self, uid: str, cn: str) -> None:
        connection = self.admin()
        connection.modify_s(
            f"cn={cn},ou=groups,{BASE}", [(ldap.MOD_DELETE, "member", [f"uid={uid},ou=people,{BASE}".encode()])]
        )
        connection.unbind_s()

    def add_to_group(self, uid: str, cn: str) -> None:
        connection = self.admin()
        connection.modify_s(
            f"cn={cn},ou=groups,{BASE}", [(ldap.MOD_ADD, "member", [f"uid={uid},ou=people,{BASE}".encode()])]
        )
        connection.unbind_s()
