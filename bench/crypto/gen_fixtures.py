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
# Tokens for the flow benchmark: one per algorithm, valid until 2100, typical claims.
import base64
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def token(alg, kid, sign):
    h = b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    c = b64(json.dumps({"iss": "https://idp.bench", "aud": "https://api.bench", "sub": "user-1234",
                        "iat": 1700000000, "exp": 4102444800, "scope": "orders:read orders:write profile",
                        "email": "user@example.com", "name": "A Bench User"}).encode())
    si = f"{h}.{c}".encode()
    return f"{h}.{c}.{b64(sign(si))}"
rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ek = ec.generate_private_key(ec.SECP256R1())
dk = ed25519.Ed25519PrivateKey.generate()
def es_sign(m):
    r, s = decode_dss_signature(ek.sign(m, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
rn, ep = rk.public_key().public_numbers(), ek.public_key().public_numbers()
ib = lambda i, n: b64(i.to_bytes(n, "big"))
out["jwks"] = {"keys": [
    {"kty": "RSA", "kid": "rs", "n": ib(rn.n, 256), "e": ib(rn.e, 3)},
    {"kty": "EC", "crv": "P-256", "kid": "es", "x": ib(ep.x, 32), "y": ib(ep.y, 32)},
    {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(dk.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw))}]}
out["tokens"] = {"RS256": token("RS256", "rs", lambda m: rk.sign(m, padding.PKCS1v15(), hashes.SHA256())),
                 "ES256": token("ES256", "es", es_sign), "EdDSA": token("EdDSA", "ed", dk.sign)}
json.dump(out, open(os.path.join(os.path.dirname(__file__), "fixtures.json"), "w"), indent=1)
