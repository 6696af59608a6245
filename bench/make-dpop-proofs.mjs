#!/usr/bin/env node
// DPoP proofs (RFC 9449 section 4) for bench/dpop.sh, one a line, each with its own jti: the
// bridge records every jti and refuses a second use, so wrk (bench/once-each.lua) sends each
// once. ES256 with one P-256 key, its public jwk in the header as a browser's proof carries it;
// iat is the time each proof is signed (as a browser's are: a long batch spans several seconds,
// and its first proofs are no older than its signing took), so a batch is signed just before the
// run that uses it (the bridge accepts a proof for session.dpop_proof_max_age_secs, 60 s, plus
// leeway). Signs on every core with worker threads.
//
//   node bench/make-dpop-proofs.mjs --new-key KEY.pem --public-key PUB.pem
//       a new P-256 key (PKCS#8 PEM) and its public key (SPKI PEM, for bench-peer
//       --dpop-public-key); prints the key's RFC 7638 thumbprint (what cnf.jkt must say)
//   node bench/make-dpop-proofs.mjs --key KEY.pem --htm GET --htu URL [--token-file FILE]
//       --count N --out FILE
//       N proofs for htm/htu; with --token-file (the access token, one line) each carries ath,
//       the base64url SHA-256 of the token
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

// The public jwk with the RFC 7638 members only (a browser's exported key has more, and the
// bridge must ignore them), and its thumbprint.
function publicJwk(key) {
  const { crv, kty, x, y } = createPublicKey(key).export({ format: 'jwk' });
  return { crv, kty, x, y };
}
function thumbprint(jwk) {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

// `count` proofs, joined by newlines.
function proofs({ pem, htm, htu, ath, count }) {
  const key = createPrivateKey(pem);
  const head = `${b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwk(key) })}.`;
  const prefix = randomBytes(12).toString('base64url');
  const out = [];
  for (let i = 0; i < count; i += 1) {
    const claims = { jti: `${prefix}-${i}`, htm, htu, iat: Math.floor(Date.now() / 1000) };
    if (ath) claims.ath = ath;
    const input = head + b64(claims);
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    out.push(`${input}.${sig}`);
  }
  return out.join('\n');
}

if (!isMainThread) {
  parentPort.postMessage(proofs(workerData));
} else {
  const args = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (args['new-key']) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(args['new-key'], privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    if (args['public-key']) writeFileSync(args['public-key'], publicKey.export({ format: 'pem', type: 'spki' }));
    process.stdout.write(`${thumbprint(publicJwk(privateKey))}\n`);
    process.exit(0);
  }
  const count = Number(args.count);
  if (!args.key || !args.htm || !args.htu || !args.out || !(count > 0)) {
    process.stderr.write('usage: make-dpop-proofs.mjs --key KEY.pem --htm GET --htu URL [--token-file FILE] --count N --out FILE\n');
    process.exit(2);
  }
  const pem = readFileSync(args.key, 'utf8');
  const ath = args['token-file']
    ? createHash('sha256').update(readFileSync(args['token-file'], 'utf8').trim()).digest('base64url')
    : undefined;
  const workers = Math.min(availableParallelism(), Math.ceil(count / 1000));
  const parts = await Promise.all(Array.from({ length: workers }, (_, w) => new Promise((done, fail) => {
    const share = Math.floor(count / workers) + (w < count % workers ? 1 : 0);
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { pem, htm: args.htm, htu: args.htu, ath, count: share },
    });
    worker.once('message', done);
    worker.once('error', fail);
  })));
  writeFileSync(args.out, `${parts.filter((p) => p).join('\n')}\n`);
}
