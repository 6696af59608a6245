#!/usr/bin/env node
// Pre-generates signed assertions for bench/token-endpoint.sh, one request body per line, each
// with its own jti (both the bridge and oidc-provider refuse replays). Signs on every core with
// worker threads: RS256 signing costs ~0.7 ms, so 50k assertions take ~15 s on 2 cores.
//
//   node bench/make-assertions.mjs --key KEYFILE --aud AUD --count N --out FILE [--mode MODE]
//
// KEYFILE is a service user's key file ({"keyId","key","userId"}); its alg follows from the key
// type (EC P-256 -> ES256, RSA -> RS256). MODE:
//   bridge  RFC 7523 jwt-bearer grant, iss = sub = userId                     (default)
//   oidc    client_credentials with private_key_jwt, iss = sub = client_id bench-client
// `--jwks FILE --key KEYFILE,KEYFILE...` instead writes the keys' public JWKS (for
// tests/idp/server.js --bench-client-jwks).
import { createPrivateKey, createPublicKey, randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export const BENCH_CLIENT = 'bench-client';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const CLIENT_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

function algOf(key) {
  if (key.asymmetricKeyType === 'ec') return 'ES256';
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
}

// `count` bodies, joined by newlines.
function bodies({ pem, kid, userId, aud, mode, count }) {
  const key = createPrivateKey(pem);
  const alg = algOf(key);
  const iss = mode === 'oidc' ? BENCH_CLIENT : userId;
  const head = `${b64({ alg, kid, typ: 'JWT' })}.`;
  const now = Math.floor(Date.now() / 1000);
  const prefix = randomBytes(9).toString('base64url');
  const out = [];
  for (let i = 0; i < count; i += 1) {
    const input = head + b64({ iss, sub: iss, aud, iat: now, exp: now + 300, jti: `${prefix}-${i}` });
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    const jwt = `${input}.${sig}`;
    out.push(mode === 'oidc'
      ? `grant_type=client_credentials&client_id=${BENCH_CLIENT}&client_assertion_type=${encodeURIComponent(CLIENT_ASSERTION)}&client_assertion=${jwt}`
      : `grant_type=${encodeURIComponent(JWT_BEARER)}&assertion=${jwt}`);
  }
  return out.join('\n');
}

if (!isMainThread) {
  parentPort.postMessage(bodies(workerData));
} else {
  const args = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  const read = (path) => JSON.parse(readFileSync(path, 'utf8'));
  if (args.jwks) { // --key may list several key files, comma-separated
    const keys = args.key.split(',').map(read).map((f) => ({
      ...createPublicKey(f.key).export({ format: 'jwk' }), kid: f.keyId, alg: algOf(createPrivateKey(f.key)), use: 'sig',
    }));
    writeFileSync(args.jwks, `${JSON.stringify({ keys })}\n`);
    process.exit(0);
  }
  const file = read(args.key);
  const count = Number(args.count);
  if (!args.aud || !args.out || !(count > 0)) {
    process.stderr.write('usage: make-assertions.mjs --key KEYFILE --aud AUD --count N --out FILE [--mode bridge|oidc]\n');
    process.exit(2);
  }
  const workers = Math.min(availableParallelism(), count);
  const parts = await Promise.all(Array.from({ length: workers }, (_, w) => new Promise((done, fail) => {
    const share = Math.floor(count / workers) + (w < count % workers ? 1 : 0);
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { pem: file.key, kid: file.keyId, userId: file.userId, aud: args.aud, mode: args.mode || 'bridge', count: share },
    });
    worker.once('message', done);
    worker.once('error', fail);
  })));
  writeFileSync(args.out, `${parts.filter((p) => p).join('\n')}\n`);
}
