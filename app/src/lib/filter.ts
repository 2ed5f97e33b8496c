// The filter document as the builder sees it: the top-level conjuncts of `where` are the
// chips (a leaf, or any nested group shown by its summary), the time range is separate.
// Fields and operators come from the published JSON Schema, never from a copy here.

import type { FilterDocument, FilterLeaf, FilterNode } from '../api/client';

export type Chip = FilterNode;

export function isLeaf(n: FilterNode): n is FilterLeaf {
  return typeof n === 'object' && n !== null && 'field' in n && 'op' in n;
}

/** The conjuncts of the document's condition. */
export function chipsOf(doc: FilterDocument): Chip[] {
  const w = doc.where;
  if (!w) return [];
  if ('all' in w && Array.isArray(w.all)) return w.all as Chip[];
  return [w];
}

/** The document with these conjuncts as its condition (other settings kept). */
export function withChips(doc: FilterDocument, chips: Chip[]): FilterDocument {
  const { where: _old, ...rest } = doc;
  if (chips.length === 0) return rest;
  return { ...rest, where: chips.length === 1 ? chips[0] : { all: chips } };
}

export function withTime(doc: FilterDocument, from: string | null, to: string | null): FilterDocument {
  const { time: _old, ...rest } = doc;
  if (!from && !to) return rest;
  const time: Record<string, string> = {};
  if (from) time.from = from;
  if (to) time.to = to;
  return { ...rest, time };
}

const OP_TEXT: Record<string, string> = {
  eq: '=',
  neq: '≠',
  in: 'in',
  nin: 'not in',
  contains: 'contains',
  prefix: 'starts with',
  gt: '>',
  gte: '≥',
  lt: '<',
  lte: '≤',
  exists: 'exists',
  cidr: 'in block',
};

function valueText(v: unknown): string {
  if (Array.isArray(v)) return v.map(valueText).join(', ');
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** A short human description of a condition. */
export function describe(n: FilterNode): string {
  if (isLeaf(n)) {
    if (n.op === 'exists') return n.value === false ? `${n.field} is absent` : `${n.field} exists`;
    return `${n.field} ${OP_TEXT[n.op] ?? n.op} ${valueText(n.value)}`;
  }
  if ('all' in n) return `all of (${(n.all as FilterNode[]).map(describe).join('; ')})`;
  if ('any' in n) return `any of (${(n.any as FilterNode[]).map(describe).join('; ')})`;
  if ('not' in n) return `not (${describe(n.not as FilterNode)})`;
  return JSON.stringify(n);
}

/** Turns the builder's text input into the leaf's value for this field and operator. */
export function parseValue(field: string, op: string, text: string): unknown {
  const t = text.trim();
  if (op === 'exists') return t === '' ? true : !/^(false|no|0)$/i.test(t);
  if (op === 'in' || op === 'nin') {
    return t
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  }
  if (['gt', 'gte', 'lt', 'lte'].includes(op) && field.startsWith('attr.') && /^-?\d+(\.\d+)?$/.test(t)) {
    return Number(t);
  }
  if (field.startsWith('attr.') && (t === 'true' || t === 'false') && (op === 'eq' || op === 'neq')) {
    return t === 'true';
  }
  return t;
}

export interface OpInfo {
  op: string;
  description: string;
}

export interface SchemaInfo {
  /** The named fields (`attr.<key>` is allowed besides). */
  fields: string[];
  /** Pattern of free attribute fields, if the schema has one. */
  attrPattern: RegExp | null;
  ops: OpInfo[];
  maxLimit: number;
}

type Json = Record<string, unknown>;

/** Fields and operators from the filter's JSON Schema (`/api/v1/filter.schema.json`). */
export function schemaInfo(schema: Json): SchemaInfo {
  const defs = (schema.$defs ?? {}) as Record<string, Json>;
  const field = defs.Field ?? {};
  const fields: string[] = [];
  let attrPattern: RegExp | null = null;
  for (const alt of (field.anyOf ?? []) as Json[]) {
    if (Array.isArray(alt.enum)) fields.push(...(alt.enum as string[]));
    if (typeof alt.pattern === 'string') attrPattern = new RegExp(alt.pattern);
  }
  const opDef = defs.Op ?? {};
  const ops: OpInfo[] = [];
  for (const alt of (opDef.oneOf ?? opDef.anyOf ?? []) as Json[]) {
    if (typeof alt.const === 'string') ops.push({ op: alt.const, description: String(alt.description ?? alt.const) });
    if (Array.isArray(alt.enum)) for (const e of alt.enum as string[]) ops.push({ op: e, description: e });
  }
  const limit = ((schema.properties as Json | undefined)?.limit ?? {}) as Json;
  return { fields, attrPattern, ops, maxLimit: typeof limit.maximum === 'number' ? limit.maximum : 1000 };
}

/** Why a field name is not allowed, or null. */
export function fieldProblem(info: SchemaInfo, field: string): string | null {
  if (info.fields.includes(field)) return null;
  if (info.attrPattern?.test(field)) return null;
  return `unknown field "${field}"; use one of ${info.fields.join(', ')} or attr.<key>`;
}

/** Parses the JSON view's text; returns the document or a message. */
export function parseDocument(text: string): { doc: FilterDocument } | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `not JSON: ${(e as Error).message}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: 'the filter must be a JSON object' };
  return { doc: v as FilterDocument };
}
