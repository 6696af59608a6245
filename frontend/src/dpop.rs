//! DPoP (RFC 9449) in the browser: the key this browser proves itself with, and the proofs.
//!
//! The bridge binds the SPA's token to a key (`cnf.jkt`) and accepts it only with a fresh proof
//! signed by that key. The key is an ECDSA P-256 pair made by WebCrypto with `extractable:
//! false`: the page's own script (and so any script injected into it) can ask the browser to
//! sign with it, but can never read the private key out, so neither the token nor the key is of
//! use anywhere else.
//!
//! The pair is kept in IndexedDB (database [`DB`], object store [`STORE`], record [`RECORD`];
//! a `CryptoKey` survives the structured clone with its non-extractability), so every tab of
//! the origin and every reload signs with the same key and the session keeps its binding. A
//! browser without WebCrypto or IndexedDB (plain http off localhost) gets no key: the SPA then
//! sends no proofs, and the bridge's `session.dpop` decides whether it accepts that.
//!
//! JSON is written by concatenating fixed fields (serde_json only escapes the strings that
//! come from outside), and base64url is a dozen lines here: a derive or a base64 crate would
//! cost the SPA's first load more than these do.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::js_sys::{Array, Promise, Reflect, Uint8Array};
use web_sys::{
    CryptoKey, EcKeyGenParams, EcdsaParams, IdbDatabase, IdbObjectStore, IdbRequest,
    IdbTransactionMode, SubtleCrypto, Url,
};

/// The IndexedDB database of the SPA's key (one per origin).
pub const DB: &str = "login-bridge";
/// The object store in [`DB`] holding the key pair (out-of-line keys).
pub const STORE: &str = "dpop";
/// The record in [`STORE`]: `{privateKey, publicKey}`, as `generateKey` made it.
pub const RECORD: &str = "key";

/// The key in use: the private half and the proofs' JOSE header (with the public half as `jwk`),
/// already base64url-encoded.
struct Key {
    private: CryptoKey,
    header: String,
}

thread_local! {
    /// `None` until loaded; then the key, or `None` when this browser cannot keep one.
    static KEY: RefCell<Option<Option<Rc<Key>>>> = const { RefCell::new(None) };
    /// The latest `DPoP-Nonce` the bridge sent (RFC 9449 section 8).
    static NONCE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A proof for `method url` (`url` relative to the page or absolute), with `ath` for `token`;
/// `None` when this browser has no key (no WebCrypto or no IndexedDB) or cannot sign.
///
/// Boxed: every caller shares one copy of the signing's state machine in the WASM (an `async
/// fn` awaited from several futures is instantiated for each, ~4 KB brotli a copy).
pub fn proof<'a>(
    method: &'a str,
    url: &'a str,
    token: Option<&'a str>,
) -> Pin<Box<dyn Future<Output = Option<String>> + 'a>> {
    Box::pin(sign(method, url, token))
}

async fn sign(method: &str, url: &str, token: Option<&str>) -> Option<String> {
    let key = key().await?;
    let subtle = subtle()?;
    // `htm` is an HTTP method token (no quote or backslash can be in it); `htu` and the nonce
    // come from outside and are escaped.
    let mut claims = [
        r#"{"jti":""#,
        &jti()?,
        r#"","htm":""#,
        method,
        r#"","htu":"#,
        &json_string(&htu(url)?),
        r#","iat":"#,
        &crate::clock::now_secs().to_string(),
    ]
    .concat();
    if let Some(token) = token {
        let digest = subtle
            .digest_with_str_and_u8_array("SHA-256", token.as_bytes())
            .ok()?;
        let ath = base64url(&bytes(JsFuture::from(digest).await.ok()?));
        claims.extend([r#","ath":""#, &ath, "\""]);
    }
    if let Some(nonce) = NONCE.with_borrow(Clone::clone) {
        claims.extend([r#","nonce":"#, &json_string(&nonce)]);
    }
    claims.push('}');
    let input = [&key.header, ".", &base64url(claims.as_bytes())].concat();
    let signature = subtle
        .sign_with_object_and_u8_array(
            // WebCrypto's ECDSA signature is `r || s`, which is JWS ES256's.
            &EcdsaParams::new_with_str("ECDSA", "SHA-256"),
            &key.private,
            input.as_bytes(),
        )
        .ok()?;
    let signature = bytes(JsFuture::from(signature).await.ok()?);
    Some([&input, ".", &base64url(&signature)].concat())
}

/// Keeps the `DPoP-Nonce` an answer carried, for the next proofs.
pub fn remember_nonce(nonce: Option<String>) {
    if let Some(nonce) = nonce.filter(|n| !n.is_empty()) {
        NONCE.set(Some(nonce));
    }
}

/// Whether a key is loaded (so the last proof asked for was made).
pub fn has_key() -> bool {
    KEY.with_borrow(|key| matches!(key, Some(Some(_))))
}

/// Forgets the key held in memory, so the next proof reads IndexedDB again (another tab may
/// have stored a new key since this one loaded).
pub fn forget_key() {
    KEY.set(None);
}

/// The key, loaded (or made) once per page.
async fn key() -> Option<Rc<Key>> {
    if let Some(known) = KEY.with_borrow(Clone::clone) {
        return known;
    }
    let loaded = Box::pin(load()).await.ok().map(Rc::new);
    KEY.set(Some(loaded.clone()));
    loaded
}

/// This browser's WebCrypto. Outside a secure context `crypto.subtle` is `undefined`, and every
/// call on it fails (the bindings catch the `TypeError`): no key, no proof.
fn subtle() -> Option<SubtleCrypto> {
    Some(web_sys::window()?.crypto().ok()?.subtle())
}

/// The stored key if it is usable; otherwise a new one, stored unless another tab stored one
/// first; then whatever IndexedDB holds, so racing tabs end with the same key.
async fn load() -> Result<Key, JsValue> {
    let subtle = subtle().ok_or(JsValue::NULL)?;
    let factory = web_sys::window()
        .ok_or(JsValue::NULL)?
        .indexed_db()?
        .ok_or(JsValue::NULL)?;
    let db = open(&factory).await?;
    let mut made = false;
    loop {
        let stored = in_store(&db, IdbTransactionMode::Readonly, |s| s.get(&RECORD.into())).await?;
        if let Some(key) = usable(&subtle, &stored).await {
            db.close();
            return Ok(key);
        }
        // A key that could not be stored is not used: the next page would have another one,
        // and the session would refuse it.
        if made {
            db.close();
            return Err(JsValue::NULL);
        }
        made = true;
        let fresh = JsFuture::from(subtle.generate_key_with_object(
            &EcKeyGenParams::new("ECDSA", "P-256"),
            false,
            &Array::of2(&"sign".into(), &"verify".into()),
        )?)
        .await?;
        // `add` fails (and changes nothing) when another tab stored its key first; an unusable
        // record is replaced.
        let replace = !stored.is_undefined();
        let _ = in_store(&db, IdbTransactionMode::Readwrite, |s| {
            if replace {
                s.put_with_key(&fresh, &RECORD.into())
            } else {
                s.add_with_key(&fresh, &RECORD.into())
            }
        })
        .await;
    }
}

/// Opens [`DB`], creating [`STORE`] on first use.
async fn open(factory: &web_sys::IdbFactory) -> Result<IdbDatabase, JsValue> {
    let request = factory.open_with_u32(DB, 1)?;
    let opening = request.clone();
    // The store can only be created inside the upgrade event itself.
    let upgrade = Closure::once_into_js(move || {
        if let Ok(db) = opening.result() {
            let _ = db
                .unchecked_into::<IdbDatabase>()
                .create_object_store(STORE);
        }
    });
    request.set_onupgradeneeded(Some(upgrade.unchecked_ref()));
    let db = done(&request).await;
    request.set_onupgradeneeded(None);
    Ok(db?.unchecked_into())
}

/// One request on [`STORE`] in its own transaction; its result.
async fn in_store(
    db: &IdbDatabase,
    mode: IdbTransactionMode,
    request: impl FnOnce(&IdbObjectStore) -> Result<IdbRequest, JsValue>,
) -> Result<JsValue, JsValue> {
    let store = db
        .transaction_with_str_and_mode(STORE, mode)?
        .object_store(STORE)?;
    done(&request(&store)?).await
}

/// Waits for an IndexedDB request and returns its result.
async fn done(request: &IdbRequest) -> Result<JsValue, JsValue> {
    let finished = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    JsFuture::from(finished).await?;
    request.result()
}

/// The key of a stored record, if it is one this SPA would have made: a non-extractable
/// private key (a script in the page could have stored an extractable one) and a public P-256
/// key, whose coordinates make the proofs' header.
async fn usable(subtle: &SubtleCrypto, stored: &JsValue) -> Option<Key> {
    let half = |name: &str| {
        Reflect::get(stored, &name.into())
            .ok()?
            .dyn_into::<CryptoKey>()
            .ok()
    };
    let (private, public) = (half("privateKey")?, half("publicKey")?);
    if private.extractable() {
        return None;
    }
    let jwk = JsFuture::from(subtle.export_key("jwk", &public).ok()?)
        .await
        .ok()?;
    let member = |name: &str| Reflect::get(&jwk, &name.into()).ok()?.as_string();
    let coordinate = |name: &str| member(name).filter(|c| is_base64url(c) && !c.is_empty());
    if member("kty")? != "EC" || member("crv")? != "P-256" {
        return None;
    }
    let header = [
        r#"{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":""#,
        &coordinate("x")?,
        r#"","y":""#,
        &coordinate("y")?,
        r#""}}"#,
    ]
    .concat();
    Some(Key {
        private,
        header: base64url(header.as_bytes()),
    })
}

/// `htu`: the absolute URL of `url` without query and fragment (RFC 9449 section 4.2), as the
/// browser's URL parser normalises it, which is how the request goes out.
fn htu(url: &str) -> Option<String> {
    let page = web_sys::window()?.location().href().ok()?;
    let url = Url::new_with_base(url, &page).ok()?;
    url.set_search("");
    url.set_hash("");
    Some(url.href())
}

/// A fresh `jti`: 128 random bits from the browser's CSPRNG.
fn jti() -> Option<String> {
    let mut random = [0u8; 16];
    web_sys::window()?
        .crypto()
        .ok()?
        .get_random_values_with_u8_array(&mut random)
        .ok()?;
    Some(base64url(&random))
}

/// The bytes of an `ArrayBuffer` (what `sign` and `digest` resolve to).
fn bytes(buffer: JsValue) -> Vec<u8> {
    Uint8Array::new(&buffer).to_vec()
}

/// A JSON string literal (quotes and escapes) for a value that comes from outside.
fn json_string(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned())
}

fn is_base64url(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Base64url without padding (RFC 7515 section 2).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_encodes_the_rfc_4648_vectors_without_padding() {
        let vectors = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64url(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn base64url_uses_the_url_safe_alphabet() {
        assert_eq!(base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
        assert!(is_base64url("-_azAZ09"));
        assert!(!is_base64url("a+b/"));
        assert!(!is_base64url("a\"b"));
    }

    #[test]
    fn strings_from_outside_are_escaped_in_the_claims() {
        assert_eq!(json_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
