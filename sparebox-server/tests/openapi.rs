//! The checked-in OpenAPI document matches the server: it is valid JSON served at
//! `/api/v1/openapi.json`, and every operation it describes is routed (none falls through
//! to the "route not found" answer).

mod common;

use common::TestServer;
use serde_json::Value;

#[tokio::test]
async fn served_document_is_the_checked_in_one() {
    let server = TestServer::start().await;
    let served: Value = server
        .client
        .get(format!("{}/api/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let checked_in: Value = serde_json::from_str(sparebox_server::http::OPENAPI).unwrap();
    assert_eq!(served, checked_in);
    assert_eq!(served["openapi"], "3.0.3");
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let server = TestServer::start().await;
    let doc: Value = serde_json::from_str(sparebox_server::http::OPENAPI).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());
    let id = uuid::Uuid::new_v4().to_string();
    for (path, operations) in paths {
        let concrete = path.replace("{id}", &id);
        for method in operations.as_object().unwrap().keys() {
            let response = server
                .client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{concrete}", server.base),
                )
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert!(
                !body.contains("route not found")
                    && status != reqwest::StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
}
