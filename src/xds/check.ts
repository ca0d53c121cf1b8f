// Whether a gateway group's resources can be served: each encodes strictly against Envoy's protos
// and no name repeats. The cache runs it before publishing; the write gate, before committing.
import { RESOURCE_KINDS, resourceName, type EnvoyResource, type GroupResources, type ResourceKind } from '../contract/index.ts';
import { encodeResource, ProtoJsonError, RESOURCE_TYPES, type EncodedParts } from '../proto/index.ts';

/** Why one resource cannot be served. */
export interface ResourceProblem {
  kind: ResourceKind;
  /** Resource name, or `#index` when it has none. */
  name: string;
  /** JSON path inside the resource ($ when the problem is the resource as a whole). */
  path: string;
  message: string;
}

export class GroupResourcesError extends Error {
  constructor(
    readonly group: string,
    readonly problems: readonly ResourceProblem[],
  ) {
    const first = problems.slice(0, 5).map((p) => `${p.kind}/${p.name} ${p.path}: ${p.message}`);
    super(`gateway group ${group}: ${problems.length} invalid Envoy resource(s): ${first.join('; ')}${problems.length > 5 ? '; …' : ''}`);
    this.name = 'GroupResourcesError';
  }
}

/**
 * Encodes one resource, reporting instead of throwing. The translator's validation gate can call
 * this (through checkGroupResources) to refuse a model whose Envoy config could not be served.
 */
export function tryEncode(kind: ResourceKind, index: number, r: EnvoyResource, reuse?: EncodedParts): { name: string; bytes: Uint8Array } | ResourceProblem {
  const name = resourceName(kind, r);
  const label = name ?? `#${index}`;
  if (!name) return { kind, name: label, path: '$', message: `missing ${kind === 'endpoints' ? 'cluster_name' : 'name'}` };
  try {
    return { name, bytes: encodeResource(RESOURCE_TYPES[kind], r, reuse) };
  } catch (e) {
    if (e instanceof ProtoJsonError) return { kind, name: label, path: e.path, message: e.reason };
    throw e;
  }
}

/** Every problem that would stop these resources from being served (encoding errors, duplicate names). */
export function checkGroupResources(resources: GroupResources): ResourceProblem[] {
  const problems: ResourceProblem[] = [];
  for (const kind of RESOURCE_KINDS) {
    const seen = new Set<string>();
    const list = resources[kind];
    if (!Array.isArray(list)) {
      problems.push({ kind, name: '-', path: '$', message: `${kind} must be an array` });
      continue;
    }
    list.forEach((r, i) => {
      const out = tryEncode(kind, i, r);
      if ('message' in out) problems.push(out);
      else if (seen.has(out.name)) problems.push({ kind, name: out.name, path: '$', message: 'duplicate name' });
      else seen.add(out.name);
    });
  }
  return problems;
}
