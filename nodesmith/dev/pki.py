"""Certificates and keys for the local control plane, made with `cryptography`.

Fed by `nodesmith.dev.cluster`, which asks for one fresh PKI per `dev up` (ports change every time, so
nothing is worth keeping). Consumed by the component flags (`--client-ca-file`, `--tls-cert-file`,
`--service-account-*`) and by the kubeconfigs every client gets.

What is made, all under one directory:

* ``ca.crt``/``ca.key`` -- a self-signed CA that signs everything below, so clients verify TLS.
* ``<name>.crt``/``<name>.key`` -- a serving certificate (SAN 127.0.0.1, ::1, localhost and the
  in-cluster service names) or a client certificate whose CN/O become the Kubernetes user/groups.
* ``sa.key``/``sa.pub`` -- the service-account token signing pair (RSA, the most widely accepted).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)

#: DNS names the API server answers to from inside the (imaginary) cluster network.
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclasses.dataclass(frozen=True)
class Pair:
    """Paths of a certificate and its private key."""

    cert: pathlib.Path
    key: pathlib.Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


@dataclasses.dataclass
class Authority:
    """A CA that lives in one directory and issues serving and client certificates into it."""

    directory: pathlib.Path
    _key: ec.EllipticCurvePrivateKey
    _cert: x509.Certificate

    @classmethod
    def create(cls, directory: pathlib.Path, common_name: str = "nodesmith-local-ca") -> Authority:
        directory.mkdir(parents=True, exist_ok=True)
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_key(directory / "ca.key", key)
        (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, cert)

    @classmethod
    def load(cls, directory: pathlib.Path) -> Authority:
        """The CA `create` wrote into `directory` (a real node signs its certificates with it)."""
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{directory / 'ca.key'} is not the EC key `create` writes")
        return cls(directory, key, x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes()))

    @property
    def cert_path(self) -> pathlib.Path:
        return self.directory / "ca.crt"

    @property
    def key_path(self) -> pathlib.Path:
        return self.directory / "ca.key"

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
    ) -> Pair:
        """Sign a certificate for `common_name` and write ``<name>.crt``/``<name>.key``."""
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organizations))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if dns_names or ip_addresses:
            sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
            sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = Pair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        _write_key(pair.key, key)
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return pair

    def serving(self, name: str, *, extra_dns: tuple[str, ...] = (), extra_ips: tuple[str, ...] = ()) -> Pair:
        """A loopback serving certificate (also usable as a client certificate by the same component)."""
        return self.issue(
            name,
            common_name=name,
            dns_names=("localhost", *extra_dns),
            ip_addresses=("127.0.0.1", "::1", *extra_ips),
            server=True,
        )

    def client(self, name: str, *, user: str, groups: tuple[str, ...] = ()) -> Pair:
        """A client certificate that authenticates as `user` in `groups`."""
        return self.issue(name, common_name=user, organizations=groups, client=True)


def service_account_keys(directory: pathlib.Path) -> Pair:
    """The token signing key (``sa.key``) and its public half (``sa.pub``)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pair = Pair(directory / "sa.pub", directory / "sa.key")
    _write_key(pair.key, key)
    pair.cert.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pair
