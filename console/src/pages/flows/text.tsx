// The flow as text, JSON or YAML: edits apply as soon as the text parses to a flow; the text
// follows edits made in the graph and the side panel (unless it is what the text already says).
import { useEffect, useRef, useState } from 'preact/hooks';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { Field } from '../../ui.tsx';
import type { FlowDoc } from './model.ts';

type Format = 'json' | 'yaml';

const render = (flow: FlowDoc, format: Format) => (format === 'json' ? JSON.stringify(flow, null, 2) : toYaml(flow));

/** The text as a flow, or why it is not one. */
export function parseFlowText(text: string, format: Format): { flow?: FlowDoc; error?: string } {
  try {
    // Aliases are capped: a pasted document cannot expand into a huge value.
    const v: unknown = format === 'json' ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 100 });
    if (!v || typeof v !== 'object' || !Array.isArray((v as FlowDoc).steps)) return { error: 'must be an object with steps' };
    return { flow: v as FlowDoc };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0] };
  }
}

export function FlowText(props: { flow: FlowDoc; disabled: boolean; onChange(f: FlowDoc): void }) {
  const [format, setFormat] = useState<Format>('json');
  const canonical = JSON.stringify(props.flow);
  const [text, setText] = useState(() => render(props.flow, format));
  const [bad, setBad] = useState<string | undefined>(undefined);
  const mine = useRef(canonical);
  useEffect(() => {
    if (canonical !== mine.current) {
      setText(render(props.flow, format));
      setBad(undefined);
      mine.current = canonical;
    }
  }, [canonical]);
  const label = format === 'json' ? 'JSON' : 'YAML';
  return (
    <details class="flow-text">
      <summary>Flow as text (JSON or YAML)</summary>
      <Field
        spec={{ path: 'flowFormat', label: 'Text format', type: 'select', options: ['json', 'yaml'] }}
        value={format}
        onChange={(v) => {
          const f = (v as Format | undefined) ?? 'json';
          setFormat(f);
          setText(render(props.flow, f));
          setBad(undefined);
          mine.current = canonical;
        }}
      />
      <Field
        spec={{ path: 'flowText', label: `Flow (${label})`, type: 'textarea', help: `edits apply when the text is a valid ${label} flow` }}
        value={text}
        disabled={props.disabled}
        error={bad}
        onChange={(v) => {
          const t = String(v ?? '');
          setText(t);
          const r = parseFlowText(t, format);
          if (!r.flow) return setBad(`is not a flow: ${r.error}`);
          setBad(undefined);
          mine.current = JSON.stringify(r.flow);
          props.onChange(r.flow);
        }}
      />
    </details>
  );
}
