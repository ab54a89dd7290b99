// A YAML file validated by a zod schema, with errors that name the file, the field path, the line
// and what was expected: lab files, exercise rubrics and a submission's iolab.yaml.
import { isMap, LineCounter, parseDocument } from 'yaml';
import type { ZodIssue, ZodType, ZodTypeDef } from 'zod';
import { fieldPath, LabFileError } from '../errors.js';

function describeIssue(issue: ZodIssue, lineOf: (path: (string | number)[]) => number | null): string {
  const field = fieldPath(issue.path) || '(top level)';
  const line = lineOf(issue.path);
  let message = issue.message;
  if (issue.code === 'invalid_type' && issue.received === 'undefined') message = `missing; expected ${issue.expected}`;
  else if (issue.code === 'invalid_type') message = `expected ${issue.expected}, got ${issue.received}`;
  else if (issue.code === 'unrecognized_keys') message = `unknown field(s) ${issue.keys.join(', ')}`;
  else if (issue.code === 'custom') message = `expected ${issue.message}`;
  return `${field}: ${message}${line ? ` (line ${line})` : ''}`;
}

export interface ParsedYaml<T> {
  value: T;
  /** the line of a field path (or of its nearest parent present in the file), for later errors. */
  lineOf(path: (string | number)[]): number | null;
}

/**
 * Parses `text` (the contents of `file`, used in errors only) as YAML and validates it.
 * `fields` says what the top-level mapping holds, for the error when the file is not a mapping.
 */
export function parseYamlFile<T>(text: string, file: string, schema: ZodType<T, ZodTypeDef, unknown>, fields: string): ParsedYaml<T> {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (document.errors.length > 0) {
    throw new LabFileError(
      file,
      document.errors.map((error) => `YAML syntax: ${error.message.split('\n')[0]} (line ${lines.linePos(error.pos[0]).line})`),
    );
  }
  if (!isMap(document.contents)) throw new LabFileError(file, [`expected a mapping of ${fields}`]);
  const lineOf = (path: (string | number)[]): number | null => {
    for (let depth = path.length; depth >= 0; depth--) {
      const node = document.getIn(path.slice(0, depth), true) as { range?: [number, number, number] } | undefined;
      if (node?.range) return lines.linePos(node.range[0]).line;
    }
    return null;
  };
  const parsed = schema.safeParse(document.toJS());
  if (!parsed.success) throw new LabFileError(file, parsed.error.issues.flatMap(unwrapUnion).map((issue) => describeIssue(issue, lineOf)));
  return { value: parsed.data, lineOf };
}

/**
 * A value that fits none of a union's shapes ("a model's name, or a variant") is described by the
 * shape of its own kind: a mapping by the variant's issues, not by "Invalid input".
 */
function unwrapUnion(issue: ZodIssue): ZodIssue[] {
  if (issue.code !== 'invalid_union') return [issue];
  const sameKind = issue.unionErrors.find((error) => !error.issues.some((i) => i.code === 'invalid_type' && i.path.length === issue.path.length));
  return sameKind ? sameKind.issues.flatMap(unwrapUnion) : [issue];
}
