import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FilterDocument } from '../api/client';
import { chipsOf, describe as describeNode, fieldProblem, parseDocument, parseValue, schemaInfo, withChips, withTime } from './filter';

// The real published schema, so a change of fields or operators in the runtime shows here.
const schema = JSON.parse(readFileSync(resolve(__dirname, '../../../runtime/schema/filter.schema.json'), 'utf8'));

describe('schema', () => {
  it('takes fields and operators from the published JSON Schema', () => {
    const info = schemaInfo(schema);
    expect(info.fields).toEqual(expect.arrayContaining(['ts', 'action', 'outcome', 'device', 'identity', 'event_code', 'message']));
    expect(info.ops.map((o) => o.op)).toEqual(['eq', 'neq', 'in', 'nin', 'contains', 'prefix', 'gt', 'gte', 'lt', 'lte', 'exists', 'cidr']);
    expect(info.ops.find((o) => o.op === 'cidr')?.description).toMatch(/CIDR/);
    expect(info.maxLimit).toBe(1000);
    expect(fieldProblem(info, 'action')).toBeNull();
    expect(fieldProblem(info, 'attr.Event.EventData.LogonType')).toBeNull();
    expect(fieldProblem(info, 'actor')).toMatch(/unknown field "actor"/);
    expect(fieldProblem(info, 'attr.')).toMatch(/unknown field/);
  });
});

describe('chips', () => {
  it('are the conjuncts of the condition and round-trip', () => {
    const a = { field: 'action', op: 'eq', value: 'logon' } as const;
    const b = { field: 'outcome', op: 'eq', value: 'failure' } as const;
    const base: FilterDocument = { sort: 'ts_asc', limit: 500 };
    expect(chipsOf(base)).toEqual([]);
    const one = withChips(base, [a]);
    expect(one.where).toEqual(a);
    expect(chipsOf(one)).toEqual([a]);
    const two = withChips(one, [a, b]);
    expect(two.where).toEqual({ all: [a, b] });
    expect(two.limit).toBe(500);
    expect(withChips(two, [])).toEqual(base);
    // a nested group from the AI is one chip
    const nested: FilterDocument = { where: { any: [a, { not: b }] } };
    expect(chipsOf(nested)).toHaveLength(1);
    expect(describeNode(chipsOf(nested)[0]!)).toBe('any of (action = logon; not (outcome = failure))');
  });

  it('sets and clears the time range', () => {
    const d = withTime({ limit: 10 }, '2024-03-01T00:00:00Z', null);
    expect(d.time).toEqual({ from: '2024-03-01T00:00:00Z' });
    expect(withTime(d, null, null)).toEqual({ limit: 10 });
  });

  it('types values by operator and field', () => {
    expect(parseValue('action', 'in', 'logon, logoff ,')).toEqual(['logon', 'logoff']);
    expect(parseValue('event_code', 'eq', '4625')).toBe('4625');
    expect(parseValue('attr.Event.EventData.LogonType', 'gte', '3')).toBe(3);
    expect(parseValue('attr.x', 'eq', 'true')).toBe(true);
    expect(parseValue('src_ip', 'exists', 'false')).toBe(false);
    expect(parseValue('src_ip', 'exists', '')).toBe(true);
  });

  it('describes leaves', () => {
    expect(describeNode({ field: 'src_ip', op: 'cidr', value: '10.0.0.0/8' })).toBe('src_ip in block 10.0.0.0/8');
    expect(describeNode({ field: 'identity', op: 'in', value: ['a', 'b'] })).toBe('identity in a, b');
    expect(describeNode({ field: 'dst_ip', op: 'exists', value: false })).toBe('dst_ip is absent');
  });

  it('reports JSON errors of the editor', () => {
    expect(parseDocument('{"limit": 5}')).toEqual({ doc: { limit: 5 } });
    expect(parseDocument('[1]')).toEqual({ error: 'the filter must be a JSON object' });
    expect('error' in parseDocument('{oops')).toBe(true);
  });
});
