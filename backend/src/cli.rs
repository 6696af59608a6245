//! Every subcommand of the `login-bridge` binary: `serve` (the default), `check-config`,
//! `token verify`, `keys`, `service-user` and `user`. `main.rs` hands the parsed command line here;
//! logging starts once the configuration (and so its log format) is loaded.

use std::{fmt::Write, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::{Parser, Subcommand};

use crate::{
    authority::{
        crypto::SigningAlg,
        keyfile::{KeyFile, write_private},
        keyring::Authority,
        local_users::{self, NewLocalUser},
        service_users::{self, NewServiceUser},
    },
    oidc::client::ProviderClient,
    session::store::SessionBackend,
    settings::{Config, Settings},
    startup::Application,
    trust::engine::TrustEngine,
};

#[derive(Parser)]
#[command(
    name = "login-bridge",
    version,
    about = "Hands a validated OIDC/JWT token to a single-page web UI"
)]
pub struct Cli {
    /// TOML configuration file; `BRIDGE_*` environment variables override it.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Load and validate the configuration, print it (secrets masked), and exit.
    CheckConfig,
    /// Work with tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The bridge's own signing keys (needs `[authority]`).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Service users: callers without a browser that sign RFC 7523 assertions with their own
    /// key (needs `[authority]`).
    ServiceUser {
        #[command(subcommand)]
        command: ServiceUserCommand,
    },
    /// Local accounts: people who sign in with a username and password at the bridge when
    /// there is no SSO (needs `[authority]` and `[local_accounts]` to sign in).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is asked for twice on a terminal, else read as one
    /// line from stdin; it never goes on the command line.
    Add {
        name: String,
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long)]
        email: Option<String>,
        /// The name the UI shows.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Set a new password (asked for like `add`); the account's sessions end.
    Passwd { name: String },
    /// Disable an account: it cannot sign in, and its sessions end at their next check.
    Disable { name: String },
    /// Enable a disabled account again.
    Enable { name: String },
    /// Every account: name, id, state, roles, groups.
    List,
}

/// Where `user add` and `user passwd` get the password from.
pub enum PasswordInput {
    /// A prompt on the terminal, or one line of stdin when it is not a terminal.
    Ask,
    /// Given by the caller (tests, and programs embedding the CLI).
    Given(String),
}

impl PasswordInput {
    fn read(self) -> anyhow::Result<String> {
        use std::io::IsTerminal;
        let password = match self {
            Self::Given(p) => p,
            Self::Ask if std::io::stdin().is_terminal() => {
                let first = rpassword::prompt_password("password: ")?;
                let second = rpassword::prompt_password("again: ")?;
                if first != second {
                    anyhow::bail!("the two passwords differ; nothing changed");
                }
                first
            }
            Self::Ask => {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            }
        };
        Ok(password)
    }
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Every stored signing key: kid, algorithm, state.
    List,
    /// New current keys (every algorithm in use, or one); the old ones stay published until
    /// the last token they signed has expired.
    Rotate {
        #[arg(long)]
        alg: Option<String>,
    },
    /// Print the current public key (PEM with `--pem`, else the JWKS) to paste into an API's
    /// configuration, such as privacyIDEA's PI_TRUSTED_JWT.
    Export {
        #[arg(long)]
        pem: bool,
        /// The algorithm whose current key to export (default: `authority.algorithm`).
        #[arg(long)]
        alg: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ServiceUserCommand {
    /// Create a service user and its first key; writes the key file (mode 0600). The private
    /// key is not kept by the bridge.
    Create {
        name: String,
        /// Last day the user works (YYYY-MM-DD, UTC).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Bridge permissions: `introspect` lets it call /oauth/introspect.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// Key type: ES256 (default), RS256, PS256 or EdDSA.
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// Where to write the key file (default: NAME.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Every service user and its keys.
    List,
    /// Another key for a user; writes its key file.
    AddKey {
        user: String,
        #[arg(long, default_value = "ES256")]
        alg: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Remove one key of a user.
    RemoveKey {
        user: String,
        /// A key id is base64url and may begin with `-`: taken as it is, not as an option.
        #[arg(allow_hyphen_values = true)]
        key_id: String,
    },
    /// Disable a user: its assertions and tokens stop working.
    Disable { user: String },
    /// Enable a disabled user again.
    Enable { user: String },
}

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

/// Runs the command line: loads the configuration once (every problem reported together),
/// starts logging in its `log.format`, then the subcommand.
pub async fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("login-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    // After loading: the format is a setting. Loading logs nothing; its problems go to stderr
    // above.
    crate::telemetry::init(settings.settings.log.format, &settings.settings.log.level);
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            for warning in settings.settings.warnings() {
                eprintln!("login-bridge: warning: {warning}");
            }
            match toml_like(&settings.settings) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("login-bridge: {e}"),
            }
            if settings.settings.session.store == crate::settings::StoreKind::Redis {
                // `url` prints as `***` above; the operator still wants to see which
                // deployment it names (sentinels, cluster nodes), without its password.
                let url = settings.settings.session.url.expose();
                if let (Some(masked), Ok(topology)) = (
                    crate::session::redis::masked_url(url),
                    crate::session::redis::check_url(url),
                ) {
                    // On stderr, with the warnings: stdout stays the configuration alone.
                    eprintln!("login-bridge: session.url = {masked} ({topology})");
                }
            }
            ExitCode::SUCCESS
        }
        Command::Token {
            command:
                TokenCommand::Verify {
                    token,
                    proof,
                    method,
                    url,
                },
        } => {
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
            match verify_token_with_proof(settings, &token, proof.as_ref()).await {
                Ok((report, accepted)) => {
                    print!("{report}");
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
        command @ (Command::Keys { .. } | Command::ServiceUser { .. } | Command::User { .. }) => {
            match admin(settings, command).await {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("login-bridge: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => match serve(settings, cli.config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("login-bridge: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs a `keys`, `service-user` or `user` command and returns what it prints.
pub async fn admin(config: Config, command: Command) -> anyhow::Result<String> {
    admin_with(config, command, PasswordInput::Ask).await
}

/// [`admin`], with the password of `user add` / `user passwd` from `password`.
pub async fn admin_with(
    config: Config,
    command: Command,
    password: PasswordInput,
) -> anyhow::Result<String> {
    match command {
        Command::Keys { command } => keys(config, command).await,
        Command::ServiceUser { command } => service_user(config, command).await,
        Command::User { command } => user(config, command, password).await,
        _ => anyhow::bail!("not an administration command"),
    }
}

async fn user(
    config: Config,
    command: UserCommand,
    password: PasswordInput,
) -> anyhow::Result<String> {
    let authority = open_authority(config).await?;
    let store = &authority.store;
    let mut out = String::new();
    match command {
        UserCommand::Add {
            name,
            roles,
            groups,
            email,
            display_name,
        } => {
            let name = local_users::normalize_name(&name);
            // Checked before asking for the password, which would be asked in vain.
            local_users::check_name(&name)?;
            if store.local_user(&name).await?.is_some() {
                anyhow::bail!("a local user named {name:?} exists already");
            }
            let user = local_users::add(
                store,
                NewLocalUser {
                    name,
                    password: password.read()?,
                    display_name,
                    email,
                    roles,
                    groups,
                },
            )
            .await?;
            let _ = writeln!(out, "created local user {} ({})", user.name, user.id);
        }
        UserCommand::Passwd { name } => {
            let name = local_users::normalize_name(&name);
            if store.local_user(&name).await?.is_none() {
                anyhow::bail!("no local user {name:?}");
            }
            let user = local_users::set_password(store, &name, &password.read()?).await?;
            let _ = writeln!(
                out,
                "password of {} changed; its sessions end at their next check",
                user.name
            );
        }
        UserCommand::Disable { name } => {
            let user = local_users::set_disabled(store, &name, true).await?;
            let _ = writeln!(
                out,
                "local user {} disabled; its sessions end at their next check",
                user.name
            );
        }
        UserCommand::Enable { name } => {
            let user = local_users::set_disabled(store, &name, false).await?;
            let _ = writeln!(out, "local user {} enabled", user.name);
        }
        UserCommand::List => {
            for u in local_users::list(store).await? {
                let _ = writeln!(
                    out,
                    "{} ({}) {} roles={:?} groups={:?} created {} password set {}",
                    u.name,
                    u.id,
                    if u.disabled { "disabled" } else { "active" },
                    u.roles,
                    u.groups,
                    date_text(u.created_at),
                    date_text(u.password_changed_at)
                );
            }
        }
    }
    Ok(out)
}

/// The authority on the configured store, as the server opens it.
async fn open_authority(config: Config) -> anyhow::Result<Authority> {
    let Config {
        settings, profiles, ..
    } = config;
    let Some(a) = &settings.authority else {
        anyhow::bail!(
            "the bridge issues no tokens: add [authority] with key_encryption_key_file to the \
             configuration"
        );
    };
    let backend = SessionBackend::open(&settings.session).await?;
    let store = backend.authority_store().await?;
    Ok(Authority::open(a, &settings.origin(), profiles, store).await?)
}

fn parse_alg(text: &str) -> anyhow::Result<SigningAlg> {
    SigningAlg::parse(text).ok_or_else(|| {
        anyhow::anyhow!("unknown algorithm {text:?}: use ES256, RS256, PS256 or EdDSA")
    })
}

fn date_text(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

async fn keys(config: Config, command: KeysCommand) -> anyhow::Result<String> {
    let authority = open_authority(config).await?;
    let mut out = String::new();
    match command {
        KeysCommand::List => {
            let _ = writeln!(out, "{:<45} {:<6} {:<26} state", "kid", "alg", "created");
            let now = crate::clock::now();
            for k in authority.key_infos().await? {
                let state = match (k.retired_at, k.publish_until) {
                    (None, _) => "current".to_string(),
                    (Some(_), Some(until)) if until > now => {
                        format!("retired, published until {}", date_text(until))
                    }
                    (Some(_), _) => "retired".to_string(),
                };
                let _ = writeln!(
                    out,
                    "{:<45} {:<6} {:<26} {state}",
                    k.kid,
                    k.alg,
                    date_text(k.created_at)
                );
            }
        }
        KeysCommand::Rotate { alg } => {
            let only = alg.as_deref().map(parse_alg).transpose()?;
            for kid in authority.rotate(only).await? {
                let _ = writeln!(out, "new current key {kid}");
            }
            eprintln!(
                "the previous keys stay published until every token they signed has expired; \
                 running bridges pick the new keys up within authority.key_reload_secs"
            );
        }
        KeysCommand::Export { pem, alg } => {
            let alg = match alg {
                Some(a) => parse_alg(&a)?,
                None => authority.default_alg,
            };
            let ring = authority.ring();
            let Some(key) = ring.current(alg) else {
                anyhow::bail!("no current {alg} key");
            };
            if pem {
                out.push_str(&key.public_pem());
            } else {
                let _ = writeln!(out, "{}", ring.jwks_json());
            }
        }
    }
    Ok(out)
}

fn write_key_file(file: &KeyFile, to: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    let path = to.unwrap_or_else(|| PathBuf::from(format!("{name}.json")));
    let text = serde_json::to_string_pretty(file)?;
    write_private(&path, text.as_bytes()).map_err(|e| anyhow::anyhow!(e))?;
    Ok(path)
}

fn parse_expiry(text: &str) -> anyhow::Result<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format)
        .map_err(|_| anyhow::anyhow!("--expires {text:?}: use YYYY-MM-DD"))?;
    // The user works through that whole day (UTC).
    Ok(date.with_hms(23, 59, 59)?.assume_utc().unix_timestamp())
}

async fn service_user(config: Config, command: ServiceUserCommand) -> anyhow::Result<String> {
    let authority = open_authority(config).await?;
    let mut out = String::new();
    let store = &authority.store;
    match command {
        ServiceUserCommand::Create {
            name,
            expires,
            roles,
            groups,
            permissions,
            alg,
            out: to,
        } => {
            let new = NewServiceUser {
                name: name.clone(),
                expires_at: expires.as_deref().map(parse_expiry).transpose()?,
                roles,
                groups,
                permissions,
                alg: parse_alg(&alg)?,
            };
            // The key file's place is checked first: nothing is created if it cannot be written.
            let path = to.unwrap_or_else(|| PathBuf::from(format!("{name}.json")));
            if path.exists() {
                anyhow::bail!("{} already exists; not overwriting it", path.display());
            }
            let (user, file) = service_users::create(store, new).await?;
            let path = write_key_file(&file, Some(path), &name)?;
            let _ = writeln!(out, "created service user {} ({})", user.name, user.id);
            let _ = writeln!(
                out,
                "key {} written to {} (mode 0600); the bridge keeps only the public key",
                file.key_id,
                path.display()
            );
        }
        ServiceUserCommand::List => {
            for (user, keys) in service_users::list(store).await? {
                let state = if user.disabled {
                    "disabled".to_string()
                } else if let Some(e) = user.expires_at {
                    format!("active until {}", date_text(e))
                } else {
                    "active".into()
                };
                let _ = writeln!(
                    out,
                    "{} ({}) {state} roles={:?} groups={:?} permissions={:?}",
                    user.name, user.id, user.roles, user.groups, user.permissions
                );
                for k in keys {
                    let _ = writeln!(
                        out,
                        "  key {} {} created {}",
                        k.key_id,
                        k.alg,
                        date_text(k.created_at)
                    );
                }
            }
        }
        ServiceUserCommand::AddKey { user, alg, out: to } => {
            let file = service_users::add_key(store, &user, parse_alg(&alg)?).await?;
            let path = write_key_file(
                &file,
                to,
                &format!("{user}-{}", &file.key_id[..8.min(file.key_id.len())]),
            )?;
            let _ = writeln!(
                out,
                "key {} written to {} (mode 0600)",
                file.key_id,
                path.display()
            );
        }
        ServiceUserCommand::RemoveKey { user, key_id } => {
            service_users::remove_key(store, &user, &key_id).await?;
            let _ = writeln!(out, "key {key_id} removed");
        }
        ServiceUserCommand::Disable { user } => {
            let u = service_users::set_disabled(store, &user, true).await?;
            let _ = writeln!(out, "service user {} ({}) disabled", u.name, u.id);
        }
        ServiceUserCommand::Enable { user } => {
            let u = service_users::set_disabled(store, &user, false).await?;
            let _ = writeln!(out, "service user {} ({}) enabled", u.name, u.id);
        }
    }
    Ok(out)
}

fn toml_like(settings: &Settings) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(settings)
}

/// Runs the server; SIGHUP reloads `file` (and `BRIDGE_*`), see [`crate::reload`].
async fn serve(config: Config, file: Option<PathBuf>) -> anyhow::Result<()> {
    // Before anything else: SIGHUP's default action ends the process, and a `systemctl reload`
    // during startup must not.
    #[cfg(unix)]
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| anyhow::anyhow!("cannot handle SIGHUP: {e}"))?;
    let settings = config.settings.clone();
    let app = Application::build(config).await?;
    #[cfg(unix)]
    {
        let reloader = app.reloader();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reloader.reload_file(file.as_deref()).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = file;
    tracing::info!(
        port = app.port(),
        public_url = %settings.public_url,
        issuer = %settings.oidc.issuer,
        "login-bridge listening"
    );
    if let Some(port) = app.metrics_port() {
        tracing::info!(port, "metrics at /metrics");
    }
    app.run_until_stopped().await?;
    Ok(())
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
        access_token: Some(token),
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
    use clap::Parser;

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

    #[test]
    fn a_key_id_that_begins_with_a_dash_is_a_key_id_not_an_option() {
        let parsed = Cli::try_parse_from([
            "login-bridge",
            "service-user",
            "remove-key",
            "svc-a",
            "-3xYz_Q",
        ]);
        match parsed.map(|c| c.command) {
            Ok(Some(Command::ServiceUser {
                command: ServiceUserCommand::RemoveKey { user, key_id },
            })) => assert_eq!((user.as_str(), key_id.as_str()), ("svc-a", "-3xYz_Q")),
            Ok(_) => panic!("parsed as another command"),
            Err(e) => panic!("{e}"),
        }
    }
}
