//! `lambda_config`, the functions' SDK configuration, against moto: built
//! from the variables Lambda sets (and `AWS_ENDPOINT_URL`), its clients sign
//! and send real calls. Alone in its test binary, since it sets variables.

mod common;

use switchboard_aws::{Clients, lambda_config, load_json_secret};

#[tokio::test]
async fn clients_from_the_lambda_variables_make_calls() {
    let moto = common::moto_endpoint();
    // SAFETY: the only test of this binary, setting the variables before any
    // other thread of it reads the environment.
    unsafe {
        std::env::set_var("AWS_REGION", "eu-west-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "lambda-role-key");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "lambda-role-secret");
        std::env::set_var("AWS_SESSION_TOKEN", "lambda-role-session");
        std::env::set_var("AWS_ENDPOINT_URL", &moto);
    }
    let config = lambda_config();
    assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
    assert_eq!(config.endpoint_url(), Some(moto.as_str()));

    let clients = Clients::new(&config);
    let created = clients
        .secrets
        .create_secret()
        .name(common::unique("lambda-config"))
        .secret_string(r#"{"admin_token":"t"}"#)
        .send()
        .await
        .expect("a call signed with the variables' credentials");
    let secret = load_json_secret(&clients.secrets, created.arn().unwrap())
        .await
        .unwrap();
    assert_eq!(secret["admin_token"], "t");
    // The region the call was signed for is the variable's, not a default.
    assert!(
        created.arn().unwrap().contains(":eu-west-1:"),
        "{created:?}"
    );
}
