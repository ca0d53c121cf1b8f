// The ext_authz wire format: CheckRequests encoded by the strict proto3-JSON codec (as Envoy sends
// them) read by the fast decoder, and CheckResponses it writes read back by protobufjs reflection.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Allow, Deny } from '../../src/authz/decide.ts';
import { authzRequest, checkRequestJson } from '../support/authz-fixtures.ts';
import { CheckRequestDecodeError, decodeCheckRequest, encodeCheckResponse } from '../../src/authz/wire.ts';
import { decodeMessage, encodeMessage, type JsonObject } from '../../src/proto/index.ts';

const REQ = 'envoy.service.auth.v3.CheckRequest';
const RES = 'envoy.service.auth.v3.CheckResponse';

describe('CheckRequest decoding', () => {
  it('reads method, path, query, headers, request id, context extensions and the peer', () => {
    const input = {
      method: 'POST',
      path: '/orders/42?api_key=abc&x=1',
      headers: { 'X-Api-Key': 'ptk_x', authorization: 'Bearer t' },
      product: 'orders',
      route: 'create',
      accept: 'api_key,jwt',
      requestId: 'rid-9',
      principal: 'spiffe://example.org/a',
      certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    };
    const bytes = encodeMessage(REQ, checkRequestJson(input));
    const got = decodeCheckRequest(bytes);
    const want = authzRequest(input);
    assert.equal(got.method, 'POST');
    assert.equal(got.path, '/orders/42');
    assert.equal(got.query, 'api_key=abc&x=1');
    assert.equal(got.requestId, 'rid-9');
    assert.equal(got.peerPrincipal, 'spiffe://example.org/a');
    assert.equal(decodeURIComponent(got.peerCertificate), input.certificatePem);
    assert.deepEqual([...got.context].sort(), [...want.context].sort());
    assert.deepEqual([...got.headers].sort(), [...want.headers].sort());
    assert.equal(got.headers.get('x-api-key'), 'ptk_x');
  });

  it('reads the header_map form (value and raw_value) and joins repeated headers', () => {
    const json = checkRequestJson({ product: 'p', route: 'r' }) as { attributes: { request: { http: JsonObject } } };
    const http = json.attributes.request.http;
    delete http.headers;
    http.header_map = {
      headers: [
        { key: 'x-api-key', raw_value: Buffer.from('ptk_raw').toString('base64') },
        { key: 'Accept', value: 'a' },
        { key: 'accept', value: 'b' },
      ],
    };
    const got = decodeCheckRequest(encodeMessage(REQ, json));
    assert.equal(got.headers.get('x-api-key'), 'ptk_raw');
    assert.equal(got.headers.get('accept'), 'a,b');
  });

  it('falls back to the pseudo-headers when method and path fields are empty', () => {
    const json = checkRequestJson({ method: 'PUT', path: '/x?y=1' }) as { attributes: { request: { http: JsonObject } } };
    delete json.attributes.request.http.method;
    delete json.attributes.request.http.path;
    const got = decodeCheckRequest(encodeMessage(REQ, json));
    assert.equal(got.method, 'PUT');
    assert.equal(got.path, '/x');
    assert.equal(got.query, 'y=1');
  });

  it('skips fields it does not need (metadata, body, destination) and survives an empty request', () => {
    const json = checkRequestJson({ product: 'p' }) as { attributes: JsonObject & { request: { http: JsonObject } } };
    json.attributes.metadata_context = { filter_metadata: { x: { a: 1 } } };
    json.attributes.request.http.body = 'hello';
    json.attributes.tls_session = { sni: 'api.example.com' };
    assert.equal(decodeCheckRequest(encodeMessage(REQ, json)).context.get('product'), 'p');
    const empty = decodeCheckRequest(new Uint8Array());
    assert.equal(empty.method, '');
    assert.equal(empty.context.size, 0);
  });

  it('throws CheckRequestDecodeError on bytes that are not a CheckRequest', () => {
    const good = encodeMessage(REQ, checkRequestJson({ product: 'p', headers: { a: 'b' } }));
    for (const bad of [Buffer.from([0x0a, 0xff]), good.subarray(0, good.length - 3), Buffer.from([0x0f]), Buffer.from('this is not protobuf at all')]) {
      assert.throws(() => decodeCheckRequest(bad), CheckRequestDecodeError);
    }
  });
});

describe('CheckResponse encoding', () => {
  it('writes an OK response: headers to set (overwrite), headers and query parameters to remove, dynamic metadata', () => {
    const allow: Allow = {
      allowed: true,
      product: 'orders',
      route: 'list',
      partner: 'acme',
      plan: 'gold',
      credential: 'api_key',
      setHeaders: [
        ['x-portico-partner', 'acme'],
        ['x-user-id', 'u1'],
      ],
      removeHeaders: ['x-user-role', 'x-api-key'],
      removeQuery: ['api_key'],
      metadata: { product: 'orders', route: 'list', partner: 'acme', plan: 'gold', credential: 'api_key' },
    };
    const bytes = encodeCheckResponse(allow);
    const json = decodeMessage(RES, bytes) as JsonObject;
    assert.deepEqual(json, {
      status: {},
      ok_response: {
        headers: [
          { header: { key: 'x-portico-partner', value: 'acme' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
          { header: { key: 'x-user-id', value: 'u1' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
        ],
        headers_to_remove: ['x-user-role', 'x-api-key'],
        query_parameters_to_remove: ['api_key'],
      },
      dynamic_metadata: { credential: 'api_key', partner: 'acme', plan: 'gold', product: 'orders', route: 'list' },
    });
    // What we wrote is exactly what the strict encoder writes for the same JSON.
    assert.deepEqual(Buffer.from(encodeMessage(RES, json)), bytes);
  });

  it('writes a denied response: HTTP status, JSON body, content type, WWW-Authenticate, gRPC status', () => {
    const d: Deny = {
      allowed: false,
      status: 401,
      error: 'invalid_api_key',
      message: 'The API key is not recognised.',
      wwwAuthenticate: 'ApiKey realm="portico", header="x-api-key"',
      product: 'orders',
      route: 'list',
      partner: undefined,
      credential: 'api_key',
    };
    const json = decodeMessage(RES, encodeCheckResponse(d)) as JsonObject;
    assert.deepEqual(json, {
      status: { code: 16, message: 'invalid_api_key' },
      denied_response: {
        status: { code: 'Unauthorized' },
        headers: [
          { header: { key: 'content-type', value: 'application/json' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
          { header: { key: 'www-authenticate', value: 'ApiKey realm="portico", header="x-api-key"' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
        ],
        body: '{"error":"invalid_api_key","message":"The API key is not recognised."}',
      },
      dynamic_metadata: { credential: 'api_key', error: 'invalid_api_key', product: 'orders', route: 'list' },
    });
    const f = decodeMessage(RES, encodeCheckResponse({ ...d, status: 403, error: 'partner_suspended', wwwAuthenticate: undefined, partner: 'globex' })) as {
      status: JsonObject;
      denied_response: { status: JsonObject; headers: unknown[] };
      dynamic_metadata: JsonObject;
    };
    assert.deepEqual(f.status, { code: 7, message: 'partner_suspended' });
    assert.deepEqual(f.denied_response.status, { code: 'Forbidden' });
    assert.equal(f.denied_response.headers.length, 1, 'no challenge on a 403');
    assert.equal(f.dynamic_metadata.partner, 'globex');
  });
});
