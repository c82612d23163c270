#!/usr/bin/env python3
"""Checks tests/vectors/*.json with an independent implementation of
docs/FORMAT.md, using only the Python standard library."""

import datetime
import hashlib
import hmac
import json
import pathlib
import struct
import sys

KIND_CODES = {"genesis": 0, "event": 1, "epoch_seal": 2, "key_rotation": 3,
              "retention": 4, "redaction": 5, "hold_placed": 6, "hold_released": 7}


def lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def field_commitment(salt: bytes, name: str, value: str) -> bytes:
    return hashlib.sha256(b"trailseal/v1/field" + salt + lp(name.encode()) + lp(value.encode())).digest()


def body_encoding(body: dict) -> bytes:
    out = b"trailseal/v1/body" + struct.pack(">I", len(body))
    for name in sorted(body, key=lambda n: n.encode()):
        field = body[name]
        out += lp(name.encode())
        if "public" in field:
            out += b"\x01" + lp(field["public"].encode())
        elif "personal" in field:
            p = field["personal"]
            out += b"\x02" + field_commitment(bytes.fromhex(p["salt"]), name, p["value"])
        else:
            out += b"\x02" + bytes.fromhex(field["redacted"]["commitment"])
    return out


def micros(text: str) -> int:
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    delta = t - epoch
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def epoch_key(k0: bytes, epoch: int) -> bytes:
    key = k0
    for e in range(epoch):
        key = hmac.new(key, b"trailseal/v1/evolve" + struct.pack(">Q", e), hashlib.sha256).digest()
    return key


def mac_input(entry: dict) -> bytes:
    return (b"trailseal/v1/entry" + b"\x01" + lp(entry["trail"].encode())
            + struct.pack(">QQ", entry["seq"], entry["epoch"]) + lp(entry["key_id"].encode())
            + struct.pack(">q", micros(entry["recorded_at"])) + bytes([KIND_CODES[entry["kind"]]])
            + bytes.fromhex(entry["prev_mac"]) + bytes.fromhex(entry["body_commitment"]))


def check(path: pathlib.Path) -> None:
    vector = json.loads(path.read_text())
    entry, expected = vector["entry"], vector["expected"]
    key = epoch_key(bytes.fromhex(vector["key"]["k0"]), entry["epoch"])
    assert key.hex() == expected["epoch_key"], "epoch key"
    encoding = body_encoding(entry["body"])
    assert encoding.hex() == expected["body_encoding"], "body encoding"
    commitment = hashlib.sha256(encoding).hexdigest()
    assert commitment == expected["body_commitment"], "body commitment"
    data = mac_input(entry)
    assert data.hex() == expected["mac_input"], "mac input"
    mac = hmac.new(key, data, hashlib.sha256).hexdigest()
    assert mac == expected["mac"], "mac"
    if entry["seq"] == 0:
        genesis = hashlib.sha256(b"trailseal/v1/genesis" + lp(entry["trail"].encode())).hexdigest()
        assert genesis == expected["genesis_prev_mac"] == entry["prev_mac"], "genesis prev_mac"
    valid = commitment == entry["body_commitment"] and hmac.compare_digest(mac, entry["mac"])
    assert valid != path.name.startswith("fail_"), "fail_ vectors must be rejected, others accepted"


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent / "tests" / "vectors"
    paths = sorted(root.glob("*.json"))
    for path in paths:
        check(path)
        print(f"ok   {path.name}")
    print(f"{len(paths)} vectors match docs/FORMAT.md")
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())
