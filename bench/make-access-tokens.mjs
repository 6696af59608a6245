#!/usr/bin/env node
// Pre-generates distinct RS256 access tokens for the hot-path and soak benches: signed with the
// demo provider's key (tests/fixtures/idp-signing-key.pem, the kid its JWKS publishes), for
// alice, audience login-bridge-api, valid for two hours, each with its own jti. One per line.
// Signs on every core with worker threads (RS256-2048 costs ~0.7 ms a token).
//
//   node bench/make-access-tokens.mjs --issuer ISS --count N --out FILE [--public-key PEM_OUT]
//
// --public-key also writes the provider's public key as PEM (for bench-peer).
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const KEY_FILE = new URL('../tests/fixtures/idp-signing-key.pem', import.meta.url);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

function tokens({ issuer, count }) {
  const key = createPrivateKey(readFileSync(KEY_FILE));
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  const kid = createHash('sha256').update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n })).digest('base64url');
  const head = `${b64({ alg: 'RS256', typ: 'at+jwt', kid })}.`;
  const now = Math.floor(Date.now() / 1000);
  const prefix = randomBytes(9).toString('base64url');
  const out = [];
  for (let i = 0; i < count; i += 1) {
    const input = head + b64({
      iss: issuer, sub: '7f6a8a52-0b7e-4d1c-9a55-a11ce0000001', aud: 'login-bridge-api', iat: now,
      exp: now + 7200, jti: `${prefix}-${i}`, preferred_username: 'alice',
      realm_access: { roles: ['admin', 'user'] }, groups: ['admins'],
    });
    out.push(`${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`);
  }
  return out.join('\n');
}

if (!isMainThread) {
  parentPort.postMessage(tokens(workerData));
} else {
  const args = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  const count = Number(args.count);
  if (!args.issuer || !args.out || !(count > 0)) {
    process.stderr.write('usage: make-access-tokens.mjs --issuer ISS --count N --out FILE [--public-key PEM_OUT]\n');
    process.exit(2);
  }
  if (args['public-key']) {
    const pem = createPublicKey(createPrivateKey(readFileSync(KEY_FILE))).export({ format: 'pem', type: 'spki' });
    writeFileSync(args['public-key'], pem);
  }
  const workers = Math.min(availableParallelism(), count);
  const parts = await Promise.all(Array.from({ length: workers }, (_, w) => new Promise((done, fail) => {
    const share = Math.floor(count / workers) + (w < count % workers ? 1 : 0);
    const worker = new Worker(new URL(import.meta.url), { workerData: { issuer: args.issuer, count: share } });
    worker.once('message', done);
    worker.once('error', fail);
  })));
  writeFileSync(args.out, `${parts.filter((p) => p).join('\n')}\n`);
}
