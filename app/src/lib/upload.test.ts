import { describe, expect, it } from 'vitest';
import { partRanges, uploadMultipart, UploadError, type PutResult } from './upload';

describe('multipart', () => {
  it('cuts a file into parts of the given size, the last one shorter', () => {
    expect(partRanges(10, 4)).toEqual([
      [0, 4],
      [4, 8],
      [8, 10],
    ]);
    expect(partRanges(8, 4)).toEqual([
      [0, 4],
      [4, 8],
    ]);
    expect(partRanges(0, 4)).toEqual([[0, 0]]);
    expect(() => partRanges(1, 0)).toThrow(UploadError);
  });

  it('uploads every part to its URL, a few at a time, asking for URLs batch by batch', async () => {
    const file = new Blob(['a'.repeat(10)]);
    const seen: Array<[string, number]> = [];
    let running = 0;
    let most = 0;
    const put = async (url: string, body: Blob, onProgress: (n: number) => void): Promise<PutResult> => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, url.endsWith('1') ? 20 : 1));
      seen.push([url, body.size]);
      onProgress(body.size);
      running--;
      return { etag: `"e-${url}"` };
    };
    const asked: number[][] = [];
    const urls = async (numbers: number[]) => {
      asked.push(numbers);
      return numbers.map((n) => ({ part_number: n, url: `u${n}` }));
    };
    const progress: number[] = [];
    const parts = await uploadMultipart(file, 4, urls, (p) => progress.push(p.loaded), undefined, 2, put);
    expect(parts).toEqual([
      { part_number: 1, etag: '"e-u1"' },
      { part_number: 2, etag: '"e-u2"' },
      { part_number: 3, etag: '"e-u3"' },
    ]);
    expect(asked).toEqual([[1, 2, 3]]);
    expect(seen.map(([u, n]) => `${u}:${n}`).sort()).toEqual(['u1:4', 'u2:4', 'u3:2']);
    expect(most).toBe(2);
    expect(progress[progress.length - 1]).toBe(10);
  });

  it('asks for at most 100 part URLs at a time', async () => {
    const file = new Blob([new Uint8Array(250)]);
    const asked: number[][] = [];
    const urls = async (numbers: number[]) => {
      asked.push(numbers);
      return numbers.map((n) => ({ part_number: n, url: `u${n}` }));
    };
    const put = async (url: string) => ({ etag: `"${url}"` });
    expect(await uploadMultipart(file, 1, urls, () => {}, undefined, 3, put)).toHaveLength(250);
    expect(asked.map((a) => [a[0], a[a.length - 1]])).toEqual([
      [1, 100],
      [101, 200],
      [201, 250],
    ]);
  });

  it('fails clearly when the API leaves a part without URL, CORS hides the ETag, or storage refuses', async () => {
    const file = new Blob(['abcdef']);
    const hidden = async () => ({ etag: null });
    await expect(uploadMultipart(file, 3, async (ns) => ns.map((n) => ({ part_number: n, url: 'u' })), () => {}, undefined, 1, hidden)).rejects.toThrow(/expose the ETag/);
    const put = async () => ({ etag: '"x"' });
    await expect(uploadMultipart(file, 3, async () => [{ part_number: 1, url: 'u1' }], () => {}, undefined, 1, put)).rejects.toThrow(/no URL for part 2/);
    const refuse = async () => {
      throw new UploadError('storage refused the upload (403 AccessDenied)');
    };
    await expect(uploadMultipart(file, 3, async (ns) => ns.map((n) => ({ part_number: n, url: 'u' })), () => {}, undefined, 1, refuse)).rejects.toThrow(/AccessDenied/);
  });
});
