//! One current signing key per algorithm, whoever starts first: two bridges and a `keys list`
//! run that start together on an empty Redis and PostgreSQL store create one key of each
//! algorithm between them, so what `keys export` prints is what both bridges publish and sign
//! with. On SQLite, one file serves one bridge: the second is refused, and the first and the
//! CLI race for the keys. No provider is needed: the token endpoint and the JWKS work without
//! one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use clap::Parser;
use jsonwebtoken::Algorithm;
use login_bridge::{
    settings::{Settings, StoreKind},
    startup::Application,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{
    authority::{read_key_file, sign_assertion},
    support::{
        stores::{PostgresServer, RedisServer},
        *,
    },
};

/// The issuer both bridges share (behind one load balancer they have one public name).
const SHARED_ISSUER: &str = "https://bridge.together.test";
/// Nothing listens here: discovery keeps failing in the background, which nothing here needs.
const NO_PROVIDER: &str = "http://127.0.0.1:9";

/// `login-bridge <args>` on `settings`, as an operator runs it beside the bridges.
async fn admin(settings: &Settings, args: &[&str]) -> String {
    let cli = login_bridge::cli::Cli::try_parse_from(
        std::iter::once("login-bridge").chain(args.iter().copied()),
    )
    .unwrap();
    login_bridge::cli::admin(settings.clone().compile().unwrap(), cli.command.unwrap())
        .await
        .unwrap_or_else(|e| panic!("login-bridge {args:?}: {e:#}"))
}

/// The kids `keys list` shows as current, by algorithm.
fn current_kids(list: &str) -> Vec<(String, String)> {
    list.lines()
        .filter(|l| l.ends_with(" current"))
        .map(|l| {
            let mut words = l.split_whitespace();
            let kid = words.next().unwrap().to_string();
            let alg = words.next().unwrap().to_string();
            (alg, kid)
        })
        .collect()
}

fn kids_of(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// A token the bridge at `address` signs now (a service user's, with the default algorithm).
async fn signed_token(address: &str, key: &crate::authority::KeyFile) -> String {
    let now = now();
    let claims = json!({
        "iss": key.user_id, "sub": key.user_id, "aud": SHARED_ISSUER,
        "iat": now, "exp": now + 300, "jti": format!("jti-{}", crate::authority::rand_suffix()),
    });
    let assertion = sign_assertion(key, Algorithm::ES256, Some(&key.key_id), &claims);
    let r = reqwest::Client::new()
        .post(format!("{address}/oauth/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "token endpoint of {address}");
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn two_bridges_and_the_cli_start_together(store: Option<(StoreKind, String)>) {
    let on_sqlite = store.is_none();
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    login_bridge::authority::keyring::write_new_kek(&kek).unwrap();
    let options = AppOptions {
        // The default reload interval (10 s): a bridge that signs with a key the others do not
        // publish is not healed by a reload before the checks below.
        authority: Some(json!({
            "issuer": SHARED_ISSUER,
            "key_encryption_key_file": kek.display().to_string(),
        })),
        // A second algorithm in use: a current key of each.
        token_profiles: vec![json!({"name": "rsa", "algorithm": "RS256"})],
        sqlite_path: Some(dir.path().join("shared.sqlite")),
        store,
        ..AppOptions::default()
    };
    let listeners = [
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    ];
    let settings: Vec<Settings> = listeners
        .iter()
        .map(|l| {
            let port = l.local_addr().unwrap().port();
            bridge_settings(port, NO_PROVIDER, dir.path(), &options)
        })
        .collect();
    let [listener_a, listener_b] = listeners;
    // The store's tables are made first, as by an earlier start that stopped before its keys,
    // or by an upgrade: PostgreSQL's migrations hold a lock, so bridges starting on a new
    // database would reach their keys one after another. Now the three race for them.
    let backend = login_bridge::session::store::SessionBackend::open(&settings[0].session)
        .await
        .unwrap();
    backend.authority_store().await.unwrap();
    drop(backend);

    // All three open the empty store at once.
    let (a, b, listed) = tokio::join!(
        Application::build_with_listener(settings[0].clone().compile().unwrap(), listener_a),
        Application::build_with_listener(settings[1].clone().compile().unwrap(), listener_b),
        admin(&settings[0], &["keys", "list"]),
    );
    assert_eq!(current_kids(&listed).len(), 2, "{listed}");
    // One SQLite file serves one bridge: whichever takes its lock first starts (and races the
    // CLI for the keys); the other is refused before it opens the file.
    let started = if on_sqlite {
        let (started, refused): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
        let refused = format!("{:#}", refused.into_iter().next().unwrap().err().unwrap());
        assert!(
            refused.contains("another login-bridge is serving the session database")
                && refused.contains("shared.sqlite"),
            "{refused}"
        );
        started.into_iter().map(Result::unwrap).collect::<Vec<_>>()
    } else {
        vec![a.unwrap(), b.unwrap()]
    };
    let addresses: Vec<String> = started
        .into_iter()
        .map(|app| {
            let address = format!("http://127.0.0.1:{}", app.port());
            tokio::spawn(app.run_until_stopped());
            address
        })
        .collect();

    // One current key per algorithm in the store.
    let list = admin(&settings[1], &["keys", "list"]).await;
    let current = current_kids(&list);
    let algs: Vec<&str> = current.iter().map(|(alg, _)| alg.as_str()).collect();
    assert_eq!(algs.len(), 2, "one current key per algorithm:\n{list}");
    assert!(algs.contains(&"ES256") && algs.contains(&"RS256"), "{list}");
    let es256 = current
        .iter()
        .find(|(alg, _)| alg == "ES256")
        .map(|(_, kid)| kid.clone())
        .unwrap();
    assert_eq!(
        current_kids(&listed),
        current,
        "the first `keys list` saw the same keys"
    );

    // `keys export` prints what both bridges publish ...
    let exported: Value =
        serde_json::from_str(admin(&settings[0], &["keys", "export"]).await.trim()).unwrap();
    let exported = kids_of(&exported);
    let listed_kids: BTreeSet<String> = current.iter().map(|(_, kid)| kid.clone()).collect();
    assert_eq!(exported, listed_kids);
    for address in &addresses {
        let published: Value = reqwest::get(format!("{address}/.well-known/jwks.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(kids_of(&published), exported, "the JWKS of {address}");
    }

    // ... and both sign with its current key.
    let key_path = dir.path().join("ci.json");
    admin(
        &settings[0],
        &[
            "service-user",
            "create",
            "ci",
            "--out",
            key_path.to_str().unwrap(),
        ],
    )
    .await;
    let key = read_key_file(&key_path);
    for address in &addresses {
        let token = signed_token(address, &key).await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            header.kid.as_deref(),
            Some(es256.as_str()),
            "{address} signs with the current key"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bridge_and_the_cli_starting_together_on_empty_sqlite_make_one_key_per_algorithm_and_a_second_bridge_is_refused()
 {
    two_bridges_and_the_cli_start_together(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bridges_and_the_cli_starting_together_on_empty_redis_make_one_key_per_algorithm() {
    let server = RedisServer::start().await;
    two_bridges_and_the_cli_start_together(Some((StoreKind::Redis, server.url()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bridges_and_the_cli_starting_together_on_empty_postgres_make_one_key_per_algorithm() {
    let server = PostgresServer::start().await;
    two_bridges_and_the_cli_start_together(Some((StoreKind::Postgres, server.url()))).await;
}
