// Container health check (Dockerfile HEALTHCHECK): GET /healthz on the admin listener named by
// PORTICO_ADMIN_ADDR (a wildcard bind is probed on loopback). Exit 0 when alive, 1 otherwise.
// Plain JavaScript on purpose: it runs every few seconds and must not pay for the TypeScript loader.
const addr = process.env.PORTICO_ADMIN_ADDR || '127.0.0.1:8081';
const m = /^(.*):(\d{1,5})$/.exec(addr);
if (!m) {
  process.stderr.write(`healthcheck: PORTICO_ADMIN_ADDR must be host:port, got '${addr}'\n`);
  process.exit(1);
}
let host = m[1].replace(/^\[(.*)\]$/, '$1');
if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
if (host === '::') host = '::1';
const url = `http://${host.includes(':') ? `[${host}]` : host}:${m[2]}/healthz`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(Number(process.env.PORTICO_HEALTHCHECK_TIMEOUT_MS) || 4000) });
  if (!res.ok) {
    process.stderr.write(`healthcheck: ${url} answered ${res.status}\n`);
    process.exit(1);
  }
  process.exit(0);
} catch (e) {
  process.stderr.write(`healthcheck: ${url}: ${e.cause?.code ?? e.message}\n`);
  process.exit(1);
}
