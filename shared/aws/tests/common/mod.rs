//! Connection to the local stand-ins started by `tests/services/aws.sh start`.
//! Without them these tests fail; they never pass vacuously.

#![allow(dead_code)]

use std::path::Path;

use switchboard_aws::{AwsResources, Clients, create_tables_and_queues};

const DYNAMODB_VAR: &str = "SWITCHBOARD_TEST_DYNAMODB_ENDPOINT";
const MOTO_VAR: &str = "SWITCHBOARD_TEST_MOTO_ENDPOINT";

/// The endpoint from the environment, else from the `.cache/aws-env` file
/// `aws.sh start` writes; panics with instructions when neither has it.
fn endpoint(var: &str) -> String {
    if let Some(value) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        return value.trim().to_owned();
    }
    let env_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/aws-env");
    let from_file = std::fs::read_to_string(&env_file).ok().and_then(|text| {
        text.lines().find_map(|line| {
            line.trim()
                .strip_prefix("export ")?
                .strip_prefix(var)?
                .strip_prefix('=')
                .map(|v| v.trim().to_owned())
        })
    });
    match from_file {
        Some(value) if !value.is_empty() => value,
        _ => panic!(
            "{var} is not set and .cache/aws-env has no value for it: start DynamoDB Local and moto with \
             `tests/services/aws.sh install && tests/services/aws.sh start` (then `. .cache/aws-env`)"
        ),
    }
}

pub struct Local {
    pub clients: Clients,
    pub resources: AwsResources,
    pub prefix: String,
}

/// moto's endpoint (every service but DynamoDB).
pub fn moto_endpoint() -> String {
    endpoint(MOTO_VAR)
}

pub async fn clients() -> Clients {
    Clients::local(&endpoint(DYNAMODB_VAR), &endpoint(MOTO_VAR)).await
}

/// Fresh tables and queues under a unique prefix.
pub async fn local() -> Local {
    let clients = clients().await;
    let prefix = unique("t");
    let resources = create_tables_and_queues(&clients, &prefix)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating tables and queues failed (is `tests/services/aws.sh start` running?): {}",
                switchboard_aws::error_chain(&e)
            )
        });
    Local {
        clients,
        resources,
        prefix,
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
