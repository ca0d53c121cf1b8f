// `npm ci` prints no EBADENGINE warning on any Node the project supports: every package the lockfile
// installs on this platform accepts the lowest version of each Node line package.json's `engines`
// allows, and the README's quick start names those same versions.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { repoPath } from './support.ts';

// semver is npm's own range arithmetic (a declared dev dependency; it ships no types),
// typed here by the two calls this file makes.
const semver = createRequire(import.meta.url)('semver') as {
  satisfies(version: string, range: string): boolean;
  minVersion(range: string): { version: string } | null;
};

interface LockEntry {
  engines?: { node?: string } | string[];
  os?: string[];
  cpu?: string[];
}

/** npm's os/cpu lists: either names that are allowed, or `!name`s that are not. */
const allows = (list: string[] | undefined, value: string) => !list || (list.some((x) => !x.startsWith('!')) ? list.includes(value) : !list.includes(`!${value}`));

describe('Node versions', () => {
  const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { engines: { node: string } };
  const lowest = pkg.engines.node.split('||').map((range) => semver.minVersion(range.trim())!.version);

  it('every package installed here accepts the lowest version of each supported Node line', () => {
    assert.ok(lowest.length >= 2, `engines.node has Node lines: ${pkg.engines.node}`);
    const lock = JSON.parse(readFileSync(repoPath('package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
    const refused: string[] = [];
    let checked = 0;
    for (const [where, entry] of Object.entries(lock.packages)) {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
      // The root is package.json itself; platform packages for other systems are never installed.
      if (!where || !range || !allows(entry.os, process.platform) || !allows(entry.cpu, process.arch)) continue;
      checked++;
      for (const node of lowest) if (!semver.satisfies(node, range)) refused.push(`${where.replace(/^.*node_modules\//, '')} wants node ${range}: Node ${node} gets EBADENGINE`);
    }
    assert.ok(checked > 50, `packages with an engines.node range: ${checked}`);
    assert.deepEqual(refused, []);
  });

  it('the README names the same versions as package.json', () => {
    const readme = readFileSync(repoPath('README.md'), 'utf8');
    const [first, ...rest] = lowest.map((v) => v.replace(/\.0$/, '').replace(/\.0$/, ''));
    assert.match(readme, new RegExp(`with Node ${first}\\+ \\(or ${rest.map((v) => `${v}\\+`).join(', ')}\\)`.replaceAll('.', '\\.')));
  });
});
