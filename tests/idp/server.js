#!/usr/bin/env node
// Demo/test OpenID Connect provider that stands in for Keycloak.
//
//   node tests/idp/server.js [--host 127.0.0.1] [--port 0] [--client-id login-bridge] ...
//
// Prints exactly one line on stdout once it accepts connections:
//   LISTENING http://127.0.0.1:PORT        (that URL is the issuer)
// Everything else goes to stderr. See README.md in this folder.

import {
  createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign,
  verify as cryptoVerify,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// oidc-provider prints its notices with console.info (stdout); stdout belongs to the
// LISTENING line only, so route every console method to stderr before loading it.
for (const m of ['log', 'info', 'debug']) console[m] = (...args) => console.error(...args);

const { default: Provider, errors } = await import('oidc-provider');

const HERE = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- options

const USAGE = `usage: node server.js [options]
  --host HOST                      listen address, also the issuer host (default 127.0.0.1)
  --port PORT                      listen port, 0 = any free port (default 0)
  --client-id ID                   confidential client id (default login-bridge)
  --client-secret SECRET           client secret (default demo-client-secret)
  --redirect-uri URI               repeatable (default http://localhost:8080/auth/callback)
  --post-logout-redirect-uri URI   repeatable (default http://localhost:8080/)
  --backchannel-logout-uri URI     where logout tokens are posted when a session ends (OIDC
                                   Back-Channel Logout; default: the first redirect URI's
                                   origin + /auth/backchannel-logout; none: no back-channel
                                   logout, the client learns nothing of a session's end)
  --audience AUD                   aud of JWT access tokens (default login-bridge-api)
  --access-token-ttl SECONDS       access token lifetime (default 300)
  --refresh-token-ttl SECONDS      refresh token lifetime, also sent as refresh_expires_in in
                                   token responses as Keycloak does (default 1800)
  --signing-key PATH               PKCS#8 RSA private key PEM (default ../fixtures/idp-signing-key.pem)
  --bench-client-jwks FILE         also register client bench-client (client_credentials with
                                   private_key_jwt, public keys from this JWKS file), for
                                   bench/token-endpoint.sh; its access tokens are ES256 JWTs
  --id-token-audience AUD          repeatable: an audience added to every ID token of the token
                                   endpoint besides the client, with azp set to the client (as
                                   LemonLDAP::NG does with a client's "additional audiences")
  --reset-idle-connections-ms MS   a request of login-bridge (by its User-Agent) that arrives on
                                   a kept-alive connection idle for MS ms or more is answered by
                                   a reset, as when a server closes an idle connection just as
                                   it is reused (counted in /test/stats idle_connection_resets)
  --exit-on-stdin-close            exit when stdin reaches EOF
  --help                           show this text`;

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1',
    port: 0,
    clientId: 'login-bridge',
    clientSecret: 'demo-client-secret',
    redirectUris: [],
    postLogoutRedirectUris: [],
    backchannelLogoutUri: null,
    audience: 'login-bridge-api',
    accessTokenTtl: 300,
    refreshTokenTtl: 1800,
    signingKey: resolve(HERE, '../fixtures/idp-signing-key.pem'),
    exitOnStdinClose: false,
    benchClientJwks: undefined,
    idTokenAudiences: [],
    resetIdleConnectionsMs: undefined,
  };
  const valued = {
    '--host': (v) => { opts.host = v; },
    '--port': (v) => { opts.port = intArg('--port', v, 0, 65535); },
    '--client-id': (v) => { opts.clientId = v; },
    '--client-secret': (v) => { opts.clientSecret = v; },
    '--redirect-uri': (v) => { opts.redirectUris.push(v); },
    '--post-logout-redirect-uri': (v) => { opts.postLogoutRedirectUris.push(v); },
    '--backchannel-logout-uri': (v) => { opts.backchannelLogoutUri = v; },
    '--audience': (v) => { opts.audience = v; },
    '--access-token-ttl': (v) => { opts.accessTokenTtl = intArg('--access-token-ttl', v, 1, 86400 * 365); },
    '--refresh-token-ttl': (v) => { opts.refreshTokenTtl = intArg('--refresh-token-ttl', v, 1, 86400 * 365); },
    '--signing-key': (v) => { opts.signingKey = resolve(v); },
    '--bench-client-jwks': (v) => { opts.benchClientJwks = resolve(v); },
    '--id-token-audience': (v) => { opts.idTokenAudiences.push(v); },
    '--reset-idle-connections-ms': (v) => { opts.resetIdleConnectionsMs = intArg('--reset-idle-connections-ms', v, 1, 3600 * 1000); },
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (arg === '--exit-on-stdin-close') {
      opts.exitOnStdinClose = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const set = valued[name];
    if (!set) die(`unknown option ${arg}`);
    let value;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      i += 1;
      if (i >= argv.length) die(`option ${name} needs a value`);
      value = argv[i];
    }
    if (value === '') die(`option ${name} needs a non-empty value`);
    set(value);
  }
  if (!opts.redirectUris.length) opts.redirectUris.push('http://localhost:8080/auth/callback');
  if (!opts.postLogoutRedirectUris.length) opts.postLogoutRedirectUris.push('http://localhost:8080/');
  if (!opts.backchannelLogoutUri) {
    opts.backchannelLogoutUri = `${new URL(opts.redirectUris[0]).origin}/auth/backchannel-logout`;
  }
  return opts;
}

function intArg(name, v, min, max) {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) die(`option ${name}: expected an integer in ${min}..${max}, got ${v}`);
  return Number(v);
}

function die(msg) {
  process.stderr.write(`demo-idp: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------- users

const USERS = [
  {
    username: 'alice',
    password: 'wonderland',
    claims: {
      sub: '7f6a8a52-0b7e-4d1c-9a55-a11ce0000001',
      preferred_username: 'alice',
      name: 'Alice Liddell',
      email: 'alice@example.org',
      email_verified: true,
      groups: ['admins', 'users', 'pi-admins'],
      realm_access: { roles: ['admin', 'user'] },
    },
  },
  {
    username: 'bob',
    password: 'builder',
    claims: {
      sub: '7f6a8a52-0b7e-4d1c-9a55-b0b000000002',
      preferred_username: 'bob',
      name: 'Bob Builder',
      email: 'bob@example.org',
      email_verified: false,
      groups: ['users'],
      realm_access: { roles: ['user'] },
    },
  },
];
const USERS_BY_SUB = new Map(USERS.map((u) => [u.claims.sub, u]));

function checkPassword(username, password) {
  const user = USERS.find((u) => u.username === username);
  // compare both strings in constant-ish time; it's a demo, but keep the habit
  if (!user) return undefined;
  const a = createHash('sha256').update(String(password)).digest();
  const b = createHash('sha256').update(user.password).digest();
  return a.equals(b) ? user : undefined;
}

// ---------------------------------------------------------------- signing key

function loadSigningJwk(path) {
  let key;
  try {
    key = createPrivateKey(readFileSync(path));
  } catch (err) {
    die(`cannot read signing key ${path}: ${err.message}`);
  }
  if (key.asymmetricKeyType !== 'rsa') die(`signing key ${path} is not an RSA key`);
  const jwk = key.export({ format: 'jwk' });
  // RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key: deterministic per key.
  const kid = createHash('sha256')
    .update(JSON.stringify({ e: jwk.e, kty: 'RSA', n: jwk.n }))
    .digest('base64url');
  return { jwk: { ...jwk, kid, alg: 'RS256', use: 'sig' }, publicKey: createPublicKey(key), privateKey: key };
}

const { jwk: signingJwk, publicKey, privateKey } = loadSigningJwk(opts.signingKey);

// ---------------------------------------------------------------- bench client (optional)

// bench/token-endpoint.sh compares the bridge's jwt-bearer grant with the closest grant
// oidc-provider has: client_credentials, the client authenticated by a signed assertion
// (private_key_jwt). Its access tokens are ES256 JWTs, like the bridge's, so both sides mint
// the same kind of token; the ES256 key exists only in this mode.
const BENCH_CLIENT = 'bench-client';
let benchClient;
let benchSigningJwk;
if (opts.benchClientJwks) {
  let jwks;
  try {
    jwks = JSON.parse(readFileSync(opts.benchClientJwks, 'utf8'));
  } catch (err) {
    die(`cannot read --bench-client-jwks ${opts.benchClientJwks}: ${err.message}`);
  }
  benchClient = {
    client_id: BENCH_CLIENT,
    client_name: BENCH_CLIENT,
    token_endpoint_auth_method: 'private_key_jwt',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    jwks,
  };
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  benchSigningJwk = { ...ec, kid: 'bench-es256', alg: 'ES256', use: 'sig' };
}

// ---------------------------------------------------------------- storage

// Small in-memory adapter (the bundled one is an LRU capped at 1000 entries and warns).
const store = new Map(); // key -> { payload, exp (ms) }
const grantIndex = new Map(); // grantId -> Set(key)
const uidIndex = new Map(); // session uid -> id
const userCodeIndex = new Map();
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

function storeGet(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.exp && entry.exp <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

class MapAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const exp = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    if (this.model === 'Session') uidIndex.set(payload.uid, id);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!grantIndex.has(payload.grantId)) grantIndex.set(payload.grantId, new Set());
      grantIndex.get(payload.grantId).add(key);
    }
    if (payload.userCode) userCodeIndex.set(payload.userCode, id);
    store.set(key, { payload, exp });
  }

  async find(id) { return storeGet(this.key(id)); }

  async findByUid(uid) {
    const id = uidIndex.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = userCodeIndex.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const key = this.key(id);
    const payload = store.get(key)?.payload;
    if (this.model === 'Session' && payload?.uid) uidIndex.delete(payload.uid);
    store.delete(key);
  }

  async revokeByGrantId(grantId) { // eslint-disable-line class-methods-use-this
    const keys = grantIndex.get(grantId);
    if (keys) for (const key of keys) store.delete(key);
    grantIndex.delete(grantId);
  }
}

// sweep expired entries now and then so long demo runs don't grow without bound
setInterval(() => {
  const now = Date.now();
  for (const [key, { exp }] of store) if (exp && exp <= now) store.delete(key);
}, 60_000).unref();

// ---------------------------------------------------------------- HTML

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

const STYLE = `body{font-family:system-ui,sans-serif;background:#f3f4f6;margin:0}
main{max-width:22rem;margin:4rem auto;background:#fff;padding:1.5rem 2rem;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.2)}
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.8rem 0 .2rem}
input{width:100%;box-sizing:border-box;padding:.45rem;font-size:1rem}
button{margin-top:1.2rem;width:100%;padding:.55rem;font-size:1rem;background:#2563eb;color:#fff;border:0;border-radius:4px;cursor:pointer}
.error{color:#b91c1c;background:#fee2e2;padding:.5rem;border-radius:4px}.hint{color:#6b7280;font-size:.85rem}`;

function page(title, body, head = '') {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
${head}</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

function loginPage(uid, clientId, username, error) {
  return page('Sign in to Demo IdP', `<h1>Sign in to Demo IdP</h1>
<p class="hint">to continue to <strong>${esc(clientId)}</strong></p>
${error ? `<p class="error" id="error" role="alert">${esc(error)}</p>\n` : ''}<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="username">Username</label>
<input name="username" id="username" type="text" value="${esc(username)}" autofocus required>
<label for="password">Password</label>
<input name="password" id="password" type="password" required>
<button type="submit" id="sign-in">Sign in</button>
</form>
<p class="hint">Demo users: alice / wonderland, bob / builder</p>`);
}

// ---------------------------------------------------------------- stats

const stats = {
  authorization_requests: 0,
  silent_authorization_requests: 0,
  login_forms_shown: 0,
  logins_succeeded: 0,
  token_requests: { authorization_code: 0, refresh_token: 0 },
  end_session_requests: 0,
  backchannel_logouts: { sent: 0, failed: 0 },
  idle_connection_resets: 0,
};

// ---------------------------------------------------------------- provider

function isAbsoluteUri(s) {
  try {
    new URL(s); // eslint-disable-line no-new
    return !s.includes('#');
  } catch {
    return false;
  }
}

// RFC 8707 resource indicators must be absolute URIs; Keycloak-style audiences usually are not,
// so the (implicit, defaulted) resource indicator maps onto the configured audience.
const RESOURCE = isAbsoluteUri(opts.audience) ? opts.audience : `urn:demo-idp:resource:${opts.audience}`;
const RESOURCE_SCOPE = 'openid profile email';

const COOKIE_KEYS = ['demo-idp-cookie-key-1-not-a-secret', 'demo-idp-cookie-key-2-not-a-secret'];

const SERVER = createServer();
await new Promise((resolveListen, rejectListen) => {
  SERVER.once('error', rejectListen);
  SERVER.listen(opts.port, opts.host, () => {
    SERVER.off('error', rejectListen);
    resolveListen();
  });
}).catch((err) => die(`cannot listen on ${opts.host}:${opts.port}: ${err.message}`));

const { port } = SERVER.address();
const issuerHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
const ISSUER = `http://${issuerHost}:${port}`;

const provider = new Provider(ISSUER, {
  adapter: MapAdapter,
  clients: [{
    client_id: opts.clientId,
    client_secret: opts.clientSecret,
    client_name: opts.clientId,
    application_type: 'web',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: opts.redirectUris,
    post_logout_redirect_uris: opts.postLogoutRedirectUris,
    // Its ID tokens carry `sid`, and its logout tokens too.
    ...(opts.backchannelLogoutUri === 'none' ? {} : {
      backchannel_logout_uri: opts.backchannelLogoutUri,
      backchannel_logout_session_required: true,
    }),
    // client_secret_post is accepted too: oidc-provider treats basic/post as interchangeable
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }, ...(benchClient ? [benchClient] : [])],
  jwks: { keys: [signingJwk, ...(benchSigningJwk ? [benchSigningJwk] : [])] },
  cookies: {
    keys: COOKIE_KEYS,
    // plain http on 127.0.0.1: no Secure flag is possible, and SameSite=None without Secure is
    // dropped by browsers, so both cookie kinds are Lax (top-level navigations carry them).
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  },
  claims: {
    // groups / realm_access come with every openid request, like Keycloak's default client scopes
    openid: ['sub', 'groups', 'realm_access'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { methods: ['S256'], required: () => true },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', ...(benchClient ? ['private_key_jwt'] : [])],
  clientBasedCORS: () => false,
  findAccount: async (ctx, sub) => {
    const user = USERS_BY_SUB.get(sub);
    if (!user) return undefined;
    return { accountId: sub, claims: async () => ({ ...user.claims }) };
  },
  extraTokenClaims: async (ctx, token) => {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const user = USERS_BY_SUB.get(token.accountId);
    if (!user) return undefined;
    const { sub, ...claims } = user.claims; // eslint-disable-line no-unused-vars
    return {
      azp: token.clientId, typ: 'Bearer', ...(token.sid ? { sid: token.sid } : {}), ...claims,
    };
  },
  // Keycloak issues a refresh token with every code exchange, no offline_access needed.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  // First-party client: no consent screen. The grant always covers what is asked for.
  loadExistingGrant: async (ctx) => {
    const { oidc } = ctx;
    const accountId = oidc.account?.accountId ?? oidc.session.accountId;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    if (!grant || grant.accountId !== accountId || grant.clientId !== oidc.client.clientId) {
      grant = new oidc.provider.Grant({ accountId, clientId: oidc.client.clientId });
    }
    const oidcScopes = [...oidc.requestParamOIDCScopes];
    if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
    const claims = [...oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    for (const [indicator, rs] of Object.entries(oidc.resourceServers)) {
      const scopes = [...oidc.requestParamScopes].filter((s) => rs.scopes.has(s));
      if (scopes.length) grant.addResourceScope(indicator, scopes.join(' '));
    }
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: Boolean(benchClient) },
    revocation: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => {
        if (oneOf) return oneOf.includes(RESOURCE) ? RESOURCE : oneOf[0];
        return RESOURCE;
      },
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, indicator, client) => {
        if (indicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          audience: opts.audience,
          scope: RESOURCE_SCOPE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: opts.accessTokenTtl,
          jwt: { sign: { alg: client?.clientId === BENCH_CLIENT ? 'ES256' : 'RS256' } },
        };
      },
    },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // Keycloak logs out without a confirmation click when id_token_hint is valid: the
      // confirmation form is submitted straight away (logout=yes ends the whole session).
      logoutSource: async (ctx, form) => {
        const autoForm = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/><noscript><button type="submit" id="sign-out">Sign out</button></noscript></form>');
        ctx.body = page('Signing out', `<h1>Signing out…</h1>\n${autoForm}`,
          '<script>document.addEventListener("DOMContentLoaded",function(){document.forms[0].submit()});</script>\n');
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = page('Signed out', '<h1>Signed out</h1>\n<p>You have been signed out of Demo IdP.</p>');
      },
    },
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Demo IdP error', `<h1>Something went wrong</h1>
${Object.entries(out).map(([k, v]) => `<p><strong>${esc(k)}</strong>: <span id="${esc(k)}">${esc(v)}</span></p>`).join('\n')}`);
  },
  ttl: {
    AccessToken: opts.accessTokenTtl,
    ClientCredentials: opts.accessTokenTtl,
    AuthorizationCode: 60,
    IdToken: opts.accessTokenTtl,
    RefreshToken: opts.refreshTokenTtl,
    Interaction: 600,
    Session: 10 * 3600,
    Grant: 10 * 3600,
  },
});
provider.proxy = false;

provider.on('backchannel.success', () => { stats.backchannel_logouts.sent += 1; });
provider.on('backchannel.error', (err) => {
  stats.backchannel_logouts.failed += 1;
  console.error(`demo-idp: back-channel logout failed: ${err.message}`);
});

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`demo-idp: server_error ${ctx.method} ${ctx.path}: ${err.stack || err}\n`);
});

// ---------------------------------------------------------------- own routes

async function readForm(ctx, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > limit) ctx.throw(413, 'request body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function noStore(ctx) {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
}

function interactionError(ctx, err) {
  noStore(ctx);
  ctx.status = 400;
  ctx.type = 'html';
  ctx.body = page('Demo IdP error', `<h1>Something went wrong</h1>
<p id="error">${esc(err.error_description || err.message)}</p>
<p>Go back to the application and start signing in again.</p>`);
}

async function finishInteraction(ctx, result) {
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  noStore(ctx);
  ctx.status = 303;
  ctx.redirect(returnTo);
}

// consent is never shown: should the policy still ask for it, grant what was asked
async function autoConsent(ctx, details) {
  const { prompt: { details: missing }, params, session } = details;
  let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  if (!grant) grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await finishInteraction(ctx, { consent: { grantId } });
}

function bearerJwt(ctx) {
  const m = /^Bearer\s+([\w-]+\.[\w-]+\.[\w-]+)$/i.exec(ctx.get('authorization'));
  return m ? m[1] : undefined;
}

// Keycloak's userinfo accepts its (audience-bound) JWT access tokens; oidc-provider's refuses
// any token with an audience, so answer for our own JWT access tokens here.
function userinfoFromJwt(ctx, jwt) {
  const [h, p, s] = jwt.split('.');
  let header;
  let payload;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url'));
    payload = JSON.parse(Buffer.from(p, 'base64url'));
  } catch {
    return false;
  }
  if (header.typ !== 'at+jwt') return false; // not ours: let the provider answer
  const ok = header.alg === 'RS256'
    && cryptoVerify('sha256', Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url'))
    && payload.iss === ISSUER
    && typeof payload.exp === 'number' && payload.exp > Date.now() / 1000
    && String(payload.scope || '').split(' ').includes('openid');
  const user = ok ? USERS_BY_SUB.get(payload.sub) : undefined;
  noStore(ctx);
  if (!user) {
    ctx.status = 401;
    ctx.set('WWW-Authenticate', 'Bearer error="invalid_token", error_description="invalid token provided"');
    ctx.body = { error: 'invalid_token', error_description: 'invalid token provided' };
    return true;
  }
  const scopes = new Set(payload.scope.split(' '));
  const out = { sub: user.claims.sub, groups: user.claims.groups, realm_access: user.claims.realm_access };
  if (scopes.has('profile')) Object.assign(out, { name: user.claims.name, preferred_username: user.claims.preferred_username });
  if (scopes.has('email')) Object.assign(out, { email: user.claims.email, email_verified: user.claims.email_verified });
  ctx.body = out;
  return true;
}

// Keycloak tells the client how long its refresh token lasts (`refresh_expires_in`, the SSO
// session's idle or maximum time, whichever comes first); so does this provider.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.method === 'POST' && ctx.body && typeof ctx.body === 'object'
      && ctx.body.refresh_token) {
    ctx.body.refresh_expires_in = opts.refreshTokenTtl;
  }
});

provider.use(async (ctx, next) => {
  const { method, path } = ctx;

  if (path === '/test/stats' && method === 'GET') {
    noStore(ctx);
    ctx.body = stats;
    return;
  }

  let m = /^\/interaction\/([^/]+)$/.exec(path);
  if (m && method === 'GET') {
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid !== m[1]) throw new Error('interaction mismatch');
    } catch (err) {
      interactionError(ctx, err);
      return;
    }
    if (details.prompt.name === 'consent') {
      await autoConsent(ctx, details);
      return;
    }
    stats.login_forms_shown += 1;
    noStore(ctx);
    ctx.type = 'html';
    ctx.body = loginPage(details.uid, details.params.client_id, details.params.login_hint, undefined);
    return;
  }

  m = /^\/interaction\/([^/]+)\/login$/.exec(path);
  if (m && method === 'POST') {
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid !== m[1]) throw new Error('interaction mismatch');
    } catch (err) {
      interactionError(ctx, err);
      return;
    }
    const form = await readForm(ctx);
    const username = form.get('username') || '';
    const user = checkPassword(username, form.get('password') || '');
    if (!user) {
      stats.login_forms_shown += 1;
      noStore(ctx);
      ctx.status = 200;
      ctx.type = 'html';
      ctx.body = loginPage(details.uid, details.params.client_id, username, 'Invalid username or password');
      return;
    }
    stats.logins_succeeded += 1;
    await finishInteraction(ctx, { login: { accountId: user.claims.sub } });
    return;
  }

  if (path === '/me' && (method === 'GET' || method === 'POST')) {
    const jwt = bearerJwt(ctx);
    if (jwt && userinfoFromJwt(ctx, jwt)) return;
  }

  const isAuth = path === '/auth' && (method === 'GET' || method === 'POST');
  const isToken = path === '/token' && method === 'POST';
  const isEndSession = path === '/session/end' && (method === 'GET' || method === 'POST');

  try {
    await next();
  } finally {
    const params = ctx.oidc?.params;
    if (isAuth) {
      stats.authorization_requests += 1;
      const prompt = params?.prompt ?? ctx.query.prompt;
      if (typeof prompt === 'string' && prompt.split(' ').includes('none')) stats.silent_authorization_requests += 1;
    } else if (isToken) {
      const gt = params?.grant_type;
      if (gt === 'authorization_code' || gt === 'refresh_token') stats.token_requests[gt] += 1;
    } else if (isEndSession) {
      stats.end_session_requests += 1;
    }
  }
});

// --id-token-audience: the ID token of a token response, with the extra audiences and azp,
// signed again with the provider's key (oidc-provider always makes aud the client alone).
if (opts.idTokenAudiences.length) {
  provider.use(async (ctx, next) => {
    await next();
    const idToken = ctx.path === '/token' && ctx.status === 200 ? ctx.body?.id_token : undefined;
    if (typeof idToken !== 'string') return;
    const [h, p] = idToken.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url'));
    payload.aud = [payload.aud, ...opts.idTokenAudiences];
    payload.azp = opts.clientId;
    const input = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    const signature = cryptoSign('sha256', Buffer.from(input), privateKey).toString('base64url');
    ctx.body = { ...ctx.body, id_token: `${input}.${signature}` };
  });
}

// ---------------------------------------------------------------- run

const handle = provider.callback();
if (opts.resetIdleConnectionsMs === undefined) {
  SERVER.on('request', handle);
} else {
  // When each connection last finished an answer, to tell how long it has been idle.
  const idleSince = new WeakMap();
  SERVER.on('request', (req, res) => {
    const since = idleSince.get(req.socket);
    const ours = String(req.headers['user-agent'] || '').startsWith('login-bridge/');
    if (ours && since !== undefined && Date.now() - since >= opts.resetIdleConnectionsMs) {
      stats.idle_connection_resets += 1;
      req.socket.resetAndDestroy();
      return;
    }
    res.on('finish', () => idleSince.set(req.socket, Date.now()));
    handle(req, res);
  });
}

let stopping = false;
function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  SERVER.close(() => process.exit(code));
  SERVER.closeAllConnections();
  setTimeout(() => process.exit(code), 1000).unref();
}
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
if (opts.exitOnStdinClose) {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('close', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}

process.stderr.write(`demo-idp: issuer ${ISSUER}, client ${opts.clientId}, audience ${opts.audience}, kid ${signingJwk.kid}\n`);
process.stdout.write(`LISTENING ${ISSUER}\n`);
