"""The development PKI: chain checks with the openssl CLI, HSA-id extraction, files, CRLs, and real mTLS."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapter.gateway.pki import (
    CLIENT_SPECS,
    DevPki,
    hsa_id_from_certificate,
    init_pki,
    issue_crl,
    load_pki,
)

EXPECTED_HSA_IDS = {
    "platform": "SE165565594230-1000",
    "consumer2": "SE2321000016-9KHR",
    "unknown": "SE5560000000-UNKN",
    "revoked": "SE5560000000-REVK",
    "expired": "SE5560000000-EXPD",
    "foreign": "SE5560000000-FRGN",
    "noclientauth": "SE5560000000-NOCA",
    "nohsaid": None,
    "adapter": "SE2120001231-SYS1",
    "journal": "SE2120001231-JS01",
    "journal2": "SE2120001231-JS02",
}
GOOD_CLIENTS = ["platform", "consumer2", "unknown", "nohsaid", "adapter"]
OPENSSL = shutil.which("openssl")
# CI installs openssl (.ci/run); there a missing CLI fails the tests instead of skipping them.
needs_openssl = pytest.mark.skipif(OPENSSL is None and os.environ.get("CI") != "true",
                                   reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return init_pki(tmp_path_factory.mktemp("pki") / "dev")


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def openssl_verify(cert: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [OPENSSL, "verify", "-x509_strict", *map(str, args), str(cert)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def verify_with_crls(pki: DevPki, cert: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return openssl_verify(cert, "-CAfile", pki.ca_bundle, "-CRLfile", pki.crls, "-crl_check_all", *extra)


# --- the chain, checked by the openssl CLI ---------------------------------------------------------------


def test_expected_client_set(pki: DevPki) -> None:
    assert set(pki.clients) == set(EXPECTED_HSA_IDS) == set(CLIENT_SPECS)
    assert {name: c.hsa_id for name, c in pki.clients.items()} == EXPECTED_HSA_IDS
    assert pki.client("platform") is pki.clients["platform"]
    with pytest.raises(KeyError, match="nobody"):
        pki.client("nobody")


@needs_openssl
@pytest.mark.parametrize("name", GOOD_CLIENTS)
def test_good_clients_verify(pki: DevPki, name: str) -> None:
    cert = pki.client(name).cert
    for result in (verify_with_crls(pki, cert, "-purpose", "sslclient"),
                   openssl_verify(cert, "-CAfile", pki.root_ca, "-untrusted", pki.function_ca,
                                  "-CRLfile", pki.crls, "-crl_check_all", "-purpose", "sslclient")):
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith(": OK")


@needs_openssl
def test_server_cert_verifies(pki: DevPki) -> None:
    result = verify_with_crls(pki, pki.server_cert, "-purpose", "sslserver", "-verify_hostname", "localhost")
    assert result.returncode == 0, result.stdout + result.stderr
    result = openssl_verify(pki.server_cert, "-CAfile", pki.root_ca, "-untrusted", pki.server_cert,
                            "-purpose", "sslserver", "-verify_ip", "127.0.0.1")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_openssl
@pytest.mark.parametrize(("name", "error"), [
    ("revoked", "certificate revoked"),
    ("expired", "certificate has expired"),
    ("foreign", "unable to get local issuer certificate"),
])
def test_bad_clients_fail(pki: DevPki, name: str, error: str) -> None:
    result = verify_with_crls(pki, pki.client(name).cert)
    assert result.returncode != 0
    assert error in result.stdout + result.stderr


@needs_openssl
def test_foreign_client_verifies_only_against_its_own_root(pki: DevPki) -> None:
    assert openssl_verify(pki.client("foreign").cert, "-CAfile", pki.foreign_ca).returncode == 0
    assert pki.foreign_ca.read_bytes() not in pki.ca_bundle.read_bytes()


@needs_openssl
def test_noclientauth_fails_only_for_the_client_purpose(pki: DevPki) -> None:
    cert = pki.client("noclientauth").cert
    assert verify_with_crls(pki, cert).returncode == 0  # the chain itself is fine
    result = verify_with_crls(pki, cert, "-purpose", "sslclient")
    assert result.returncode != 0
    assert "certificate purpose" in result.stdout + result.stderr


@needs_openssl
def test_revocation_is_seen_only_with_crl_checking(pki: DevPki) -> None:
    assert openssl_verify(pki.client("revoked").cert, "-CAfile", pki.ca_bundle).returncode == 0


# --- certificate contents ----------------------------------------------------------------------------------


def test_ca_certificates(pki: DevPki) -> None:
    root, function = load(pki.root_ca), load(pki.function_ca)
    assert root.subject.rfc4514_string() == "CN=NPO Adapter DEV Root CA v1,O=NPO Adapter DEV,C=SE"
    assert function.subject.rfc4514_string() == "CN=NPO Adapter DEV Function CA v1,O=NPO Adapter DEV,C=SE"
    assert function.issuer == root.subject
    for cert, pathlen in ((root, 1), (function, 0)):
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == pathlen
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    aki = function.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    pems = pki.ca_bundle.read_bytes()
    assert pems == pki.function_ca.read_bytes() + pki.root_ca.read_bytes()


def test_server_certificate(pki: DevPki) -> None:
    chain = x509.load_pem_x509_certificates(pki.server_cert.read_bytes())
    assert len(chain) == 2 and chain[1] == load(pki.function_ca)
    server = chain[0]
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = server.not_valid_after_utc - server.not_valid_before_utc
    assert timedelta(days=700) < lifetime < timedelta(days=740)


@pytest.mark.parametrize("name", sorted(EXPECTED_HSA_IDS))
def test_client_certificate_contents(pki: DevPki, name: str) -> None:
    cert = load(pki.client(name).cert)
    assert hsa_id_from_certificate(cert) == EXPECTED_HSA_IDS[name]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    if name == "noclientauth":
        assert eku == [ExtendedKeyUsageOID.SERVER_AUTH]
    else:
        assert eku == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "SE"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer = load(pki.foreign_ca if name == "foreign" else pki.function_ca)
    assert cert.issuer == issuer.subject
    cert.verify_directly_issued_by(issuer)
    now = datetime.now(UTC)
    assert (cert.not_valid_after_utc < now) is (name == "expired")


def test_subject_reads_like_siths(pki: DevPki) -> None:
    subject = load(pki.client("platform").cert).subject
    assert subject.rfc4514_string({NameOID.SERIAL_NUMBER: "SERIALNUMBER"}) == (
        "SERIALNUMBER=SE165565594230-1000,CN=ntjp.dev.test,O=NPO Adapter DEV,C=SE")


# --- hsa_id_from_certificate on hand-made subjects ---------------------------------------------------------


def cert_with_subject(*attributes: x509.NameAttribute) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test"), *attributes])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))


def serial(value: str, asn1_type: _ASN1Type = _ASN1Type.UTF8String) -> x509.NameAttribute:
    # '#' is not a PrintableString character, so hex forms need another string type to be built at all
    return x509.NameAttribute(NameOID.SERIAL_NUMBER, value, _type=asn1_type)


def der_hex(tag: int, content: bytes) -> str:
    length = bytes([len(content)]) if len(content) < 128 else bytes([0x81, len(content)])
    return "#" + (bytes([tag]) + length + content).hex()


HSA = "SE165565594230-1000"


@pytest.mark.parametrize(("value", "expected"), [
    (HSA, HSA),
    # only the canonical form: every other spelling of the same HSA-id is no HSA-id at all
    (f"  {HSA} ", None),
    (HSA.lower(), None),
    ("\u017f" + HSA[1:], None),  # LATIN SMALL LETTER LONG S, which .upper() folds to S
    ("\uff33" + HSA[1:], None),  # FULLWIDTH S
    (der_hex(0x13, HSA.encode()), None),  # hex-encoded PrintableString
    (der_hex(0x0C, HSA.encode()), None),  # hex-encoded UTF8String
    (der_hex(0x1E, HSA.encode("utf-16-be")), None),  # hex-encoded BMPString
    ("#zz", None),
    (der_hex(0x0C, b"SE1\x00-1"), None),  # control character
    ("SE2321000016-9khr", None),
    ("SE12-1", None),
    ("   ", None),
    ("SE123\n-1", None),
])
def test_hsa_id_values(value: str, expected: str | None) -> None:
    assert hsa_id_from_certificate(cert_with_subject(serial(value))) == expected


def test_hsa_id_from_printable_string() -> None:
    assert hsa_id_from_certificate(cert_with_subject(serial(HSA, _ASN1Type.PrintableString))) == HSA


def test_hsa_id_absent_or_ambiguous() -> None:
    assert hsa_id_from_certificate(cert_with_subject()) is None
    assert hsa_id_from_certificate(cert_with_subject(serial(HSA), serial(HSA))) == HSA
    assert hsa_id_from_certificate(cert_with_subject(serial(HSA), serial(der_hex(0x13, HSA.encode())))) is None
    assert hsa_id_from_certificate(cert_with_subject(serial(HSA), serial("SE2321000016-9KHR"))) is None


def test_hsa_id_ignores_the_certificate_serial_and_other_attributes() -> None:
    cert = cert_with_subject(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, HSA),
                             x509.NameAttribute(NameOID.USER_ID, HSA))
    assert hsa_id_from_certificate(cert) is None


# --- files, idempotence, manifest ---------------------------------------------------------------------------


def test_private_keys_are_owner_only(pki: DevPki) -> None:
    keys = sorted(pki.dir.glob("*.key"))
    assert {pki.server_key, pki.root_ca_key, pki.function_ca_key} | {c.key for c in pki.clients.values()} == set(keys)
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert b"PRIVATE KEY" in key.read_bytes()
    for pem in pki.dir.glob("*.pem"):
        assert b"PRIVATE KEY" not in pem.read_bytes(), pem


def test_gitignore_keeps_everything_out_of_git(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    pki = init_pki(tmp_path / "certs" / "dev")
    assert (pki.dir / ".gitignore").read_text().splitlines()[-1] == "*"
    status = subprocess.run(["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True)
    assert status.stdout == ""


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_idempotent_unless_forced(tmp_path: Path) -> None:
    first = init_pki(tmp_path)
    before = snapshot(tmp_path)
    again = init_pki(tmp_path)
    assert again == first
    assert snapshot(tmp_path) == before
    forced = init_pki(tmp_path, force=True)
    assert forced == first  # same paths ...
    after = snapshot(tmp_path)
    assert after.keys() == before.keys()
    for name in ("root-ca.pem", "root-ca.key", "server.pem", "client-platform.pem", "crls.pem"):
        assert after[name] != before[name], name  # ... new material


def test_incomplete_pki_is_recreated(tmp_path: Path) -> None:
    pki = init_pki(tmp_path)
    old_root = pki.root_ca.read_bytes()
    pki.client("revoked").key.unlink()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_pki(tmp_path)
    again = init_pki(tmp_path)
    assert again.client("revoked").key.is_file()
    assert again.root_ca.read_bytes() != old_root


def test_load_round_trip(pki: DevPki) -> None:
    loaded = load_pki(pki.dir)
    assert loaded == pki
    manifest = (pki.dir / "pki.json").read_text()
    assert str(pki.dir) not in manifest  # relative paths only
    assert "SE5560000000-REVK" in manifest


def test_load_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pki.json"):
        load_pki(tmp_path / "nothing")


def test_now_controls_validity(tmp_path: Path) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    pki = init_pki(tmp_path, now=now)
    platform = load(pki.client("platform").cert)
    assert platform.not_valid_before_utc <= now < platform.not_valid_after_utc
    assert load(pki.client("expired").cert).not_valid_after_utc < now
    crl = x509.load_pem_x509_crl(pki.crl_function.read_bytes())
    assert crl.last_update_utc == now and crl.next_update_utc == now + timedelta(days=30)


# --- CRLs ------------------------------------------------------------------------------------------------


def crl_of(path: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crls(pki: DevPki) -> None:
    root_crl, function_crl = crl_of(pki.crl_root), crl_of(pki.crl_function)
    revoked_serial = load(pki.client("revoked").cert).serial_number
    assert len(root_crl) == 0
    assert [entry.serial_number for entry in function_crl] == [revoked_serial]
    for crl, ca in ((root_crl, load(pki.root_ca)), (function_crl, load(pki.function_ca))):
        assert crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())
        assert crl_number(crl) == 1
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        assert crl.next_update_utc - crl.last_update_utc == timedelta(days=30)
    assert pki.crls.read_bytes() == pki.crl_root.read_bytes() + pki.crl_function.read_bytes()


@needs_openssl
def test_issue_stale_crl(tmp_path: Path) -> None:
    pki = init_pki(tmp_path)
    revoked_serial = load(pki.client("revoked").cert).serial_number
    root_before = pki.crl_root.read_bytes()
    past = datetime.now(UTC) - timedelta(hours=1)
    issue_crl(pki, next_update=past, which="function")
    assert pki.crl_root.read_bytes() == root_before
    crl = crl_of(pki.crl_function)
    assert crl.next_update_utc < datetime.now(UTC)
    assert crl.last_update_utc < crl.next_update_utc
    assert crl.get_revoked_certificate_by_serial_number(revoked_serial) is not None
    assert crl_number(crl) == 2
    assert crl.is_signature_valid(load(pki.function_ca).public_key())
    assert pki.crls.read_bytes() == root_before + pki.crl_function.read_bytes()
    result = verify_with_crls(pki, pki.client("platform").cert)
    assert result.returncode != 0 and "CRL has expired" in result.stdout + result.stderr

    issue_crl(pki, next_update=datetime.now(UTC) + timedelta(days=7))
    assert [crl_number(crl_of(p)) for p in (pki.crl_root, pki.crl_function)] == [2, 3]
    assert crl_of(pki.crl_function).get_revoked_certificate_by_serial_number(revoked_serial) is not None
    assert verify_with_crls(pki, pki.client("platform").cert).returncode == 0
    with pytest.raises(ValueError, match="which"):
        issue_crl(pki, next_update=past, which="server")


# --- a real mutual-TLS handshake on loopback ---------------------------------------------------------------


def server_context(pki: DevPki) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=pki.ca_bundle)
    ctx.load_verify_locations(cafile=pki.crls)
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN | ssl.VERIFY_X509_STRICT
    return ctx


def handshake(pki: DevPki, client_name: str | None, version: ssl.TLSVersion,
              server_hostname: str = "localhost") -> tuple[dict, dict]:
    """One connection: the client (in a thread) writes b"ping" and reads; the server answers b"pong"."""
    server_ctx = server_context(pki)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.minimum_version = client_ctx.maximum_version = version
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    client_ctx.load_verify_locations(cafile=pki.ca_bundle)
    if client_name is not None:
        client_ctx.load_cert_chain(pki.client(client_name).cert, pki.client(client_name).key)
    client: dict = {}
    server: dict = {}

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        port = listener.getsockname()[1]

        def run_client() -> None:
            try:
                with (socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                      client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls):
                    client["handshake"] = True
                    tls.sendall(b"ping")
                    client["reply"] = tls.recv(16)
            except (ssl.SSLError, OSError) as exc:
                client["error"] = exc

        thread = threading.Thread(target=run_client, daemon=True)
        thread.start()
        conn, _ = listener.accept()
        conn.settimeout(10)
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                server["peer"] = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
                if tls.recv(16) == b"ping":
                    tls.sendall(b"pong")
        except (ssl.SSLError, OSError) as exc:
            server["error"] = exc
        finally:
            conn.close()
        thread.join(10)
        assert not thread.is_alive()
    return client, server


TLS_VERSIONS = [pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"), pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3")]


@pytest.mark.parametrize("version", TLS_VERSIONS)
@pytest.mark.parametrize("name", GOOD_CLIENTS)
def test_tls_accepts(pki: DevPki, name: str, version: ssl.TLSVersion) -> None:
    client, server = handshake(pki, name, version)
    assert "error" not in server and "error" not in client, (client, server)
    assert client["reply"] == b"pong"
    assert hsa_id_from_certificate(server["peer"]) == EXPECTED_HSA_IDS[name]


@pytest.mark.parametrize("version", TLS_VERSIONS)
@pytest.mark.parametrize(("name", "reason"), [
    ("revoked", "certificate revoked"),
    ("expired", "certificate has expired"),
    ("foreign", "unable to get local issuer certificate"),
    ("noclientauth", "certificate purpose"),
    (None, "peer did not return a certificate"),
])
def test_tls_refuses(pki: DevPki, name: str | None, reason: str, version: ssl.TLSVersion) -> None:
    client, server = handshake(pki, name, version)
    assert isinstance(server.get("error"), ssl.SSLError) and reason in str(server["error"]), server
    assert "peer" not in server
    assert client.get("reply", b"") != b"pong"
    # the client learns of the refusal at the latest on its first read (an alert, EOF or a reset)
    assert isinstance(client.get("error"), OSError) or client.get("reply") == b"", client
    # TLS 1.2: the client's handshake itself fails; TLS 1.3: the client finishes its side of the handshake
    # before the server has checked the certificate, so wrap_socket succeeds and only the read fails
    assert ("handshake" in client) is (version is ssl.TLSVersion.TLSv1_3), client


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_server_name_checked_by_client(pki: DevPki, host: str) -> None:
    client, server = handshake(pki, "platform", ssl.TLSVersion.TLSv1_3, server_hostname=host)
    assert client.get("reply") == b"pong", (client, server)


def test_tls_stale_crl_refuses_everybody(tmp_path: Path) -> None:
    pki = init_pki(tmp_path)
    issue_crl(pki, next_update=datetime.now(UTC) - timedelta(minutes=1), which="root")
    _, server = handshake(pki, "platform", ssl.TLSVersion.TLSv1_3)
    assert "CRL has expired" in str(server.get("error")), server
