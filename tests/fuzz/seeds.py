#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora from the repository's own test data:
the channels' contract fixtures (every request in them, in the webhook
targets' input format, see tests/fuzz/src/lib.rs), the email corpus, the
SendGrid form posts and the sample knowledge base.

Usage: seeds.py REPO_ROOT CORPUS_DIR (one sub-folder per target; existing
files are kept, so a corpus grows from run to run).
"""

import hashlib
import json
import re
import sys
import urllib.parse
from pathlib import Path


def main(root: Path, corpus: Path) -> None:
    channels = root / "shared/channels"
    registry = (channels / "src/registry.rs").read_text()
    listed = registry.split("pub const CHANNELS")[1].split("];")[0]
    order = re.findall(r"crate::(\w+)::SPEC", listed)
    counts = {}

    def put(target: str, data: bytes) -> None:
        folder = corpus / target
        folder.mkdir(parents=True, exist_ok=True)
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        (folder / name).write_bytes(data)
        counts[target] = counts.get(target, 0) + 1

    for index, module in enumerate(order):
        fixture = json.loads((channels / f"tests/fixtures/{module}.json").read_text())
        for spec in requests_of(fixture):
            data = bytes([index]) + webhook_input(spec)
            put("webhook_unsigned", data)
            put("webhook_signed", data)
            content_type = spec.get("content_type", "")
            body = spec.get("body", "").encode()
            if "boundary=" in content_type:
                boundary = content_type.split("boundary=", 1)[1].strip('"')
                put("multipart", boundary.encode() + b"\n" + body)
            if body.lstrip().startswith(b"<"):
                put("xml", body)
    for post in sorted((channels / "tests/data/sendgrid").glob("*.txt")):
        body = post.read_bytes()
        boundary = body.split(b"\n", 1)[0].strip().removeprefix(b"--")
        put("multipart", boundary + b"\n" + body)
        put("multipart", boundary + b"\n" + body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    for mail in sorted((channels / "tests/data/corpus").glob("*.eml")):
        put("mime", mail.read_bytes())
    put("xml", "ToUserName=gh_1\0Content=a]]>b 你好\0MsgId=17".encode())
    kb = root / "shared/faq/sample/kb.yaml"
    put("kb_import", b"\x02" + kb.read_bytes())
    jsonl = [
        {"id": "shipping", "question": "How long does shipping take?",
         "answer": "3-5 days.", "paraphrases": ["When will my order arrive?"]},
        {"id": "refund", "question": "退款需要多久？", "answers": {"zh": "七天内。", "en": "Within 7 days."},
         "lang": "zh"},
    ]
    text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in jsonl).encode()
    put("kb_import", b"\x00" + text)
    put("kb_import", b"\x01" + text)
    for target, count in sorted(counts.items()):
        print(f"seeds: {target}: {count}")


def requests_of(fixture: dict) -> list:
    """Every request a contract fixture holds."""
    specs = [fixture["message"]["request"], fixture["retry"]]
    if "batch" in fixture:
        specs.append(fixture["batch"]["request"])
    specs.extend(fixture.get("dropped", []))
    specs.extend(h["request"] for h in fixture.get("handshakes", []))
    return specs


def webhook_input(spec: dict) -> bytes:
    """A fixture's request (json, form or raw body; headers, method, path)."""
    if "json" in spec:
        content_type = "application/json"
        body = json.dumps(spec["json"], ensure_ascii=False, separators=(",", ":")).encode()
    elif "form" in spec:
        content_type = "application/x-www-form-urlencoded"
        body = urllib.parse.urlencode([tuple(pair) for pair in spec["form"]]).encode()
    else:
        content_type = spec.get("content_type", "")
        body = spec.get("body", "").encode()
    head = [f"{spec.get('method', 'POST')} {spec.get('path', '/webhooks/contract')}"]
    head.append(f"content-type: {content_type}")
    head.extend(f"{name}: {value}" for name, value in spec.get("headers", {}).items())
    return ("\n".join(head) + "\n\n").encode() + body


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
