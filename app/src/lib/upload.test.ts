import { describe, expect, it } from 'vitest';
import { partRanges, uploadMultipart, UploadError, type PartChecksum, type PutResult } from './upload';

/** Stands in for SHA-256 (jsdom's Blob cannot be read): the part's size. */
const fakeHash = async (b: Blob) => `h${b.size}`;


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
    const put = async (url: string, body: Blob, onProgress: (n: number) => void, _s?: AbortSignal, headers?: Record<string, string>): Promise<PutResult> => {
      expect(headers).toBeUndefined();
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, url.endsWith('1') ? 20 : 1));
      seen.push([url, body.size]);
      onProgress(body.size);
      running--;
      return { etag: `"e-${url}"` };
    };
    const asked: PartChecksum[][] = [];
    const urls = async (parts: PartChecksum[]) => {
      asked.push(parts);
      return parts.map((p) => ({ part_number: p.part_number, url: `u${p.part_number}` }));
    };
    const progress: number[] = [];
    const parts = await uploadMultipart(file, 4, urls, (p) => progress.push(p.loaded), undefined, 2, put, fakeHash);
    expect(parts).toEqual([
      { part_number: 1, etag: '"e-u1"', sha256: 'h4' },
      { part_number: 2, etag: '"e-u2"', sha256: 'h4' },
      { part_number: 3, etag: '"e-u3"', sha256: 'h2' },
    ]);
    expect(asked).toEqual([
      [
        { part_number: 1, sha256: 'h4' },
        { part_number: 2, sha256: 'h4' },
        { part_number: 3, sha256: 'h2' },
      ],
    ]);
    expect(seen.map(([u, n]) => `${u}:${n}`).sort()).toEqual(['u1:4', 'u2:4', 'u3:2']);
    expect(most).toBe(2);
    expect(progress[progress.length - 1]).toBe(10);
  });

  it('asks for at most 100 part URLs at a time', async () => {
    const file = new Blob([new Uint8Array(250)]);
    const asked: number[][] = [];
    const urls = async (parts: PartChecksum[]) => {
      asked.push(parts.map((p) => p.part_number));
      return parts.map((p) => ({ part_number: p.part_number, url: `u${p.part_number}` }));
    };
    const put = async (url: string) => ({ etag: `"${url}"` });
    expect(await uploadMultipart(file, 1, urls, () => {}, undefined, 3, put, fakeHash)).toHaveLength(250);
    expect(asked.map((a) => [a[0], a[a.length - 1]])).toEqual([
      [1, 100],
      [101, 200],
      [201, 250],
    ]);
  });

  it('fails clearly when the API leaves a part without URL, CORS hides the ETag, or storage refuses', async () => {
    const file = new Blob(['abcdef']);
    const hidden = async () => ({ etag: null });
    const all = async (ps: PartChecksum[]) => ps.map((p) => ({ part_number: p.part_number, url: 'u' }));
    await expect(uploadMultipart(file, 3, all, () => {}, undefined, 1, hidden, fakeHash)).rejects.toThrow(/expose the ETag/);
    const put = async () => ({ etag: '"x"' });
    await expect(uploadMultipart(file, 3, async () => [{ part_number: 1, url: 'u1' }], () => {}, undefined, 1, put, fakeHash)).rejects.toThrow(/no URL for part 2/);
    const refuse = async () => {
      throw new UploadError('storage refused the upload (403 AccessDenied)');
    };
    await expect(uploadMultipart(file, 3, all, () => {}, undefined, 1, refuse, fakeHash)).rejects.toThrow(/AccessDenied/);
  });
});
