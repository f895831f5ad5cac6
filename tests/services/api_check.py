#!/usr/bin/env python3
"""Checks the agents' API of a running `switchboard serve` from its OpenAPI document.

    api_check.py BASE_URL        (token in SWITCHBOARD_API_TOKEN, an `agent`-scope token)

1. GET BASE_URL/api/openapi.json and validate it with openapi-spec-validator.
2. Run schemathesis against the served API with the token: generated requests,
   valid and invalid, for every operation; fails on any 5xx (`not_a_server_error`).
   About a minute on a 2-core machine.
Exit status 0 when both pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

from openapi_spec_validator import validate


def main() -> int:
    if len(sys.argv) != 2 or not os.environ.get("SWITCHBOARD_API_TOKEN"):
        print(__doc__, file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/")
    token = os.environ["SWITCHBOARD_API_TOKEN"]
    url = f"{base}/api/openapi.json"
    with urllib.request.urlopen(url, timeout=10) as response:
        document = json.load(response)
    validate(document)
    operations = sum(len(methods) for methods in document["paths"].values())
    print(f"openapi-spec-validator: {url} is a valid OpenAPI {document['openapi']} document, {operations} operations")

    schemathesis = shutil.which("schemathesis", path=os.path.dirname(sys.executable)) or "schemathesis"
    with tempfile.TemporaryDirectory() as reports:
        run = subprocess.run(
            [
                schemathesis, "run", url,
                "--header", f"Authorization: Bearer {token}",
                "--checks", "not_a_server_error",
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", "100",
                "--workers", "2",
                "--seed", "1",
                "--generation-database", "none",
                "--request-timeout", "10",
                "--report-dir", reports,
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            # Its caches (.schemathesis/) go with the reports, not into the checkout.
            cwd=reports,
        )
    # The summary without the token (schemathesis sanitises it too).
    print(run.stdout.replace(token, "***")[-6000:])
    if run.returncode != 0:
        print(run.stderr.replace(token, "***")[-3000:], file=sys.stderr)
        print("schemathesis found server errors (or could not run)", file=sys.stderr)
        return 1
    print("schemathesis: no server error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
