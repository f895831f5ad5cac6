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

Prints what is wrong and exits 1; quiet on success.
"""

import sys

from cfnlint.decode import cfn_yaml


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

    for problem in problems:
        print(f"check_stack: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
