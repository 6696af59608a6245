//! The unit tests of the settings: loading, and every section's checks.

use super::*;

fn valid() -> Settings {
    let mut s = Settings::default();
    s.oidc.issuer = "https://idp.example.org/realms/r".into();
    s.oidc.client_id = "ui".into();
    s.oidc.client_secret = Secret::new("s3cret");
    s.oidc.api_audience = "my-api".into();
    s
}

#[test]
fn a_complete_configuration_is_valid() {
    assert!(valid().validate().is_ok());
}

/// `valid()` with `toml` merged in.
fn valid_with(toml: &str) -> Settings {
    match Figment::from(Serialized::defaults(valid()))
        .merge(Toml::string(toml))
        .extract::<Settings>()
    {
        Ok(s) => s,
        Err(e) => panic!("{toml}: {e}"),
    }
}

const MINTED_SPA_TOKEN: &str = "[authority]\nkey_encryption_key_file = \"kek\"\n\
    [[token_profiles]]\nname = \"spa\"\n";

#[test]
fn dpop_without_a_token_the_bridge_mints_is_refused_naming_the_fix() {
    for mode in ["optional", "required"] {
        let s = valid_with(&format!("[session]\ndpop = \"{mode}\"\n"));
        let Err(SettingsError::Invalid(problems)) = s.validate() else {
            panic!("dpop = {mode} without session.token_profile must be refused");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!("session.dpop = \"{mode}\"")),
            "{problems:?}"
        );
        assert!(
            problems[0].contains("Set session.token_profile to a [[token_profiles]] entry"),
            "{problems:?}"
        );
    }
    // A local account's own profile is not enough: SSO sign-ins would get the provider's.
    let local_only = valid_with(&format!(
        "{MINTED_SPA_TOKEN}[local_accounts]\ntoken_profile = \"spa\"\n\
         [session]\ndpop = \"required\"\n"
    ));
    assert!(local_only.validate().is_err());
    let minted = valid_with(&format!(
        "[session]\ndpop = \"required\"\ntoken_profile = \"spa\"\n{MINTED_SPA_TOKEN}"
    ));
    assert!(minted.validate().is_ok(), "{:?}", minted.validate().err());
    assert!(valid_with("[session]\ndpop = \"off\"\n").validate().is_ok());
}

#[test]
fn dpop_is_off_unless_configured_and_an_unknown_mode_is_refused() {
    assert_eq!(valid().session.dpop, DpopMode::Off);
    let unknown = Figment::from(Serialized::defaults(valid()))
        .merge(Toml::string("[session]\ndpop = \"on\"\n"))
        .extract::<Settings>();
    assert!(unknown.is_err());
    let s = valid_with(&format!(
        "[session]\ndpop = \"optional\"\ntoken_profile = \"spa\"\n\
         dpop_proof_max_age_secs = 0\n{MINTED_SPA_TOKEN}"
    ));
    let Err(SettingsError::Invalid(problems)) = s.validate() else {
        panic!("a proof age of 0 must be refused");
    };
    assert!(
        problems[0].contains("session.dpop_proof_max_age_secs"),
        "{problems:?}"
    );
}

#[test]
fn with_dpop_on_a_forwarding_upstream_gets_a_warning_and_a_minting_one_none() {
    let upstreams = "[[upstreams]]\nname = \"fwd\"\nprefix = \"/fwd/\"\nurl = \"http://127.0.0.1:1/\"\n\
         [[upstreams]]\nprefix = \"/minted/\"\nurl = \"http://127.0.0.1:1/\"\n\
         token = \"profile:spa\"\n";
    let on = valid_with(&format!(
        "[session]\ndpop = \"required\"\ntoken_profile = \"spa\"\n{MINTED_SPA_TOKEN}{upstreams}"
    ));
    assert!(on.validate().is_ok(), "{:?}", on.validate().err());
    let warnings = on.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("upstreams[fwd]"), "{warnings:?}");
    assert!(
        warnings[0].contains("must check DPoP proofs itself")
            && warnings[0].contains("token = \"profile:<name>\""),
        "{warnings:?}"
    );
    let off = valid_with(&format!(
        "[session]\ntoken_profile = \"spa\"\n{MINTED_SPA_TOKEN}{upstreams}"
    ));
    assert!(off.warnings().is_empty(), "{:?}", off.warnings());
}

#[test]
fn every_problem_is_reported_with_how_to_fix_it() {
    let mut s = valid();
    s.oidc.client_secret = Secret::default();
    s.oidc.issuer = "not a url".into();
    let Err(SettingsError::Invalid(problems)) = s.validate() else {
        panic!("expected invalid");
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("BRIDGE_OIDC__CLIENT_SECRET"))
    );
    assert!(problems.iter().any(|p| p.contains("oidc.issuer")));
}

#[test]
fn the_ui_title_defaults_to_the_product_and_must_be_one_short_line() {
    assert_eq!(valid().ui.title, "login-bridge");
    for bad in ["", "  ", "two\nlines", &"x".repeat(81)] {
        let mut s = valid();
        s.ui.title = bad.to_owned();
        let Err(SettingsError::Invalid(problems)) = s.validate() else {
            panic!("{bad:?} accepted");
        };
        assert!(
            problems.iter().any(|p| p.contains("ui.title")),
            "{problems:?}"
        );
    }
    let mut s = valid();
    s.ui.title = "Acme Staff Portal".into();
    assert!(s.validate().is_ok());
}

#[test]
fn keycloaks_default_account_audience_is_refused() {
    let mut s = valid();
    s.oidc.api_audience = "account".into();
    assert!(s.validate().is_err());
}

#[test]
fn without_a_secret_anywhere_loading_reports_it_missing() {
    let dir = std::env::temp_dir().join(format!("lb-settings-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("no-secret.toml");
    let written = std::fs::write(
        &file,
        "[oidc]\nissuer = \"https://idp.example.org\"\nclient_id = \"ui\"\napi_audience = \"api\"\n",
    );
    assert!(written.is_ok());
    match Settings::load(Some(&file)) {
        Err(SettingsError::Invalid(problems)) => {
            assert!(
                problems.iter().any(|p| p.contains("oidc.client_secret")),
                "{problems:?}"
            );
        }
        other => panic!("expected a missing secret, got {other:?}"),
    }
}

#[test]
fn waiting_for_redis_replicas_is_refused_for_the_other_stores() {
    let mut s = valid();
    s.session.redis_wait_replicas = 1;
    let problems = s.problems().join("\n");
    assert!(
        problems.contains("session.redis_wait_replicas"),
        "{problems}"
    );
    s.session.store = StoreKind::Redis;
    s.session.url = Secret::new("redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=m");
    assert!(
        !s.problems()
            .iter()
            .any(|p| p.contains("redis_wait_replicas"))
    );
}

#[test]
fn a_shared_store_needs_its_url_and_the_url_is_never_echoed() {
    let mut s = valid();
    s.session.store = StoreKind::Redis;
    let problems = s.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("session.url") && p.contains("redis://")),
        "{problems:?}"
    );
    s.session.url = Secret::new("postgres://bridge:hunter2@db/bridge");
    let problems = s.problems().join("\n");
    assert!(problems.contains("session.url"), "{problems}");
    assert!(
        !problems.contains("hunter2"),
        "the password leaked: {problems}"
    );
    s.session.url = Secret::new("redis://:hunter2@127.0.0.1:6379/0");
    assert!(!s.problems().iter().any(|p| p.contains("session.url")));
    s.session.url = Secret::new(
        "redis-sentinel://:hunter2@127.0.0.1:26379/0?sentinelServiceName=m&node=h:26380",
    );
    assert!(!s.problems().iter().any(|p| p.contains("session.url")));
    s.session.url = Secret::new("redis-cluster://:hunter2@127.0.0.1:7000?node=h:7001");
    assert!(!s.problems().iter().any(|p| p.contains("session.url")));
    s.session.url = Secret::new("redis-sentinel://:hunter2@127.0.0.1:26379/0");
    let problems = s.problems().join("\n");
    assert!(problems.contains("sentinelServiceName"), "{problems}");
    assert!(!problems.contains("hunter2"), "{problems}");
    s.session.store = StoreKind::Postgres;
    s.session.url = Secret::new("postgres://bridge@127.0.0.1/bridge");
    assert!(!s.problems().iter().any(|p| p.contains("session.url")));
}

#[test]
fn the_logout_token_age_bound_is_five_minutes_unless_configured() {
    assert_eq!(Settings::default().oidc.logout_token_max_age_secs, 300);
    let configured = Figment::from(Serialized::defaults(Settings::default()))
        .merge(Toml::string("[oidc]\nlogout_token_max_age_secs = 60\n"))
        .extract::<Settings>()
        .map(|s| s.oidc.logout_token_max_age_secs);
    assert_eq!(configured.ok(), Some(60));
}

#[test]
fn the_session_store_is_chosen_in_settings_and_an_unknown_one_is_refused() {
    let parse = |toml: &str| {
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(toml))
            .extract::<Settings>()
            .map_err(|e| e.to_string())
    };
    let chosen = parse(
        "[session]\nstore = \"sqlite\"\nsqlite_path = \"x.sqlite\"\nidle_timeout_secs = 60\n",
    );
    assert_eq!(
        chosen.map(|s| s.session.store).ok(),
        Some(StoreKind::Sqlite)
    );
    let redis = parse("[session]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n");
    assert_eq!(redis.map(|s| s.session.store).ok(), Some(StoreKind::Redis));
    let postgres = parse("[session]\nstore = \"postgres\"\n");
    assert_eq!(
        postgres.map(|s| s.session.store).ok(),
        Some(StoreKind::Postgres)
    );
    let unknown = parse(
        "[session]\nstore = \"memcached\"\nsqlite_path = \"x.sqlite\"\nidle_timeout_secs = 60\n",
    );
    let Err(e) = unknown else {
        panic!("an unknown store must be refused")
    };
    assert!(e.to_string().contains("sqlite"), "names the choices: {e}");
}

#[test]
fn metrics_and_the_log_format_are_off_and_text_unless_configured() {
    let parse = |toml: &str| {
        Figment::from(Serialized::defaults(valid()))
            .merge(Toml::string(toml))
            .extract::<Settings>()
            .map_err(|e| e.to_string())
    };
    let Ok(default) = parse("") else {
        panic!("the defaults parse")
    };
    assert_eq!(default.metrics.listen, None);
    assert_eq!(default.log.format, LogFormat::Text);
    let Ok(set) = parse("[metrics]\nlisten = \"127.0.0.1:9464\"\n[log]\nformat = \"json\"\n")
    else {
        panic!("metrics and log parse")
    };
    assert_eq!(set.metrics.listen, Some(([127, 0, 0, 1], 9464).into()));
    assert_eq!(set.log.format, LogFormat::Json);
    assert!(parse("[log]\nformat = \"xml\"\n").is_err());
}

#[test]
fn metrics_may_not_share_the_public_listener() {
    let mut s = valid();
    s.metrics.listen = Some(s.listen);
    let Err(SettingsError::Invalid(problems)) = s.validate() else {
        panic!("expected invalid");
    };
    assert!(
        problems.iter().any(|p| p.contains("metrics.listen")),
        "{problems:?}"
    );
}

#[test]
fn a_trusted_issuer_may_not_take_the_login_providers_name() {
    let mut s = valid();
    s.issuers = vec![IssuerSettings {
        name: Some("oidc".into()),
        issuer: "https://gw.example.org".into(),
        audiences: vec!["api".into()],
        skip_audience_check: false,
        algorithms: vec!["RS256".into()],
        jwks_url: Some("https://gw.example.org/jwks".into()),
        jwks_file: None,
        public_key: None,
        public_key_file: None,
        hmac_secret_env: None,
        hmac_secret_file: None,
        leeway_secs: 30,
        required_claims: Vec::new(),
        typ: None,
        jwks_refresh_secs: 300,
        jwks_refetch_cooldown_secs: 30,
        trusted_proxies: None,
        claims: ClaimMapping::default(),
        policy: Policy::default(),
    }];
    let Err(SettingsError::Invalid(problems)) = s.validate() else {
        panic!("expected invalid");
    };
    assert!(
        problems.iter().any(|p| p.contains("reserved")),
        "{problems:?}"
    );
}

#[test]
fn a_gateway_needs_known_issuers_and_trusted_proxies() {
    let mut s = valid();
    s.gateway = Some(GatewaySettings {
        issuers: vec!["nobody".into()],
        header: "x-custom-tkn".into(),
        trusted_proxies: Vec::new(),
        allow_any_peer: false,
        jwt_endpoint: None,
        jwt_binding_ttl_secs: 300,
        jwt_endpoint_after_silent_miss: false,
    });
    let Err(SettingsError::Invalid(problems)) = s.validate() else {
        panic!("expected invalid");
    };
    assert!(
        problems
            .iter()
            .any(|p| p.contains("gateway.trusted_proxies")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"nobody\" is not the name")),
        "{problems:?}"
    );
}

#[test]
fn a_gateway_may_inject_the_login_providers_own_tokens() {
    let mut s = valid();
    s.gateway = Some(GatewaySettings {
        issuers: vec![PROVIDER_ISSUER.into()],
        header: "authorization".into(),
        trusted_proxies: vec!["10.0.0.5/32".parse().unwrap()],
        allow_any_peer: false,
        jwt_endpoint: None,
        jwt_binding_ttl_secs: 300,
        jwt_endpoint_after_silent_miss: false,
    });
    assert!(s.validate().is_ok());
}

/// An `[[issuers]]` entry named `name` (its JWKS URL is not fetched to compile it).
fn url_issuer(name: &str, trusted_proxies: Option<Vec<ipnet::IpNet>>) -> IssuerSettings {
    IssuerSettings {
        trusted_proxies,
        ..serde_json::from_value(serde_json::json!({
            "name": name, "issuer": format!("https://{name}.example.org"),
            "audiences": ["api"], "algorithms": ["RS256"],
            "jwks_url": format!("https://{name}.example.org/jwks"),
        }))
        .unwrap()
    }
}

fn gateway(issuers: &[&str], allow_any_peer: bool) -> GatewaySettings {
    GatewaySettings {
        issuers: issuers.iter().map(|i| (*i).to_owned()).collect(),
        header: "authorization".into(),
        trusted_proxies: vec!["10.0.0.5/32".parse().unwrap()],
        allow_any_peer,
        jwt_endpoint: None,
        jwt_binding_ttl_secs: 300,
        jwt_endpoint_after_silent_miss: false,
    }
}

fn proxies_of(config: &Config, name: &str) -> Option<Vec<ipnet::IpNet>> {
    config
        .issuers
        .iter()
        .find(|i| i.name == name)
        .and_then(|i| i.trusted_proxies.clone())
}

#[test]
fn a_gateways_issuers_are_trusted_from_its_proxies_only_unless_they_say_otherwise() {
    let own: Vec<ipnet::IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
    let mut s = valid();
    s.issuers = vec![
        url_issuer("gw", None),
        url_issuer("gw-own", Some(own.clone())),
        url_issuer("api", None),
        url_issuer("limited", Some(own.clone())),
    ];
    s.gateway = Some(gateway(&["gw", "gw-own", PROVIDER_ISSUER], false));
    let config = s.clone().compile().unwrap();
    assert_eq!(
        proxies_of(&config, "gw"),
        Some(vec!["10.0.0.5/32".parse().unwrap()]),
        "the gateway's proxies"
    );
    assert_eq!(
        proxies_of(&config, "gw-own"),
        Some(own.clone()),
        "its own list wins"
    );
    assert_eq!(
        proxies_of(&config, "api"),
        None,
        "not the gateway's: from any peer"
    );
    assert_eq!(proxies_of(&config, "limited"), Some(own.clone()));
    // A gateway any peer may reach limits nothing.
    s.gateway = Some(gateway(&["gw"], true));
    assert_eq!(proxies_of(&s.clone().compile().unwrap(), "gw"), None);
    // An empty list would accept the issuer from nowhere: refused, with the fix.
    s.issuers = vec![url_issuer("nowhere", Some(Vec::new()))];
    s.gateway = None;
    let Err(SettingsError::Invalid(problems)) = s.compile() else {
        panic!("expected invalid");
    };
    assert!(
        problems
            .iter()
            .any(|p| p.contains("issuers[nowhere]: trusted_proxies is empty")),
        "{problems:?}"
    );
}

#[test]
fn an_unknown_optional_claim_is_refused_with_the_known_ones() {
    let mut s = valid();
    s.claims.optional = vec!["mail".into()];
    let Err(SettingsError::Invalid(problems)) = s.validate() else {
        panic!("expected invalid");
    };
    assert!(
        problems
            .iter()
            .any(|p| p.contains("claims.optional: \"mail\" is not a mapped field")),
        "{problems:?}"
    );
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let printed = format!("{:?}", valid());
    assert!(!printed.contains("s3cret"), "{printed}");
}
