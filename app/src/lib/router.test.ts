import { describe, expect, it } from 'vitest';
import { parseRoute } from './router';
import { formatTs } from './time';

describe('routes', () => {
  it('maps paths to views; a case opens on its timeline', () => {
    const id = '0190f3a4-1111-7222-8333-444455556666';
    expect(parseRoute('/')).toEqual({ name: 'cases' });
    expect(parseRoute('/cases/')).toEqual({ name: 'cases' });
    expect(parseRoute('/callback?code=x&state=y')).toEqual({ name: 'callback' });
    expect(parseRoute(`/cases/${id}`)).toEqual({ name: 'case', caseId: id, tab: 'timeline' });
    expect(parseRoute(`/cases/${id.toUpperCase()}/evidence`)).toEqual({ name: 'case', caseId: id, tab: 'evidence' });
    expect(parseRoute('/cases/not-a-uuid')).toEqual({ name: 'not_found', path: '/cases/not-a-uuid' });
  });
});

describe('times', () => {
  it('formats with milliseconds in UTC or a named zone', () => {
    expect(formatTs('2024-03-01T23:30:00.123456Z', 'UTC')).toBe('2024-03-01 23:30:00.123');
    expect(formatTs('2024-03-01T23:30:00.123Z', 'Europe/Berlin')).toBe('2024-03-02 00:30:00.123');
    expect(formatTs('2024-07-01T00:00:00Z', 'America/New_York')).toBe('2024-06-30 20:00:00.000');
    expect(formatTs('garbage', 'UTC')).toBe('garbage');
  });
});
