#!/usr/bin/env python3
"""Checks tests/vectors/format*/*.json with an independent implementation of
docs/FORMAT.md, using only the Python standard library."""

import datetime
import hashlib
import hmac
import json
import pathlib
import re
import struct
import sys

KIND_CODES = {"genesis": 0, "event": 1, "epoch_seal": 2, "key_rotation": 3,
              "retention": 4, "redaction": 5, "hold_placed": 6, "hold_released": 7,
              "restriction": 8}

# recorded_at in its one stored form: 0, 3 or 6 fractional digits, the fewest.
STORED_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")


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
    assert STORED_TIME.match(text), f"recorded_at {text} is not in its stored form"
    fraction = text[20:-1] if "." in text else ""
    if fraction in ("000", "000000") or (len(fraction) == 6 and fraction.endswith("000")):
        raise AssertionError(f"recorded_at {text} does not use the fewest digits")
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    delta = t - epoch
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def evolve(key: bytes, start: int, target: int) -> bytes:
    for e in range(start, target):
        key = hmac.new(key, b"trailseal/v1/evolve" + struct.pack(">Q", e), hashlib.sha256).digest()
    return key


def epoch_key(k0: bytes, trail: str, line: dict, epoch: int) -> bytes:
    if line["format"] == 1:
        return evolve(k0, 0, epoch)
    branch = line["branch"]
    assert epoch >= branch, "an entry before its trail's branch"
    root = evolve(k0, 0, branch)
    start = hmac.new(root, b"trailseal/v2/trail-key" + lp(trail.encode()), hashlib.sha256).digest()
    return evolve(start, branch, epoch)


def mac_input(entry: dict, version: int) -> bytes:
    return (b"trailseal/v1/entry" + bytes([version]) + lp(entry["trail"].encode())
            + struct.pack(">QQ", entry["seq"], entry["epoch"]) + lp(entry["key_id"].encode())
            + struct.pack(">q", micros(entry["recorded_at"])) + bytes([KIND_CODES[entry["kind"]]])
            + bytes.fromhex(entry["prev_mac"]) + bytes.fromhex(entry["body_commitment"]))


def check(path: pathlib.Path) -> None:
    vector = json.loads(path.read_text())
    entry, expected, line = vector["entry"], vector["expected"], vector["key_line"]
    key = epoch_key(bytes.fromhex(vector["key"]["k0"]), entry["trail"], line, entry["epoch"])
    assert key.hex() == expected["epoch_key"], "epoch key"
    encoding = body_encoding(entry["body"])
    assert encoding.hex() == expected["body_encoding"], "body encoding"
    commitment = hashlib.sha256(encoding).hexdigest()
    assert commitment == expected["body_commitment"], "body commitment"
    data = mac_input(entry, line["format"])
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
    paths = sorted(root.glob("format*/*.json"))
    for path in paths:
        check(path)
        print(f"ok   {path.parent.name}/{path.name}")
    print(f"{len(paths)} vectors match docs/FORMAT.md")
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())
