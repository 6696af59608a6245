//! Issue 23, acceptance 1: the SPA in a real headless Chromium with `session.dpop = "required"`
//! and a token the bridge mints. It signs in (SSO, then silent SSO; a local account), every
//! `/api` call in Chromium's network log carries `Authorization: DPoP <token>` and a `DPoP`
//! proof that the bridge's own verifier accepts for that request and token, signed by the key
//! the token names (`cnf.jkt`); the page's own script cannot export that key from IndexedDB;
//! and a reload signs with the same key.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use login_bridge::dpop::proof::{Expected, verify};
use login_bridge::settings::DpopMode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Browser;
use crate::support::*;

/// A bridge minting the SPA's token (`session.token_profile`, and the local accounts'
/// profile), with DPoP required.
fn dpop_required() -> AppOptions {
    AppOptions {
        token_profile: Some("spa".into()),
        dpop: DpopMode::Required,
        ..crate::local_accounts::local_options(json!({}))
    }
}

/// The payload of a JWT (the bridge's own token; its signature is the API's business).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// RFC 7638 thumbprint of a public P-256 JWK.
fn thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap(),
        jwk["kty"].as_str().unwrap(),
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The `jwk` of a proof's protected header.
fn header_jwk(proof: &str) -> Value {
    let header = proof.split('.').next().expect("a JWT");
    serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()["jwk"]
        .clone()
}

/// A request header, whatever case the page wrote its name in.
fn header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, value)| value.as_str())
}

/// Checks every request of `log` to the bridge's `/api` and `/auth/session`: each `/api` call
/// carries `Authorization: DPoP <token>` and a proof the bridge's verifier accepts for its
/// method, URL (without query) and token, signed by the key the token is bound to; each
/// session call carries a proof without `ath`. Returns the thumbprint, the same for all.
fn assert_every_call_proves_the_bound_key(app: &TestApp, log: &[Value]) -> String {
    let now = dpop::now();
    let ours = |r: &&Value| r["url"].as_str().unwrap().starts_with(&app.address);
    let path = |r: &Value| {
        let url = url::Url::parse(r["url"].as_str().unwrap()).unwrap();
        url.path().to_owned()
    };
    let mut thumbprints = Vec::new();
    let sessions: Vec<&Value> = log
        .iter()
        .filter(ours)
        .filter(|r| path(r) == "/auth/session")
        .collect();
    assert!(
        !sessions.is_empty(),
        "the page asked for its session: {log:#?}"
    );
    for request in &sessions {
        let proof = header(request, "dpop")
            .unwrap_or_else(|| panic!("a DPoP proof on the session call {request:#}"));
        let verified = verify(
            proof,
            &Expected {
                method: "GET",
                htu: &format!("{}/auth/session", app.address),
                htu_from_origin: false,
                token_sha256: None,
                now,
                max_age_secs: 300,
                leeway_secs: 5,
            },
        )
        .unwrap_or_else(|e| panic!("the bridge's verifier refuses {request:#}: {e}"));
        thumbprints.push(verified.jkt);
    }
    let api: Vec<&Value> = log
        .iter()
        .filter(ours)
        .filter(|r| path(r).starts_with("/api/"))
        .collect();
    assert!(!api.is_empty(), "the page called the API: {log:#?}");
    for request in &api {
        let authorization = header(request, "authorization").unwrap_or_default();
        let token = authorization
            .strip_prefix("DPoP ")
            .unwrap_or_else(|| panic!("Authorization: DPoP on {request:#}"));
        let proof =
            header(request, "dpop").unwrap_or_else(|| panic!("a DPoP proof on {request:#}"));
        let htu = format!("{}{}", app.address, path(request));
        let verified = verify(
            proof,
            &Expected {
                method: request["method"].as_str().unwrap(),
                htu: &htu,
                htu_from_origin: false,
                token_sha256: Some(login_bridge::trust::principal::token_digest(token)),
                now,
                max_age_secs: 300,
                leeway_secs: 5,
            },
        )
        .unwrap_or_else(|e| panic!("the bridge's verifier refuses {request:#}: {e}"));
        assert_eq!(
            claims(token)["cnf"]["jkt"].as_str(),
            Some(verified.jkt.as_str()),
            "the proof is signed by the key the token is bound to"
        );
        thumbprints.push(verified.jkt);
    }
    thumbprints.dedup();
    assert_eq!(
        thumbprints.len(),
        1,
        "one key for every call: {thumbprints:?}"
    );
    thumbprints.remove(0)
}

impl Browser {
    /// What the page's own script gets from the SPA's key record in IndexedDB (database
    /// `login-bridge`, store `dpop`, record `key`): whether the private key says it is
    /// extractable, how `exportKey` of it ends, and the public key as a JWK.
    async fn stored_key_as_seen_by_the_page(&self) -> Value {
        self.client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                   const open = indexedDB.open('login-bridge');
                   open.onerror = () => done({error: 'open: ' + open.error});
                   open.onsuccess = () => {
                     const get = open.result.transaction('dpop').objectStore('dpop').get('key');
                     get.onerror = () => done({error: 'get: ' + get.error});
                     get.onsuccess = async () => {
                       const pair = get.result;
                       if (!pair) { done({error: 'no key stored'}); return; }
                       let privateExport;
                       try {
                         await crypto.subtle.exportKey('jwk', pair.privateKey);
                         privateExport = 'exported';
                       } catch (e) {
                         privateExport = 'rejected: ' + e.name;
                       }
                       const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
                       done({extractable: pair.privateKey.extractable, privateExport,
                             publicJwk: {kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y}});
                     };
                   };"#,
                vec![],
            )
            .await
            .unwrap()
    }
}

/// The page's script cannot take the key away: `exportKey` of the private key rejects, and the
/// stored public key is the one the token is bound to.
async fn assert_the_key_cannot_be_exported(browser: &Browser, jkt: &str) {
    let seen = browser.stored_key_as_seen_by_the_page().await;
    assert_eq!(seen["extractable"], json!(false), "{seen}");
    assert_eq!(
        seen["privateExport"],
        json!("rejected: InvalidAccessError"),
        "{seen}"
    );
    assert_eq!(thumbprint(&seen["publicJwk"]), jkt, "{seen}");
}

#[tokio::test]
async fn with_dpop_required_the_spa_signs_in_by_sso_and_silent_sso_and_proves_its_unexportable_key_on_every_api_call()
 {
    let app = spawn_app_with(dpop_required()).await;
    let browser = Browser::start_with_network_log().await;

    // A first sign-in through the provider's form, then (the bridge's cookies gone, the
    // provider's session kept) a silent one on a deep link.
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#user-username", "alice").await;
    let first = assert_every_call_proves_the_bound_key(&app, &browser.network_log().await);
    browser.client.delete_all_cookies().await.unwrap();
    browser
        .goto(&format!("{}/api-demo?tab=calls", app.address))
        .await;
    browser.wait_for_text("#api-demo-user", "alice").await;
    browser.wait_for("#api-calls").await;
    assert_eq!(
        app.idp.stat("login_forms_shown").await,
        1,
        "the second was silent"
    );
    let silent = assert_every_call_proves_the_bound_key(&app, &browser.network_log().await);
    assert_eq!(
        silent, first,
        "one key for the browser, whatever the session"
    );
    assert_the_key_cannot_be_exported(&browser, &silent).await;

    // A reload signs with the same key, and the new page's token is bound to it.
    browser.client.refresh().await.unwrap();
    browser.wait_for_text("#api-demo-user", "alice").await;
    browser.wait_for("#api-calls").await;
    let reloaded = assert_every_call_proves_the_bound_key(&app, &browser.network_log().await);
    assert_eq!(reloaded, silent, "the same thumbprint after a reload");

    // Server side: the API's record of those calls names alice.
    assert!(
        app.api_calls
            .recent(ALICE_SUB)
            .iter()
            .any(|c| c.path == "/api/calls"),
        "the API served alice"
    );
    browser.close().await;
}

#[tokio::test]
async fn with_dpop_required_a_local_user_signs_in_and_every_api_call_proves_the_same_unexportable_key()
 {
    let app = spawn_app_with(dpop_required()).await;
    app.admin_with_password(
        &["user", "add", "olivia", "--role", "operator"],
        crate::local_accounts::PASSWORD,
    )
    .await
    .unwrap();
    let browser = Browser::start_with_network_log().await;

    // No SSO session: the silent attempt comes back to the login page, which offers the form.
    browser.goto(&format!("{}/api-demo", app.address)).await;
    browser.wait_for("#sso-login").await;
    assert!(browser.is_displayed("#local-login").await);
    browser
        .submit_local_form("olivia", crate::local_accounts::PASSWORD)
        .await;
    browser.wait_for_text("#api-demo-user", "olivia").await;
    browser.wait_for("#api-calls").await;
    let jkt = assert_every_call_proves_the_bound_key(&app, &browser.network_log().await);
    assert_the_key_cannot_be_exported(&browser, &jkt).await;

    browser.client.refresh().await.unwrap();
    browser.wait_for_text("#api-demo-user", "olivia").await;
    browser.wait_for("#api-calls").await;
    let reloaded = assert_every_call_proves_the_bound_key(&app, &browser.network_log().await);
    assert_eq!(reloaded, jkt, "the same thumbprint after a reload");
    browser.close().await;
}

/// A browser that lost its key (its site storage cleared, the session cookie kept) makes a new
/// one; the session, bound to the old key, refuses it, and the SPA signs in again silently: a
/// new session bound to the new key, no form shown.
#[tokio::test]
async fn with_dpop_required_a_browser_that_lost_its_key_signs_in_again_silently_with_a_new_one() {
    let app = spawn_app_with(dpop_required()).await;
    let browser = Browser::start_with_network_log().await;
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#user-username", "alice").await;
    let before = assert_every_call_proves_the_bound_key(&app, &browser.network_log().await);

    // The page's storage goes (as "clear site data" for storage only would do it); the SPA
    // closed its database after reading the key, so nothing blocks the deletion.
    let deleted = browser
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const request = indexedDB.deleteDatabase('login-bridge');
               request.onsuccess = () => done('deleted');
               request.onerror = () => done('error: ' + request.error);
               request.onblocked = () => done('blocked');"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(deleted, json!("deleted"));
    browser.goto(&format!("{}/api-demo", app.address)).await;
    browser.wait_for_text("#api-demo-user", "alice").await;
    browser.wait_for("#api-calls").await;

    let log = browser.network_log().await;
    let signed_in_again = log.iter().any(|r| {
        r["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&app.address) && u.contains("/auth/login?prompt=none"))
    });
    assert!(signed_in_again, "a silent sign-in: {log:#?}");
    // The calls after the new sign-in all prove the new key.
    let after_sign_in: Vec<Value> = log
        .iter()
        .skip_while(|r| {
            !r["url"]
                .as_str()
                .unwrap_or_default()
                .contains("/auth/callback")
        })
        .cloned()
        .collect();
    let after = assert_every_call_proves_the_bound_key(&app, &after_sign_in);
    assert_ne!(after, before, "a new key");
    assert_the_key_cannot_be_exported(&browser, &after).await;
    assert_eq!(
        app.idp.stat("login_forms_shown").await,
        1,
        "no second password form"
    );
    browser.close().await;
}

/// A script in the page cannot plant a key of its own choosing for later: an extractable key
/// put in the SPA's record is never used; the SPA makes a non-extractable one in its place.
#[tokio::test]
async fn with_dpop_required_an_extractable_key_planted_by_a_script_in_the_page_is_never_used() {
    let app = spawn_app_with(dpop_required()).await;
    let browser = Browser::start_with_network_log().await;
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#user-username", "alice").await;
    let before = assert_every_call_proves_the_bound_key(&app, &browser.network_log().await);

    let planted = browser
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               crypto.subtle.generateKey({name: 'ECDSA', namedCurve: 'P-256'}, true,
                                         ['sign', 'verify']).then(async pair => {
                 const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
                 const open = indexedDB.open('login-bridge');
                 open.onsuccess = () => {
                   const tx = open.result.transaction('dpop', 'readwrite');
                   tx.objectStore('dpop').put(pair, 'key');
                   tx.oncomplete = () => {
                     open.result.close();
                     done({kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y});
                   };
                   tx.onerror = () => done({error: String(tx.error)});
                 };
               });"#,
            vec![],
        )
        .await
        .unwrap();
    let planted = thumbprint(&planted);
    browser.goto(&format!("{}/api-demo", app.address)).await;
    browser.wait_for_text("#api-demo-user", "alice").await;
    browser.wait_for("#api-calls").await;

    let log = browser.network_log().await;
    let signers: Vec<String> = log
        .iter()
        .filter_map(|r| header(r, "dpop"))
        .map(|proof| thumbprint(&header_jwk(proof)))
        .collect();
    assert!(!signers.is_empty(), "the reloaded page made proofs");
    assert!(
        !signers.contains(&planted),
        "the planted key signs nothing: {signers:?}"
    );
    let after_sign_in: Vec<Value> = log
        .iter()
        .skip_while(|r| {
            !r["url"]
                .as_str()
                .unwrap_or_default()
                .contains("/auth/callback")
        })
        .cloned()
        .collect();
    let after = assert_every_call_proves_the_bound_key(&app, &after_sign_in);
    assert_ne!(after, planted, "the planted key signs nothing");
    assert_ne!(after, before);
    assert_the_key_cannot_be_exported(&browser, &after).await;
    browser.close().await;
}

/// With server nonces (`session.dpop_nonce = true`, RFC 9449 section 8) the SPA's proofs carry
/// the latest nonce the bridge sent; a reloaded page, which knows none yet, has its first
/// session call refused with `use_dpop_nonce` and a `DPoP-Nonce`, and retries once with it.
#[tokio::test]
async fn with_server_nonces_the_spa_retries_once_with_the_nonce_and_its_api_calls_carry_one() {
    let app = spawn_app_with(AppOptions {
        dpop_nonce: true,
        ..dpop_required()
    })
    .await;
    app.admin_with_password(
        &["user", "add", "olivia", "--role", "operator"],
        crate::local_accounts::PASSWORD,
    )
    .await
    .unwrap();
    let browser = Browser::start_with_network_log().await;

    // No SSO session: the silent attempt comes back to the login page, which offers the form.
    browser.goto(&format!("{}/api-demo", app.address)).await;
    browser.wait_for("#sso-login").await;
    assert!(browser.is_displayed("#local-login").await);
    browser
        .submit_local_form("olivia", crate::local_accounts::PASSWORD)
        .await;
    browser.wait_for_text("#api-demo-user", "olivia").await;
    browser.wait_for("#api-calls").await;
    let before = assert_every_call_proves_the_bound_key(&app, &browser.network_log().await);

    browser.client.refresh().await.unwrap();
    browser.wait_for_text("#api-demo-user", "olivia").await;
    browser.wait_for("#api-calls").await;
    let log = browser.network_log().await;
    assert_eq!(assert_every_call_proves_the_bound_key(&app, &log), before);
    let proofs: Vec<(String, Value)> = log
        .iter()
        .filter(|r| r["url"].as_str().unwrap().starts_with(&app.address))
        .filter_map(|r| Some((r["url"].as_str()?.to_owned(), claims(header(r, "dpop")?))))
        .collect();
    let session = |i: usize| {
        proofs
            .get(i)
            .filter(|(url, _)| url.ends_with("/auth/session"))
    };
    let first = session(0).unwrap_or_else(|| panic!("{proofs:#?}"));
    assert_eq!(
        first.1.get("nonce"),
        None,
        "no nonce known yet: {proofs:#?}"
    );
    let retry = session(1).unwrap_or_else(|| panic!("a retry: {proofs:#?}"));
    assert!(retry.1["nonce"].is_string(), "{proofs:#?}");
    for (url, claims) in &proofs[1..] {
        assert!(claims["nonce"].is_string(), "{url} without a nonce");
    }
    assert!(
        proofs.iter().any(|(url, _)| url.contains("/api/")),
        "{proofs:#?}"
    );
    browser.close().await;
}
