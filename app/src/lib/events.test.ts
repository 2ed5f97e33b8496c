import { describe, expect, it } from 'vitest';
import type { ChronoEvent } from '../api/client';
import { eventLabel, seenValues } from './events';

const ev = (action: string | null, tags: string[], host?: string, extra: Record<string, unknown> = {}) =>
  ({ action, tags, device: host ? { id: 'd', name: host } : null, identity: null, event_code: '4624', ...extra }) as unknown as ChronoEvent;

describe('suggestions from loaded rows', () => {
  it('are the distinct values of the field, sorted', () => {
    const rows = [ev('logon', ['a']), ev('logoff', ['b', 'a'], 'WS01'), ev(null, [], 'WS01'), ev('logon', [])];
    expect(seenValues(rows, 'action')).toEqual(['logoff', 'logon']);
    expect(seenValues(rows, 'tag')).toEqual(['a', 'b']);
    expect(seenValues(rows, 'device')).toEqual(['WS01']);
    expect(seenValues(rows, 'ts')).toEqual([]);
    expect(seenValues(rows, 'action', 1)).toHaveLength(1);
  });

  it('labels an event by code and catalog title when it has one', () => {
    expect(eventLabel(ev('logon', [], undefined, { title: 'An account was successfully logged on' }))).toBe('4624 · An account was successfully logged on');
    expect(eventLabel(ev('logon', []))).toBe('4624');
  });
});
