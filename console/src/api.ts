// The console's only way to the server: openapi-fetch typed by the admin API's own OpenAPI document
// (generated at build time), sending the session's CSRF token on unsafe methods.
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './generated/api.d.ts';

export interface FieldProblem {
  field: string;
  message: string;
  resource?: string;
}

/** RFC 9457 problem details, as every admin API error is. */
export interface Problem {
  title: string;
  status: number;
  detail: string;
  errors?: FieldProblem[];
}

export interface Session {
  name: string;
  role: 'admin' | 'viewer' | 'partner';
  /** The partner a partner token acts for: the console shows the partner portal only. */
  partner?: string;
  csrf: string;
  expiresAt: string;
}

let csrf = '';
/** Called when the server says the session is gone, so the shell can show the sign-in form. */
let onSignedOut: () => void = () => {};
export function whenSignedOut(f: () => void): void {
  onSignedOut = f;
}

const csrfHeader: Middleware = {
  onRequest({ request }) {
    if (!['GET', 'HEAD', 'OPTIONS'].includes(request.method) && csrf) request.headers.set('x-portico-csrf', csrf);
    return request;
  },
  onResponse({ response, request }) {
    if (response.status === 401 && !request.url.endsWith('/console/api/session')) onSignedOut();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: location.origin, credentials: 'same-origin' });
api.use(csrfHeader);

export function problemOf(error: unknown, response: Response): Problem {
  if (error && typeof error === 'object' && 'status' in error) return error as Problem;
  return { title: response.statusText || 'Error', status: response.status, detail: typeof error === 'string' ? error : `the server answered ${response.status}` };
}

export async function currentSession(): Promise<Session | undefined> {
  const { data } = await api.GET('/console/api/session');
  if (data) csrf = data.csrf;
  return data as Session | undefined;
}

export async function signIn(token: string): Promise<{ session?: Session; problem?: Problem }> {
  const { data, error, response } = await api.POST('/console/api/session', { body: { token } });
  if (!data) return { problem: problemOf(error, response) };
  csrf = data.csrf;
  return { session: data as Session };
}

export async function signOut(): Promise<void> {
  await api.DELETE('/console/api/session');
  csrf = '';
}

export type Result<T = any> = { data?: T; problem?: Problem; status: number };

/**
 * Calls an admin API path the generic resource pages build at run time (/api/v1/<kind>/<name>);
 * the paths themselves come from the generated document (see kinds.ts).
 */
export async function call<T = any>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown, contentType = 'application/json'): Promise<Result<T>> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = contentType;
  const init = {
    headers,
    ...(body !== undefined ? { body: body as never, bodySerializer: (b: unknown) => (typeof b === 'string' ? b : JSON.stringify(b)) } : {}),
    parseAs: 'text' as const,
  };
  // openapi-fetch's typed methods need literal paths; these are checked against `paths` in kinds.ts.
  const client = api as unknown as Record<string, (p: string, i: unknown) => Promise<{ data?: string; error?: unknown; response: Response }>>;
  const { data, error, response } = await client[method]!(path, init);
  if (!response.ok) return { problem: problemOf(error, response), status: response.status };
  const text = typeof data === 'string' ? data : '';
  const parsed: unknown = (response.headers.get('content-type') ?? '').includes('json') && text ? JSON.parse(text) : text;
  return { data: parsed as T, status: response.status };
}
