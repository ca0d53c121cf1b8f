// The peer that bench/xds-fanout.ts measures Portico against: go-control-plane v0.14 (bench/xds-peer,
// built from the Go module proxy into ~/.cache/portico-bench), fed the same resources as proto3 JSON.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RESOURCE_KINDS, resourceName, type EnvoyResource, type GroupResources, type ResourceKind } from '../src/contract/index.ts';

const SOURCE = fileURLToPath(new URL('./xds-peer/', import.meta.url));
/** The kinds the peer reads (Portico's GroupResources keys); the bench group has no secrets. */
const PEER_KINDS = ['clusters', 'endpoints', 'listeners', 'routes'] as const satisfies readonly ResourceKind[];

export type PeerCache = 'snapshot' | 'linear';

/** Builds the peer binary (Go's build cache makes a rebuild of unchanged sources take a second). */
export function buildPeer(): string {
  const dir = process.env.PORTICO_BENCH_CACHE ?? join(homedir(), '.cache', 'portico-bench');
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, 'xds-peer');
  process.stderr.write(`xds-peer: go build (into ${dir})\n`);
  const r = spawnSync('go', ['build', '-trimpath', '-buildvcs=false', '-o', bin, '.'], {
    cwd: SOURCE,
    stdio: ['ignore', 'inherit', 'inherit'],
    // Go's official install location, when a non-login shell's PATH lacks it.
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/local/go/bin` },
  });
  if (r.error || r.status !== 0) throw new Error(`building bench/xds-peer failed (is Go installed?): ${r.error?.message ?? `exit ${r.status}`}`);
  return bin;
}

function writeJson(file: string, resources: readonly EnvoyResource[]): void {
  writeFileSync(file, JSON.stringify(resources));
}

/** Writes a group as the peer reads it: DIR/<kind>.json, each a JSON array of proto3 JSON resources. */
export function writeGroupFiles(dir: string, group: GroupResources): void {
  mkdirSync(dir, { recursive: true });
  if (group.secrets.length) throw new Error('the peer serves no secrets');
  for (const kind of PEER_KINDS) writeJson(join(dir, `${kind}.json`), group[kind]);
}

/** What one change hands the peer: the resources of one kind that replace those of the same name. */
export interface PeerChange {
  kind: ResourceKind;
  file: string;
}

/**
 * Writes the resources of `after` that are new or differ from `before` (by name) to DIR/<label>.json.
 * A change must touch exactly one kind and remove nothing: the peer only replaces.
 */
export function writeChangeFile(dir: string, label: string, before: GroupResources, after: GroupResources): PeerChange {
  const touched: { kind: ResourceKind; resources: EnvoyResource[] }[] = [];
  for (const kind of RESOURCE_KINDS) {
    const old = new Map(before[kind].map((r) => [resourceName(kind, r), JSON.stringify(r)]));
    const kept = new Set(after[kind].map((r) => resourceName(kind, r)));
    for (const name of old.keys()) if (!kept.has(name)) throw new Error(`${label}: removes ${kind} ${name}, which the peer cannot apply`);
    const changed = after[kind].filter((r) => old.get(resourceName(kind, r)) !== JSON.stringify(r));
    if (changed.length) touched.push({ kind, resources: changed });
  }
  if (touched.length !== 1) throw new Error(`${label}: touches ${touched.length} kinds; the peer applies one per change`);
  const file = join(dir, `${label}.json`);
  writeJson(file, touched[0]!.resources);
  return { kind: touched[0]!.kind, file };
}

/** A running peer: ADS on `address`, changes over its stdin. */
export class PeerServer {
  private constructor(
    private readonly child: ChildProcess,
    private readonly lines: AsyncIterator<string>,
    readonly address: string,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  static async start(bin: string, cache: PeerCache, dir: string): Promise<PeerServer> {
    const child = spawn(bin, ['-cache', cache, '-resources', dir, '-listen', '127.0.0.1:0'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const first = await PeerServer.read(lines, 'listening');
    return new PeerServer(child, lines, first.slice('listening '.length));
  }

  private static async read(lines: AsyncIterator<string>, expect: string): Promise<string> {
    const { value, done } = await lines.next();
    if (done) throw new Error(`xds-peer exited (waiting for "${expect}")`);
    if (!value.startsWith(expect)) throw new Error(`xds-peer said "${value}", expected "${expect}"`);
    return value;
  }

  /** Parses the change's resources (outside the measured window). */
  async prepare(change: PeerChange): Promise<void> {
    this.child.stdin!.write(`prepare ${change.kind} ${change.file}\n`);
    await PeerServer.read(this.lines, 'prepared');
  }

  /** Publishes the prepared change; resolves with the version streams will hold for its type. */
  async apply(): Promise<string> {
    this.child.stdin!.write('apply\n');
    return (await PeerServer.read(this.lines, 'applied ')).slice('applied '.length);
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end();
    await exited;
  }
}
