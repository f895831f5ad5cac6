"""Checks template.yaml against what the code relies on.

Grants are not checked here: `tests/services/permissions.py check` compares
the AWS calls the functions make in the Lambda tests (recorded through a proxy)
with the expanded policies, both ways (tests/run.sh runs it).

Queues: they and their consumers agree with what the functions are told
(SWITCHBOARD_WORKERS__VISIBILITY_SECS, __MAX_ATTEMPTS):

* every queue with a dead-letter queue has that visibility timeout and
  maxReceiveCount;
* the visibility timeout is at least 6x the timeout of each function consuming
  the queue and more than timeout + batching window, so a record's lease (and
  its claims) ends with the invocation, before SQS can hand the record out again;
* messages are at most 256 KiB, and large bodies outlive the messages that
  refer to them.

Encryption at rest, per the KmsKeyArn parameter (so that a table, queue,
topic or bucket added later cannot be left out):

* every DynamoDB table: SSE with KMS, the key when the parameter is set
  (else the AWS managed key);
* every queue: the key when set, else SQS-managed encryption;
* every SNS topic: the key when set, else a key of the stack's own;
* every bucket: SSE-KMS with the key when set, else SSE-S3; public access
  blocked; a bucket policy refusing requests without TLS;
* every function whose policies name one of those resources may use the key
  (kms:Decrypt, kms:GenerateDataKey on the parameter, only when it is set);
* no storage resource of a type this check does not know.

The dashboard's body is JSON once its substitutions are made.

Prints what is wrong and exits 1; quiet on success.
"""

import json
import re
import sys

from cfnlint.decode import cfn_yaml

KEY = {"Ref": "KmsKeyArn"}
NO_VALUE = {"Ref": "AWS::NoValue"}
KEY_OR_NOTHING = {"Fn::If": ["HasKmsKey", KEY, NO_VALUE]}
# Types that hold data at rest: each must be handled below.
STORAGE_TYPES = {
    "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::S3::Bucket",
    "AWS::DynamoDB::GlobalTable", "AWS::Serverless::SimpleTable", "AWS::Kinesis::Stream",
    "AWS::EFS::FileSystem", "AWS::RDS::DBInstance", "AWS::RDS::DBCluster", "AWS::Logs::LogGroup",
}
KNOWN_STORAGE = {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::S3::Bucket"}
# Log groups are encrypted by CloudWatch Logs; a customer key for them is another matter.
EXEMPT_STORAGE = {"AWS::Logs::LogGroup"}


def plain(value):
    """The template value as plain data (cfn-lint's nodes compare as dicts, lists, str)."""
    return json.loads(json.dumps(value, default=str))


def is_if_key(value, otherwise) -> bool:
    value = plain(value)
    return (
        isinstance(value, dict)
        and list(value) == ["Fn::If"]
        and value["Fn::If"][0] == "HasKmsKey"
        and value["Fn::If"][1] == KEY
        and otherwise(value["Fn::If"][2])
    )


def encryption_problems(template):
    resources = template["Resources"]
    problems = []
    condition = plain(template.get("Conditions", {}).get("HasKmsKey"))
    if condition != {"Fn::Not": [{"Fn::Equals": [KEY, ""]}]}:
        problems.append("condition HasKmsKey must be !Not [!Equals [!Ref KmsKeyArn, \"\"]]")
    if plain(template.get("Parameters", {}).get("KmsKeyArn", {}).get("Default")) != "":
        problems.append("parameter KmsKeyArn must default to empty (AWS-owned or managed keys)")
    storage = set()
    for name, r in resources.items():
        kind = r["Type"]
        props = r.get("Properties", {})
        if kind in STORAGE_TYPES - KNOWN_STORAGE - EXEMPT_STORAGE:
            problems.append(f"{name}: {kind} is not covered by the encryption check; extend it")
            continue
        if kind in KNOWN_STORAGE:
            storage.add(name)
        if kind == "AWS::DynamoDB::Table":
            sse = props.get("SSESpecification", {})
            if not (sse.get("SSEEnabled") is True and sse.get("SSEType") == "KMS"
                    and plain(sse.get("KMSMasterKeyId")) == KEY_OR_NOTHING):
                problems.append(f"{name}: SSESpecification must be SSEEnabled, SSEType KMS, "
                                "KMSMasterKeyId !If [HasKmsKey, !Ref KmsKeyArn, !Ref AWS::NoValue]")
        elif kind == "AWS::SQS::Queue":
            if plain(props.get("KmsMasterKeyId")) != KEY_OR_NOTHING or plain(
                props.get("SqsManagedSseEnabled")
            ) != {"Fn::If": ["HasKmsKey", NO_VALUE, True]}:
                problems.append(f"{name}: KmsMasterKeyId !If [HasKmsKey, !Ref KmsKeyArn, !Ref AWS::NoValue] "
                                "and SqsManagedSseEnabled !If [HasKmsKey, !Ref AWS::NoValue, true]")
        elif kind == "AWS::SNS::Topic":
            if not is_if_key(props.get("KmsMasterKeyId"), lambda other: other not in (NO_VALUE, "", None)):
                problems.append(f"{name}: KmsMasterKeyId must be the key when set, else a key that admits alarms")
        elif kind == "AWS::S3::Bucket":
            rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
            default = rules[0].get("ServerSideEncryptionByDefault", {}) if len(rules) == 1 else {}
            if plain(default.get("SSEAlgorithm")) != {"Fn::If": ["HasKmsKey", "aws:kms", "AES256"]} or plain(
                default.get("KMSMasterKeyID")
            ) != KEY_OR_NOTHING:
                problems.append(f"{name}: default encryption must be SSE-KMS with the key when set, else SSE-S3")
            block = props.get("PublicAccessBlockConfiguration", {})
            if not all(block.get(flag) is True for flag in
                       ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")):
                problems.append(f"{name}: public access must be blocked (all four flags)")
            tls_only = False
            for policy in resources.values():
                if policy["Type"] != "AWS::S3::BucketPolicy" or plain(policy["Properties"].get("Bucket")) != {"Ref": name}:
                    continue
                for statement in policy["Properties"]["PolicyDocument"].get("Statement", []):
                    condition = plain(statement.get("Condition", {}))
                    if statement.get("Effect") == "Deny" and condition.get("Bool", {}).get("aws:SecureTransport") in ("false", False):
                        tls_only = True
            if not tls_only:
                problems.append(f"{name}: needs a bucket policy denying requests without TLS (aws:SecureTransport)")

    for name, r in resources.items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        policies = plain(r["Properties"].get("Policies", []))
        text = json.dumps(policies)
        names = set(re.findall(r'"Fn::GetAtt": \["(\w+)"', text)) | set(re.findall(r"\$\{(\w+)\.Arn\}", text))
        if not names & storage:
            continue
        granted = any(
            isinstance(p, dict) and p.get("Fn::If", [None])[0] == "HasKmsKey" and p["Fn::If"][2] == NO_VALUE
            and any(
                sorted(st.get("Action", [])) == ["kms:Decrypt", "kms:GenerateDataKey"] and st.get("Resource") == KEY
                for st in p["Fn::If"][1].get("Statement", [])
            )
            for p in policies
        )
        if not granted:
            problems.append(f"{name}: uses {', '.join(sorted(names & storage))} but is not granted the key "
                            "(!If [HasKmsKey, kms:Decrypt and kms:GenerateDataKey on !Ref KmsKeyArn, !Ref AWS::NoValue])")
    return problems


def dashboard_problems(template):
    problems = []
    for name, r in template["Resources"].items():
        if r["Type"] != "AWS::CloudWatch::Dashboard":
            continue
        body = plain(r["Properties"]["DashboardBody"])
        text = body["Fn::Sub"] if isinstance(body, dict) else body
        for reference in re.findall(r"\$\{([^}!]+)\}", text):
            target = reference.split(".")[0]
            if not target.startswith("AWS::") and target not in template["Resources"]:
                problems.append(f"{name}: refers to {target}, which the template does not define")
        try:
            json.loads(re.sub(r"\$\{[^}]+\}", "x", text))
        except ValueError as error:
            problems.append(f"{name}: the body is not JSON: {error}")
    return problems


def main(path):
    template = cfn_yaml.load(path)
    resources = template["Resources"]
    globals_ = template["Globals"]["Function"]
    problems = []
    env = globals_["Environment"]["Variables"]
    try:
        visibility = int(env["SWITCHBOARD_WORKERS__VISIBILITY_SECS"])
        max_receives = int(env["SWITCHBOARD_WORKERS__MAX_ATTEMPTS"])
    except KeyError as missing:
        problems.append(f"the functions are not told {missing}")
        visibility, max_receives = 0, 0

    queues = {
        name: r["Properties"]
        for name, r in resources.items()
        if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r.get("Properties", {})
    }
    if not queues:
        problems.append("no queue has a dead-letter queue")
    longest_retention = 0
    for name, props in queues.items():
        if int(props.get("VisibilityTimeout", 30)) != visibility:
            problems.append(f"{name}: VisibilityTimeout is not {visibility}")
        if int(props["RedrivePolicy"]["maxReceiveCount"]) != max_receives:
            problems.append(f"{name}: maxReceiveCount is not {max_receives}")
        dlq = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        retention = int(props.get("MessageRetentionPeriod", 345600)) + int(
            resources[dlq]["Properties"].get("MessageRetentionPeriod", 345600)
        )
        longest_retention = max(longest_retention, retention)

    for name, r in resources.items():
        if r["Type"] == "AWS::SQS::Queue":
            size = int(r.get("Properties", {}).get("MaximumMessageSize", 1048576))
            if size > 262144:
                problems.append(f"{name}: MaximumMessageSize above 256 KiB: ten would not fit a Lambda payload")

    for name, r in resources.items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        props = r["Properties"]
        timeout = int(props.get("Timeout", globals_.get("Timeout", 3)))
        for event in props.get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
            window = int(event["Properties"].get("MaximumBatchingWindowInSeconds", 0))
            if queue not in queues:
                problems.append(f"{name} consumes {queue}, which has no dead-letter queue")
            if visibility < 6 * timeout or visibility <= timeout + window:
                problems.append(
                    f"{name}: visibility {visibility} s is too short for timeout {timeout} s"
                    f" and batching window {window} s"
                )
            if "ReportBatchItemFailures" not in event["Properties"].get("FunctionResponseTypes", []):
                problems.append(f"{name}: {queue} without ReportBatchItemFailures")

    bucket = resources.get("PayloadBucket", {}).get("Properties", {})
    rules = bucket.get("LifecycleConfiguration", {}).get("Rules", [])
    expiry_days = min((int(rule["ExpirationInDays"]) for rule in rules), default=0)
    if expiry_days * 86400 < longest_retention:
        problems.append(
            f"payloads expire after {expiry_days} days, before the messages referring to them"
        )

    problems += encryption_problems(template)
    problems += dashboard_problems(template)

    for problem in problems:
        print(f"check_stack: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
