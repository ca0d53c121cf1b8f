// The translator's part of the validation gate: what the schemas and validateModel accept but the
// translator cannot express, or Envoy would refuse, named by resource and field.
import { sortedValues, type ModelSnapshot } from '../model/model.ts';
import { fullPath, type ModelError } from '../model/validate.ts';
import type { HeaderMutation } from '../model/schemas.ts';
import { templateSegments, templateVariables } from './paths.ts';

/** Envoy's URI template limits (uri_template_matcher). */
const TEMPLATE_MAX_LENGTH = 256;
const TEMPLATE_MAX_VARIABLES = 5;
const TEMPLATE_MAX_VARIABLE_NAME = 16;
/** One segment of an Envoy URI template: a literal, *, **, {name}, {name=*} or {name=**}. */
const TEMPLATE_SEGMENT = /^(\*\*?|\{[A-Za-z_][A-Za-z0-9_]*(=\*\*?)?\}|[A-Za-z0-9._~!$&'()+,;=:@%-]+)$/;

export function validateTranslation(model: ModelSnapshot): ModelError[] {
  const errors: ModelError[] = [];
  const invalid = (kind: ModelError['kind'], key: string, field: string, message: string) => errors.push({ kind, key, field, code: 'invalid', message });

  for (const g of sortedValues(model, 'gatewayGroups')) {
    (g.listeners ?? []).forEach((l, i) => {
      (l.hostnames ?? []).forEach((h, j) => {
        if ((l.protocol ?? 'http') !== 'https') {
          invalid('gatewayGroups', g.name, `listeners[${i}].hostnames[${j}]`, 'hostnames select the certificate by SNI, so they need protocol https');
        } else if (/:\d+$/.test(h)) {
          invalid('gatewayGroups', g.name, `listeners[${i}].hostnames[${j}]`, 'an SNI name cannot carry a port');
        }
      });
    });
  }

  for (const s of sortedValues(model, 'services')) {
    const sni = s.tls?.sni;
    if (sni !== undefined && (sni.includes('*') || /:\d+$/.test(sni))) {
      invalid('services', s.name, 'tls.sni', 'must be a plain DNS name (no wildcard, no port)');
    }
  }

  for (const p of sortedValues(model, 'products')) {
    (p.hosts ?? []).forEach((h, i) => {
      if (/:\d+$/.test(h)) invalid('products', p.name, `hosts[${i}]`, 'hosts are matched without their port; remove the port');
    });
    p.cors?.allowOrigins.forEach((o, i) => {
      if (o !== '*' && o.includes('*')) invalid('products', p.name, `cors.allowOrigins[${i}]`, "wildcards are not supported in origins; list each origin, or use '*' alone");
    });
  }

  for (const r of sortedValues(model, 'routes')) {
    const key = `${r.product}/${r.name}`;
    const product = model.products.get(r.product);
    if (!product) continue;
    if (r.match.path.type === 'template') {
      const problem = templateProblem(fullPath(product, r));
      if (problem) invalid('routes', key, 'match.path.value', problem);
    }
    r.match.query?.forEach((q, i) => {
      const presence = q.exact === undefined && q.prefix === undefined && q.regex === undefined;
      if (q.invert && !presence) invalid('routes', key, `match.query[${i}].invert`, 'Envoy cannot invert a query value match (only presence)');
    });
    for (const [field, m] of [['requestHeaders', r.requestHeaders], ['responseHeaders', r.responseHeaders]] as const) {
      for (const f of hostMutations(m)) invalid('routes', key, `${field}.${f}`, 'the host header cannot be changed by header rules; use rewrite.host');
    }
  }
  return errors;
}

function hostMutations(m: HeaderMutation | undefined): string[] {
  if (!m) return [];
  const out: string[] = [];
  for (const op of ['set', 'add'] as const) for (const name of Object.keys(m[op] ?? {})) if (name.toLowerCase() === 'host') out.push(`${op}.${name}`);
  (m.remove ?? []).forEach((name, i) => {
    if (name.toLowerCase() === 'host') out.push(`remove[${i}]`);
  });
  return out;
}

/** Why Envoy would refuse a URI template (checked on the full path, base path included). */
export function templateProblem(template: string): string | undefined {
  if (template.length > TEMPLATE_MAX_LENGTH) return `with the base path the template is ${template.length} characters; Envoy allows ${TEMPLATE_MAX_LENGTH}`;
  const segments = templateSegments(template);
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (!TEMPLATE_SEGMENT.test(s)) return `segment '${s}' of '${template}' is not a literal, *, **, {name}, {name=*} or {name=**}`;
    if ((s === '**' || s.endsWith('=**}')) && i !== segments.length - 1) return `** may only appear in the last segment of '${template}'`;
  }
  const vars = templateVariables(template);
  if (vars.length > TEMPLATE_MAX_VARIABLES) return `binds ${vars.length} variables; Envoy allows ${TEMPLATE_MAX_VARIABLES}`;
  const long = vars.find((v) => v.length > TEMPLATE_MAX_VARIABLE_NAME);
  if (long) return `variable name '${long}' is longer than ${TEMPLATE_MAX_VARIABLE_NAME} characters`;
  const dup = vars.find((v, i) => vars.indexOf(v) !== i);
  if (dup) return `variable '${dup}' is bound twice`;
  return undefined;
}
