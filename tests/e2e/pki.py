"""A test certificate authority: a CA, a server certificate for 127.0.0.1 / localhost, and client
certificates with the RFC 8705 `x5t#S256` of each (ECDSA P-256, written as PEM into a directory)."""
import datetime
import hashlib
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import jwt_tool


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer_name, issuer_key, key, ca=False, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


class Pki:
    def __init__(self, d):
        self.d = d
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("test-ca", _name("test-ca"), self.ca_key, self.ca_key, ca=True)
        self.write("ca.pem", self.ca)
        skey = ec.generate_private_key(ec.SECP256R1())
        self.write("server.pem", _cert("localhost", self.ca.subject, self.ca_key, skey,
                                       san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
        self.write_key("server.key", skey)

    def write(self, name, cert):
        (self.d / name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(self.d / name)

    def write_key(self, name, key):
        (self.d / name).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
        return str(self.d / name)

    def client(self, name):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(name, self.ca.subject, self.ca_key, key)
        x5t = jwt_tool.b64u(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())
        return self.write(f"{name}.pem", cert), self.write_key(f"{name}.key", key), x5t
