use serde_json::json;

use super::*;

const FAKE_TOKEN: &str = "tg-FAKE-123456:abcdefghijklmnop";

fn parse(text: &str) -> Result<DeployerConfig, ConfigError> {
    DeployerConfig::parse(text)
}

#[test]
fn json5_config_with_comments_and_trailing_commas_is_accepted() {
    let config = parse(
        "// my agent\n{\n  agents: { defaults: { workspace: '/home/node/.openclaw/workspace' } },\n  gateway: { reload: { mode: 'hybrid' }, },\n}\n",
    );
    assert!(config.is_ok(), "{config:?}");
}

#[test]
fn empty_object_is_accepted() {
    assert_eq!(parse("{}").unwrap().as_map().len(), 0);
}

#[test]
fn syntax_error_reports_line_and_column() {
    let err = parse("{\n  gateway: {\n    reload: ]\n}").unwrap_err();
    let ConfigError::Syntax { line, column, .. } = &err else {
        panic!("expected a syntax error, got {err}");
    };
    assert_eq!((*line, *column), (Some(3), Some(13)));
    assert!(err
        .to_string()
        .starts_with("openclaw.json is not valid json5 at line 3 column 13: "));
}

#[test]
fn each_platform_owned_gateway_key_is_refused() {
    for (key, value) in [
        ("mode", "'remote'"),
        ("bind", "'loopback'"),
        ("port", "8080"),
        ("auth", "{ mode: 'none' }"),
        ("auth", "{ token: 'x' }"),
        ("auth", "{}"),
    ] {
        let err = parse(&format!("{{ gateway: {{ {key}: {value} }} }}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("openclaw.json: `gateway.{key}` is owned by the platform and cannot be set by a deployer"),
        );
    }
}

#[test]
fn all_platform_owned_keys_are_named_at_once() {
    let err = parse("{ gateway: { port: 1, bind: 'lan' } }").unwrap_err();
    assert_eq!(
        err,
        ConfigError::PlatformOwned {
            keys: vec!["gateway.bind".to_owned(), "gateway.port".to_owned()]
        }
    );
}

#[test]
fn environment_overrides_of_platform_variables_are_refused() {
    for name in [
        "OPENCLAW_GATEWAY_TOKEN",
        "openclaw_state_dir",
        "NODE_OPTIONS",
    ] {
        let err = parse(&format!("{{ env: {{ vars: {{ '{name}': 'x' }} }} }}")).unwrap_err();
        assert!(
            matches!(err, ConfigError::PlatformOwned { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    assert!(parse("{ env: { vars: { MY_SETTING: 'x' } } }").is_ok());
}

#[test]
fn unknown_top_level_key_is_refused_by_name() {
    let err = parse("{ gateway: {}, frobnicate: true }").unwrap_err();
    assert_eq!(
        err.to_string(),
        "openclaw.json: unknown top-level key \"frobnicate\" (OpenClaw 2026.9.6 does not know it)"
    );
}

#[test]
fn top_level_must_be_an_object() {
    for text in ["[]", "1", "'x'", "null"] {
        assert_eq!(parse(text).unwrap_err(), ConfigError::NotAnObject);
    }
}

#[test]
fn oversized_and_deeply_nested_configs_are_refused_before_parsing() {
    let big = format!("{{ meta: {{}} }}{}", " ".repeat(MAX_CONFIG_BYTES));
    assert!(matches!(parse(&big), Err(ConfigError::TooLarge { .. })));
    let deep = format!("{{ a: {}{} }}", "[".repeat(200_000), "]".repeat(200_000));
    assert!(matches!(parse(&deep), Err(ConfigError::TooDeep { .. })));
}

#[test]
fn merged_config_carries_the_platform_gateway_settings() {
    let config = parse("{ gateway: { reload: { mode: 'off' } } }").unwrap();
    let merged = config.with_platform_keys();
    assert_eq!(
        merged["gateway"],
        json!({
            "reload": { "mode": "off" },
            "mode": "local",
            "bind": "lan",
            "port": 18789,
            "auth": { "mode": "token" },
        })
    );
    assert!(parse("{}").unwrap().with_platform_keys()["gateway"]["port"] == 18789);
}

#[test]
fn merged_config_still_passes_every_check_except_platform_ownership() {
    let merged = parse("{}").unwrap().with_platform_keys();
    let Value::Object(map) = merged else {
        panic!("merged config is an object");
    };
    check_top_level(&map).unwrap();
    #[cfg(feature = "schema")]
    schema::check(&map).unwrap();
}

#[test]
fn errors_never_repeat_the_deployers_values() {
    let texts = [
        format!("{{ gateway: {{ auth: {{ token: '{FAKE_TOKEN}' }} }} }}"),
        format!("{{ channels: {{ telegram: {{ botToken: 42, enabled: '{FAKE_TOKEN}' }} }} }}"),
        format!("{{ gateway: {{ reload: {{ mode: '{FAKE_TOKEN}' }} }} }}"),
        format!("{{ gateway: '{FAKE_TOKEN}' }}"),
        format!("{{ env: {{ vars: {{ OPENCLAW_X: '{FAKE_TOKEN}' }} }} }}"),
        format!("{{ meta: {{}}, x: '{FAKE_TOKEN}' @ }}"),
    ];
    for text in texts {
        let err = parse(&text).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(FAKE_TOKEN), "{shown}");
    }
}

#[cfg(feature = "schema")]
mod against_the_schema {
    use super::*;

    #[test]
    fn embedded_schema_parses_and_lists_the_known_top_level_keys() {
        let schema: Value = serde_json::from_str(schema::SCHEMA_JSON).unwrap();
        let keys: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = TOP_LEVEL_KEYS.to_vec();
        let mut actual = keys.clone();
        expected.sort_unstable();
        actual.sort_unstable();
        assert_eq!(actual, expected);
        assert_eq!(schema["additionalProperties"], json!(false));
    }

    #[test]
    fn wrong_types_are_reported_with_their_path() {
        let err = parse("{ gateway: { reload: { mode: 3 } } }").unwrap_err();
        let ConfigError::Schema(violations) = &err else {
            panic!("expected schema violations, got {err}");
        };
        assert_eq!(violations[0].path, "gateway.reload.mode");
        assert!(err.to_string().contains("gateway.reload.mode"), "{err}");
    }

    #[test]
    fn unknown_nested_keys_are_reported() {
        let err = parse("{ gateway: { reloaded: true } }").unwrap_err();
        assert_eq!(
            err.to_string(),
            "openclaw.json does not match the OpenClaw 2026.9.6 schema: gateway: unknown key \"reloaded\""
        );
    }

    #[test]
    fn references_inside_embedded_plugin_schemas_resolve() {
        let config =
            "{ plugins: { entries: { webhooks: { config: { routes: { a: { secret: 7 } } } } } } }";
        let err = parse(config).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("cannot be resolved"), "{text}");
        assert!(
            text.contains("plugins.entries.webhooks.config.routes.a.secret"),
            "{text}"
        );
    }

    #[test]
    fn a_realistic_config_passes() {
        let config = r#"{
            agents: { defaults: { workspace: "/home/node/.openclaw/workspace" } },
            channels: { telegram: { enabled: true, botToken: "set-at-deploy" } },
            logging: { level: "info" },
        }"#;
        let result = parse(config);
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn self_referencing_schema_stops_instead_of_overflowing() {
        let schema = json!({ "$defs": { "x": { "$ref": "#/$defs/x" } }, "$ref": "#/$defs/x" });
        let violations = schema::violations(&schema, &json!(1));
        assert!(
            violations[0].message.contains("too deeply"),
            "{violations:?}"
        );
    }
}
