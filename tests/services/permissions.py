#!/usr/bin/env python3
"""Proves that template.yaml grants every AWS call the functions make, and nothing more.

DynamoDB Local and moto accept any credentials, so a green test against them says nothing about IAM.
This tool closes that gap in two steps:

  permissions.py proxy --dynamodb URL --other URL --log CALLS.jsonl --port-file FILE
      A recording proxy on 127.0.0.1. Tests point every function's AWS clients at it, each function
      signing with its template logical id as access key id (e.g. `ConversationWorkerFunction`). It
      forwards DynamoDB requests to DynamoDB Local and everything else to moto, and appends one line per
      call to CALLS.jsonl: who (the access key id), the IAM action and the resource ARNs.

  permissions.py check --template template.yaml --calls CALLS.jsonl
      Expands the SAM template with AWS's own translator (policy templates, managed policies, permissions
      boundary), resolves each function's policies against the physical names the test used (the test
      writes `{"context": <function>, "env": {...}}` lines with the environment it gave the function),
      and fails when
        * a recorded call is not allowed by the function's role and its permissions boundary, or
        * an inline grant uses a wildcard action, or
        * a function is granted an action it never used in the run, unless JUSTIFIED says why, or
        * a function holds a KMS grant other than kms:Decrypt and kms:GenerateDataKey on the KmsKeyArn
          parameter (the services' use of the key on the function's behalf, which no proxy sees).

  permissions.py selftest
      Shows that the check fails on an ungranted call, a wildcard grant and an unused grant.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import http.client
import http.server
import json
import os
import re
import sys
import threading
import urllib.parse
from dataclasses import dataclass, field

ACCOUNT = "123456789012"  # moto's default account; the proxy and the checker use the same one

# Grants that the tests do not exercise, with the code path that needs them. Keep this short: every line
# is an action a function holds without a test showing it is used.
JUSTIFIED: dict[tuple[str, ...], str] = {
    ("IngressEmailFunction", "s3:GetObject"): "SES mail over 150 KB that a receipt rule's S3 action stored "
    "(ses `raw_mail_bucket`, only with the SesRawMailBucket parameter); the S3 adapter is tested against "
    "moto in shared/aws/tests/s3.rs, the channel's fetch in ses.rs's tests",
    # pipeline/src/ingress.rs `release`: when queueing fails the webhook answers 503 and frees its
    # claim, so the provider's retry is accepted instead of being taken for a duplicate. The tests'
    # queues do not fail.
    ("IngressImFunction", "dynamodb:DeleteItem"): "an ingress frees its claim when queueing fails",
    ("IngressEmailFunction", "dynamodb:DeleteItem"): "an ingress frees its claim when queueing fails",
    ("IngressSocialFunction", "dynamodb:DeleteItem"): "an ingress frees its claim when queueing fails",
}

# The AWS-managed policies SAM may attach (their documented contents). Only logging and the SQS event
# source mapping, which the Lambda service performs with the function's role.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}
    ],
    "AWSXrayWriteOnlyAccess": [
        {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"], "Resource": "*"}
    ],
}
# Actions the runtime performs for the function rather than our code; never recorded by the proxy.
RUNTIME_SERVICES = ("logs:", "xray:")
# With the KmsKeyArn parameter set, DynamoDB, SQS and S3 call KMS with the function's credentials
# ("via service"): grants the proxy cannot see. Allowed only as exactly these actions on exactly that
# parameter (tests/services/check_stack.py checks they exist only under its condition).
KMS_VIA_SERVICE = ("kms:Decrypt", "kms:GenerateDataKey")
KMS_KEY_PARAMETER = "KmsKeyArn"


# ----------------------------------------------------------------------------------------- the proxy

def describe_call(method: str, path: str, headers: dict[str, str], body: bytes) -> dict:
    """The caller, IAM action and resource ARNs of one signed AWS API request."""
    auth = headers.get("authorization", "")
    match = re.search(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request", auth)
    principal, region, service = match.groups() if match else ("anonymous", "us-east-1", "unknown")
    target = headers.get("x-amz-target", "")
    action, resources = "unknown", []
    payload: dict = {}
    if body and service != "s3":
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            payload = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("latin-1")).items()}
    if target:
        action = target.split(".", 1)[-1]
    elif "Action" in payload:
        action = payload["Action"]
    if service == "dynamodb":
        tables = []
        if "TableName" in payload:
            tables.append(payload["TableName"] + (f"/index/{payload['IndexName']}" if payload.get("IndexName") else ""))
        tables += list(payload.get("RequestItems", {}))
        for item in payload.get("TransactItems", []):
            for op in item.values():
                tables.append(op["TableName"])
        resources = [f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{t}" for t in tables]
        iam = "dynamodb"
    elif service == "sqs":
        url = payload.get("QueueUrl") or payload.get("QueueName", "")
        name = url.rstrip("/").rsplit("/", 1)[-1]
        resources = [f"arn:aws:sqs:{region}:{ACCOUNT}:{name}"] if name else []
        iam = "sqs"
    elif service == "secretsmanager":
        secret = payload.get("SecretId", "")
        resources = [secret if secret.startswith("arn:") else f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{secret}"]
        iam = "secretsmanager"
    elif service == "s3":
        parsed = urllib.parse.urlsplit(path)
        parts = parsed.path.lstrip("/").split("/", 1)
        bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        if key:
            action = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject"}.get(method, method)
            resources = [f"arn:aws:s3:::{bucket}/{urllib.parse.unquote(key)}"]
        else:
            action = "ListBucket" if method == "GET" and ("list-type" in query or not query) else f"{method}Bucket"
            if method == "POST" and "delete" in query:
                action = "DeleteObject"
            resources = [f"arn:aws:s3:::{bucket}"]
        iam = "s3"
    else:
        iam = service
    return {"principal": principal, "region": region, "action": f"{iam}:{action}", "resources": resources}


def run_proxy(args: argparse.Namespace) -> None:
    upstreams = {
        "dynamodb": urllib.parse.urlsplit(args.dynamodb),
        "other": urllib.parse.urlsplit(args.other),
    }
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:  # quiet: the call log is the output
            pass

        def read_body(self) -> bytes:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def forward(self) -> None:
            body = self.read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            call = describe_call(self.command, self.path, headers, body)
            with lock, open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps(call) + "\n")
            target = upstreams["dynamodb" if "/dynamodb/" in headers.get("authorization", "") else "other"]
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            forwarded = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection", "content-length")}
            forwarded["Content-Length"] = str(len(body))
            try:
                connection.request(self.command, self.path, body=body, headers=forwarded)
                response = connection.getresponse()
                data = response.read()
            except OSError as error:
                print(f"upstream {target.netloc}: {call['action']}: {error}", file=sys.stderr, flush=True)
                self.send_error(502, f"upstream: {error}")
                return
            finally:
                connection.close()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


# ------------------------------------------------------------------------------------- the checker

@dataclass
class Statement:
    actions: list[str]
    resources: list[str]
    source: str


@dataclass
class Role:
    function: str
    grants: list[Statement] = field(default_factory=list)  # inline policies: what the template grants
    managed: list[Statement] = field(default_factory=list)
    boundary: list[Statement] | None = None


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


class Resolver:
    """Evaluates the intrinsic functions found in IAM policies against the test's physical names."""

    def __init__(self, template: dict, region: str, physical: dict[str, str], parameters: dict[str, str]):
        self.resources = template.get("Resources", {})
        self.region = region
        self.physical = physical
        self.parameters = parameters

    def ref(self, name: str) -> str:
        pseudo = {"AWS::Region": self.region, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]
        return f"unresolved-{name}"

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.resources.get(name, {}).get("Type", "")
        value = self.ref(name)
        if kind == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{value}"
        if kind == "AWS::SQS::Queue":
            queue = value.rstrip("/").rsplit("/", 1)[-1]
            return queue if attribute == "QueueName" else f"arn:aws:sqs:{self.region}:{ACCOUNT}:{queue}"
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{value}"
        return f"unresolved-{name}.{attribute}"

    def sub(self, text: str, variables: dict) -> str:
        def replace(match: re.Match) -> str:
            expression = match.group(1)
            if expression in variables:
                return str(self.resolve(variables[expression]))
            if "." in expression and not expression.startswith("AWS::"):
                name, attribute = expression.split(".", 1)
                return self.get_att(name, attribute)
            return self.ref(expression)

        return re.sub(r"\$\{([^}!][^}]*)\}", replace, text)

    def resolve(self, value):
        if isinstance(value, dict) and len(value) == 1:
            (key, argument), = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return self.sub(text, variables)
            if key == "Fn::Join":
                separator, parts = argument
                return separator.join(str(self.resolve(p)) for p in parts)
            if key == "Fn::If":
                # Policies here do not branch; resolve the first branch to stay strict.
                return self.resolve(argument[1])
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def statements(document: dict, resolver: Resolver, source: str) -> list[Statement]:
    out = []
    for statement in as_list(document.get("Statement", [])):
        if "Fn::If" in statement:
            # A conditional statement (`!If [condition, statement, AWS::NoValue]`): read as if the
            # condition held, the strict reading.
            statement = statement["Fn::If"][1]
            if not isinstance(statement, dict) or "Effect" not in statement:
                continue
        if statement.get("Effect") != "Allow":
            raise SystemExit(f"{source}: only Allow statements are understood by this checker")
        out.append(Statement(
            actions=[a for a in as_list(statement.get("Action", []))],
            resources=[str(r) for r in as_list(resolver.resolve(statement.get("Resource", "*")))],
            source=source,
        ))
    return out


def expand_template(template_path: str) -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator wants one; ARNs use our own
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    class OfflinePolicyLoader:
        def load(self) -> dict[str, str]:
            return {name: f"arn:aws:iam::aws:policy/service-role/{name}" for name in MANAGED_POLICIES}

    with open(template_path, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    parameters = {name: spec.get("Default", f"param-{name}") for name, spec in sam.get("Parameters", {}).items()}
    # `sam build` uploads the code; the translator wants an S3 location where the template has a folder.
    for function in [sam.get("Globals", {}).get("Function", {})] + [
        r.get("Properties", {}) for r in sam["Resources"].values() if r.get("Type") == "AWS::Serverless::Function"
    ]:
        if "CodeUri" in function:
            function["CodeUri"] = "s3://build/code.zip"
    return transform(copy.deepcopy(sam), parameters, OfflinePolicyLoader())


def roles(template: dict, resolver: Resolver) -> dict[str, Role]:
    resources = template["Resources"]
    out = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role_ref = resource["Properties"]["Role"]
        role_name = role_ref["Fn::GetAtt"][0] if isinstance(role_ref, dict) else role_ref
        properties = resources[role_name]["Properties"]
        role = Role(function=name)
        for policy in properties.get("Policies", []):
            # A conditional policy (`!If [condition, policy, AWS::NoValue]`) is checked as if the
            # condition held: the strict reading, since it grants more.
            if "Fn::If" in policy:
                policy = policy["Fn::If"][1]
                if not isinstance(policy, dict) or "PolicyDocument" not in policy:
                    continue
            role.grants += statements(policy["PolicyDocument"], resolver, f"{name}: {policy['PolicyName']}")
        for arn in properties.get("ManagedPolicyArns", []):
            managed = str(resolver.resolve(arn)).rsplit("/", 1)[-1]
            if managed not in MANAGED_POLICIES:
                raise SystemExit(f"{name}: managed policy {managed} is not known to this checker")
            role.managed += statements({"Statement": MANAGED_POLICIES[managed]}, resolver, f"{name}: {managed}")
        boundary = properties.get("PermissionsBoundary")
        if boundary is not None:
            boundary_name = boundary["Ref"]
            document = resources[boundary_name]["Properties"]["PolicyDocument"]
            role.boundary = statements(document, resolver, f"{name}: boundary")
        out[name] = role
    return out


def kms_key_placeholder(region: str) -> str:
    """What the KmsKeyArn parameter resolves to in the check: no test sets a key."""
    return f"arn:aws:kms:{region}:{ACCOUNT}:key/{KMS_KEY_PARAMETER}"


def matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower().replace("?", "[?]"))


def allows(statements_: list[Statement], action: str, resource: str) -> bool:
    return any(
        any(matches(a, action) for a in s.actions) and any(fnmatch.fnmatchcase(resource, r) for r in s.resources)
        for s in statements_
    )


def check(template_path: str, calls_path: str) -> list[str]:
    calls, contexts = [], {}
    with open(calls_path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if "context" in record:
                contexts[record["context"]] = record
            else:
                calls.append(record)
    if not calls:
        return ["no AWS calls were recorded: the tests did not run through the proxy"]
    template = expand_template(template_path)
    with open(template_path, encoding="utf-8") as f:
        from samtranslator.yaml_helper import yaml_parse
        sam = yaml_parse(f.read())
    failures = []
    functions_seen = {c["principal"] for c in calls}
    all_roles: dict[str, Role] = {}
    for function in sorted(functions_seen | set(contexts)):
        context = contexts.get(function)
        if context is None:
            failures.append(f"{function}: calls recorded but the test wrote no context (environment) for it")
            continue
        if function not in template["Resources"]:
            failures.append(f"{function}: not a function of the template (access key ids must be logical ids)")
            continue
        variables = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
        physical, parameters = {}, {}
        for variable, expression in variables.items():
            if variable not in context["env"]:
                continue
            if isinstance(expression, dict) and "Ref" in expression:
                target = expression["Ref"]
                (parameters if target in sam.get("Parameters", {}) else physical)[target] = context["env"][variable]
        parameters.setdefault(KMS_KEY_PARAMETER, kms_key_placeholder(context.get("region", "us-east-1")))
        resolver = Resolver(template, context.get("region", "us-east-1"), physical, parameters)
        all_roles[function] = roles(template, resolver)[function]

    all_regions = {function: contexts[function].get("region", "us-east-1") for function in all_roles}
    used: dict[str, list[tuple[str, str]]] = {}
    for call in calls:
        role = all_roles.get(call["principal"])
        if role is None:
            continue
        for resource in call["resources"] or ["*"]:
            used.setdefault(call["principal"], []).append((call["action"], resource))
            granted = allows(role.grants + role.managed, call["action"], resource)
            bounded = role.boundary is None or allows(role.boundary, call["action"], resource)
            if not (granted and bounded):
                why = "not granted by its policies" if not granted else "outside its permissions boundary"
                failures.append(f"{call['principal']}: {call['action']} on {resource}: {why}")

    for function in template["Resources"]:
        if template["Resources"][function]["Type"] == "AWS::Lambda::Function" and function not in all_roles:
            failures.append(f"{function}: the tests never ran it, so its permissions are unproven")
    for function, role in sorted(all_roles.items()):
        for statement in role.grants:
            for action in statement.actions:
                if "*" in action or "?" in action:
                    failures.append(f"{function}: wildcard action {action} ({statement.source}); grant the exact actions")
                    continue
                if action.startswith(RUNTIME_SERVICES) or (function, action) in JUSTIFIED:
                    continue
                if action.startswith("kms:"):
                    key = kms_key_placeholder(all_regions.get(function, "us-east-1"))
                    if action not in KMS_VIA_SERVICE or statement.resources != [key]:
                        failures.append(f"{function}: {action} on {statement.resources}: only "
                                        f"{' and '.join(KMS_VIA_SERVICE)} on the {KMS_KEY_PARAMETER} parameter")
                    continue
                for pattern in statement.resources:
                    # (function, action, resource suffix): justified on that resource only.
                    if any(len(key) == 3 and key[:2] == (function, action) and pattern.endswith(key[2]) for key in JUSTIFIED):
                        continue
                    if not any(matches(action, a) and fnmatch.fnmatchcase(r, pattern) for a, r in used.get(function, [])):
                        failures.append(f"{function}: granted {action} on {pattern} but never used it in the run")
    return sorted(set(failures))


def summary(calls_path: str) -> str:
    by_function: dict[str, set[str]] = {}
    with open(calls_path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if "principal" in record:
                by_function.setdefault(record["principal"], set()).add(record["action"])
    return "\n".join(f"  {function}: {', '.join(sorted(actions))}" for function, actions in sorted(by_function.items()))


# ---------------------------------------------------------------------------------------- self-test

SELFTEST_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  SecretArn: {Type: String}
  KmsKeyArn: {Type: String, Default: ""}
Conditions:
  HasKmsKey: !Not [!Equals [!Ref KmsKeyArn, ""]]
Globals:
  Function:
    Environment:
      Variables:
        TABLE: !Ref Table
        SECRET: !Ref SecretArn
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties: {}
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: provided.al2023
      Handler: bootstrap
      CodeUri: .
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:GetItem, dynamodb:PutItem]
              Resource: !GetAtt Table.Arn
        - AWSSecretsManagerGetSecretValuePolicy:
            SecretArn: !Ref SecretArn
        - SQSSendMessagePolicy:
            QueueName: some-queue
        - !If
          - HasKmsKey
          - Statement:
              - Effect: Allow
                Action: [kms:Decrypt, kms:GenerateDataKey]
                Resource: !Ref KmsKeyArn
              - Effect: Allow
                Action: kms:Encrypt
                Resource: !Ref KmsKeyArn
          - !Ref AWS::NoValue
"""


def selftest() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        template = os.path.join(scratch, "template.yaml")
        calls = os.path.join(scratch, "calls.jsonl")
        with open(template, "w", encoding="utf-8") as f:
            f.write(SELFTEST_TEMPLATE)
        secret = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:s-AbCdEf"
        records = [
            {"context": "Reader", "region": "us-east-1", "env": {"TABLE": "t1", "SECRET": secret}},
            {"principal": "Reader", "action": "dynamodb:GetItem", "resources": [f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t1"]},
            {"principal": "Reader", "action": "dynamodb:DeleteItem", "resources": [f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t1"]},
            {"principal": "Reader", "action": "dynamodb:GetItem", "resources": [f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/other"]},
            {"principal": "Reader", "action": "secretsmanager:GetSecretValue", "resources": [secret]},
        ]
        with open(calls, "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
        failures = check(template, calls)
        expected = [
            "Reader: dynamodb:DeleteItem on arn:aws:dynamodb:us-east-1:123456789012:table/t1: not granted by its policies",
            "Reader: dynamodb:GetItem on arn:aws:dynamodb:us-east-1:123456789012:table/other: not granted by its policies",
            "Reader: granted dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/t1 but never used it",
            "Reader: wildcard action sqs:SendMessage*",
            "Reader: kms:Encrypt on ['arn:aws:kms:us-east-1:123456789012:key/KmsKeyArn']: only kms:Decrypt and kms:GenerateDataKey",
        ]
        for text in expected:
            if not any(f.startswith(text) for f in failures):
                raise SystemExit(f"selftest: expected a failure starting {text!r}, got:\n" + "\n".join(failures))
        if len(failures) != len(expected):
            raise SystemExit("selftest: unexpected failures:\n" + "\n".join(failures))
        assert describe_call("POST", "/", {
            "authorization": "AWS4-HMAC-SHA256 Credential=Worker/20261128/eu-west-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x",
            "x-amz-target": "DynamoDB_20120810.Query",
        }, b'{"TableName":"gaps","IndexName":"by_count"}') == {
            "principal": "Worker", "region": "eu-west-1", "action": "dynamodb:Query",
            "resources": [f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/gaps/index/by_count"],
        }
    print("permissions selftest: the check fails on an ungranted call, a wildcard, an unused grant and a KMS grant beyond the key's use by the services")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    proxy = sub.add_parser("proxy")
    proxy.add_argument("--dynamodb", required=True)
    proxy.add_argument("--other", required=True)
    proxy.add_argument("--log", required=True)
    proxy.add_argument("--port", type=int, default=0)
    proxy.add_argument("--port-file", required=True)
    checker = sub.add_parser("check")
    checker.add_argument("--template", required=True)
    checker.add_argument("--calls", required=True)
    sub.add_parser("selftest")
    args = parser.parse_args()
    if args.command == "proxy":
        run_proxy(args)
    elif args.command == "selftest":
        selftest()
    else:
        failures = check(args.template, args.calls)
        print("AWS calls recorded per function:\n" + summary(args.calls))
        if failures:
            print(f"\n{len(failures)} permission problem(s):")
            print("\n".join(f"  - {f}" for f in failures))
            sys.exit(1)
        print("\nevery recorded call is granted by template.yaml, and every grant is used or justified")


if __name__ == "__main__":
    main()
