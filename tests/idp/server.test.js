// Smoke test for the demo IdP: `cd tests/idp && node --test`
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLIENT_ID = 'login-bridge';
const CLIENT_SECRET = 'demo-client-secret';
const REDIRECT_URI = 'http://localhost:8080/auth/callback';
const POST_LOGOUT_URI = 'http://localhost:8080/';
const ALICE_SUB = '7f6a8a52-0b7e-4d1c-9a55-a11ce0000001';

let child;
let issuer;
let discovery;
let jwks;

before(async () => {
  child = spawn(process.execPath, [join(HERE, 'server.js'), '--port', '0', '--exit-on-stdin-close'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  issuer = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no LISTENING line; got ${JSON.stringify(buf)}`)), 4000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /^LISTENING (http:\/\/127\.0\.0\.1:\d+)\n/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
});

after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => { child.once('exit', r); });
    child.stdin.end(); // --exit-on-stdin-close
    await exited;
  }
});

// --- tiny cookie jar + manual-redirect HTTP client (like the Rust test harness) ---
class Jar {
  constructor() { this.cookies = new Map(); }

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const key = `${name};${path}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

async function req(jar, url, { method = 'GET', form, headers = {} } = {}) {
  const res = await fetch(url, {
    method,
    redirect: 'manual',
    headers: {
      ...headers,
      ...(jar ? { cookie: jar.header(url) } : {}),
      ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    body: form ? new URLSearchParams(form).toString() : undefined,
  });
  if (jar) jar.store(res);
  return res;
}

const abs = (loc) => new URL(loc, issuer).href;
const b64url = (buf) => buf.toString('base64url');

function pkce() {
  const verifier = b64url(randomBytes(32));
  return { verifier, challenge: b64url(createHash('sha256').update(verifier).digest()) };
}

function authUrl(extra = {}) {
  const u = new URL(discovery.authorization_endpoint);
  const params = {
    client_id: CLIENT_ID,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email',
    state: b64url(randomBytes(8)),
    nonce: b64url(randomBytes(8)),
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.href;
}

function verifyJwt(token) {
  const [h, p, s] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} in jwks`);
  assert.equal(header.alg, 'RS256');
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  assert.ok(verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url')), 'signature');
  return { header, payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

async function tokenRequest(form, { basic = true } = {}) {
  const headers = { accept: 'application/json' };
  const body = { ...form };
  if (basic) {
    headers.authorization = `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`;
  } else {
    Object.assign(body, { client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
  }
  const res = await req(null, discovery.token_endpoint, { method: 'POST', form: body, headers });
  return { status: res.status, body: await res.json() };
}

// follows IdP-internal redirects until one leaves the IdP (to the relying party)
async function followToClient(jar, url) {
  let res = await req(jar, url);
  for (let i = 0; i < 10 && res.status >= 300 && res.status < 400; i += 1) {
    const loc = abs(res.headers.get('location'));
    if (!loc.startsWith(issuer)) return { res, location: new URL(loc) };
    res = await req(jar, loc);
  }
  return { res, location: undefined };
}

test('discovery and jwks', async () => {
  discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  assert.equal(discovery.issuer, issuer);
  assert.equal(discovery.authorization_response_iss_parameter_supported, true);
  assert.deepEqual(discovery.code_challenge_methods_supported, ['S256']);
  assert.deepEqual(discovery.response_types_supported, ['code']);
  for (const ep of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'end_session_endpoint', 'userinfo_endpoint']) {
    assert.ok(discovery[ep]?.startsWith(`${issuer}/`), ep);
  }
  jwks = await (await fetch(discovery.jwks_uri)).json();
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].alg, 'RS256');
  assert.equal(jwks.keys[0].d, undefined, 'no private parts published');
});

test('PKCE is required', async () => {
  const { location } = await followToClient(new Jar(), authUrl());
  assert.equal(location.searchParams.get('error'), 'invalid_request');
  assert.equal(location.searchParams.get('iss'), issuer);
});

test('login form, code flow with PKCE, refresh, silent auth, logout', async () => {
  const jar = new Jar();

  // silent auth without a session
  let flow = await followToClient(jar, authUrl({ prompt: 'none', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
  assert.equal(flow.location.searchParams.get('error'), 'login_required');

  // interactive login
  const { verifier, challenge } = pkce();
  const state = 'st-1';
  let res = await req(jar, authUrl({ state, code_challenge: challenge, code_challenge_method: 'S256' }));
  assert.equal(res.status, 303);
  const interactionUrl = abs(res.headers.get('location'));
  assert.match(interactionUrl, /\/interaction\/[\w-]+$/);

  res = await req(jar, interactionUrl);
  assert.equal(res.status, 200);
  let html = await res.text();
  assert.match(html, /<title>Sign in to Demo IdP<\/title>/);
  const action = /<form method="post" action="([^"]+)"/.exec(html)[1];
  assert.equal(abs(action), `${interactionUrl}/login`);
  assert.match(html, /name="username" id="username"/);
  assert.match(html, /name="password" id="password" type="password"/);
  assert.match(html, /id="sign-in"/);

  res = await req(jar, abs(action), { method: 'POST', form: { username: 'alice', password: 'nope' } });
  assert.equal(res.status, 200);
  html = await res.text();
  assert.match(html, /Invalid username or password/);
  assert.match(html, /value="alice"/);

  res = await req(jar, abs(action), { method: 'POST', form: { username: 'alice', password: 'wonderland' } });
  assert.equal(res.status, 303);
  flow = await followToClient(jar, abs(res.headers.get('location')));
  const cb = flow.location;
  assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI);
  assert.equal(cb.searchParams.get('state'), state);
  assert.equal(cb.searchParams.get('iss'), issuer, 'RFC 9207 iss');
  const code = cb.searchParams.get('code');
  assert.ok(code);

  // code exchange (client_secret_basic)
  const tok = await tokenRequest({
    grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier,
  });
  assert.equal(tok.status, 200, JSON.stringify(tok.body));
  assert.equal(tok.body.token_type, 'Bearer');
  assert.equal(tok.body.expires_in, 300);
  assert.ok(tok.body.refresh_token, 'refresh token without offline_access');
  assert.equal(tok.body.refresh_expires_in, 1800, 'refresh_expires_in, as Keycloak sends it');

  const at = verifyJwt(tok.body.access_token);
  assert.equal(at.header.typ, 'at+jwt');
  assert.equal(at.payload.iss, issuer);
  assert.equal(at.payload.sub, ALICE_SUB);
  assert.equal(at.payload.aud, 'login-bridge-api');
  assert.equal(at.payload.client_id, CLIENT_ID);
  assert.equal(at.payload.azp, CLIENT_ID);
  assert.equal(at.payload.exp - at.payload.iat, 300);
  assert.deepEqual(new Set(at.payload.scope.split(' ')), new Set(['openid', 'profile', 'email']));
  assert.equal(at.payload.preferred_username, 'alice');
  assert.equal(at.payload.name, 'Alice Liddell');
  assert.equal(at.payload.email, 'alice@example.org');
  assert.deepEqual(at.payload.groups, ['admins', 'users', 'pi-admins']);
  assert.deepEqual(at.payload.realm_access, { roles: ['admin', 'user'] });

  const idt = verifyJwt(tok.body.id_token);
  assert.equal(idt.payload.iss, issuer);
  assert.equal(idt.payload.aud, CLIENT_ID);
  assert.equal(idt.payload.sub, ALICE_SUB);
  assert.equal(idt.payload.preferred_username, 'alice');
  assert.equal(idt.payload.email_verified, true);
  assert.deepEqual(idt.payload.groups, ['admins', 'users', 'pi-admins']);
  assert.deepEqual(idt.payload.realm_access, { roles: ['admin', 'user'] });

  // userinfo accepts the JWT access token, like Keycloak
  res = await req(null, discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tok.body.access_token}` } });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).email, 'alice@example.org');

  // refresh (client_secret_post): rotated, new JWT access token + new ID token
  const ref = await tokenRequest({ grant_type: 'refresh_token', refresh_token: tok.body.refresh_token }, { basic: false });
  assert.equal(ref.status, 200, JSON.stringify(ref.body));
  assert.ok(ref.body.refresh_token && ref.body.refresh_token !== tok.body.refresh_token, 'rotated');
  assert.equal(verifyJwt(ref.body.access_token).payload.aud, 'login-bridge-api');
  assert.equal(verifyJwt(ref.body.id_token).payload.sub, ALICE_SUB);
  const reuse = await tokenRequest({ grant_type: 'refresh_token', refresh_token: tok.body.refresh_token });
  assert.equal(reuse.body.error, 'invalid_grant');

  // silent auth with the session: a code, no interaction
  flow = await followToClient(jar, authUrl({ prompt: 'none', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
  assert.ok(flow.location.searchParams.get('code'), flow.location.href);

  // RP-initiated logout: no click needed, lands on the post-logout URI
  const endUrl = new URL(discovery.end_session_endpoint);
  endUrl.searchParams.set('id_token_hint', ref.body.id_token);
  endUrl.searchParams.set('post_logout_redirect_uri', POST_LOGOUT_URI);
  endUrl.searchParams.set('state', 'bye');
  res = await req(jar, endUrl.href);
  assert.equal(res.status, 200);
  html = await res.text();
  assert.match(html, /document\.forms\[0\]\.submit\(\)/);
  const logoutAction = /<form[^>]* method="post" action="([^"]+)"/.exec(html)[1];
  const inputs = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)].map((m) => [m[1], m[2]]));
  assert.equal(inputs.logout, 'yes');
  res = await req(jar, abs(logoutAction), { method: 'POST', form: inputs });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get('location'), `${POST_LOGOUT_URI}?state=bye`);

  flow = await followToClient(jar, authUrl({ prompt: 'none', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
  assert.equal(flow.location.searchParams.get('error'), 'login_required');
  const dead = await tokenRequest({ grant_type: 'refresh_token', refresh_token: ref.body.refresh_token });
  assert.equal(dead.body.error, 'invalid_grant', 'refresh token dies with the session');

  const stats = await (await fetch(`${issuer}/test/stats`)).json();
  assert.deepEqual(stats, {
    authorization_requests: 5, // incl. the PKCE-less one from the previous test
    silent_authorization_requests: 3,
    login_forms_shown: 2,
    logins_succeeded: 1,
    token_requests: { authorization_code: 1, refresh_token: 3 },
    end_session_requests: 1,
    // The session's end was posted to the client's back-channel URI (no bridge listens there).
    backchannel_logouts: { sent: 0, failed: 1 },
    idle_connection_resets: 0, // --reset-idle-connections-ms is off
  });
});
