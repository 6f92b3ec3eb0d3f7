//! Billing: free mode, Stripe Checkout (against a wiremock Stripe), the signed webhook and
//! subscriptions.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use sparebox_core::Secret;
use sparebox_server::{ManualClock, PlatformConfig, StripeConfig};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{message, TestServer};

const SECRET_KEY: &str = "sk_test_0123456789secretkey";
const WEBHOOK_SECRET: &str = "whsec_test_signing_secret_42";
const LLM_KEY: &str = "sk-ant-test-0000";
const WEBHOOK: &str = "/api/v1/billing/stripe/webhook";

struct Billing {
    server: TestServer,
    stripe: MockServer,
    clock: Arc<ManualClock>,
    deployer: String,
    owner: String,
    host: String,
}

fn stripe_config(base: &str) -> PlatformConfig {
    let mut stripe = StripeConfig::new(
        Secret::new(SECRET_KEY),
        Secret::new(WEBHOOK_SECRET),
        "https://sparebox.test/paid",
        "https://sparebox.test/canceled",
    );
    stripe.api_base = base.to_owned();
    PlatformConfig {
        stripe: Some(stripe),
        ..PlatformConfig::default()
    }
}

/// A Stripe-mode server with a host (8 GiB, 4 cores) pricing Lite at 500 and Standard at
/// 1500 cents, and a deployer.
async fn billing() -> Billing {
    let stripe = MockServer::start().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let server = TestServer::start_with_clock(stripe_config(&stripe.uri()), clock.clone()).await;
    let owner = server.sign_up("owner@example.com", &["host_owner"]).await;
    let deployer = server.sign_up("deployer@example.com", &["deployer"]).await;
    let (host, key) = server.host(&owner, "box").await;
    let (status, body) = server.heartbeat(&key, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    set_prices(
        &server,
        &owner,
        &host,
        json!({ "lite": 500, "standard": 1500 }),
    )
    .await;
    Billing {
        server,
        stripe,
        clock,
        deployer,
        owner,
        host,
    }
}

async fn set_prices(server: &TestServer, owner: &str, host: &str, prices: Value) {
    let (status, body) = server
        .call(
            "PUT",
            &format!("/api/v1/hosts/{host}/settings"),
            Some(owner),
            Some(json!({ "prices": prices })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn agent_request(host: &str, tier: &str) -> Value {
    json!({
        "hostId": host,
        "tier": tier,
        "name": "paid agent",
        "openclawConfig": { "agents": { "defaults": { "model": "anthropic/deployer-model" } } },
        "workspaceFiles": [{ "path": "SOUL.md", "content": "Be kind." }],
        "secrets": { "ANTHROPIC_API_KEY": LLM_KEY }
    })
}

async fn stripe_answers(stripe: &MockServer, status: u16, body: Value) {
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(stripe)
        .await;
}

fn session_ok() -> Value {
    json!({ "id": "cs_test_1", "object": "checkout.session", "url": "https://checkout.stripe.test/c/cs_test_1" })
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    fn decode(text: &str) -> String {
        let bytes = text.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

/// A `Stripe-Signature` header for `payload` at `t`, computed as Stripe does.
fn sign(secret: &str, t: i64, payload: &str) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, payload)))
}

fn mac(secret: &str, t: i64, payload: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{payload}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl Billing {
    fn now(&self) -> DateTime<Utc> {
        sparebox_server::Clock::now(&*self.clock)
    }

    /// Starts a checkout that Stripe accepts; returns the checkout id.
    async fn checkout(&self, tier: &str) -> String {
        let (status, body) = self
            .server
            .call(
                "POST",
                "/api/v1/checkout",
                Some(&self.deployer),
                Some(agent_request(&self.host, tier)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["checkoutId"].as_str().unwrap().to_owned()
    }

    async fn post_webhook(&self, signature: Option<String>, payload: &str) -> (StatusCode, Value) {
        let mut request = self
            .server
            .client
            .post(format!("{}{WEBHOOK}", self.server.base))
            .header("content-type", "application/json")
            .body(payload.to_owned());
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// Sends `event` signed now with the right secret.
    async fn deliver(&self, event: &Value) -> (StatusCode, Value) {
        let payload = event.to_string();
        let signature = sign(WEBHOOK_SECRET, self.now().timestamp(), &payload);
        self.post_webhook(Some(signature), &payload).await
    }

    async fn agents(&self) -> Vec<Value> {
        let (status, body) = self
            .server
            .call("GET", "/api/v1/agents", Some(&self.deployer), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    }

    async fn subscriptions(&self, token: &str) -> Vec<Value> {
        let (status, body) = self
            .server
            .call("GET", "/api/v1/subscriptions", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    }

    async fn commands(&self, agent: &str) -> Vec<Value> {
        let (status, body) = self
            .server
            .call(
                "GET",
                &format!("/api/v1/agents/{agent}/commands"),
                Some(&self.deployer),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    }

    /// Checks out a Lite agent and completes the checkout; returns the agent id.
    async fn paid_agent(&self, subscription: &str) -> String {
        stripe_answers(&self.stripe, 200, session_ok()).await;
        let checkout = self.checkout("lite").await;
        let (status, body) = self
            .deliver(&completed("evt_paid", &checkout, subscription))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["result"], "applied");
        let subs = self.subscriptions(&self.deployer).await;
        subs.iter().find(|s| s["id"] == subscription).unwrap()["agent"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn completed(id: &str, checkout: &str, subscription: &str) -> Value {
    json!({
        "id": id,
        "object": "event",
        "type": "checkout.session.completed",
        "data": { "object": {
            "id": "cs_test_1",
            "object": "checkout.session",
            "client_reference_id": checkout,
            "customer": "cus_test_1",
            "subscription": subscription,
            "mode": "subscription",
            "payment_status": "paid"
        } }
    })
}

fn subscription_event(id: &str, kind: &str, subscription: &str, status: &str) -> Value {
    json!({
        "id": id,
        "object": "event",
        "type": kind,
        "data": { "object": { "id": subscription, "object": "subscription", "status": status } }
    })
}

// ---- free mode ----

#[tokio::test]
async fn free_mode_creates_agents_directly_and_has_no_billing_routes() {
    let server = TestServer::start().await;
    let owner = server.sign_up("owner@example.com", &["host_owner"]).await;
    let deployer = server.sign_up("deployer@example.com", &["deployer"]).await;
    let (host, key) = server.host(&owner, "box").await;
    server.heartbeat(&key, json!({})).await;
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/agents",
            Some(&deployer),
            Some(agent_request(&host, "lite")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = server
        .call(
            "POST",
            "/api/v1/checkout",
            Some(&deployer),
            Some(agent_request(&host, "lite")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(message(&body).contains("billing is not enabled"), "{body}");
    let (status, body) = server.call("POST", WEBHOOK, None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = server
        .call("GET", "/api/v1/subscriptions", Some(&deployer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]));
}

// ---- checkout ----

#[tokio::test]
async fn stripe_mode_answers_402_to_direct_agent_creation() {
    let b = billing().await;
    let (status, body) = b
        .server
        .call(
            "POST",
            "/api/v1/agents",
            Some(&b.deployer),
            Some(agent_request(&b.host, "lite")),
        )
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["error"]["code"], "payment_required");
    assert!(message(&body).contains("/api/v1/checkout"), "{body}");
    assert!(b.agents().await.is_empty());

    // Admins may still create agents directly.
    let (_, me) = b
        .server
        .call("GET", "/api/v1/users/me", Some(&b.deployer), None)
        .await;
    let id = me["id"].as_str().unwrap().parse().unwrap();
    let roles = [
        sparebox_server::Role::Deployer,
        sparebox_server::Role::Admin,
    ];
    b.server
        .platform
        .store()
        .set_account_roles(id, roles.into_iter().collect())
        .await
        .unwrap();
    let (status, body) = b
        .server
        .call(
            "POST",
            "/api/v1/agents",
            Some(&b.deployer),
            Some(agent_request(&b.host, "lite")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn checkout_sends_exactly_the_session_fields_and_no_secret() {
    let b = billing().await;
    stripe_answers(&b.stripe, 200, session_ok()).await;
    let (status, body) = b
        .server
        .call(
            "POST",
            "/api/v1/checkout",
            Some(&b.deployer),
            Some(agent_request(&b.host, "standard")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["url"], "https://checkout.stripe.test/c/cs_test_1");
    assert_eq!(body["sessionId"], "cs_test_1");
    let checkout = body["checkoutId"].as_str().unwrap();

    let requests = b.stripe.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.headers["authorization"].to_str().unwrap(),
        format!("Bearer {SECRET_KEY}")
    );
    assert_eq!(
        request.headers["content-type"].to_str().unwrap(),
        "application/x-www-form-urlencoded"
    );
    let expected: BTreeMap<String, String> = [
        ("mode", "subscription"),
        ("client_reference_id", checkout),
        ("success_url", "https://sparebox.test/paid"),
        ("cancel_url", "https://sparebox.test/canceled"),
        ("line_items[0][quantity]", "1"),
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[0][price_data][unit_amount]", "1500"),
        ("line_items[0][price_data][recurring][interval]", "month"),
        (
            "line_items[0][price_data][product_data][name]",
            "Sparebox standard agent",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(form(&request.body), expected);
    let raw = String::from_utf8_lossy(&request.body);
    for secret in [
        LLM_KEY,
        WEBHOOK_SECRET,
        SECRET_KEY,
        "deployer-config",
        "SOUL.md",
    ] {
        assert!(!raw.contains(secret), "{secret} was sent to stripe");
    }

    // Nothing is reserved or created until the payment arrives.
    assert!(b.agents().await.is_empty());
    let stored = b
        .server
        .platform
        .store()
        .checkout(checkout.parse().unwrap())
        .await
        .unwrap()
        .expect("pending checkout stored");
    assert_eq!(stored.price_cents, 1500);
    assert!(!String::from_utf8_lossy(&stored.agent.sealed_secrets).contains(LLM_KEY));
}

#[tokio::test]
async fn stripe_errors_answer_502_and_store_nothing() {
    for (status, body) in [
        (
            400,
            json!({ "error": { "type": "invalid_request_error", "message": "Invalid currency: xyz" } }),
        ),
        (500, json!({ "error": { "type": "api_error" } })),
    ] {
        let b = billing().await;
        stripe_answers(&b.stripe, status, body).await;
        let (answer, reply) = b
            .server
            .call(
                "POST",
                "/api/v1/checkout",
                Some(&b.deployer),
                Some(agent_request(&b.host, "lite")),
            )
            .await;
        assert_eq!(answer, StatusCode::BAD_GATEWAY, "{reply}");
        assert_eq!(reply["error"]["code"], "bad_gateway");
        assert!(
            message(&reply).contains("stripe refused the checkout session"),
            "{reply}"
        );
        if status == 400 {
            assert!(message(&reply).contains("Invalid currency"), "{reply}");
        }
        let requests = b.stripe.received_requests().await.unwrap();
        let sent = form(&requests[0].body);
        let checkout = sent["client_reference_id"].parse().unwrap();
        let stored = b.server.platform.store().checkout(checkout).await.unwrap();
        assert!(stored.is_none(), "a failed checkout was stored");
        assert!(b.agents().await.is_empty());
    }
}

#[tokio::test]
async fn unreachable_stripe_answers_502() {
    // Nothing listens there any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = TestServer::start_with(stripe_config(&base)).await;
    let owner = server.sign_up("o@example.com", &["host_owner"]).await;
    let deployer = server.sign_up("d@example.com", &["deployer"]).await;
    let (host, key) = server.host(&owner, "box").await;
    server.heartbeat(&key, json!({})).await;
    set_prices(&server, &owner, &host, json!({ "lite": 500 })).await;
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/checkout",
            Some(&deployer),
            Some(agent_request(&host, "lite")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(message(&body).contains("could not reach stripe"), "{body}");
}

#[tokio::test]
async fn checkout_refuses_bad_requests_without_calling_stripe() {
    let b = billing().await;
    stripe_answers(&b.stripe, 200, session_ok()).await;
    let host_owner_only = b.owner.clone();
    let mut unpriced = agent_request(&b.host, "pro");
    unpriced["name"] = json!("no price");
    let mut bad_secret = agent_request(&b.host, "lite");
    bad_secret["secrets"] = json!({ "PATH": "/evil" });
    let mut bad_tier = agent_request(&b.host, "lite");
    bad_tier["tier"] = json!("huge");
    let mut bad_file = agent_request(&b.host, "lite");
    bad_file["workspaceFiles"] = json!([{ "path": "../escape", "content": "x" }]);
    let mut unknown_host = agent_request(&b.host, "lite");
    unknown_host["hostId"] = json!(uuid::Uuid::new_v4());
    let cases: Vec<(Option<&str>, Value, StatusCode, &str)> = vec![
        (
            None,
            agent_request(&b.host, "lite"),
            StatusCode::UNAUTHORIZED,
            "",
        ),
        (
            Some(&host_owner_only),
            agent_request(&b.host, "lite"),
            StatusCode::FORBIDDEN,
            "deployer",
        ),
        (
            Some(&b.deployer),
            unpriced,
            StatusCode::CONFLICT,
            "no price for the pro tier",
        ),
        (
            Some(&b.deployer),
            bad_secret,
            StatusCode::BAD_REQUEST,
            "PATH",
        ),
        (Some(&b.deployer), bad_tier, StatusCode::BAD_REQUEST, "huge"),
        (Some(&b.deployer), bad_file, StatusCode::BAD_REQUEST, ""),
        (
            Some(&b.deployer),
            unknown_host,
            StatusCode::NOT_FOUND,
            "host",
        ),
        (
            Some(&b.deployer),
            json!({ "hostId": b.host }),
            StatusCode::BAD_REQUEST,
            "invalid JSON body",
        ),
    ];
    for (token, body, expected, needle) in cases {
        let (status, reply) = b
            .server
            .call("POST", "/api/v1/checkout", token, Some(body))
            .await;
        assert_eq!(status, expected, "{reply}");
        assert!(message(&reply).contains(needle), "{needle}: {reply}");
    }

    // A tier the host stopped offering, and a host with no free slot.
    let (status, body) = b
        .server
        .call(
            "PUT",
            &format!("/api/v1/hosts/{}/settings", b.host),
            Some(&b.owner),
            Some(json!({ "offeredTiers": ["lite"], "prices": { "lite": 500 }, "maxAgents": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, reply) = b
        .server
        .call(
            "POST",
            "/api/v1/checkout",
            Some(&b.deployer),
            Some(agent_request(&b.host, "standard")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert!(message(&reply).contains("does not offer"), "{reply}");
    assert!(b.stripe.received_requests().await.unwrap().is_empty());

    b.paid_agent("sub_full").await;
    let (status, reply) = b
        .server
        .call(
            "POST",
            "/api/v1/checkout",
            Some(&b.deployer),
            Some(agent_request(&b.host, "lite")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert!(message(&reply).contains("no free slot"), "{reply}");
    assert_eq!(b.stripe.received_requests().await.unwrap().len(), 1);
}

// ---- webhook ----

#[tokio::test]
async fn completed_checkout_creates_the_subscription_agent_and_deploy() {
    let b = billing().await;
    let agent = b.paid_agent("sub_1").await;
    let agents = b.agents().await;
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["id"], agent.as_str());
    assert_eq!(agents[0]["state"], "pending_deploy");
    assert_eq!(agents[0]["name"], "paid agent");
    let commands = b.commands(&agent).await;
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["type"], "deploy");
    assert_eq!(commands[0]["status"], "pending");

    let subs = b.subscriptions(&b.deployer).await;
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["id"], "sub_1");
    assert_eq!(subs[0]["customer"], "cus_test_1");
    assert_eq!(subs[0]["status"], "active");
    assert_eq!(subs[0]["tier"], "lite");
    assert_eq!(subs[0]["priceCents"], 500);
    assert_eq!(subs[0]["host"], b.host.as_str());
    // Someone else's subscriptions are not shown.
    let other = b.server.sign_up("other@example.com", &["deployer"]).await;
    assert!(b.subscriptions(&other).await.is_empty());
    let (status, _) = b
        .server
        .call("GET", "/api/v1/subscriptions", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn replayed_event_changes_nothing() {
    let b = billing().await;
    stripe_answers(&b.stripe, 200, session_ok()).await;
    let checkout = b.checkout("lite").await;
    let event = completed("evt_once", &checkout, "sub_1");
    let (status, body) = b.deliver(&event).await;
    assert_eq!(
        (status, body["result"].clone()),
        (StatusCode::OK, json!("applied"))
    );
    let (status, body) = b.deliver(&event).await;
    assert_eq!(
        (status, body["result"].clone()),
        (StatusCode::OK, json!("replayed"))
    );
    assert_eq!(b.agents().await.len(), 1);
    assert_eq!(b.subscriptions(&b.deployer).await.len(), 1);
}

#[tokio::test]
async fn completed_checkout_without_a_free_slot_needs_a_refund() {
    let b = billing().await;
    stripe_answers(&b.stripe, 200, session_ok()).await;
    let checkout = b.checkout("lite").await;
    // The host owner pauses new agents before the payment arrives.
    let (status, body) = b
        .server
        .call(
            "PUT",
            &format!("/api/v1/hosts/{}/settings", b.host),
            Some(&b.owner),
            Some(json!({ "offeredTiers": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = b.deliver(&completed("evt_late", &checkout, "sub_1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(b.agents().await.is_empty());
    let subs = b.subscriptions(&b.deployer).await;
    assert_eq!(subs[0]["status"], "needs_refund");
}

#[tokio::test]
async fn deleted_subscription_undeploys_the_agent() {
    let b = billing().await;
    let agent = b.paid_agent("sub_1").await;
    let (status, body) = b
        .deliver(&subscription_event(
            "evt_del",
            "customer.subscription.deleted",
            "sub_1",
            "canceled",
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "applied");
    assert_eq!(b.agents().await[0]["state"], "undeploying");
    let commands = b.commands(&agent).await;
    assert_eq!(commands[0]["type"], "undeploy");
    assert_eq!(commands[0]["status"], "pending");
    assert_eq!(b.subscriptions(&b.deployer).await[0]["status"], "canceled");
}

#[tokio::test]
async fn updated_subscription_follows_stripe_status() {
    let b = billing().await;
    let agent = b.paid_agent("sub_1").await;
    let (status, _) = b
        .deliver(&subscription_event(
            "evt_u1",
            "customer.subscription.updated",
            "sub_1",
            "past_due",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b.subscriptions(&b.deployer).await[0]["status"], "past_due");
    assert_eq!(b.agents().await[0]["state"], "pending_deploy");

    let (status, _) = b
        .deliver(&subscription_event(
            "evt_u2",
            "customer.subscription.updated",
            "sub_1",
            "unpaid",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b.subscriptions(&b.deployer).await[0]["status"], "canceled");
    assert_eq!(b.agents().await[0]["state"], "undeploying");
    assert_eq!(b.commands(&agent).await[0]["type"], "undeploy");
}

#[tokio::test]
async fn failed_invoice_marks_the_subscription_past_due_and_keeps_the_agent() {
    let b = billing().await;
    let agent = b.paid_agent("sub_1").await;
    let event = json!({
        "id": "evt_inv",
        "object": "event",
        "type": "invoice.payment_failed",
        "data": { "object": { "id": "in_1", "object": "invoice", "subscription": "sub_1" } }
    });
    let (status, body) = b.deliver(&event).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(b.subscriptions(&b.deployer).await[0]["status"], "past_due");
    assert_eq!(b.agents().await[0]["state"], "pending_deploy");
    assert_eq!(b.commands(&agent).await.len(), 1);
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let b = billing().await;
    let event = json!({ "id": "evt_x", "object": "event", "type": "charge.succeeded", "data": { "object": {} } });
    let (status, body) = b.deliver(&event).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "ignored");

    // A completed session that is not a Sparebox checkout is ignored too.
    let mut foreign = completed("evt_foreign", "not-a-checkout-id", "sub_9");
    let (status, body) = b.deliver(&foreign).await;
    assert_eq!(
        (status, body["result"].clone()),
        (StatusCode::OK, json!("ignored"))
    );
    foreign["id"] = json!("evt_foreign_2");
    foreign["data"]["object"]["client_reference_id"] = json!(uuid::Uuid::new_v4());
    let (status, body) = b.deliver(&foreign).await;
    assert_eq!(
        (status, body["result"].clone()),
        (StatusCode::OK, json!("ignored"))
    );
    assert!(b.agents().await.is_empty());
}

#[tokio::test]
async fn bad_signatures_are_refused_and_change_nothing() {
    let b = billing().await;
    stripe_answers(&b.stripe, 200, session_ok()).await;
    let checkout = b.checkout("lite").await;
    let payload = completed("evt_sig", &checkout, "sub_1").to_string();
    let now = b.now().timestamp();
    let cases = [
        (None, "missing Stripe-Signature header"),
        (Some(sign("whsec_wrong", now, &payload)), "no v1 signature"),
        (Some(sign(WEBHOOK_SECRET, now - 301, &payload)), "tolerance"),
        (Some(sign(WEBHOOK_SECRET, now + 301, &payload)), "tolerance"),
        (
            Some(format!(
                "v1={}",
                hex::encode(mac(WEBHOOK_SECRET, now, &payload))
            )),
            "no t= timestamp",
        ),
        (Some(format!("t={now}")), "no v1= signature"),
        (Some(format!("t={now},v1=zz")), "no v1 signature"),
        (
            Some(sign(
                WEBHOOK_SECRET,
                now,
                &payload.replace("sub_1", "sub_2"),
            )),
            "no v1 signature",
        ),
    ];
    for (signature, needle) in cases {
        let (status, body) = b.post_webhook(signature, &payload).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(message(&body).contains(needle), "{needle}: {body}");
    }
    assert!(b.agents().await.is_empty());
    assert!(b.subscriptions(&b.deployer).await.is_empty());

    // The same event, correctly signed, still applies: the refusals recorded nothing.
    let (status, body) = b
        .post_webhook(Some(sign(WEBHOOK_SECRET, now, &payload)), &payload)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "applied");
}

#[tokio::test]
async fn one_matching_signature_among_several_is_enough() {
    let b = billing().await;
    stripe_answers(&b.stripe, 200, session_ok()).await;
    let checkout = b.checkout("lite").await;
    let payload = completed("evt_multi", &checkout, "sub_1").to_string();
    // The clock moved on, still within the tolerance.
    b.clock.advance(std::time::Duration::from_secs(200));
    let t = b.now().timestamp() - 250;
    let wrong = hex::encode(mac("whsec_old_secret", t, &payload));
    let right = hex::encode(mac(WEBHOOK_SECRET, t, &payload));
    let header = format!("t={t},v1={wrong},v0=ignored,v1={right}");
    let (status, body) = b.post_webhook(Some(header), &payload).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(b.agents().await.len(), 1);
}

#[tokio::test]
async fn malformed_or_oversized_bodies_are_refused() {
    let b = billing().await;
    let now = b.now().timestamp();
    for payload in ["{not json", "{\"id\":\"evt_1\"}", "[]"] {
        let (status, body) = b
            .post_webhook(Some(sign(WEBHOOK_SECRET, now, payload)), payload)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(message(&body).contains("invalid stripe event"), "{body}");
    }
    let big = format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(sparebox_server::MAX_WEBHOOK_BYTES)
    );
    let (status, body) = b
        .post_webhook(Some(sign(WEBHOOK_SECRET, now, &big)), &big)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("too large"), "{body}");
}
