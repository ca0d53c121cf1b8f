// JSON ↔ XML with fast-xml-parser, one documented mapping both ways:
//   element            ↔ field named after the element
//   repeated elements  ↔ array (and every name in `arrays`, even when it occurs once)
//   attribute a="v"    ↔ field "@a"
//   text beside attributes or children ↔ field "#text"
//   element text       ↔ number / boolean when it reads exactly as one ("007" stays a string), else string
//   empty element      ↔ "" (and null / "" become an empty element)
//   one root element   ↔ object with one field; JSON with several fields is wrapped in <root> (or xml.root),
//                        a top-level array in <root><item>…</item>…</root>
// Entity expansion is bounded and no DOCTYPE is fetched, so a hostile document cannot blow up memory.
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import type { XmlOptions } from '../model/index.ts';

export class XmlError extends Error {}

const ATTR = '@';
const TEXT = '#text';
const DEFAULT_ROOT = 'root';

const parserCache = new Map<string, XMLParser>();
function parserFor(arrays: readonly string[] = []): XMLParser {
  const key = arrays.join('\u0000');
  let p = parserCache.get(key);
  if (!p) {
    const always = new Set(arrays);
    p = new XMLParser({
      ignoreAttributes: false,
      attributeNamePrefix: ATTR,
      textNodeName: TEXT,
      parseTagValue: true,
      parseAttributeValue: false,
      trimValues: true,
      ignoreDeclaration: true,
      ignorePiTags: true,
      numberParseOptions: { hex: false, leadingZeros: false, eNotation: true },
      processEntities: { enabled: true, maxEntityCount: 64, maxEntitySize: 4096, maxExpansionDepth: 4, maxTotalExpansions: 1024, maxExpandedLength: 65_536 },
      maxNestedTags: 64,
      isArray: (name: string, _path: unknown, _isLeaf: boolean, isAttribute: boolean) => !isAttribute && always.has(name),
    } as never);
    if (parserCache.size > 256) parserCache.clear();
    parserCache.set(key, p);
  }
  return p;
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: ATTR,
  textNodeName: TEXT,
  suppressEmptyNode: false,
  suppressBooleanAttributes: false,
  processEntities: true,
});

/** Reads an XML document as JSON by the mapping above; throws XmlError when it is not well-formed. */
export function xmlToJson(xml: string, opts: XmlOptions = {}): unknown {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new XmlError(`is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  try {
    return parserFor(opts.arrays).parse(xml);
  } catch (e) {
    throw new XmlError(`could not be read as XML: ${(e as Error).message}`);
  }
}

/** Writes a JSON value as an XML document by the mapping above. */
export function jsonToXml(value: unknown, opts: XmlOptions = {}): string {
  const doc = rootedDocument(value, opts.root);
  return `<?xml version="1.0" encoding="UTF-8"?>${builder.build(sanitize(doc))}`;
}

function rootedDocument(value: unknown, root: string | undefined): Record<string, unknown> {
  if (isPlainObject(value)) {
    const keys = Object.keys(value);
    // One field that is an element (not an attribute, text or array) is already the root.
    if (!root && keys.length === 1 && !keys[0]!.startsWith(ATTR) && keys[0] !== TEXT && !Array.isArray(value[keys[0]!])) return value;
  }
  // A top-level array needs one root around its repeated <item> elements to stay one document.
  return { [root ?? DEFAULT_ROOT]: Array.isArray(value) ? { item: value } : value };
}

/** Element names must be XML names: anything else becomes an underscore so the output stays well-formed. */
function sanitize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sanitize);
  if (v === null) return '';
  if (!isPlainObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, child] of Object.entries(v)) {
    const name = k === TEXT ? k : k.startsWith(ATTR) ? ATTR + xmlName(k.slice(1)) : xmlName(k);
    out[name] = k.startsWith(ATTR) ? String(child) : sanitize(child);
  }
  return out;
}

function xmlName(k: string): string {
  const n = k.replace(/[^A-Za-z0-9_.-]/g, '_');
  return /^[A-Za-z_]/.test(n) ? n : `_${n}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** True for application/xml, text/xml and any +xml type. */
export function isXmlType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const t = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return t === 'application/xml' || t === 'text/xml' || t.endsWith('+xml');
}

/** True for application/json and any +json type. */
export function isJsonType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  // What nearly every JSON service sends, checked before splitting (this runs for every step answer).
  if (contentType === 'application/json') return true;
  const t = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return t === 'application/json' || t.endsWith('+json');
}

/** Whether an Accept header prefers XML over JSON (by q-value, then by order). */
export function acceptsXmlFirst(accept: string | undefined): boolean {
  if (!accept) return false;
  let best: { xml: boolean; q: number } | undefined;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    const q = Number(
      params
        .map((p) => p.trim())
        .find((p) => p.startsWith('q='))
        ?.slice(2) ?? '1',
    );
    const xml = isXmlType(type);
    const json = !xml && (isJsonType(type) || type === '*/*' || type === 'application/*');
    if ((!xml && !json) || !(q > 0)) continue;
    if (!best || q > best.q) best = { xml, q };
  }
  return best?.xml ?? false;
}
