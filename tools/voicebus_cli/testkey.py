"""The committed test key pair: it signs the sample webhooks, and nothing real.

The file's name says so; the key is public in this repository and must never be
configured in a Telnyx account or a deployed stack.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

ROOT = Path(__file__).resolve().parents[2]
TEST_KEY_FILE = ROOT / "events" / "TEST-ONLY-signing-key.NOT-FOR-PRODUCTION.json"


@dataclass(frozen=True)
class TestKeyPair:
    __test__ = False  # a key pair, not a pytest test class

    signing_key: SigningKey
    public_key_b64: str


def load_test_key(path: Path = TEST_KEY_FILE) -> TestKeyPair:
    data = json.loads(path.read_text())
    signing_key = SigningKey(base64.b64decode(data["private_seed_b64"]))
    public_key_b64 = base64.b64encode(bytes(signing_key.verify_key)).decode("ascii")
    if public_key_b64 != data["public_key_b64"]:
        raise ValueError(f"{path}: public_key_b64 does not belong to private_seed_b64")
    return TestKeyPair(signing_key, public_key_b64)
