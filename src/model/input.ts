// Limits every request value must meet before any schema or store sees it: a bounded nesting depth
// (recursive code downstream must not overflow the stack) and no NUL character (PostgreSQL text
// cannot hold one). Pure and iterative, so a hostile value cannot overflow the check itself.
import { joinField, type FieldError } from './validate.ts';

/** Deeper than any resource the model defines, far shallower than what overflows a recursive walk. */
export const MAX_INPUT_DEPTH = 64;
const MAX_ERRORS = 20;

/**
 * Field errors for values nested deeper than `maxDepth`, or strings (values or property names) that
 * contain a NUL character. `prefix` names the value itself (e.g. "query parameter").
 */
export function inputErrors(value: unknown, prefix = '', maxDepth = MAX_INPUT_DEPTH): FieldError[] {
  const errors: FieldError[] = [];
  // Property names with a NUL wait on the stack too (badKey), so errors come in document order.
  const stack: Array<{ v: unknown; field: string; depth: number; badKey?: boolean }> = [{ v: value, field: prefix, depth: 0 }];
  while (stack.length && errors.length < MAX_ERRORS) {
    const { v, field, depth, badKey } = stack.pop()!;
    if (badKey) {
      errors.push({ field, message: 'is a property name with a NUL character' });
      continue;
    }
    if (typeof v === 'string') {
      if (v.includes('\0')) errors.push({ field: field || '(body)', message: 'must not contain a NUL character' });
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= maxDepth) {
      errors.push({ field: field || '(body)', message: `nests deeper than ${maxDepth} levels` });
      continue;
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], field: `${field}[${i}]`, depth: depth + 1 });
      continue;
    }
    const entries = Object.entries(v as Record<string, unknown>);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [k, child] = entries[i]!;
      if (k.includes('\0')) stack.push({ v: undefined, field: `${field}[${JSON.stringify(k)}]`, depth, badKey: true });
      else stack.push({ v: child, field: joinField(field, k), depth: depth + 1 });
    }
  }
  return errors;
}
