//! Sign-up, sign-in sessions with their CSRF defence, and personal API tokens, over HTTP.

mod common;

use common::{message, Auth, TestServer, PASSWORD};
use reqwest::StatusCode;
use serde_json::json;
use sparebox_server::PlatformConfig;

#[tokio::test]
async fn sign_up_returns_the_user_and_a_first_token_shown_once() {
    let server = TestServer::start().await;
    let reply = server
        .send(
            "POST",
            "/api/v1/users",
            Auth::None,
            Some(json!({ "email": "  Alice@Example.COM ", "password": PASSWORD, "roles": ["deployer"] })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let user = &reply.body["user"];
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["name"], "alice");
    assert_eq!(user["roles"], json!(["deployer"]));
    assert!(reply.body.to_string().find("argon2").is_none());
    let token = reply.body["apiToken"].as_str().unwrap();
    assert!(token.starts_with("sbx_pat_"), "{token}");
    assert!(token.starts_with(reply.body["token"]["prefix"].as_str().unwrap()));

    let (status, me) = server
        .call("GET", "/api/v1/users/me", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&me, user);
    let (status, tokens) = server
        .call("GET", "/api/v1/tokens", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert!(
        !tokens.to_string().contains(token),
        "token values are shown once"
    );
}

#[tokio::test]
async fn bad_sign_ups_are_refused_with_clear_messages_and_store_nothing() {
    let server = TestServer::start().await;
    let cases = [
        (
            json!({ "email": "not-an-email", "password": PASSWORD, "roles": ["deployer"] }),
            "email must look like",
        ),
        (
            json!({ "email": "bob@example.com", "password": "short", "roles": ["deployer"] }),
            "password must be 10 to 1024 characters",
        ),
        (
            json!({ "email": "bob@example.com", "password": "x".repeat(1025), "roles": ["deployer"] }),
            "password must be 10 to 1024 characters",
        ),
        (
            json!({ "email": "bob@example.com", "password": PASSWORD, "roles": [] }),
            "choose at least one role",
        ),
        (
            json!({ "email": "bob@example.com", "password": PASSWORD, "roles": ["admin"] }),
            "role admin cannot be chosen",
        ),
        (
            json!({ "email": "bob@example.com", "password": PASSWORD, "roles": ["root"] }),
            "unknown role \"root\"",
        ),
        (
            json!({ "email": "bob@example.com", "password": PASSWORD, "roles": ["deployer"], "isAdmin": true }),
            "unknown field",
        ),
        (
            json!({ "email": "bob@example.com", "roles": ["deployer"] }),
            "missing field `password`",
        ),
    ];
    for (body, expected) in cases {
        let (status, reply) = server
            .call("POST", "/api/v1/users", None, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert!(message(&reply).contains(expected), "{body}: {reply}");
        assert!(
            !message(&reply).contains("short"),
            "the password is never echoed"
        );
    }

    // Nothing was stored: the email is still free, and then it is taken, in any case.
    server.sign_up("bob@example.com", &["deployer"]).await;
    let (status, reply) = server
        .call(
            "POST",
            "/api/v1/users",
            None,
            Some(json!({ "email": "BOB@example.com", "password": PASSWORD, "roles": ["host_owner"] })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(message(&reply), "an account with this email already exists");
}

#[tokio::test]
async fn sign_in_sets_an_http_only_lax_cookie_and_wrong_credentials_share_one_answer() {
    let server = TestServer::start().await;
    server.sign_up("carol@example.com", &["deployer"]).await;

    let reply = server
        .send(
            "POST",
            "/api/v1/sessions",
            Auth::None,
            Some(json!({ "email": "Carol@example.com", "password": PASSWORD })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let cookie = reply.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("sparebox_session="), "{cookie}");
    for attribute in [
        "; Path=/",
        "; HttpOnly",
        "; SameSite=Lax",
        "; Max-Age=1209600",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.body["user"]["email"], "carol@example.com");
    assert_eq!(reply.body["csrfToken"].as_str().unwrap().len(), 64);

    let wrong_password = server
        .send(
            "POST",
            "/api/v1/sessions",
            Auth::None,
            Some(json!({ "email": "carol@example.com", "password": "wrong password!" })),
        )
        .await;
    let no_such_user = server
        .send(
            "POST",
            "/api/v1/sessions",
            Auth::None,
            Some(json!({ "email": "nobody@example.com", "password": PASSWORD })),
        )
        .await;
    for reply in [&wrong_password, &no_such_user] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(message(&reply.body), "wrong email or password");
        assert!(reply.headers.get("set-cookie").is_none());
    }
    assert_eq!(wrong_password.body, no_such_user.body);

    let (status, body) = server
        .call(
            "POST",
            "/api/v1/sessions",
            None,
            Some(json!({ "email": "carol@example.com" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        message(&body).contains("missing field `password`"),
        "{body}"
    );
}

#[tokio::test]
async fn session_cookie_is_secure_when_configured() {
    let server = TestServer::start_with(PlatformConfig {
        secure_cookies: true,
        ..PlatformConfig::default()
    })
    .await;
    server.sign_up("dan@example.com", &["deployer"]).await;
    let reply = server
        .send(
            "POST",
            "/api/v1/sessions",
            Auth::None,
            Some(json!({ "email": "dan@example.com", "password": PASSWORD })),
        )
        .await;
    let cookie = reply.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn cookie_requests_that_change_state_need_the_csrf_token_and_bearer_ones_do_not() {
    let server = TestServer::start().await;
    let token = server.sign_up("erin@example.com", &["host_owner"]).await;
    let (session, csrf) = server.sign_in("erin@example.com").await;
    let body = || Some(json!({ "name": "laptop" }));

    let reply = server
        .send(
            "GET",
            "/api/v1/users/me",
            Auth::Cookie(&session, None),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "reads need no CSRF token");
    for presented in [None, Some("0000"), Some(token.as_str())] {
        let reply = server
            .send(
                "POST",
                "/api/v1/tokens",
                Auth::Cookie(&session, presented),
                body(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{presented:?}");
        assert!(
            message(&reply.body).contains("X-CSRF-Token"),
            "{}",
            reply.body
        );
    }
    let (_, tokens) = server
        .call("GET", "/api/v1/tokens", Some(&token), None)
        .await;
    assert_eq!(
        tokens.as_array().unwrap().len(),
        1,
        "refused requests changed nothing"
    );

    let reply = server
        .send(
            "POST",
            "/api/v1/tokens",
            Auth::Cookie(&session, Some(&csrf)),
            body(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = server
        .send(
            "POST",
            "/api/v1/hosts",
            Auth::Cookie(&session, Some(&csrf)),
            body(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = server
        .send("POST", "/api/v1/tokens", Auth::Bearer(&token), body())
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "bearer requests are exempt"
    );
}

#[tokio::test]
async fn sign_out_deletes_the_session_on_the_server() {
    let server = TestServer::start().await;
    let token = server.sign_up("fay@example.com", &["deployer"]).await;
    let (session, csrf) = server.sign_in("fay@example.com").await;

    let reply = server
        .send(
            "DELETE",
            "/api/v1/sessions/current",
            Auth::Cookie(&session, None),
            None,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "sign-out needs the CSRF token too"
    );
    let reply = server
        .send(
            "DELETE",
            "/api/v1/sessions/current",
            Auth::Bearer(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let reply = server
        .send("DELETE", "/api/v1/sessions/current", Auth::None, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = server
        .send(
            "GET",
            "/api/v1/users/me",
            Auth::Cookie(&session, None),
            None,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "refused sign-outs kept the session"
    );

    let reply = server
        .send(
            "DELETE",
            "/api/v1/sessions/current",
            Auth::Cookie(&session, Some(&csrf)),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let cleared = reply.headers["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("sparebox_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let reply = server
        .send(
            "GET",
            "/api/v1/users/me",
            Auth::Cookie(&session, None),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&reply.body), "session expired or signed out");
}

#[tokio::test]
async fn api_tokens_are_created_listed_and_revoked_by_their_owner_only() {
    let server = TestServer::start().await;
    let alice = server.sign_up("gail@example.com", &["deployer"]).await;
    let bob = server.sign_up("hank@example.com", &["deployer"]).await;

    let (status, created) = server
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&alice),
            Some(json!({ "name": "ci" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["token"]["name"], "ci");
    let ci = created["apiToken"].as_str().unwrap().to_owned();
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    let (status, me) = server
        .call("GET", "/api/v1/users/me", Some(&ci), None)
        .await;
    assert_eq!(
        (status, me["email"].as_str()),
        (StatusCode::OK, Some("gail@example.com"))
    );
    let (_, listed) = server
        .call("GET", "/api/v1/tokens", Some(&alice), None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let path = format!("/api/v1/tokens/{id}");
    let (status, _) = server.call("DELETE", &path, Some(&bob), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "someone else's token is not there"
    );
    let (status, _) = server
        .call("GET", "/api/v1/users/me", Some(&ci), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.call("DELETE", &path, Some(&alice), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = server
        .call("GET", "/api/v1/users/me", Some(&ci), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&body), "invalid API token");
    let (status, _) = server.call("DELETE", &path, Some(&alice), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = server
        .call("DELETE", "/api/v1/tokens/not-a-uuid", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&alice),
            Some(json!({ "name": " " })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn missing_or_malformed_credentials_are_unauthorized() {
    let server = TestServer::start().await;
    let (status, body) = server.call("GET", "/api/v1/users/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message(&body).starts_with("missing credentials"), "{body}");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/tokens",
            None,
            Some(json!({ "name": "ci" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{}", uuid::Uuid::new_v4()),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = server
        .client
        .get(format!("{}/api/v1/tokens", server.base))
        .header("authorization", "Basic YWxpY2U6cGFzcw==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let reply = server
        .send(
            "GET",
            "/api/v1/users/me",
            Auth::Cookie("forged", None),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_end_fourteen_days_after_sign_in_however_much_they_are_used() {
    use std::sync::Arc;
    use std::time::Duration;

    use sparebox_core::Secret;
    use sparebox_server::{EncryptionKey, Keyring, ManualClock, Platform, SignIn, SignUp};

    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let store = sparebox_store::sqlite::SqliteStore::open_in_memory()
        .await
        .unwrap();
    let platform = Platform::new(
        Arc::new(store),
        PlatformConfig::default(),
        Keyring::new(EncryptionKey::generate()),
    )
    .with_clock(clock.clone());
    platform
        .sign_up(SignUp {
            email: "ivy@example.com".into(),
            password: Secret::new(PASSWORD),
            roles: vec!["deployer".into()],
            name: Some("Ivy".into()),
        })
        .await
        .unwrap();
    let session = platform
        .sign_in(SignIn {
            email: "ivy@example.com".into(),
            password: Secret::new(PASSWORD),
        })
        .await
        .unwrap();
    assert!(!format!("{session:?}").contains(session.session_id.expose()));

    let day = Duration::from_secs(24 * 60 * 60);
    for _ in 0..13 {
        clock.advance(day);
        let live = platform
            .authenticate_session(session.session_id.expose())
            .await
            .unwrap();
        assert_eq!(live.account.name, "Ivy");
    }
    clock.advance(day);
    let err = platform
        .authenticate_session(session.session_id.expose())
        .await
        .unwrap_err();
    assert_eq!(err.message, "session expired or signed out");
    assert_eq!(platform.sweep().await.unwrap().sessions_deleted, 1);
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_email() {
    let server = TestServer::start().await;
    server.sign_up("jay@example.com", &["deployer"]).await;
    let attempt = |email: &'static str| {
        server.send(
            "POST",
            "/api/v1/sessions",
            Auth::None,
            Some(json!({ "email": email, "password": "wrong password!" })),
        )
    };
    for _ in 0..sparebox_server::http::SIGN_INS_PER_MINUTE {
        assert_eq!(
            attempt("jay@example.com").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = attempt(" JAY@example.com").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(
        attempt("kim@example.com").await.status,
        StatusCode::UNAUTHORIZED,
        "other emails are not affected"
    );
}

#[tokio::test]
async fn admins_list_every_agent_and_others_are_told_the_role() {
    let server = TestServer::start().await;
    let owner = server
        .sign_up("lee@example.com", &["host_owner", "deployer"])
        .await;
    let admin = server.sign_up("max@example.com", &["deployer"]).await;
    let (host, key) = server.host(&owner, "box").await;
    server.heartbeat(&key, json!({})).await;
    server.agent(&owner, &host, "lite").await;

    let (status, body) = server
        .call("GET", "/api/v1/agents?all=true", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(message(&body), "listing every agent needs the admin role");
    server
        .platform
        .grant_admin("max@example.com")
        .await
        .unwrap();
    let (status, all) = server
        .call("GET", "/api/v1/agents?all=true", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all.as_array().unwrap().len(), 1);
    let (_, own) = server
        .call("GET", "/api/v1/agents", Some(&admin), None)
        .await;
    assert_eq!(own, json!([]));
    let (status, _) = server
        .call("GET", "/api/v1/agents?all=maybe", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
