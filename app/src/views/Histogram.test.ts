import { describe, expect, it } from 'vitest';
import { rangeOf } from './Histogram';

const buckets = [0, 1, 2, 3].map((h) => ({ start: new Date(Date.UTC(2024, 2, 1, h)).toISOString(), count: h }));
const end = Date.UTC(2024, 2, 1, 4);

describe('histogram selection', () => {
  it('maps a drag to the covered buckets, either direction', () => {
    expect(rangeOf(buckets, end, 0.3, 0.6)).toEqual(['2024-03-01T01:00:00.000Z', '2024-03-01T02:59:59.999Z']);
    expect(rangeOf(buckets, end, 0.6, 0.3)).toEqual(['2024-03-01T01:00:00.000Z', '2024-03-01T02:59:59.999Z']);
  });

  it('a click selects one bucket; the last bucket ends at the range end', () => {
    expect(rangeOf(buckets, end, 0.9, 0.9)).toEqual(['2024-03-01T03:00:00.000Z', '2024-03-01T03:59:59.999Z']);
    expect(rangeOf(buckets, end, 0, 1)).toEqual(['2024-03-01T00:00:00.000Z', '2024-03-01T03:59:59.999Z']);
    expect(rangeOf([], end, 0, 1)).toBeNull();
  });
});
