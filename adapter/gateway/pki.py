"""A development PKI imitating SITHS (root CA -> function CA -> function certificates), for DEV/TEST only.

The HSA-id of a system sits in the subject ``serialNumber`` (OID 2.5.4.5) of its function certificate,
as in SITHS; function certificates carry no SubjectAlternativeName. Everything is made with
``cryptography`` (EC P-256, SHA-256). Keys are written unencrypted with mode 0600 and the output
directory gets a ``.gitignore`` of ``*``: these certificates must never be trusted outside development.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MANIFEST = "pki.json"
ORGANISATION = "NPO Adapter DEV"
CRL_VALIDITY = timedelta(days=30)
LEAF_VALIDITY = timedelta(days=730)
CA_VALIDITY = timedelta(days=3650)
BACKDATE = timedelta(days=90)  # CAs start before the "expired" client so its dates make sense


class ClientSpec(NamedTuple):
    hsa_id: str | None  # subject serialNumber; None: no serialNumber at all
    cn: str
    foreign: bool = False  # issued by the separate, untrusted "Foreign Root CA"
    client_auth: bool = True  # EKU clientAuth, else serverAuth only
    expired: bool = False
    revoked: bool = False  # listed in the function CA's CRL


CLIENT_SPECS: dict[str, ClientSpec] = {
    "platform": ClientSpec("SE165565594230-1000", "ntjp.dev.test"),  # the national platform (NTjP)
    "consumer2": ClientSpec("SE2321000016-9KHR", "consumer2.dev.test"),  # a second authorised consumer
    "unknown": ClientSpec("SE5560000000-UNKN", "unknown.dev.test"),  # valid, authorised nowhere
    "revoked": ClientSpec("SE5560000000-REVK", "revoked.dev.test", revoked=True),
    "expired": ClientSpec("SE5560000000-EXPD", "expired.dev.test", expired=True),
    "foreign": ClientSpec("SE5560000000-FRGN", "foreign.dev.test", foreign=True),
    "noclientauth": ClientSpec("SE5560000000-NOCA", "noclientauth.dev.test", client_auth=False),
    "nohsaid": ClientSpec(None, "nohsaid.dev.test"),  # valid, but no HSA-id (the platform answers VP002)
    # the adapter's own function certificate for outgoing calls (engagement-index updates), as the demo
    # source system
    "adapter": ClientSpec("SE2120001231-SYS1", "npo-adapter.dev.test"),
    # the demo municipality's journal systems, writing to the FHIR endpoint (config/authorisations.dev.toml)
    "journal": ClientSpec("SE2120001231-JS01", "journal.dev.test"),
    "journal2": ClientSpec("SE2120001231-JS02", "journal2.dev.test"),
}


@dataclass(frozen=True)
class ClientCert:
    name: str
    hsa_id: str | None
    cert: Path
    key: Path


@dataclass(frozen=True)
class DevPki:
    dir: Path
    root_ca: Path
    function_ca: Path
    ca_bundle: Path  # function CA + root CA: what a server trusts for clients
    server_cert: Path  # leaf + function CA
    server_key: Path
    crl_root: Path
    crl_function: Path
    crls: Path  # both CRLs concatenated
    clients: dict[str, ClientCert]
    root_ca_key: Path
    function_ca_key: Path
    foreign_ca: Path  # root of the "foreign" client; deliberately not in ca_bundle

    def client(self, name: str) -> ClientCert:
        try:
            return self.clients[name]
        except KeyError:
            raise KeyError(f"no client certificate {name!r} in {self.dir} (have {sorted(self.clients)})") from None


_FILES = {
    "root_ca": "root-ca.pem", "root_ca_key": "root-ca.key", "function_ca": "function-ca.pem",
    "function_ca_key": "function-ca.key", "ca_bundle": "ca-bundle.pem", "server_cert": "server.pem",
    "server_key": "server.key", "crl_root": "root-ca.crl.pem", "crl_function": "function-ca.crl.pem",
    "crls": "crls.pem", "foreign_ca": "foreign-ca.pem",
}


def _name(cn: str, *, org: str = ORGANISATION, serial_number: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
             x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if serial_number is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
    return x509.Name(attrs)


def _make_cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
               issuer_key: ec.EllipticCurvePrivateKey, not_before: datetime, not_after: datetime, *,
               pathlen: int | None = None, eku: list[x509.ObjectIdentifier] | None = None,
               san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    """One certificate; a CA when ``pathlen`` is given, self-signed when ``issuer`` is None."""
    is_ca = pathlen is not None
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=pathlen), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not is_ca, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=is_ca, crl_sign=is_ca, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _make_crl(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, revoked: list[x509.RevokedCertificate],
              number: int, last_update: datetime, next_update: datetime) -> x509.CertificateRevocationList:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(last_update)
               .next_update(next_update)
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca_key, hashes.SHA256())


def _revoked_entry(serial: int, when: datetime) -> x509.RevokedCertificate:
    return x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if private:
        os.chmod(path, 0o600)  # the file may have existed with a wider mode


def _pem(*items: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return b"".join(item.public_bytes(serialization.Encoding.PEM) for item in items)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def init_pki(directory: Path, *, force: bool = False, now: datetime | None = None) -> DevPki:
    """Create the development PKI in ``directory``; an existing complete one is returned unchanged unless ``force``."""
    directory = Path(directory)
    if not force:
        try:
            return load_pki(directory)
        except (FileNotFoundError, ValueError, KeyError):
            pass  # missing or incomplete: (re)create everything
    now = datetime.now(UTC) if now is None else now if now.tzinfo else now.replace(tzinfo=UTC)  # naive = UTC
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(directory / ".gitignore", b"# development PKI: never commit anything here\n*\n")
    (directory / MANIFEST).unlink(missing_ok=True)  # the manifest is written last and marks completeness
    path = {field: directory / file for field, file in _FILES.items()}
    ca_from, ca_to = now - BACKDATE, now + CA_VALIDITY

    root_key, function_key, foreign_key = _new_key(), _new_key(), _new_key()
    root = _make_cert(_name("NPO Adapter DEV Root CA v1"), root_key, None, root_key, ca_from, ca_to, pathlen=1)
    function = _make_cert(_name("NPO Adapter DEV Function CA v1"), function_key, root, root_key, ca_from, ca_to,
                          pathlen=0)
    foreign = _make_cert(_name("Foreign Root CA (DEV, untrusted)", org="Foreign DEV Org"), foreign_key, None,
                         foreign_key, ca_from, ca_to, pathlen=1)
    server_key = _new_key()
    server = _make_cert(_name("localhost"), server_key, function, function_key, now - timedelta(minutes=5),
                        now + LEAF_VALIDITY, eku=[ExtendedKeyUsageOID.SERVER_AUTH],
                        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                             x509.IPAddress(ipaddress.ip_address("::1"))])

    clients: dict[str, ClientCert] = {}
    revoked: list[x509.RevokedCertificate] = []
    for name, spec in CLIENT_SPECS.items():
        key = _new_key()
        ca, ca_key = (foreign, foreign_key) if spec.foreign else (function, function_key)
        start, end = (now - timedelta(days=60), now - timedelta(days=1)) if spec.expired else \
            (now - timedelta(minutes=5), now + LEAF_VALIDITY)
        eku = ExtendedKeyUsageOID.CLIENT_AUTH if spec.client_auth else ExtendedKeyUsageOID.SERVER_AUTH
        cert = _make_cert(_name(spec.cn, serial_number=spec.hsa_id), key, ca, ca_key, start, end, eku=[eku])
        client = ClientCert(name, spec.hsa_id, directory / f"client-{name}.pem", directory / f"client-{name}.key")
        _write(client.key, _key_pem(key), private=True)
        _write(client.cert, _pem(cert))
        clients[name] = client
        if spec.revoked:
            revoked.append(_revoked_entry(cert.serial_number, now))

    _write(path["root_ca_key"], _key_pem(root_key), private=True)
    _write(path["function_ca_key"], _key_pem(function_key), private=True)
    _write(path["server_key"], _key_pem(server_key), private=True)
    _write(path["root_ca"], _pem(root))
    _write(path["function_ca"], _pem(function))
    _write(path["foreign_ca"], _pem(foreign))
    _write(path["ca_bundle"], _pem(function, root))
    _write(path["server_cert"], _pem(server, function))
    crl_root = _make_crl(root, root_key, [], 1, now, now + CRL_VALIDITY)
    crl_function = _make_crl(function, function_key, revoked, 1, now, now + CRL_VALIDITY)
    _write(path["crl_root"], _pem(crl_root))
    _write(path["crl_function"], _pem(crl_function))
    _write(path["crls"], _pem(crl_root, crl_function))

    manifest = {
        "format": 1, "created": now.isoformat(), **_FILES,
        "clients": {c.name: {"hsa_id": c.hsa_id, "cert": c.cert.name, "key": c.key.name} for c in clients.values()},
    }
    _write(directory / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
    return DevPki(dir=directory, clients=clients, **path)


def load_pki(directory: Path) -> DevPki:
    """Load a PKI made by :func:`init_pki` from its manifest; FileNotFoundError if it or any file is missing."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no development PKI at {directory} (missing {MANIFEST}); run init_pki first")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != 1:
        raise ValueError(f"{manifest_path}: unsupported manifest format {manifest.get('format')!r}")

    def resolve(rel: str) -> Path:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ValueError(f"{manifest_path}: path {rel!r} leaves the PKI directory")
        path = directory / rel
        if not path.is_file():
            raise FileNotFoundError(f"development PKI at {directory} is incomplete: {rel} is missing")
        return path

    clients = {name: ClientCert(name, entry["hsa_id"], resolve(entry["cert"]), resolve(entry["key"]))
               for name, entry in manifest["clients"].items()}
    return DevPki(dir=directory, clients=clients, **{field: resolve(manifest[field]) for field in _FILES})


def issue_crl(pki: DevPki, *, next_update: datetime, which: str = "both") -> None:
    """Re-sign the CRL of the root CA, the function CA or both with a new CRLNumber, keeping revoked entries.

    ``next_update`` in the past makes a stale CRL (lastUpdate is then set one day before it)."""
    targets = {"root": [(pki.root_ca, pki.root_ca_key, pki.crl_root)],
               "function": [(pki.function_ca, pki.function_ca_key, pki.crl_function)]}
    targets["both"] = targets["root"] + targets["function"]
    if which not in targets:
        raise ValueError(f"which must be one of {sorted(targets)}, not {which!r}")
    now = datetime.now(UTC)
    last_update = now if next_update > now else next_update - timedelta(days=1)
    for cert_path, key_path, crl_path in targets[which]:
        ca = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{key_path}: not an EC private key")
        old = x509.load_pem_x509_crl(crl_path.read_bytes())
        number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
        kept = [_revoked_entry(entry.serial_number, entry.revocation_date_utc) for entry in old]
        _write(crl_path, _pem(_make_crl(ca, ca_key, kept, number, last_update, next_update)))
    _write(pki.crls, pki.crl_root.read_bytes() + pki.crl_function.read_bytes())


# SE + organisation number (10 digits, or 12 with the 16/19/20 prefix) + "-" + upper-case letters and digits
CANONICAL_HSA_ID = re.compile(r"SE[0-9]{10}(?:[0-9]{2})?-[0-9A-Z]{1,31}")


def is_canonical_hsa_id(value: str) -> bool:
    return CANONICAL_HSA_ID.fullmatch(value) is not None


def hsa_id_from_certificate(cert: x509.Certificate) -> str | None:
    """The HSA-id in the subject serialNumber (OID 2.5.4.5), exactly as written there; None when absent.

    Only the canonical ASCII form counts: lower case, look-alike letters (`ſ`, which `.upper()` folds to
    `S`), surrounding spaces or a hex-encoded (`#13...`) value would otherwise be several spellings of one
    identity, each a way around an exact comparison. Also None when several serialNumber attributes
    disagree (an ambiguous identity must not authenticate anybody)."""
    values = {attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)}
    if len(values) != 1:
        return None
    value = values.pop()
    return value if isinstance(value, str) and is_canonical_hsa_id(value) else None


def issue_client_certificate(pki: DevPki, name: str, serial_number: str, *, days: int = 30) -> ClientCert:
    """An extra client function certificate from the development function CA, with `serial_number` written
    as given (a UTF8String when it is not printable ASCII): for tests of odd subjects."""
    function = x509.load_pem_x509_certificate(pki.function_ca.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.function_ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.function_ca_key}: not an EC private key")
    printable = re.fullmatch(r"[A-Za-z0-9 '()+,./:=?-]*", serial_number) is not None
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.dev.test"),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number,
                                            None if printable else _ASN1Type.UTF8String)])
    key = _new_key()
    now = datetime.now(UTC)
    cert = _make_cert(subject, key, function, ca_key, now - timedelta(minutes=5), now + timedelta(days=days),
                      eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    client = ClientCert(name, serial_number, pki.dir / f"client-{name}.pem", pki.dir / f"client-{name}.key")
    _write(client.key, _key_pem(key), private=True)
    _write(client.cert, _pem(cert))
    return client


def revoke(pki: DevPki, name: str) -> None:
    """Add client certificate ``name`` to its CA's CRL (a new CRLNumber, other entries kept)."""
    revoke_certificate(pki, pki.client(name).cert)


def revoke_certificate(pki: DevPki, cert_path: Path) -> None:
    """Add the (first) certificate in ``cert_path``, issued by the function CA, to the function CA's CRL."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    function = x509.load_pem_x509_certificate(pki.function_ca.read_bytes())
    if cert.issuer != function.subject:
        raise ValueError(f"{cert_path} is not issued by the development function CA")
    ca_key = serialization.load_pem_private_key(pki.function_ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.function_ca_key}: not an EC private key")
    old = x509.load_pem_x509_crl(pki.crl_function.read_bytes())
    number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    now = datetime.now(UTC)
    kept = [_revoked_entry(e.serial_number, e.revocation_date_utc) for e in old
            if e.serial_number != cert.serial_number]
    crl = _make_crl(function, ca_key, [*kept, _revoked_entry(cert.serial_number, now)], number, now,
                    max(old.next_update_utc or now, now + timedelta(days=1)))
    _write(pki.crl_function, _pem(crl))
    _write(pki.crls, pki.crl_root.read_bytes() + pki.crl_function.read_bytes())
