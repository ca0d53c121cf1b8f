// The step calls of "try it": straight from the control plane to a service's first endpoint (the
// designer has no Envoy of its own to go through), with the service's upstream TLS from the model.
// Envoy's retries, circuit breaking and load balancing do not apply here; the step's timeout does.
import http from 'node:http';
import https from 'node:https';
import type { ModelSnapshot } from '../model/index.ts';
import type { StepCall, StepResponse } from './types.ts';

export function directCaller(model: ModelSnapshot): (c: StepCall, signal: AbortSignal) => Promise<StepResponse> {
  return (c, signal) =>
    new Promise((resolve, reject) => {
      const service = model.services.get(c.service);
      const endpoint = service?.endpoints[0];
      if (!service || !endpoint) return reject(new Error(`service ${c.service} has no endpoint`));
      const tls = service.tls;
      const headers: Record<string, string | number> = { host: `${endpoint.host}:${endpoint.port}`, ...c.headers };
      if (c.body !== undefined) headers['content-length'] = typeof c.body === 'string' ? Buffer.byteLength(c.body) : c.body.byteLength;
      const common = { host: endpoint.host, port: endpoint.port, method: c.method, path: c.path, headers, signal, agent: false as const, timeout: c.timeoutMs };
      const onResponse = (res: http.IncomingMessage) => readStepResponse(res, c.maxResponseBytes, resolve, reject);
      const req = tls
        ? https.request(
            {
              ...common,
              servername: tls.sni ?? endpoint.host,
              rejectUnauthorized: tls.verify !== false,
              ...(tls.ca ? { ca: model.certificates.get(tls.ca)?.certificate } : {}),
              ...(tls.clientCertificate ? { cert: model.certificates.get(tls.clientCertificate)?.certificate, key: model.certificates.get(tls.clientCertificate)?.privateKey } : {}),
            },
            onResponse,
          )
        : http.request(common, onResponse);
      req.on('timeout', () => req.destroy(new Error(`no answer within ${c.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(c.body);
    });
}

/** Reads a step's response, stopping past `limit` bytes (the engine then fails the step as over the limit). */
export function readStepResponse(res: http.IncomingMessage, limit: number, resolve: (r: StepResponse) => void, reject: (e: Error) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const done = () => resolve({ status: res.statusCode ?? 502, headers: flatHeaders(res.headers), body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
  res.on('data', (chunk: Buffer) => {
    size += chunk.length;
    chunks.push(chunk);
    if (size > limit) {
      res.destroy();
      done();
    }
  });
  res.on('end', done);
  res.on('error', reject);
}

export function flatHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined) out[k] = typeof v === 'string' ? v : v.join(', ');
  }
  return out;
}
