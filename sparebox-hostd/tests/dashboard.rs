//! The dashboard in a real headless Chromium (driven through chromedriver), against a real
//! server, the real `sparebox-hostd` binary enrolled with the key the page showed, and the
//! real Docker engine: sign up, register a host, enroll, deploy through the wizard, watch
//! the agent run, stop it, edit a workspace file, undeploy it. Saves a screenshot of each
//! page under `$CARGO_TARGET_DIR/screenshots` (or `target/screenshots`).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/ensure-chromium.sh`),
//! a running Docker engine and the local agent image (`scripts/build-agent-image.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{port_range_start, Cleanup, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A child process killed when dropped, also when the test panics.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts chromedriver and opens a headless Chromium session with a fresh profile.
async fn browser(profile: &Path) -> (Killed, Client) {
    let port = free_port();
    let driver = Killed(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/chromedriver (scripts/ensure-chromium.sh installs it)"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let options = json!({
        "binary": "/usr/bin/chromium",
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--window-size=1200,900",
            format!("--user-data-dir={}", profile.display()),
        ]
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session");
    (driver, client)
}

/// Where screenshots go.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

async fn fill(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn click_button(client: &Client, label: &str) {
    let xpath = format!("//button[normalize-space()='{label}']");
    client
        .find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|e| panic!("button {label}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The text of `css`, or empty when it is not on the page.
async fn text_of(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until `css` shows `wanted` (the agent page refreshes itself), failing with the
/// page's text after `limit`.
async fn wait_text(client: &Client, css: &str, wanted: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let text = text_of(client, css).await;
        if text.contains(wanted) {
            return;
        }
        if Instant::now() > deadline {
            let page = text_of(client, "main").await;
            panic!("{css} never showed {wanted:?}; last {text:?}; page: {page}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn hostd(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sparebox-hostd"));
    command.args(args).current_dir("/");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_takes_an_agent_from_sign_up_to_undeploy() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cleanup = Cleanup::default();
    let server = TestServer::start(dir.path()).await;
    let base = server.base();
    let (_driver, client) = browser(&dir.path().join("chromium")).await;

    // Sign up as a deployer and host owner.
    client.goto(&format!("{base}/signup")).await.unwrap();
    fill(&client, "#name", "Ada").await;
    fill(&client, "#email", "ada@example.com").await;
    fill(&client, "#password", "correct horse battery staple").await;
    click(&client, "input[name=host_owner]").await;
    shot(&client, "01-sign-up").await;
    click_button(&client, "Sign up").await;
    wait_text(&client, "h1", "Dashboard", Duration::from_secs(20)).await;

    // Register a host; the key is shown once, with the commands.
    client.goto(&format!("{base}/my/hosts")).await.unwrap();
    fill(&client, "#host-name", "spare laptop").await;
    click_button(&client, "Register").await;
    wait_text(&client, "h1", "Host registered", Duration::from_secs(10)).await;
    let key = text_of(&client, "#host-key").await;
    assert!(key.starts_with("sbx_host_"), "{key}");
    let commands = text_of(&client, "#install-commands").await;
    assert!(commands.contains(&format!("enroll --server {base} --key {key}")));
    shot(&client, "02-host-registered").await;

    // Enroll the real daemon with that key and run it.
    // A host's free slots depend on its free disk; the daemon's data directory goes on a
    // tmpfs when there is one, so a nearly full build disk does not leave the host with none.
    let data_dir = match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let config = dir.path().join("hostd.toml");
    let data = data_dir.path().join("hostd-data");
    let config_arg = config.to_str().unwrap();
    let data_arg = data.to_str().unwrap();
    let enrolled = hostd(&[
        "enroll",
        "--server",
        &base,
        "--key",
        &key,
        "--config",
        config_arg,
        "--data-dir",
        data_arg,
        "--runtime",
        "docker",
    ])
    .output()
    .unwrap();
    assert!(enrolled.status.success(), "enroll: {enrolled:?}");
    let ports = port_range_start().to_string();
    let _daemon = Killed(
        hostd(&["run", "--config", config_arg, "--port-range-start", &ports])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The host comes online and offers slots.
    client.goto(&format!("{base}/my/hosts")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text_of(&client, "main").await.contains("Online") {
        assert!(Instant::now() < deadline, "host never came online");
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.refresh().await.unwrap();
    }
    shot(&client, "03-my-hosts").await;

    // Price the tiers and name the region in the host's settings.
    client
        .find(Locator::XPath("//a[normalize-space()='Settings']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(&client, "#price_lite", "4.50").await;
    fill(&client, "#price_standard", "9").await;
    fill(&client, "#region", "eu-west").await;
    click_button(&client, "Save settings").await;
    wait_text(&client, "main", "$4.50/month", Duration::from_secs(10)).await;
    shot(&client, "04-host-settings").await;

    // Browse with filters: Docker hosts match, Podman ones do not.
    client
        .goto(&format!("{base}/hosts?isolation=docker&tier=lite"))
        .await
        .unwrap();
    let listing = text_of(&client, "main").await;
    assert!(
        listing.contains("Docker Isolated") && listing.contains("eu-west"),
        "{listing}"
    );
    assert!(listing.contains("$9.00/month"), "{listing}");
    shot(&client, "05-browse-hosts").await;
    client
        .goto(&format!("{base}/hosts?isolation=podman"))
        .await
        .unwrap();
    assert!(text_of(&client, "main").await.contains("No host matches"));

    // The wizard: host, tier, quick setup, deploy (free mode).
    client.goto(&format!("{base}/deploy")).await.unwrap();
    client
        .find(Locator::XPath("//a[normalize-space()='Choose']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&client, "h1", "choose a tier", Duration::from_secs(10)).await;
    assert!(text_of(&client, "main")
        .await
        .contains("idles around 700 MiB"));
    click(&client, "input[value=lite]").await;
    shot(&client, "06-deploy-tier").await;
    click_button(&client, "Next: quick setup").await;
    wait_text(&client, "h1", "quick setup", Duration::from_secs(10)).await;
    fill(&client, "#name", "browser agent").await;
    fill(&client, "#system_prompt", "You answer briefly.").await;
    fill(&client, "#api_key", "sk-ant-browser-test-key").await;
    shot(&client, "07-deploy-setup").await;
    click_button(&client, "Deploy").await;

    // Waiting for host… → Deploying… → Running.
    wait_text(&client, "h1", "browser agent", Duration::from_secs(10)).await;
    let agent = client.current_url().await.unwrap().path()["/agents/".len()..].to_owned();
    cleanup.agent(&agent);
    wait_text(&client, "#agent-state", "Running", Duration::from_secs(120)).await;
    wait_text(&client, "#ram", "MiB", Duration::from_secs(30)).await;
    shot(&client, "08-agent-running").await;

    // On a phone-sized window the page fits its width.
    client.set_window_size(390, 844).await.unwrap();
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "wider than the phone by {overflow}"
    );
    shot(&client, "08-agent-running-phone").await;
    client.set_window_size(1200, 900).await.unwrap();

    // Stop it; the command's status shows until the host confirms.
    click_button(&client, "Stop").await;
    wait_text(&client, "#agent-state", "Stopped", Duration::from_secs(60)).await;
    wait_text(&client, "#commands", "stop: done", Duration::from_secs(30)).await;
    shot(&client, "09-agent-stopped").await;

    // Edit a workspace file; the update reaches the host.
    let files = format!("{base}/agents/{agent}/config?tab=files&path=SOUL.md");
    client.goto(&files).await.unwrap();
    assert_eq!(
        client
            .find(Locator::Css("#content"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("You answer briefly.")
    );
    fill(&client, "#content", "You answer briefly and kindly.").await;
    click_button(&client, "Save file").await;
    wait_text(&client, "#file-tree", "SOUL.md", Duration::from_secs(10)).await;
    shot(&client, "10-config-files").await;
    client
        .goto(&format!("{base}/agents/{agent}/config?tab=quick"))
        .await
        .unwrap();
    let prompt = client.find(Locator::Css("#system_prompt")).await.unwrap();
    assert_eq!(
        prompt.prop("value").await.unwrap().as_deref(),
        Some("You answer briefly and kindly.")
    );
    shot(&client, "11-config-quick").await;
    client
        .goto(&format!("{base}/agents/{agent}/config?tab=advanced"))
        .await
        .unwrap();
    shot(&client, "12-config-advanced").await;
    client
        .goto(&format!("{base}/agents/{agent}"))
        .await
        .unwrap();
    wait_text(
        &client,
        "#commands",
        "update_config: done",
        Duration::from_secs(60),
    )
    .await;

    // Undeploy: the container goes away.
    click_button(&client, "Undeploy").await;
    client.accept_alert().await.unwrap();
    wait_text(
        &client,
        "#agent-state",
        "Undeployed",
        Duration::from_secs(60),
    )
    .await;
    shot(&client, "13-agent-undeployed").await;
    assert!(common::containers_of(&agent).is_empty());
    client.goto(&format!("{base}/")).await.unwrap();
    shot(&client, "14-dashboard").await;

    client.close().await.unwrap();
    eprintln!(
        "dashboard browser test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
