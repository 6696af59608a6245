//! The bridge as a token issuer: service users (RFC 7523) signing in from a key file, every
//! refused assertion, introspection (RFC 7662), the JWKS and rotation with overlap, sealed
//! private keys, and profile tokens handed to the SPA.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, time::Duration};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// The JSON a refused assertion gets, whatever the reason.
pub(crate) fn the_invalid_grant() -> Value {
    json!({"error": "invalid_grant", "error_description": "the assertion is not valid"})
}

fn authority_options() -> AppOptions {
    AppOptions {
        authority: Some(json!({"key_reload_secs": 1, "leeway_secs": 2})),
        ..AppOptions::default()
    }
}

pub(crate) struct KeyFile {
    pub(crate) key_id: String,
    pub(crate) user_id: String,
    pub(crate) pem: String,
}

pub(crate) fn read_key_file(path: &Path) -> KeyFile {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(v["type"], "serviceaccount");
    KeyFile {
        key_id: v["keyId"].as_str().unwrap().into(),
        user_id: v["userId"].as_str().unwrap().into(),
        pem: v["key"].as_str().unwrap().into(),
    }
}

/// Creates a service user through the CLI and returns its key file.
pub(crate) async fn create_service_user(app: &TestApp, name: &str, extra: &[&str]) -> KeyFile {
    let path = app.dir.path().join(format!("{name}.json"));
    let mut args = vec![
        "service-user",
        "create",
        name,
        "--out",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = app.admin(&args).await.unwrap();
    assert!(out.contains("created service user"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is for its owner only");
    }
    read_key_file(&path)
}

/// Claims of a good assertion by `key` for `app`'s bridge.
pub(crate) fn good_claims(app: &TestApp, key: &KeyFile) -> Value {
    let now = now();
    json!({
        "iss": key.user_id, "sub": key.user_id, "aud": app.authority().issuer,
        "iat": now, "exp": now + 300, "jti": format!("jti-{}", rand_suffix()),
    })
}

pub(crate) fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", now(), N.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn sign_assertion(
    key: &KeyFile,
    alg: Algorithm,
    kid: Option<&str>,
    claims: &Value,
) -> String {
    let encoding = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(key.pem.as_bytes()).unwrap(),
        Algorithm::RS256 | Algorithm::PS256 => {
            EncodingKey::from_rsa_pem(key.pem.as_bytes()).unwrap()
        }
        Algorithm::EdDSA => EncodingKey::from_ed_pem(key.pem.as_bytes()).unwrap(),
        _ => panic!("unsupported"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

pub(crate) async fn grant(app: &TestApp, assertion: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/oauth/token", app.address))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn token_for(app: &TestApp, key: &KeyFile) -> String {
    let assertion = sign_assertion(
        key,
        Algorithm::ES256,
        Some(&key.key_id),
        &good_claims(app, key),
    );
    let r = grant(app, &assertion).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn introspect(app: &TestApp, caller: Option<&str>, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(format!("{}/oauth/introspect", app.address));
    if let Some(c) = caller {
        req = req.bearer_auth(c);
    }
    let form: Vec<(&str, &str)> = token.map(|t| vec![("token", t)]).unwrap_or_default();
    req.form(&form).send().await.unwrap()
}

fn venv_python() -> std::path::PathBuf {
    let python = repo_root().join("tools/privacyidea-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh (it installs PyJWT with privacyIDEA)",
        python.display()
    );
    python
}

#[tokio::test]
async fn a_service_user_signs_in_with_an_independent_pyjwt_client_until_disabled() {
    let app = spawn_app_with(authority_options()).await;
    let job = create_service_user(&app, "ci-job", &["--role", "deployer", "--group", "ci"]).await;
    let auditor = create_service_user(&app, "auditor", &["--permission", "introspect"]).await;

    // docs/zitadel.md's Python client (PyJWT), not the bridge's code, signs the assertion.
    let key_path = app.dir.path().join("ci-job.json");
    let pyjwt = |key_path: std::path::PathBuf| {
        let address = app.address.clone();
        async move {
            tokio::process::Command::new(venv_python())
                .arg(repo_root().join("clients/service_user_token.py"))
                .arg(&key_path)
                .arg(&address)
                .output()
                .await
                .unwrap()
        }
    };
    let out = pyjwt(key_path.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    // The token calls the API as the service user, its roles and groups mapped.
    let me = app.api_get("/api/me", Some(&token)).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["user"]["id"], job.user_id.as_str());
    assert_eq!(me["user"]["username"], "ci-job");
    assert_eq!(me["user"]["roles"], json!(["deployer"]));
    assert_eq!(me["user"]["groups"], json!(["ci"]));

    // Introspected as active by a caller with the permission.
    let auditor_token = token_for(&app, &auditor).await;
    let r = introspect(&app, Some(&auditor_token), Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], job.user_id.as_str());
    assert_eq!(info["username"], "ci-job");

    // Disabled: new assertions fail, and its token no longer introspects as active.
    let out = app
        .admin(&["service-user", "disable", "ci-job"])
        .await
        .unwrap();
    assert!(out.contains("disabled"), "{out}");
    let out = pyjwt(key_path).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_grant"));
    let info: Value = introspect(&app, Some(&auditor_token), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info, json!({"active": false}));
}

#[tokio::test]
async fn every_refused_assertion_answers_the_same_invalid_grant() {
    let app = spawn_app_with(authority_options()).await;
    let a = create_service_user(&app, "svc-a", &[]).await;
    let b = create_service_user(&app, "svc-b", &[]).await;
    let gone = create_service_user(&app, "svc-gone", &[]).await;
    app.admin(&["service-user", "disable", "svc-gone"])
        .await
        .unwrap();
    // A removed key stops working at once, even right after a use (lookups may be cached).
    let removed = create_service_user(&app, "svc-removed", &[]).await;
    token_for(&app, &removed).await;
    app.admin(&["service-user", "remove-key", "svc-removed", &removed.key_id])
        .await
        .unwrap();
    let issuer = app.authority().issuer.clone();
    let now = now();
    let with = |patch: Value| {
        let mut c = good_claims(&app, &a);
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let es = |claims: &Value| sign_assertion(&a, Algorithm::ES256, Some(&a.key_id), claims);

    // The boundary first: an assertion issued 3599 s ago is still good.
    let r = grant(&app, &es(&with(json!({"iat": now - 3599})))).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "iat 3599 s ago is within the hour"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");

    let replayed = es(&with(json!({})));
    assert_eq!(grant(&app, &replayed).await.status(), StatusCode::OK);

    let hs256 = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(a.key_id.clone());
        jsonwebtoken::encode(
            &h,
            &with(json!({})),
            &EncodingKey::from_secret(a.pem.as_bytes()),
        )
        .unwrap()
    };
    let none = raw_jwt(
        &json!({"alg": "none", "kid": a.key_id}),
        &with(json!({})),
        b"",
    );
    let cases: Vec<(&str, String)> = vec![
        ("iat 3601 s ago", es(&with(json!({"iat": now - 3601})))),
        ("iat in the future", es(&with(json!({"iat": now + 600})))),
        ("iat missing", es(&with(json!({"iat": null})))),
        ("exp missing", es(&with(json!({"exp": null})))),
        ("exp past", es(&with(json!({"exp": now - 60})))),
        (
            "exp more than an hour ahead",
            es(&with(json!({"exp": now + 3700}))),
        ),
        ("nbf in the future", es(&with(json!({"nbf": now + 600})))),
        (
            "aud another server",
            es(&with(json!({"aud": "https://other.example.org"}))),
        ),
        ("aud missing", es(&with(json!({"aud": null})))),
        ("iss missing", es(&with(json!({"iss": null})))),
        ("sub missing", es(&with(json!({"sub": null})))),
        (
            "iss another user",
            es(&with(json!({"iss": b.user_id, "sub": b.user_id}))),
        ),
        ("sub another user", es(&with(json!({"sub": b.user_id})))),
        ("jti not a string", es(&with(json!({"jti": 7})))),
        ("jti empty", es(&with(json!({"jti": ""})))),
        (
            "signed with another user's key",
            sign_assertion(&b, Algorithm::ES256, Some(&a.key_id), &with(json!({}))),
        ),
        (
            "another user's kid",
            sign_assertion(&a, Algorithm::ES256, Some(&b.key_id), &with(json!({}))),
        ),
        (
            "no kid",
            sign_assertion(&a, Algorithm::ES256, None, &with(json!({}))),
        ),
        (
            "unknown kid",
            sign_assertion(&a, Algorithm::ES256, Some("nope"), &with(json!({}))),
        ),
        ("HS256 keyed with the public material", hs256),
        ("alg none", none),
        (
            "disabled user",
            sign_assertion(
                &gone,
                Algorithm::ES256,
                Some(&gone.key_id),
                &json!({"iss": gone.user_id, "sub": gone.user_id, "aud": issuer,
                        "iat": now, "exp": now + 300, "jti": "j-gone"}),
            ),
        ),
        ("replayed jti", replayed),
        (
            "a removed key",
            sign_assertion(
                &removed,
                Algorithm::ES256,
                Some(&removed.key_id),
                &json!({"iss": removed.user_id, "sub": removed.user_id, "aud": issuer,
                        "iat": now, "exp": now + 300, "jti": "j-removed"}),
            ),
        ),
        ("garbage", "not.a.jwt".into()),
    ];
    for (why, assertion) in cases {
        let r = grant(&app, &assertion).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{why}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{why}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            the_invalid_grant(),
            "{why}: the same answer for every refusal"
        );
    }

    // The token endpoint itself is also an accepted audience.
    let endpoint = app.authority().token_endpoint.clone();
    let r = grant(&app, &es(&with(json!({"aud": endpoint})))).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Requests that are not assertions at all say so.
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.address))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

#[tokio::test]
async fn introspection_needs_an_authorized_caller_and_says_nothing_about_bad_tokens() {
    let app = spawn_app_with(authority_options()).await;
    let plain = create_service_user(&app, "plain", &[]).await;
    let auditor = create_service_user(&app, "auditor", &["--permission", "introspect"]).await;
    let plain_token = token_for(&app, &plain).await;
    let auditor_token = token_for(&app, &auditor).await;

    let r = introspect(&app, None, Some(&plain_token)).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "no caller authentication"
    );
    assert!(r.headers().contains_key("www-authenticate"));
    let r = introspect(&app, Some("forged.caller.token"), Some(&plain_token)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = introspect(&app, Some(&plain_token), Some(&plain_token)).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a caller without the permission"
    );
    let r = introspect(&app, Some(&auditor_token), None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "missing token");

    // Expired (signed with the bridge's own current key), forged, unknown, foreign.
    let key = app
        .authority()
        .ring()
        .current(login_bridge::authority::crypto::SigningAlg::ES256)
        .unwrap()
        .clone();
    let mut claims = serde_json::Map::new();
    for (k, v) in json!({"iss": app.authority().issuer, "sub": plain.user_id,
                         "iat": now() - 600, "exp": now() - 300})
    .as_object()
    .unwrap()
    {
        claims.insert(k.clone(), v.clone());
    }
    let expired = key.sign(&claims).unwrap();
    let forged = with_tampered_signature(&plain_token);
    let foreign = sign_as_idp(&json!({"iss": app.idp.issuer, "sub": "x", "aud": AUDIENCE,
                                      "iat": now(), "exp": now() + 300}));
    for (why, token) in [
        ("expired", expired),
        ("forged", forged),
        ("unknown", "abc".to_string()),
        ("another issuer's", foreign),
    ] {
        let r = introspect(&app, Some(&auditor_token), Some(&token)).await;
        assert_eq!(r.status(), StatusCode::OK, "{why}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"active": false}),
            "{why}"
        );
    }
    let info: Value = introspect(&app, Some(&auditor_token), Some(&plain_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["active"], true);
}

pub(crate) async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let r = reqwest::get(format!("{}/.well-known/jwks.json", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Polls the JWKS until `done` holds (the bridge re-reads its keys every second here).
async fn wait_for_jwks(app: &TestApp, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let kids = jwks_kids(app).await;
        if done(&kids) {
            return kids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "JWKS never {what}: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_rotation_keeps_tokens_valid_until_they_expire_then_the_old_key_disappears() {
    let app = spawn_app_with(AppOptions {
        token_profiles: vec![json!({"name": "short", "lifetime_secs": 4,
                                    "claims": {"username": "{username}"}})],
        token_profile: Some("short".into()),
        authority: Some(json!({"key_reload_secs": 1, "leeway_secs": 1,
                               "service_token_lifetime_secs": 4})),
        ..AppOptions::default()
    })
    .await;
    let discovery: Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", app.address))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(discovery["issuer"], app.authority().issuer.as_str());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.address)
    );
    assert_eq!(
        discovery["token_endpoint"],
        format!("{}/oauth/token", app.address)
    );
    assert_eq!(
        discovery["introspection_endpoint"],
        format!("{}/oauth/introspect", app.address)
    );
    assert_eq!(
        discovery["grant_types_supported"],
        json!(["urn:ietf:params:oauth:grant-type:jwt-bearer"])
    );
    let before = jwks_kids(&app).await;
    assert_eq!(before.len(), 1);

    // A profile token minted (and kept in the session) just before the rotation.
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let minted = app.session_info(&client).await;
    let header = jsonwebtoken::decode_header(&minted.auth_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(before[0].as_str()));

    let out = app.admin(&["keys", "rotate"]).await.unwrap();
    assert!(out.contains("new current key"), "{out}");
    let both = wait_for_jwks(&app, "showed both keys", |k| k.len() == 2).await;
    assert!(both.contains(&before[0]));

    // The cached token is still handed out and still accepted.
    let again = app.session_info(&client).await;
    assert_eq!(
        again.auth_token, minted.auth_token,
        "the session's token is reused while fresh"
    );
    assert_eq!(
        app.api_get("/api/me", Some(&minted.auth_token))
            .await
            .status(),
        StatusCode::OK
    );

    // Once every token of the old key has expired, the old key is gone, private half too.
    let after = wait_for_jwks(&app, "dropped the old key", |k| !k.contains(&before[0])).await;
    assert_eq!(after.len(), 1);
    let listed = app.admin(&["keys", "list"]).await.unwrap();
    assert!(!listed.contains(&before[0]), "{listed}");
    // The SPA now gets a token of the new key.
    let fresh = app.session_info(&client).await;
    let kid = jsonwebtoken::decode_header(&fresh.auth_token).unwrap().kid;
    assert_eq!(kid.as_deref(), Some(after[0].as_str()));
    assert_eq!(
        app.api_get("/api/me", Some(&fresh.auth_token))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn private_keys_are_sealed_under_the_key_encryption_key() {
    let app = spawn_app_with(authority_options()).await;
    let exported = app.admin(&["keys", "export", "--pem"]).await.unwrap();
    assert!(
        exported.starts_with("-----BEGIN PUBLIC KEY-----"),
        "{exported}"
    );

    // What the store holds is not a private key without the key-encryption key.
    let db = app.settings.session.sqlite_path.clone();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys,base64; c=sqlite3.connect(sys.argv[1]); \
             [print(base64.b64encode(r[0]).decode()) for r in c.execute('select sealed_private from signing_keys')]",
        )
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = String::from_utf8(out.stdout).unwrap();
    assert_eq!(rows.lines().count(), 1);
    let sealed = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        rows.lines().next().unwrap(),
    )
    .unwrap();
    // The stored bytes cannot sign as a PKCS#8 key; a genuine one (the control) can, so this
    // fails if the store ever held the private key in the clear.
    let signs = |der: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &json!({"sub": "x"}),
            &EncodingKey::from_ec_der(der),
        )
        .is_ok()
    };
    let genuine_pem = std::fs::read_to_string(fixture("issuer-ec.pem")).unwrap();
    let genuine: String = genuine_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let genuine =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, genuine).unwrap();
    assert!(signs(&genuine), "control: a PKCS#8 P-256 key signs");
    assert!(
        !signs(&sealed),
        "the stored key signs without the key-encryption key"
    );
    let as_pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sealed)
    );
    assert!(
        EncodingKey::from_ec_pem(as_pem.as_bytes()).is_err(),
        "not a PKCS#8 key"
    );

    // Another key-encryption key cannot open them: the bridge refuses to start with it (once
    // this one has let go of the file: one SQLite file serves one bridge).
    app.stop().await;
    let mut settings = app.settings.clone();
    let other = app.dir.path().join("other-kek");
    login_bridge::authority::keyring::write_new_kek(&other).unwrap();
    settings.authority.as_mut().unwrap().key_encryption_key_file = Some(other);
    let err = match login_bridge::startup::Application::build_with_listener(
        settings.compile().unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    {
        Ok(_) => panic!("started with the wrong key-encryption key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("key-encryption key"), "{err}");
}

#[tokio::test]
async fn the_spa_gets_the_profile_token_and_the_bridges_api_accepts_it() {
    let app = spawn_app_with(AppOptions {
        token_profiles: vec![json!({
            "name": "privacyidea", "lifetime_secs": 300, "header": "PI-Authorization", "scheme": "",
            "claims": {"username": "{username}", "realm": "defrealm", "resolver": "deflocal", "role": "user"},
            "when": [{"group": "pi-admins", "claims": {"role": "admin", "realm": "", "resolver": ""}}],
        })],
        token_profile: Some("privacyidea".into()),
        ..authority_options()
    })
    .await;
    let jwks = reqwest::get(format!("{}/.well-known/jwks.json", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks).unwrap();
    let claims_of = |token: &str| {
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.validate_aud = false;
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .unwrap()
            .claims
    };
    for (user, password, role, realm) in [
        ("alice", "wonderland", "admin", ""),
        ("bob", "builder", "user", "defrealm"),
    ] {
        let client = browser();
        app.sign_in(&client, user, password).await;
        let info = app.session_info(&client).await;
        let claims = claims_of(&info.auth_token);
        assert_eq!(claims["username"], user);
        assert_eq!(claims["role"], role, "{user}");
        assert_eq!(claims["realm"], realm, "{user}");
        assert!(claims.get("aud").is_none(), "privacyIDEA refuses any aud");
        assert_eq!(claims["iss"], app.authority().issuer.as_str());
        // The SPA's calls to the bridge's own API carry it as Bearer and pass.
        let me = app.api_get("/api/me", Some(&info.auth_token)).await;
        assert_eq!(me.status(), StatusCode::OK);
        assert_eq!(me.json::<Value>().await.unwrap()["user"]["username"], user);
    }
}

#[tokio::test]
async fn token_verify_explains_the_bridges_own_tokens() {
    let app = spawn_app_with(authority_options()).await;
    let job = create_service_user(&app, "job", &["--role", "deployer"]).await;
    let token = token_for(&app, &job).await;
    let (report, accepted) =
        login_bridge::cli::verify_token(app.settings.clone().compile().unwrap(), &token)
            .await
            .unwrap();
    assert!(accepted, "{report}");
    assert!(
        report.contains(&format!("issuer: bridge ({}", app.authority().issuer)),
        "{report}"
    );
    assert!(report.contains("username: job"), "{report}");
    assert!(
        !report.contains(&token),
        "the report never prints the token"
    );
}
