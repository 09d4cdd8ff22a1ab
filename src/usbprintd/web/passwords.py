"""Salted PBKDF2-HMAC-SHA256 password hashes for auth 'password' (`usbprintd set-password`).

Stored as `pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>` in the global option
password_hash. OpenWrt's python3-light has no OpenSSL bindings, and the daemon keeps libcrypto
out of memory on purpose, so when `hashlib.pbkdf2_hmac` is missing the same function is computed
with the built-in SHA-256 (RFC 8018, identical output, a few times slower).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCHEME = "pbkdf2_sha256"
ITERATIONS = 200_000
MIN_ITERATIONS = 100_000
SALT_BYTES = 16
KEY_BYTES = 32
_BLOCK = 64  # SHA-256 block size


def _pbkdf2_sha256_builtin(password: bytes, salt: bytes, iterations: int) -> bytes:
    """PBKDF2-HMAC-SHA256 for one 32-byte block, from the HMAC definition (RFC 2104)."""
    key = hashlib.sha256(password).digest() if len(password) > _BLOCK else password
    key = key.ljust(_BLOCK, b"\0")
    inner_base = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer_base = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def prf(message: bytes) -> bytes:
        inner = inner_base.copy()
        inner.update(message)
        outer = outer_base.copy()
        outer.update(inner.digest())
        return outer.digest()

    block = prf(salt + b"\0\0\0\1")
    result = int.from_bytes(block, "big")
    for _ in range(iterations - 1):
        block = prf(block)
        result ^= int.from_bytes(block, "big")
    return result.to_bytes(KEY_BYTES, "big")


def pbkdf2_sha256(password: bytes, salt: bytes, iterations: int) -> bytes:
    native = getattr(hashlib, "pbkdf2_hmac", None)
    if native is not None:
        return native("sha256", password, salt, iterations, KEY_BYTES)
    return _pbkdf2_sha256_builtin(password, salt, iterations)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    if iterations < MIN_ITERATIONS:
        raise ValueError(f"at least {MIN_ITERATIONS} iterations")
    salt = secrets.token_bytes(SALT_BYTES)
    key = pbkdf2_sha256(password.encode("utf-8"), salt, iterations)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored`; a malformed or empty hash never matches."""
    try:
        scheme, iterations_text, salt_text, key_text = stored.split("$")
        iterations = int(iterations_text)
        salt = base64.b64decode(salt_text, validate=True)
        expected = base64.b64decode(key_text, validate=True)
    except ValueError:
        return False
    if scheme != SCHEME or iterations < MIN_ITERATIONS or len(expected) != KEY_BYTES:
        return False
    key = pbkdf2_sha256(password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(key, expected)
