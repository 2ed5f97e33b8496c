import { describe, expect, it } from 'vitest';
import { partRanges, uploadParts, UploadError, type PutResult } from './upload';

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

  it('uploads every part to its URL, a few at a time, and returns ETags in part order', async () => {
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
      return { etag: `"etag-${url}"` };
    };
    const progress: number[] = [];
    const parts = await uploadParts(
      file,
      4,
      [1, 2, 3].map((n) => ({ part_number: n, url: `u${n}` })),
      (p) => progress.push(p.loaded),
      undefined,
      2,
      put,
    );
    expect(parts).toEqual([
      { part_number: 1, etag: '"etag-u1"' },
      { part_number: 2, etag: '"etag-u2"' },
      { part_number: 3, etag: '"etag-u3"' },
    ]);
    expect(seen.map(([u, n]) => `${u}:${n}`).sort()).toEqual(['u1:4', 'u2:4', 'u3:2']);
    expect(most).toBe(2);
    expect(progress[progress.length - 1]).toBe(10);
  });

  it('fails clearly when storage hides the ETag (CORS) or the part count is wrong', async () => {
    const file = new Blob(['abc']);
    const noEtag = async () => ({ etag: null });
    await expect(uploadParts(file, 4, [{ part_number: 1, url: 'u' }], () => {}, undefined, 1, noEtag)).rejects.toThrow(/ETag/);
    await expect(uploadParts(file, 1, [{ part_number: 1, url: 'u' }], () => {})).rejects.toThrow(/1 part URLs for 3 parts/);
  });
});
