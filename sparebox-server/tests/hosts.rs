//! Roles, host keys, host settings, browsing and the owner's view, over HTTP.

mod common;

use common::{message, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Runs the deploy of `agent` on the host with `key` to the end, reporting its isolation.
async fn run_agent(server: &TestServer, key: &str, agent: &str, verified: bool) {
    let (_, response) = server.heartbeat(key, json!({})).await;
    let deploy = response["commands"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = server
        .heartbeat(
            key,
            json!({
                "commandAcks": [{ "id": deploy, "status": "acked" }],
                "agentStatuses": [{
                    "agentId": agent, "status": "running",
                    "isolation": { "verified": verified, "mismatches": [] }
                }]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn ids(hosts: &Value) -> Vec<&str> {
    hosts
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {hosts}"))
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn missing_roles_are_forbidden_with_the_role_named() {
    let server = TestServer::start().await;
    let deployer = server.sign_up("dee@example.com", &["deployer"]).await;
    let owner = server.sign_up("oscar@example.com", &["host_owner"]).await;

    let (status, body) = server
        .call(
            "POST",
            "/api/v1/hosts",
            Some(&deployer),
            Some(json!({ "name": "box" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        message(&body),
        "registering a host needs the host_owner role"
    );
    let (status, body) = server
        .call("GET", "/api/v1/hosts/mine", Some(&deployer), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (host, key) = server.host(&owner, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (status, body) = server.agent(&owner, &host, "lite").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(message(&body), "creating an agent needs the deployer role");
    let (status, body) = server.agent(&deployer, &host, "lite").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn rotated_host_key_is_shown_once_and_the_old_key_stops_at_once() {
    let server = TestServer::start().await;
    let owner = server.sign_up("olga@example.com", &["host_owner"]).await;
    let other = server.sign_up("otto@example.com", &["host_owner"]).await;
    let (host, old_key) = server.host(&owner, "box").await;
    let path = format!("/api/v1/hosts/{host}/key");

    let (status, _) = server.call("POST", &path, Some(&other), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another owner's host is not there"
    );
    let (status, _) = server.call("POST", &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .call("POST", "/api/v1/hosts/not-a-uuid/key", Some(&owner), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unknown = format!("/api/v1/hosts/{}/key", uuid::Uuid::new_v4());
    let (status, _) = server.call("POST", &unknown, Some(&owner), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.heartbeat(&old_key, json!({})).await.0,
        StatusCode::OK
    );

    let (status, body) = server.call("POST", &path, Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_key = body["hostKey"].as_str().unwrap();
    assert_ne!(new_key, old_key);
    assert!(new_key.starts_with(body["host"]["keyPrefix"].as_str().unwrap()));

    let (status, body) = server.heartbeat(&old_key, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&body), "invalid host key");
    assert_eq!(server.heartbeat(new_key, json!({})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn host_settings_are_validated_then_enforced_when_agents_are_created() {
    let server = TestServer::start().await;
    let owner = server
        .sign_up("pat@example.com", &["host_owner", "deployer"])
        .await;
    let other = server.sign_up("quin@example.com", &["host_owner"]).await;
    let (host, key) = server.host(&owner, "box").await;
    server.heartbeat(&key, json!({})).await;
    let path = format!("/api/v1/hosts/{host}/settings");
    let good = json!({
        "offeredTiers": ["lite", "standard"],
        "prices": { "lite": 500, "standard": 900 },
        "maxAgents": 1,
        "region": "eu-west"
    });

    let bad = [
        (json!({ "offeredTiers": ["huge"] }), "unknown tier \"huge\""),
        (
            json!({ "prices": { "lite": -1 } }),
            "price of the lite tier must be 0 to 1000000",
        ),
        (
            json!({ "prices": { "lite": 1_000_001 } }),
            "price of the lite tier must be 0 to 1000000",
        ),
        (
            json!({ "offeredTiers": ["lite"], "prices": { "pro": 100 } }),
            "the pro tier is not offered",
        ),
        (json!({ "maxAgents": 0 }), "maxAgents must be 1 to 1000"),
        (json!({ "maxAgents": 1001 }), "maxAgents must be 1 to 1000"),
        (
            json!({ "region": "x".repeat(33) }),
            "region must be 1 to 32 characters",
        ),
        (
            json!({ "region": "  " }),
            "region must be 1 to 32 characters",
        ),
        (json!({ "currency": "eur" }), "unknown field `currency`"),
    ];
    for (body, expected) in bad {
        let (status, reply) = server
            .call("PUT", &path, Some(&owner), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert!(message(&reply).contains(expected), "{body}: {reply}");
    }
    let (status, _) = server
        .call("PUT", &path, Some(&other), Some(good.clone()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.call("PUT", &path, None, Some(good.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, mine) = server
        .call("GET", "/api/v1/hosts/mine", Some(&owner), None)
        .await;
    assert_eq!(
        mine[0]["offeredTiers"],
        json!(["lite", "standard", "pro", "compute"])
    );
    assert_eq!(
        mine[0]["maxAgents"],
        Value::Null,
        "refused settings changed nothing"
    );

    let (status, view) = server.call("PUT", &path, Some(&owner), Some(good)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["offeredTiers"], json!(["lite", "standard"]));
    assert_eq!(view["prices"], json!({ "lite": 500, "standard": 900 }));
    assert_eq!(view["region"], "eu-west");
    assert_eq!(
        view["freeSlots"],
        json!({ "lite": 1, "standard": 1, "pro": 0, "compute": 0 })
    );

    let (status, body) = server.agent(&owner, &host, "pro").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        message(&body).contains("does not offer the pro tier"),
        "{body}"
    );
    assert_eq!(
        server.agent(&owner, &host, "lite").await.0,
        StatusCode::CREATED
    );
    let (status, body) = server.agent(&owner, &host, "lite").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(message(&body).contains("at its cap of 1 agents"), "{body}");
}

#[tokio::test]
async fn browse_filters_by_isolation_tier_and_verification_and_sorts_by_price() {
    let server = TestServer::start().await;
    let owner = server
        .sign_up("rita@example.com", &["host_owner", "deployer"])
        .await;
    let deployer = server.sign_up("sam@example.com", &["deployer"]).await;
    let (a, a_key) = server.host(&owner, "a").await;
    let (b, b_key) = server.host(&owner, "b").await;
    let (c, _) = server.host(&owner, "c (never reported)").await;
    server.heartbeat(&a_key, json!({})).await;
    server
        .heartbeat(&b_key, json!({ "isolation": "podman" }))
        .await;
    let settings = |host: &str, prices: Value| {
        let path = format!("/api/v1/hosts/{host}/settings");
        let owner = owner.clone();
        let server = &server;
        async move {
            let (status, body) = server
                .call(
                    "PUT",
                    &path,
                    Some(&owner),
                    Some(json!({ "prices": prices })),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    settings(&a, json!({ "lite": 700 })).await;
    settings(&b, json!({ "lite": 300, "standard": 900 })).await;

    let browse = |query: &'static str| {
        let path = format!("/api/v1/hosts{query}");
        let token = deployer.clone();
        let server = &server;
        async move {
            let (status, body) = server.call("GET", &path, Some(&token), None).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body
        }
    };
    let all = browse("").await;
    assert_eq!(ids(&all), [a.as_str(), b.as_str(), c.as_str()]);
    assert!(
        all[0].get("keyPrefix").is_none(),
        "only owners see key prefixes"
    );
    assert_eq!(all[0]["online"], true);
    assert_eq!(all[2]["online"], false);
    assert_eq!(all[0]["freeSlots"]["pro"], 1);
    assert_eq!(all[1]["prices"], json!({ "lite": 300, "standard": 900 }));
    assert_eq!(ids(&browse("?isolation=podman").await), [b.as_str()]);
    assert_eq!(ids(&browse("?tier=lite").await), [a.as_str(), b.as_str()]);
    assert_eq!(
        ids(&browse("?sort=price").await),
        [b.as_str(), a.as_str(), c.as_str()]
    );
    assert_eq!(
        ids(&browse("?sort=price&tier=standard").await),
        [b.as_str(), a.as_str()]
    );
    assert!(ids(&browse("?verified=true").await).is_empty());

    let (_, created) = server.agent(&deployer, &a, "lite").await;
    run_agent(
        &server,
        &a_key,
        created["agent"]["id"].as_str().unwrap(),
        true,
    )
    .await;
    let (_, created) = server.agent(&deployer, &b, "lite").await;
    run_agent(
        &server,
        &b_key,
        created["agent"]["id"].as_str().unwrap(),
        false,
    )
    .await;
    let verified = browse("?verified=true").await;
    assert_eq!(ids(&verified), [a.as_str()]);
    assert_eq!(verified[0]["isolationVerified"], true);
    assert_eq!(all[0]["freeSlots"]["lite"], 7);
    assert_eq!(
        verified[0]["freeSlots"]["lite"], 6,
        "free slots count the running agent"
    );

    for query in [
        "?isolation=none",
        "?tier=huge",
        "?sort=name",
        "?verified=maybe",
        "?colour=blue",
    ] {
        let (status, body) = server
            .call(
                "GET",
                &format!("/api/v1/hosts{query}"),
                Some(&deployer),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    let (status, _) = server.call("GET", "/api/v1/hosts", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.call("GET", "/api/v1/hosts/mine", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn owners_see_their_hosts_agents_without_the_deployers_config_or_secrets() {
    let server = TestServer::start().await;
    let owner = server.sign_up("tess@example.com", &["host_owner"]).await;
    let other_owner = server.sign_up("ugo@example.com", &["host_owner"]).await;
    let deployer = server.sign_up("vic@example.com", &["deployer"]).await;
    let (host, key) = server.host(&owner, "box").await;
    server.host(&other_owner, "elsewhere").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&deployer, &host, "standard").await;
    let agent = created["agent"]["id"].as_str().unwrap();

    let (status, mine) = server
        .call("GET", "/api/v1/hosts/mine", Some(&owner), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(ids(&mine), [host.as_str()]);
    assert!(key.starts_with(mine[0]["keyPrefix"].as_str().unwrap()));
    assert_eq!(
        mine[0]["agents"],
        json!([{ "id": agent, "name": "helper", "tier": "standard", "state": "pending_deploy" }])
    );
    let text = mine.to_string();
    for private in ["sk-ant-test-0000", "deployer-config", "SOUL.md", "Be kind."] {
        assert!(!text.contains(private), "{private} leaked: {text}");
    }

    let (status, _) = server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "hosting an agent does not reveal it"
    );
}

#[tokio::test]
async fn admins_read_any_agent_but_cannot_command_it() {
    let server = TestServer::start().await;
    let owner = server
        .sign_up("wes@example.com", &["host_owner", "deployer"])
        .await;
    let admin = server.sign_up("xena@example.com", &["deployer"]).await;
    let (host, key) = server.host(&owner, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (_, created) = server.agent(&owner, &host, "lite").await;
    let agent = created["agent"]["id"].as_str().unwrap();
    let path = format!("/api/v1/agents/{agent}");
    let (status, _) = server.call("GET", &path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not an admin yet");

    let granted = server
        .platform
        .grant_admin("XENA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(granted.has_role(sparebox_server::Role::Admin));
    assert!(server
        .platform
        .grant_admin("nobody@example.com")
        .await
        .unwrap()
        .is_none());

    for read in [
        path.clone(),
        format!("{path}/commands"),
        format!("{path}/events"),
    ] {
        let (status, body) = server.call("GET", &read, Some(&admin), None).await;
        assert_eq!(status, StatusCode::OK, "{read}: {body}");
    }
    let (status, _) = server
        .call(
            "POST",
            &format!("{path}/commands"),
            Some(&admin),
            Some(json!({ "type": "stop" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, me) = server
        .call("GET", "/api/v1/users/me", Some(&admin), None)
        .await;
    assert_eq!(me["roles"], json!(["deployer", "admin"]));
}
