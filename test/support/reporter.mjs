// The test command's terminal reporter (Node's runner, `--test-reporter`): one progress line per
// test file as it finishes, each failing test as it fails, and at the end every failure again with
// its error, then the runner's `# tests/# pass/# fail` totals (CI reads those lines and the
// `not ok` ones). The full TAP, with every test's output, goes to a file beside it (scripts/test.sh).
import path from 'node:path';

// Events: https://nodejs.org/api/test.html#event-testpass (data: name, nesting, file, skip, details).
// Plain JavaScript: Node 20 loads reporters before any --import hook (so no TypeScript here).

const TOTAL_FILES = Number(process.env.PORTICO_TEST_FILE_COUNT) || 0;
const rel = (f) => (f ? path.relative(process.cwd(), f) : '(no file)');
const seconds = (ms) => `${((ms ?? 0) / 1000).toFixed(1)}s`;

/** The assertion's own message (not the runner's wrapper), at most a few lines. */
function errorText(e) {
  const inner = e?.cause ?? e;
  const text = typeof inner === 'string' ? inner : (inner?.message ?? String(inner));
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(0, 12).join('\n') + (lines.length > 12 ? `\n… (${lines.length - 12} more lines in the TAP file)` : '');
}

/**
 * Where a failure is: the test file's first line in the error's stack (the assertion), else the
 * runner's line of the test. Under tsx the runner's line is one of the compiled code (often 1),
 * while stacks are source-mapped, so the stack goes first.
 */
function failureLine(file, data) {
  const e = data.details?.error;
  const stack = `${e?.cause?.stack ?? ''}\n${e?.stack ?? ''}`;
  for (const m of stack.matchAll(/\((?:file:\/\/)?([^()]+?):(\d+):\d+\)/g)) if (m[1] === file) return m[2];
  return /\.[cm]?tsx?$/.test(file) ? undefined : data.line;
}

export default async function* reporter(source) {
  const names = new Map(); // file → the names of the tests open at each nesting
  const perFile = new Map();
  const failures = [];
  let filesDone = 0;
  const totals = [];

  // With --test-concurrency > 1 a file's own `test:complete` comes when its process exits, but the
  // runner replays each file's test events in file order, so a file that finished early is only
  // counted once the replay has moved past it: such files wait in `finished` until then.
  const finished = new Map(); // file → its test:complete data, not yet printed
  const replayed = new Set(); // files whose test events the runner has replayed (or is replaying)
  let replaying = '';
  function* fileLine(file, data) {
    finished.delete(file);
    filesDone++;
    const c = perFile.get(file) ?? { pass: 0, fail: 0, skip: 0 };
    const failed = c.fail > 0 || data.details?.error !== undefined;
    const counts = [c.fail ? `${c.fail} failed` : '', `${c.pass} passed`, c.skip ? `${c.skip} skipped` : ''].filter(Boolean).join(', ');
    if (failed && c.fail === 0) failures.push({ file: rel(file), title: '(the file itself)', error: errorText(data.details?.error) });
    yield `${failed ? '✖' : '✔'} [${filesDone}${TOTAL_FILES ? `/${TOTAL_FILES}` : ''}] ${rel(file)}  ${counts}  ${seconds(data.details?.duration_ms)}\n`;
  }

  for await (const { type, data } of source) {
    const file = data.file ?? '';
    if (file && data.name !== file && (type === 'test:start' || type === 'test:pass' || type === 'test:fail') && file !== replaying) {
      if (finished.has(replaying)) yield* fileLine(replaying, finished.get(replaying));
      replaying = file;
      replayed.add(file);
    }
    if (type === 'test:start') {
      const stack = names.get(file) ?? [];
      stack.length = data.nesting;
      stack[data.nesting] = data.name;
      names.set(file, stack);
      continue;
    }
    if (type === 'test:complete' && data.nesting === 0 && data.name === file) {
      // A whole file finished (its own process): printed now if its events are in, else after them.
      if (replayed.has(file)) yield* fileLine(file, data);
      else finished.set(file, data);
      continue;
    }
    if ((type === 'test:pass' || type === 'test:fail') && data.details?.type !== 'suite' && data.name !== file) {
      const c = perFile.get(file) ?? { pass: 0, fail: 0, skip: 0 };
      perFile.set(file, c);
      if (type === 'test:pass') {
        if (data.skip !== undefined && data.skip !== false) c.skip++;
        else c.pass++;
        continue;
      }
      // A test whose only failure is its subtests' is reported by them.
      if (data.details?.error?.failureType === 'subtestsFailed') continue;
      c.fail++;
      const chain = [...(names.get(file) ?? []).slice(0, data.nesting), data.name].join(' › ');
      const error = errorText(data.details?.error);
      const line = failureLine(file, data);
      failures.push({ file: `${rel(file)}${line ? `:${line}` : ''}`, title: chain, error });
      yield `    ✖ ${chain}: ${error.split('\n')[0]}\n`;
      continue;
    }
    // The runner's totals (tests, suites, pass, fail, …) come last, as diagnostics of no file.
    if (type === 'test:diagnostic' && data.nesting === 0 && !data.file && data.message) totals.push(`# ${data.message}`);
  }
  for (const [file, data] of [...finished]) yield* fileLine(file, data);

  if (failures.length) {
    yield `\n${failures.length} failing test${failures.length === 1 ? '' : 's'}:\n`;
    for (const [i, f] of failures.entries()) {
      yield `\nnot ok ${i + 1} - ${f.file}: ${f.title}\n${f.error.replace(/^/gm, '    ')}\n`;
    }
    yield '\n';
  }
  yield `${totals.join('\n')}\n`;
}
