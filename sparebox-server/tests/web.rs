//! The dashboard over HTTP (no browser): CSRF on every form, other people's pages, escaping,
//! upload limits, and the metrics history heartbeats record.

mod common;

use std::time::Duration;

use common::{TestServer, PASSWORD};
use reqwest::StatusCode;
use serde_json::json;
use sparebox_store::Role;

/// A signed-in browser: its session cookie and CSRF token.
struct Browser {
    session: String,
    csrf: String,
}

impl Browser {
    fn cookie(&self) -> String {
        format!(
            "sparebox_session={}; sparebox_csrf={}",
            self.session, self.csrf
        )
    }
}

/// An account that deploys and hosts, with a host that has reported and one agent on it.
struct Fixture {
    server: TestServer,
    token: String,
    browser: Browser,
    host: String,
    key: String,
    agent: String,
}

async fn fixture(agent_name: &str) -> Fixture {
    let server = TestServer::start().await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let token = server.sign_up(&email, &["deployer", "host_owner"]).await;
    let (session, csrf) = server.sign_in(&email).await;
    let (host, key) = server.host(&token, "web box").await;
    server.heartbeat(&key, json!({})).await;
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/agents",
            Some(&token),
            Some(
                json!({ "hostId": host, "tier": "standard", "name": agent_name,
                         "workspaceFiles": [{ "path": "SOUL.md", "content": "Be kind." }] }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Fixture {
        agent: body["agent"]["id"].as_str().unwrap().to_owned(),
        server,
        token,
        browser: Browser { session, csrf },
        host,
        key,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(server: &TestServer, path: &str, cookie: &str) -> (StatusCode, String) {
    let response = client()
        .get(format!("{}{path}", server.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn post_form(
    server: &TestServer,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let response = client()
        .post(format!("{}{path}", server.base))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// A multipart upload of one file with the given CSRF token.
async fn upload(
    server: &TestServer,
    agent: &str,
    cookie: &str,
    csrf: &str,
    name: &str,
    content: &[u8],
) -> (StatusCode, String) {
    let boundary = "sparebox-test-boundary";
    let mut body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         content-type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = client()
        .post(format!("{}/agents/{agent}/files/upload", server.base))
        .header("cookie", cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn command_count(f: &Fixture) -> usize {
    let (_, commands) = f
        .server
        .call(
            "GET",
            &format!("/api/v1/agents/{}/commands", f.agent),
            Some(&f.token),
            None,
        )
        .await;
    commands.as_array().unwrap().len()
}

#[tokio::test]
async fn every_signed_in_form_refuses_a_missing_or_wrong_csrf_token() {
    let f = fixture("csrf target").await;
    let cookie = f.browser.cookie();
    let agent = &f.agent;
    let host = &f.host;
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/signout".into(), vec![]),
        ("/my/hosts".into(), vec![("name", "forged host")]),
        (
            format!("/my/hosts/{host}/settings"),
            vec![("offer_lite", "on"), ("region", "forged")],
        ),
        (
            "/deploy".into(),
            vec![
                ("host", host.as_str()),
                ("tier", "lite"),
                ("name", "forged agent"),
                ("model", "openai/gpt-5"),
            ],
        ),
        (format!("/agents/{agent}/commands"), vec![("type", "stop")]),
        (format!("/agents/{agent}/retry"), vec![]),
        (
            format!("/agents/{agent}/config/quick"),
            vec![("system_prompt", "forged"), ("model", "openai/gpt-5")],
        ),
        (
            format!("/agents/{agent}/config/advanced"),
            vec![("config", "{ agents: {} }")],
        ),
        (
            format!("/agents/{agent}/files"),
            vec![("path", "forged.md"), ("content", "x")],
        ),
        (
            format!("/agents/{agent}/files/delete"),
            vec![("path", "SOUL.md")],
        ),
    ];
    let before = command_count(&f).await;
    for (path, fields) in &forms {
        for csrf in [None, Some("0".repeat(64))] {
            let mut fields = fields.clone();
            if let Some(csrf) = &csrf {
                fields.push(("csrf", csrf));
            }
            let (status, body) = post_form(&f.server, path, &cookie, &fields).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{path} with {csrf:?}: {body}"
            );
            assert!(body.contains("security token"), "{path}: {body}");
        }
    }
    let (status, body) = upload(&f.server, agent, &cookie, "wrong", "forged.md", b"x").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Nothing changed: no command, no host, same files, same settings, still signed in.
    assert_eq!(command_count(&f).await, before);
    let (_, hosts) = f
        .server
        .call("GET", "/api/v1/hosts/mine", Some(&f.token), None)
        .await;
    assert_eq!(hosts.as_array().unwrap().len(), 1);
    assert_eq!(hosts[0]["region"], serde_json::Value::Null);
    let (_, view) = f
        .server
        .call(
            "GET",
            &format!("/api/v1/agents/{agent}"),
            Some(&f.token),
            None,
        )
        .await;
    assert_eq!(
        view["workspaceFiles"],
        json!([{ "path": "SOUL.md", "size": 8 }])
    );
    let (status, _) = get(&f.server, "/", &cookie).await;
    assert_eq!(status, StatusCode::OK);

    // The right token works.
    let (status, body) = post_form(
        &f.server,
        &format!("/agents/{agent}/commands"),
        &cookie,
        &[("type", "stop"), ("csrf", &f.browser.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(command_count(&f).await, before + 1);
}

#[tokio::test]
async fn sign_up_and_sign_in_forms_need_the_cookie_token() {
    let server = TestServer::start().await;
    let email = "browser@example.com";
    let fields = [
        ("email", email),
        ("password", PASSWORD),
        ("deployer", "on"),
        ("csrf", "abc"),
    ];
    let (status, body) = post_form(&server, "/signup", "", &fields).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = post_form(&server, "/signup", "sparebox_csrf=other", &fields).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post_form(
        &server,
        "/signin",
        "",
        &[("email", email), ("password", PASSWORD), ("csrf", "abc")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({ "email": email, "password": PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no account was created");

    // The token the page set in the cookie and the form works.
    let response = client()
        .get(format!("{}/signup", server.base))
        .send()
        .await
        .unwrap();
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let token = set_cookie
        .strip_prefix("sparebox_csrf=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let page = response.text().await.unwrap();
    assert!(page.contains(&format!("value=\"{token}\"")));
    let cookie = format!("sparebox_csrf={token}");
    let fields = [
        ("email", email),
        ("password", PASSWORD),
        ("deployer", "on"),
        ("csrf", token.as_str()),
    ];
    let response = client()
        .post(format!("{}/signup", server.base))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookies: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(cookies.iter().any(|c| c.starts_with("sparebox_session=")));
    assert!(cookies.iter().any(|c| c.starts_with("sparebox_csrf=")));
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in() {
    let server = TestServer::start().await;
    for path in ["/", "/hosts", "/deploy", "/my/hosts"] {
        let (status, _) = get(&server, path, "").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
    }
    let (status, _) = get(&server, "/hosts", "sparebox_session=forged").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn another_users_agent_and_host_pages_are_not_found() {
    let f = fixture("private agent").await;
    let intruder = "intruder@example.com";
    f.server
        .sign_up(intruder, &["deployer", "host_owner"])
        .await;
    let (session, csrf) = f.server.sign_in(intruder).await;
    let cookie = Browser {
        session,
        csrf: csrf.clone(),
    }
    .cookie();
    let agent = &f.agent;
    for path in [
        format!("/agents/{agent}"),
        format!("/agents/{agent}/live"),
        format!("/agents/{agent}/config"),
        format!("/agents/{agent}/config?tab=files&path=SOUL.md"),
        format!("/my/hosts/{}", f.host),
    ] {
        let (status, body) = get(&f.server, &path, &cookie).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(
            !body.contains("private agent") && !body.contains("Be kind."),
            "{path}"
        );
    }
    let (status, _) = post_form(
        &f.server,
        &format!("/agents/{agent}/commands"),
        &cookie,
        &[("type", "stop"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, home) = get(&f.server, "/", &cookie).await;
    assert!(!home.contains("private agent"));
}

#[tokio::test]
async fn hostile_agent_names_are_escaped() {
    let hostile = "<script>alert('x')</script>";
    let f = fixture(hostile).await;
    let cookie = f.browser.cookie();
    let (_, host_settings) = f
        .server
        .call(
            "PUT",
            &format!("/api/v1/hosts/{}/settings", f.host),
            Some(&f.token),
            Some(json!({ "region": "<img src=x onerror=alert(1)>" })),
        )
        .await;
    assert_eq!(host_settings["region"], "<img src=x onerror=alert(1)>");
    for path in [
        "/".to_owned(),
        format!("/agents/{}", f.agent),
        format!("/agents/{}/live", f.agent),
        format!("/agents/{}/config", f.agent),
        "/my/hosts".to_owned(),
        "/hosts".to_owned(),
    ] {
        let (status, body) = get(&f.server, &path, &cookie).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.contains("<script>alert"), "{path} is not escaped");
        assert!(!body.contains("<img src=x"), "{path} is not escaped");
    }
    let (_, page) = get(&f.server, &format!("/agents/{}", f.agent), &cookie).await;
    assert!(page.contains("&lt;script&gt;alert('x')&lt;/script&gt;"));
    let (_, hosts) = get(&f.server, "/hosts", &cookie).await;
    assert!(hosts.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[tokio::test]
async fn oversized_upload_is_refused_with_a_clear_message() {
    let f = fixture("uploader").await;
    let cookie = f.browser.cookie();
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let (status, body) = upload(
        &f.server,
        &f.agent,
        &cookie,
        &f.browser.csrf,
        "big.md",
        &big,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body.contains("upload rejected: big.md is larger than 10.0 MB"),
        "{}",
        &body[..body.len().min(2000)]
    );
    let (status, body) = upload(
        &f.server,
        &f.agent,
        &cookie,
        &f.browser.csrf,
        "binary.bin",
        &[0xff, 0xfe, 0x00],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("only UTF-8 text files can be uploaded"));

    let (status, _) = upload(
        &f.server,
        &f.agent,
        &cookie,
        &f.browser.csrf,
        "notes.md",
        b"# Notes\n",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, view) = f
        .server
        .call(
            "GET",
            &format!("/api/v1/agents/{}", f.agent),
            Some(&f.token),
            None,
        )
        .await;
    assert_eq!(
        view["workspaceFiles"],
        json!([{ "path": "SOUL.md", "size": 8 }, { "path": "notes.md", "size": 8 }])
    );
}

#[tokio::test]
async fn invalid_openclaw_json_is_shown_next_to_the_text() {
    let f = fixture("configured").await;
    let cookie = f.browser.cookie();
    let (status, body) = post_form(
        &f.server,
        &format!("/agents/{}/config/advanced", f.agent),
        &cookie,
        &[
            ("config", "{ gateway: { port: 1 } }"),
            ("csrf", &f.browser.csrf),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("id=\"config-error\""), "{body}");
    assert!(body.contains("gateway.port"), "{body}");
    assert!(
        body.contains("{ gateway: { port: 1 } }"),
        "the text is kept"
    );
}

#[tokio::test]
async fn heartbeats_record_one_metrics_sample_a_minute() {
    let f = fixture("measured").await;
    let report = |cpu: f64| {
        json!({ "agentStatuses": [{ "agentId": f.agent, "status": "running", "cpuPercent": cpu,
                 "ramUsageMb": 700, "ramLimitMb": 2048, "uptimeSeconds": 5, "restartCount": 0 }] })
    };
    f.server.heartbeat(&f.key, report(12.5)).await;
    f.server.heartbeat(&f.key, report(40.0)).await;
    let account = f
        .server
        .platform
        .store()
        .account_by_token_hash(&sha256(&f.token))
        .await
        .unwrap()
        .unwrap();
    assert!(account.has_role(Role::Deployer));
    let samples = f
        .server
        .platform
        .agent_samples(
            &account,
            f.agent.parse().unwrap(),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0].cpu_percent, Some(12.5));
    assert_eq!(samples[0].ram_usage_mb, Some(700));
}

fn sha256(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

#[tokio::test]
async fn failed_deploy_shows_its_error_and_a_retry_button() {
    let f = fixture("fragile").await;
    let cookie = f.browser.cookie();
    let (_, commands) = f
        .server
        .call(
            "GET",
            &format!("/api/v1/agents/{}/commands", f.agent),
            Some(&f.token),
            None,
        )
        .await;
    let deploy = commands[0]["id"].as_str().unwrap().to_owned();
    f.server.heartbeat(&f.key, json!({})).await;
    f.server
        .heartbeat(
            &f.key,
            json!({ "commandAcks": [{ "id": deploy, "status": "failed", "error": "image pull failed: <denied>" }] }),
        )
        .await;

    let (status, page) = get(&f.server, &format!("/agents/{}/live", f.agent), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Failed"), "{page}");
    assert!(page.contains("image pull failed: &lt;denied&gt;"), "{page}");
    assert!(page.contains("Retry deploy"));

    let (status, _) = post_form(
        &f.server,
        &format!("/agents/{}/retry", f.agent),
        &cookie,
        &[("csrf", &f.browser.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = get(&f.server, &format!("/agents/{}/live", f.agent), &cookie).await;
    assert!(page.contains("Waiting for host…"), "{page}");
    assert!(!page.contains("Retry deploy"));
}

#[tokio::test]
async fn wizard_sends_the_deployer_to_stripe_in_billing_mode() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cs_test_web", "object": "checkout.session",
            "url": "https://checkout.stripe.test/c/cs_test_web"
        })))
        .mount(&stripe)
        .await;
    let mut config = sparebox_server::StripeConfig::new(
        sparebox_core::Secret::new("sk_test_web"),
        sparebox_core::Secret::new("whsec_test_web"),
        "https://sparebox.test/paid",
        "https://sparebox.test/canceled",
    );
    config.api_base = stripe.uri();
    let server = TestServer::start_with(sparebox_server::PlatformConfig {
        stripe: Some(config),
        ..sparebox_server::PlatformConfig::default()
    })
    .await;
    let token = server
        .sign_up("payer@example.com", &["deployer", "host_owner"])
        .await;
    let (session, csrf) = server.sign_in("payer@example.com").await;
    let cookie = Browser {
        session,
        csrf: csrf.clone(),
    }
    .cookie();
    let (host, key) = server.host(&token, "paid box").await;
    server.heartbeat(&key, json!({})).await;
    server
        .call(
            "PUT",
            &format!("/api/v1/hosts/{host}/settings"),
            Some(&token),
            Some(json!({ "prices": { "lite": 450 } })),
        )
        .await;

    let (_, setup) = get(&server, &format!("/deploy?host={host}&tier=lite"), &cookie).await;
    assert!(
        setup.contains("You pay $4.50/month through Stripe"),
        "{setup}"
    );
    let response = client()
        .post(format!("{}/deploy", server.base))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", csrf.as_str()),
                ("host", host.as_str()),
                ("tier", "lite"),
                ("name", "paid agent"),
                ("model", "anthropic/claude-sonnet-4-5"),
                ("api_key", "sk-ant-web-0000"),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "https://checkout.stripe.test/c/cs_test_web"
    );
    let (_, agents) = server
        .call("GET", "/api/v1/agents", Some(&token), None)
        .await;
    assert_eq!(agents, json!([]), "nothing is created before payment");
    let requests = stripe.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&requests[0].body).into_owned();
    assert!(
        !body.contains("sk-ant-web-0000"),
        "the key never reaches Stripe"
    );
}
