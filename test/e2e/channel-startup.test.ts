// `portico serve` as operators run it: a gRPC listener on a non-loopback address without TLS refuses
// to start and says why (and how to fix it); the explicit insecure flag starts it; mTLS starts it;
// certificate files that are wrong stop the start with the file and the problem.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { channelPki } from '../support/channel.ts';
import { freePort, serveListenEnv, startProcess, waitFor, type RunningProcess } from '../support/components.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/portico');

async function serve(env: Record<string, string>): Promise<{ p: RunningProcess; adminPort: number }> {
  const adminPort = await freePort();
  const p = startProcess(BIN, ['serve'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...(await serveListenEnv()),
      PORTICO_DATA_DIR: 'memory://',
      PORTICO_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      PORTICO_ADMIN_TOKEN: 'startup-test-token',
      PORTICO_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
      PORTICO_LOG_LEVEL: 'info',
      ...env,
    },
  });
  return { p, adminPort };
}

async function exitOf(p: RunningProcess): Promise<number | null> {
  if (p.child.exitCode === null) await new Promise((r) => p.child.once('exit', r));
  return p.child.exitCode;
}

/** Ready, or the process's own output when it exits first; a cold start (tsx, a new embedded database) takes a minute at load 20. */
async function ready(p: RunningProcess, adminPort: number): Promise<void> {
  await waitFor(
    'readyz',
    async () => {
      if (p.child.exitCode !== null) throw new Error(`portico exited (${p.child.exitCode}): ${p.output().slice(-3000)}`);
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined);
      return r?.status === 200 || undefined;
    },
    180_000,
    200,
  );
}

describe('portico serve: channel security at start', { timeout: 600_000 }, () => {
  it('refuses a non-loopback gRPC bind without TLS, with exit code 1 (an error; 2 only means diff found differences) and a message naming both fixes', async () => {
    const { p } = await serve({ PORTICO_GRPC_ADDR: `0.0.0.0:${await freePort()}`, PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${await freePort()}` });
    assert.equal(await exitOf(p), 1, p.output());
    assert.match(p.output(), /configuration: PORTICO_GRPC_ADDR binds 0\.0\.0\.0, which is not loopback, without TLS/);
    assert.match(p.output(), /`portico certs` creates them\), or set PORTICO_GRPC_INSECURE=true to accept plaintext/);
  });

  it('starts on a non-loopback bind with PORTICO_GRPC_INSECURE=true, and logs that the channels are plaintext', async (t) => {
    const { p, adminPort } = await serve({ PORTICO_GRPC_ADDR: `0.0.0.0:${await freePort()}`, PORTICO_CALLOUT_LISTEN_ADDR: `0.0.0.0:${await freePort()}`, PORTICO_GRPC_INSECURE: 'true' });
    t.after(() => p.stop());
    await ready(p, adminPort);
    assert.match(p.output(), /gRPC channels: PLAINTEXT \(PORTICO_GRPC_INSECURE=true\)/);
  });

  it('starts with mTLS on a non-loopback bind; a key that does not match its certificate stops the start naming the files', async (t) => {
    const pki = await channelPki();
    t.after(() => pki.close());
    const { p, adminPort } = await serve({ ...pki.env, PORTICO_GRPC_ADDR: `0.0.0.0:${await freePort()}`, PORTICO_CALLOUT_LISTEN_ADDR: `0.0.0.0:${await freePort()}` });
    t.after(() => p.stop());
    await ready(p, adminPort);
    assert.match(p.output(), /gRPC channels: mTLS/);
    await p.stop();

    const other = await pki.node('stranger', ['edge']);
    writeFileSync(pki.serverFiles.keyFile, other.cert.privateKey);
    const bad = await serve({ ...pki.env, PORTICO_GRPC_ADDR: `0.0.0.0:${await freePort()}` });
    t.after(() => bad.p.stop());
    assert.equal(await exitOf(bad.p), 1, bad.p.output());
    assert.match(bad.p.output(), new RegExp(`private key ${pki.serverFiles.keyFile} does not belong to certificate ${pki.serverFiles.certFile}`));
  });
});
