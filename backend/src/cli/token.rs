//! `login-bridge token verify`: checks a JWT as the API would and explains every step (the
//! issuer, each check, the mapped principal, the policy), and with `--proof` a DPoP proof
//! against it. What an operator runs when "my token is rejected"; it never prints the token.

use std::{fmt::Write, process::ExitCode, sync::Arc, time::Duration};

use clap::Subcommand;

use super::authority::open_authority;
use crate::{oidc::client::ProviderClient, settings::Config, trust::engine::TrustEngine};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Check a JWT as the API would: which issuer matched, each check and why, the mapped
    /// principal. Exit code 0 when accepted, 1 when rejected. Pass `-` to read it from stdin
    /// (keeps it out of shell history and the process list).
    ///
    /// A token with `cnf.jkt` (bound to a key, DPoP, RFC 9449) is explained; `--proof` checks
    /// a DPoP proof against it as the bridge would (all but replay).
    Verify {
        /// The JWT, or `-` for stdin.
        token: String,
        /// A DPoP proof (the request's `DPoP` header) to check with the token: its signature,
        /// `typ`, `alg`, `htm`, `htu`, `iat`, `ath`, and its key's thumbprint against `cnf.jkt`.
        #[arg(long)]
        proof: Option<String>,
        /// The request's method the proof must name (default: the proof's own `htm`).
        #[arg(long, requires = "proof")]
        method: Option<String>,
        /// The request's URL as the browser made it, e.g. `https://app.example/api/me` (default:
        /// the proof's own `htu`, then only its origin is compared with `public_url`'s).
        #[arg(long, requires = "proof")]
        url: Option<String>,
    },
}

/// `token verify --proof`: the proof and the request it should match.
pub struct ProofQuery {
    pub proof: String,
    pub method: Option<String>,
    pub url: Option<String>,
}

/// Runs `token verify`: exit code 0 when the token is accepted, 1 when rejected, 2 when it
/// could not be checked at all.
pub(super) async fn run(config: Config, command: TokenCommand) -> ExitCode {
    let TokenCommand::Verify {
        token,
        proof,
        method,
        url,
    } = command;
    let token = if token == "-" {
        let mut buf = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf) {
            eprintln!("login-bridge: cannot read the token from stdin: {e}");
            return ExitCode::from(2);
        }
        buf
    } else {
        token
    };
    let proof = proof.map(|proof| ProofQuery { proof, method, url });
    match verify_token_with_proof(config, &token, proof.as_ref()).await {
        Ok((report, accepted)) => {
            super::write_stdout(&report);
            if accepted {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("login-bridge: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Verifies `token` as the API would and returns the report and whether it was accepted.
///
/// `login-bridge token verify`: what an operator runs when "my token is rejected". Prints
/// which trusted issuer the token claims, every check with its result and reason, the mapped
/// principal and the policy verdict. Never prints the token.
pub async fn verify_token(config: Config, token: &str) -> anyhow::Result<(String, bool)> {
    verify_token_with_proof(config, token, None).await
}

/// [`verify_token`], and with `proof` the DPoP proof checked against the token: the token is
/// accepted only if the proof is too and names the key of its `cnf.jkt`.
pub async fn verify_token_with_proof(
    config: Config,
    token: &str,
    proof: Option<&ProofQuery>,
) -> anyhow::Result<(String, bool)> {
    let token = token.trim();
    let dpop_window = (
        config.settings.session.dpop_proof_max_age_secs,
        i64::try_from(config.settings.oidc.leeway_secs).unwrap_or(i64::MAX),
    );
    let origin = config.settings.origin();
    let authority = if config.settings.authority.is_some() {
        Some(open_authority(config.clone()).await)
    } else {
        None
    };
    let Config {
        settings, issuers, ..
    } = config;
    let http = crate::oidc::http::ProviderHttp::new(Duration::from_secs(
        settings.oidc.http_timeout_secs.min(5),
    ))?;
    let engine = Arc::new(TrustEngine::new(
        issuers,
        settings.route_policies.clone(),
        http.client(),
    ));
    let provider = ProviderClient::new(Arc::new(settings), http, engine.clone());
    let mut out = String::new();
    match authority {
        Some(Ok(a)) => engine.register(a.trusted_issuer()),
        Some(Err(e)) => {
            let _ = writeln!(out, "note: the bridge's own keys could not be read: {e:#}");
        }
        None => {}
    }
    // A successful discovery registers the provider with the engine, like the server does.
    if let Err(e) = provider.discover().await {
        let _ = writeln!(
            out,
            "note: the OIDC provider could not be discovered, so its tokens cannot be checked here: {e}"
        );
    }
    let explanation = engine.explain(token).await;
    let _ = writeln!(
        out,
        "issuer: {}",
        explanation.issuer.as_deref().unwrap_or("(unreadable)")
    );
    for check in &explanation.checks {
        match &check.outcome {
            Ok(detail) => {
                let _ = writeln!(out, "  ok    {}: {detail}", check.name);
            }
            Err(e) => {
                let _ = writeln!(out, "  FAIL  {}: {e}", check.name);
            }
        }
    }
    if let Some(p) = &explanation.principal {
        let _ = writeln!(out, "principal:");
        let _ = writeln!(out, "  user id:  {}", p.user.id);
        let _ = writeln!(
            out,
            "  username: {}",
            p.user.username.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            out,
            "  email:    {}",
            p.user.email.as_deref().unwrap_or("-")
        );
        let _ = writeln!(out, "  groups:   {:?}", p.user.groups);
        let _ = writeln!(out, "  roles:    {:?}", p.user.roles);
        let _ = writeln!(
            out,
            "  token:    {}",
            p.token_name.as_deref().unwrap_or("-")
        );
        if let Some(level) = p.access_level {
            let _ = writeln!(out, "  access level: {level}");
        }
    }
    match &explanation.policy {
        Some(Ok(())) => {
            let _ = writeln!(out, "policy: admitted");
        }
        Some(Err(reason)) => {
            let _ = writeln!(out, "policy: refused ({reason})");
        }
        None => {}
    }
    let mut accepted = explanation.accepted();
    let cnf = binding(token);
    explain_binding(&mut out, &cnf);
    if let Some(query) = proof {
        let proof_ok = explain_proof(
            &mut out,
            query,
            token,
            &cnf,
            &origin,
            dpop_window,
            crate::clock::now(),
        );
        accepted &= proof_ok;
    }
    let _ = writeln!(
        out,
        "result: {}",
        if accepted { "ACCEPTED" } else { "REJECTED" }
    );
    Ok((out, accepted))
}

/// What a token's `cnf` claim (RFC 7800) says about its binding.
#[derive(Debug, PartialEq, Eq)]
enum Binding {
    /// No `cnf` (or an unreadable payload: the checks above say so): a bearer token.
    Unbound,
    /// `cnf.jkt`: bound to the key with this RFC 7638 thumbprint (DPoP, RFC 9449).
    Jkt(String),
    /// A `cnf` without `jkt` (e.g. `x5t#S256`, an mTLS certificate, RFC 8705): another
    /// confirmation method, which the bridge does not check (the token counts as unbound).
    Other(Vec<String>),
    /// A `cnf` that is not an object, or a `jkt` that is not a non-empty string: the bridge
    /// refuses the token (never reads it as unbound).
    Malformed,
}

/// The token's binding, read from its payload (unverified: the checks above verify it).
fn binding(token: &str) -> Binding {
    use base64::Engine as _;
    let cnf = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|mut claims| claims.get_mut("cnf").map(serde_json::Value::take));
    match cnf {
        None => Binding::Unbound,
        Some(serde_json::Value::Object(members)) => match members.get("jkt") {
            None => Binding::Other(members.keys().cloned().collect()),
            Some(serde_json::Value::String(jkt)) if !jkt.is_empty() => Binding::Jkt(jkt.clone()),
            Some(_) => Binding::Malformed,
        },
        Some(_) => Binding::Malformed,
    }
}

fn explain_binding(out: &mut String, cnf: &Binding) {
    match cnf {
        Binding::Unbound => {}
        Binding::Jkt(jkt) => {
            let _ = writeln!(out, "binding (cnf):");
            let _ = writeln!(
                out,
                "  jkt:      {jkt}\n  \
                 bound to the key with that RFC 7638 thumbprint (DPoP, RFC 9449): usable only as\n  \
                 `Authorization: DPoP <token>` with a fresh `DPoP` proof signed by that key (one\n  \
                 per request, with `ath`); sent as Bearer or with another key's proof it is refused"
            );
        }
        Binding::Other(members) => {
            let _ = writeln!(
                out,
                "binding (cnf): {members:?}, no jkt: a confirmation method other than DPoP \
                 (e.g. an mTLS certificate, RFC 8705), which the bridge does not check: it takes \
                 the token as unbound"
            );
        }
        Binding::Malformed => {
            let _ = writeln!(
                out,
                "binding (cnf): malformed (not an object, or a jkt that is not a non-empty \
                 string): the bridge refuses the token"
            );
        }
    }
}

/// Checks `query`'s proof against the token and the request, prints each point, and says
/// whether the bridge would accept the pair (replay aside: that needs the store).
fn explain_proof(
    out: &mut String,
    query: &ProofQuery,
    token: &str,
    cnf: &Binding,
    origin: &str,
    (max_age_secs, leeway_secs): (i64, i64),
    now: i64,
) -> bool {
    use crate::dpop::proof;
    let proof = query.proof.trim();
    let _ = writeln!(out, "DPoP proof:");
    // What the proof says, read unverified for the comparisons below; `proof::verify` decides.
    let (proof_jkt, claims) = peek_proof(proof);
    let said = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    let method = query
        .method
        .clone()
        .or_else(|| said("htm").map(str::to_owned))
        .unwrap_or_default();
    let url = query
        .url
        .clone()
        .or_else(|| said("htu").map(str::to_owned))
        .unwrap_or_default();
    let expected = proof::Expected {
        method: &method,
        htu: &url,
        htu_from_origin: false,
        token_sha256: Some(crate::trust::principal::token_digest(token)),
        now,
        max_age_secs,
        leeway_secs,
    };
    let mut ok = true;
    let mut line = |good: bool, name: &str, detail: String| {
        ok &= good;
        let _ = writeln!(
            out,
            "  {}  {name}: {detail}",
            if good { "ok  " } else { "FAIL" }
        );
    };
    let mut notes = Vec::new();
    match proof::verify(proof, &expected) {
        Ok(_) => line(
            true,
            "proof",
            "typ, alg, signature with its jwk, htm, htu, iat and ath verify".into(),
        ),
        Err(e) => line(false, "proof", e.to_string()),
    }
    if query.method.is_none() {
        notes.push(format!(
            "htm: {method:?} taken from the proof (pass --method to compare)"
        ));
    }
    if query.url.is_none() {
        let same_origin =
            url::Url::parse(&url).is_ok_and(|u| u.origin().ascii_serialization() == origin);
        line(
            same_origin,
            "htu",
            format!(
                "{url:?} taken from the proof (pass --url to compare); the bridge expects its \
                 public_url's origin {origin}"
            ),
        );
    }
    let ath_ok = said("ath") == Some(proof::ath(token).as_str());
    line(
        ath_ok,
        "ath",
        if ath_ok {
            "the SHA-256 of this token".into()
        } else if said("ath").is_none() {
            "missing: a proof sent with a token must carry ath".into()
        } else {
            "not the SHA-256 of this token (a proof made for another token)".into()
        },
    );
    if let Some(iat) = claims.get("iat").and_then(serde_json::Value::as_i64) {
        let age = expected.now - iat;
        let window = expected.max_age_secs + expected.leeway_secs;
        line(
            (-expected.leeway_secs..=window).contains(&age),
            "iat",
            format!(
                "{age} s old (accepted from {} s ahead to {window} s old: \
                 session.dpop_proof_max_age_secs + oidc.leeway_secs)",
                expected.leeway_secs
            ),
        );
    }
    let proof_key = proof_jkt.as_deref().unwrap_or("(unreadable)");
    match cnf {
        Binding::Jkt(jkt) => line(
            proof_jkt.as_deref() == Some(jkt.as_str()),
            "key",
            if proof_jkt.as_deref() == Some(jkt.as_str()) {
                format!("the proof's key {proof_key} is the token's cnf.jkt")
            } else {
                format!(
                    "the proof's key {proof_key} is not the token's cnf.jkt {jkt} (a proof of \
                     another key)"
                )
            },
        ),
        _ => line(
            false,
            "key",
            format!(
                "the proof's key is {proof_key}, but the token names none (no cnf.jkt): the \
                 bridge refuses an unbound token sent as DPoP"
            ),
        ),
    }
    notes.push("replay: not checked here (the bridge accepts each proof's jti once)".into());
    for note in notes {
        let _ = writeln!(out, "  note  {note}");
    }
    ok
}

/// The proof's key's RFC 7638 thumbprint and its claims, read without verifying anything.
fn peek_proof(proof: &str) -> (Option<String>, serde_json::Map<String, serde_json::Value>) {
    use base64::Engine as _;
    let part = |i: usize| {
        proof
            .split('.')
            .nth(i)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
    };
    let jkt = part(0)
        .and_then(|mut h| h.get_mut("jwk").map(serde_json::Value::take))
        .and_then(|jwk| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk).ok())
        .map(|jwk| jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256));
    let claims = match part(1) {
        Some(serde_json::Value::Object(claims)) => claims,
        _ => serde_json::Map::new(),
    };
    (jkt, claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_cnf_is_read_as_the_trust_engine_reads_it() {
        use base64::Engine as _;
        let token = |payload: serde_json::Value| {
            let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            format!("{}.{}.sig", b64("{}".into()), b64(payload.to_string()))
        };
        let cases = [
            (serde_json::json!({"sub": "a"}), Binding::Unbound),
            (
                serde_json::json!({"cnf": {"jkt": "abc"}}),
                Binding::Jkt("abc".into()),
            ),
            (
                serde_json::json!({"cnf": {"x5t#S256": "abc"}}),
                Binding::Other(vec!["x5t#S256".into()]),
            ),
            (serde_json::json!({"cnf": {"jkt": ""}}), Binding::Malformed),
            (serde_json::json!({"cnf": {"jkt": 7}}), Binding::Malformed),
            (serde_json::json!({"cnf": "abc"}), Binding::Malformed),
        ];
        for (payload, want) in cases {
            assert_eq!(binding(&token(payload.clone())), want, "{payload}");
        }
        assert_eq!(binding("not-a-jwt"), Binding::Unbound);
    }
}
