"""Signing side of the tests: RS256 / ES256 / EdDSA keys and compact JWS, with `cryptography`."""
import base64
import json
import time
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


# Every token and signature the suite creates: no Envoy log may contain any of them.
SECRETS: set[str] = set()


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_b64(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Key:
    """A private signing key with its public JWK."""

    def __init__(self, alg: str, kid: str | None = None, private=None, bits: int = 2048):
        self.alg = alg
        self.kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
        if private is not None:
            self.private = private
        elif alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)

    @classmethod
    def ed25519_from_seed(cls, seed_b64u: str, kid: str) -> "Key":
        return cls("EdDSA", kid, ed25519.Ed25519PrivateKey.from_private_bytes(b64u_decode(seed_b64u)))

    def public_jwk(self) -> dict:
        pub = self.private.public_key()
        if self.alg == "RS256":
            n = pub.public_numbers()
            return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": _int_b64(n.n), "e": _int_b64(n.e)}
        if self.alg == "ES256":
            n = pub.public_numbers()
            return {"kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
                    "x": b64u(n.x.to_bytes(32, "big")), "y": b64u(n.y.to_bytes(32, "big"))}
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "kid": self.kid, "crv": "Ed25519", "alg": "EdDSA", "x": b64u(raw)}

    def private_jwk(self) -> dict:
        """The private JWK (EdDSA or ES256); its `d` is registered as a secret for the log scan."""
        jwk = {k: v for k, v in self.public_jwk().items() if k not in ("kid", "alg", "use")}
        if self.alg == "ES256":
            d = self.private.private_numbers().private_value.to_bytes(32, "big")
        elif self.alg == "EdDSA":
            d = self.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                           serialization.NoEncryption())
        else:
            raise ValueError("private JWKs for EdDSA and ES256 only")
        jwk["d"] = b64u(d)
        SECRETS.add(jwk["d"])
        return jwk

    def public_key(self):
        return self.private.public_key()

    def sign(self, data: bytes) -> bytes:
        if self.alg == "RS256":
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.private.sign(data)


def encode(key: Key | None, claims: dict, header: dict | None = None, alg: str | None = None,
           kid: str | None | bool = True, signature: bytes | None = None) -> str:
    """Compact JWS. `kid=True` uses the key's kid, `False` omits it, a string overrides it."""
    h = {"alg": alg or (key.alg if key else "none"), "typ": "JWT"}
    if kid is True and key is not None:
        h["kid"] = key.kid
    elif isinstance(kid, str):
        h["kid"] = kid
    if header:
        h.update(header)
    signing_input = f"{b64u(json.dumps(h).encode())}.{b64u(json.dumps(claims).encode())}"
    if signature is None:
        signature = key.sign(signing_input.encode()) if key else b""
    token = f"{signing_input}.{b64u(signature)}"
    if len(signature) >= 16:
        SECRETS.add(b64u(signature))
    return token


def claims(iss: str, aud, sub: str = "alice", ttl: int = 300, **extra) -> dict:
    now = int(time.time())
    c = {"iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + ttl}
    c.update(extra)
    return c


def decode_unverified(token: str) -> tuple[dict, dict]:
    h, p, _ = token.split(".")
    return json.loads(b64u_decode(h)), json.loads(b64u_decode(p))


class PublicKey:
    """A verification key from a JWK (EdDSA or ES256), usable with `verify`."""

    def __init__(self, jwk: dict):
        self.kid, self.alg = jwk.get("kid"), jwk["alg"]
        if jwk["kty"] == "OKP":
            self._pub = ed25519.Ed25519PublicKey.from_public_bytes(b64u_decode(jwk["x"]))
        else:
            self._pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64u_decode(jwk["x"]), "big"),
                                                      int.from_bytes(b64u_decode(jwk["y"]), "big"),
                                                      ec.SECP256R1()).public_key()

    def public_key(self):
        return self._pub


def keys_from_jwks(doc: dict) -> dict:
    return {k["kid"]: PublicKey(k) for k in doc["keys"]}


def verify(token: str, keys: dict, leeway: float = 0) -> dict:
    """Verifies a compact JWS against `keys` (kid → Key); returns its claims or raises ValueError.
    `leeway`: seconds past `exp` still accepted (clock skew)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        h64, p64, s64 = token.split(".")
        header, claims = json.loads(b64u_decode(h64)), json.loads(b64u_decode(p64))
        key = keys[header["kid"]]
        if header.get("alg") != key.alg:
            raise ValueError("alg mismatch")
        sig, data, pub = b64u_decode(s64), f"{h64}.{p64}".encode(), key.public_key()
        if key.alg == "RS256":
            pub.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        elif key.alg == "ES256":
            if len(sig) != 64:
                raise ValueError("bad signature length")
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            pub.verify(der, data, ec.ECDSA(hashes.SHA256()))
        else:
            pub.verify(sig, data)
    except (KeyError, ValueError, InvalidSignature) as e:
        raise ValueError(f"invalid token: {e!r}") from e
    if claims.get("exp", 0) + leeway < time.time():
        raise ValueError("expired")
    return claims
