"""Writes bench/crypto/fixtures.json: one public key per algorithm, a JWS signing input of a typical
size, and its signature (raw bytes as hex). Public data only."""
import json, os, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

msg = (b"eyJhbGciOiJ4eCIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0." + b"eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSJ9" * 6)
out = {"msg": msg.hex()}
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
n = k.public_key().public_numbers()
out["rs256"] = {"n": n.n.to_bytes(256, "big").hex(), "e": n.e, "sig": k.sign(msg, padding.PKCS1v15(), hashes.SHA256()).hex()}
k = ec.generate_private_key(ec.SECP256R1())
p = k.public_key().public_numbers()
r, s = decode_dss_signature(k.sign(msg, ec.ECDSA(hashes.SHA256())))
out["es256"] = {"x": p.x.to_bytes(32, "big").hex(), "y": p.y.to_bytes(32, "big").hex(),
                "sig": (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()}
k = ed25519.Ed25519PrivateKey.generate()
from cryptography.hazmat.primitives import serialization as ser
out["eddsa"] = {"x": k.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex(), "sig": k.sign(msg).hex()}
json.dump(out, open(os.path.join(os.path.dirname(__file__), "fixtures.json"), "w"), indent=1)
