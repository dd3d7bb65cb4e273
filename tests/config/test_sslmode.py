"""SSL against a real PostgreSQL with ssl=on: a CA of our own and a certificate for 'localhost' only."""

import asyncio
import datetime as dt
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from atsboost.config.settings import load_settings
from atsboost.errors import DatabaseUnavailableError
from atsboost.runtime.aio.database import AsyncDatabase
from atsboost.runtime.engine import create_engine, server_info
from tests.conftest import own_cluster, server_binaries


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_certificate(ca_key, ca_cert, host):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def ssl_server(tmp_path_factory):
    """A PostgreSQL on 127.0.0.1 with ssl=on, its CA file, and a CA file of a stranger."""
    ca_key, ca_cert = make_ca("atsboost test CA")
    key, cert = make_server_certificate(ca_key, ca_cert, "localhost")
    directory = tmp_path_factory.mktemp("ssl")
    (directory / "ca.pem").write_bytes(pem(ca_cert))
    (directory / "other-ca.pem").write_bytes(pem(make_ca("someone else's CA")[1]))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    files = {"server.key": key, "server.crt": cert}
    with own_cluster(ssl_binaries(), port=port, files=files) as server:
        admin = psycopg.connect(server.url.set(drivername="postgresql").render_as_string(), autocommit=True)
        row = admin.execute("SHOW data_directory").fetchone()
        assert row is not None
        cluster = Path(row[0]).parent
        admin.execute(f"ALTER SYSTEM SET ssl_cert_file = '{cluster / 'server.crt'}'")
        admin.execute(f"ALTER SYSTEM SET ssl_key_file = '{cluster / 'server.key'}'")
        set_ssl(admin, on=True)
        yield {
            "port": port,
            "ca": directory / "ca.pem",
            "other_ca": directory / "other-ca.pem",
            "admin": admin,
        }
        admin.close()


def ssl_binaries():
    """The first PostgreSQL build here that supports SSL (pgserver's does not)."""
    candidates = [os.environ.get("ATSBOOST_TEST_PG_BINDIR")]
    if shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        candidates.append(bindir)
    candidates.append(str(server_binaries()))
    for candidate in filter(None, candidates):
        configure = subprocess.run([f"{candidate}/pg_config", "--configure"], capture_output=True, text=True)
        if "openssl" in configure.stdout:
            return Path(candidate)
    pytest.skip(
        "no PostgreSQL build with SSL is installed (pgserver's has none): install a PostgreSQL server "
        "package (Debian: postgresql) or point ATSBOOST_TEST_PG_BINDIR at one; CI has one"
    )


def set_ssl(admin, *, on):
    admin.execute(f"ALTER SYSTEM SET ssl = {'on' if on else 'off'}")
    admin.execute("SELECT pg_reload_conf()")
    time.sleep(0.3)  # the postmaster applies a reload asynchronously


def connect(environ):
    engine = create_engine(load_settings(environ))
    try:
        return server_info(engine)
    finally:
        engine.dispose()


def env(ssl_server, host, **extra):
    return {"DATABASE_URL": f"postgresql://postgres@{host}:{ssl_server['port']}/postgres", **extra}


def test_production_default_connects_encrypted(ssl_server):
    info = connect(env(ssl_server, "127.0.0.1", ATSBOOST_ENV="production"))
    assert info.ssl is True  # read from pg_stat_ssl on the server side


def test_verify_full_with_the_right_ca_succeeds(ssl_server):
    environ = env(
        ssl_server, "localhost", ATSBOOST_ENV="production", DATABASE_SSL_ROOT_CERT=str(ssl_server["ca"])
    )
    assert load_settings(environ).ssl.mode == "verify-full"
    assert connect(environ).ssl is True


def test_an_unknown_ca_fails_with_the_setting_to_change(ssl_server):
    environ = env(
        ssl_server, "localhost", ATSBOOST_ENV="production", DATABASE_SSL_ROOT_CERT=str(ssl_server["other_ca"])
    )
    with pytest.raises(DatabaseUnavailableError) as info:
        connect(environ)
    assert "certificate verify failed" in str(info.value)
    assert "not signed by the CA in DATABASE_SSL_ROOT_CERT" in str(info.value)


def test_a_ca_file_means_verification_in_every_environment(ssl_server):
    environ = env(
        ssl_server, "localhost", ATSBOOST_ENV="testing", DATABASE_SSL_ROOT_CERT=str(ssl_server["other_ca"])
    )
    assert load_settings(environ).ssl.mode == "verify-full"
    with pytest.raises(DatabaseUnavailableError, match="not signed by the CA in DATABASE_SSL_ROOT_CERT"):
        connect(environ)


def test_a_host_name_mismatch_fails_with_the_setting_to_change(ssl_server):
    environ = env(
        ssl_server, "127.0.0.1", ATSBOOST_ENV="production", DATABASE_SSL_ROOT_CERT=str(ssl_server["ca"])
    )
    with pytest.raises(DatabaseUnavailableError) as info:
        connect(environ)
    message = str(info.value)
    assert "127.0.0.1" in message
    assert "not for the host in DATABASE_URL: connect with the host name the certificate names" in message


def test_disable_ssl_connects_in_plain_text_and_warns_in_production(ssl_server, caplog):
    with caplog.at_level(logging.WARNING, logger="atsboost.config.settings"):
        info = connect(env(ssl_server, "127.0.0.1", ATSBOOST_ENV="production", DATABASE_DISABLE_SSL="true"))
    assert info.ssl is False
    assert "NOT encrypted" in caplog.text


def test_a_server_without_ssl_fails_with_the_setting_to_change(ssl_server):
    set_ssl(ssl_server["admin"], on=False)
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            connect(env(ssl_server, "127.0.0.1", ATSBOOST_ENV="production"))
    finally:
        set_ssl(ssl_server["admin"], on=True)
    message = str(info.value)
    assert "server does not support SSL" in message
    assert "enable ssl on the server, or, on a private network only, set DATABASE_DISABLE_SSL=true" in message


def connect_async(environ):
    """Start an AsyncDatabase (atsboost.aio's) on these settings; return whether it connects encrypted."""
    settings = load_settings({**environ, "DATABASE_MIGRATE_ON_STARTUP": "false"})

    async def main():
        database = AsyncDatabase(settings)
        try:
            engine = await database.startup()
            async with engine.connect() as conn:
                encrypted = text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                return (await conn.execute(encrypted)).scalar_one()
        finally:
            await database.dispose()

    return asyncio.run(main())


def test_asyncio_verifies_the_server_with_the_same_settings(ssl_server):
    environ = env(
        ssl_server, "localhost", ATSBOOST_ENV="production", DATABASE_SSL_ROOT_CERT=str(ssl_server["ca"])
    )
    assert connect_async(environ) is True


def test_asyncio_refuses_an_unknown_ca_with_the_setting_to_change(ssl_server):
    environ = env(
        ssl_server, "localhost", ATSBOOST_ENV="production", DATABASE_SSL_ROOT_CERT=str(ssl_server["other_ca"])
    )
    with pytest.raises(DatabaseUnavailableError, match="not signed by the CA in DATABASE_SSL_ROOT_CERT"):
        connect_async(environ)
