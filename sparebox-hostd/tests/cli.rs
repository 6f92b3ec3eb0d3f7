//! The binary's `enroll` and `status` subcommands against a real server. `enroll` asks the
//! Docker engine for the isolation it reports, so a running engine helps but is not needed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use common::{Api, TestServer};

async fn hostd(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sparebox-hostd"))
            .args(&args)
            .env_remove("SPAREBOX_HOST_KEY")
            .env_remove("SPAREBOX_SERVER")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_writes_a_private_config_only_for_a_key_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let api = Api::sign_up(&server.base()).await;
    let (_, key) = api.host().await;
    let config = dir.path().join("etc/hostd.toml");
    let config_arg = config.to_str().unwrap();
    let data_dir = dir.path().join("data");
    let base = server.base();

    let refused = hostd(args(&[
        "enroll",
        "--server",
        &base,
        "--key",
        "sbx_wrong",
        "--config",
        config_arg,
    ]))
    .await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused the host key"), "{stderr}");
    assert!(!config.exists(), "nothing written for a refused key");

    let enrolled = hostd(args(&[
        "enroll",
        "--server",
        &base,
        "--key",
        &key,
        "--config",
        config_arg,
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&enrolled.stdout);
    assert!(
        enrolled.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    assert!(stdout.contains("sparebox-hostd run"), "{stdout}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&base) && text.contains(&key), "{text}");
    assert!(
        !String::from_utf8_lossy(&enrolled.stderr).contains(&key),
        "key never printed"
    );

    let status = hostd(args(&["status", "--config", config_arg])).await;
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).starts_with("AGENT"));
}

#[test]
fn install_script_dry_run_prints_the_unit_and_the_enroll_command_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("sparebox-hostd.service");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/install-hostd.sh");
    let output = std::process::Command::new("bash")
        .args([
            script,
            "--dry-run",
            "--server",
            "https://sparebox.test",
            "/opt/sparebox-hostd",
        ])
        .env("SPAREBOX_UNIT_PATH", &unit)
        .env("PREFIX", dir.path())
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Restart=always"), "{stdout}");
    assert!(
        stdout.contains("sparebox-hostd run --config /etc/sparebox/hostd.toml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would run: install -D -m 0755 /opt/sparebox-hostd"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would run: systemctl enable sparebox-hostd.service"),
        "{stdout}"
    );
    assert!(
        stdout.contains("enroll --server https://sparebox.test --key <HOST KEY>"),
        "{stdout}"
    );
    let docker = std::process::Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if docker {
        assert!(
            stdout.contains("After=network-online.target docker.service"),
            "{stdout}"
        );
    }
    assert!(!unit.exists(), "a dry run writes nothing");
    assert!(!dir.path().join("bin").exists());
}
