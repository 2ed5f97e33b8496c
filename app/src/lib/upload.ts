// Evidence files go from the browser straight to S3 through presigned URLs, never through
// the API: one PUT for a small file, or S3 multipart upload (parts PUT in parallel, each
// part's ETag kept for the completion) for a big one. Progress is reported in bytes.

export interface Progress {
  loaded: number;
  total: number;
}

export type OnProgress = (p: Progress) => void;

export class UploadError extends Error {}

export interface PutResult {
  /** The `ETag` response header (S3 names a stored part by it); null when CORS hides it. */
  etag: string | null;
}

/** PUTs a body to a presigned URL with progress events (XHR: fetch has no upload progress). */
export function putWithProgress(
  url: string,
  body: Blob,
  onProgress: (loaded: number) => void,
  signal?: AbortSignal,
  headers: Record<string, string> = {},
): Promise<PutResult> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(body.size);
        // Only headers CORS exposes are listed (asking for a hidden one logs a console error).
        const exposed = /^etag:/im.test(xhr.getAllResponseHeaders());
        resolve({ etag: exposed ? xhr.getResponseHeader('ETag') : null });
      } else {
        const code = /<Code>([^<]+)<\/Code>/.exec(xhr.responseText)?.[1];
        const msg = /<Message>([^<]+)<\/Message>/.exec(xhr.responseText)?.[1];
        reject(new UploadError(`storage refused the upload (${xhr.status}${code ? ` ${code}` : ''}${msg ? `: ${msg}` : ''})`));
      }
    };
    xhr.onerror = () => reject(new UploadError('the upload did not reach storage (network error or CORS)'));
    xhr.onabort = () => reject(new DOMException('upload aborted', 'AbortError'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

export interface PartUrl {
  part_number: number;
  url: string;
}

export interface CompletedPart {
  part_number: number;
  etag: string;
}

/** Byte ranges of the parts: every part `partSize` bytes except the last. */
export function partRanges(size: number, partSize: number): Array<[number, number]> {
  if (partSize <= 0) throw new UploadError('part size must be positive');
  const out: Array<[number, number]> = [];
  for (let start = 0; start < size; start += partSize) out.push([start, Math.min(size, start + partSize)]);
  if (out.length === 0) out.push([0, 0]);
  return out;
}

/** Part URLs are asked for in batches of at most this many (the API's limit). */
export const URL_BATCH = 100;

/**
 * Uploads `file` in parts of `partSize` bytes (numbered from 1), `concurrency` at a time;
 * returns every part's ETag in part order, for the completion. Part URLs are asked for
 * batch by batch as the upload reaches them (`urls(numbers)`), so none expires while
 * earlier parts of a big file are still on their way.
 */
export async function uploadMultipart(
  file: Blob,
  partSize: number,
  urls: (numbers: number[]) => Promise<PartUrl[]>,
  onProgress: OnProgress,
  signal?: AbortSignal,
  concurrency = 4,
  put: typeof putWithProgress = putWithProgress,
): Promise<CompletedPart[]> {
  const ranges = partRanges(file.size, partSize);
  const done: CompletedPart[] = [];
  const loaded = new Array<number>(ranges.length).fill(0);
  const report = () => onProgress({ loaded: loaded.reduce((a, b) => a + b, 0), total: file.size });
  const batches = new Map<number, Promise<Map<number, string>>>();
  const urlOf = async (n: number): Promise<string> => {
    const b = Math.floor((n - 1) / URL_BATCH);
    let batch = batches.get(b);
    if (!batch) {
      const numbers: number[] = [];
      for (let k = b * URL_BATCH + 1; k <= Math.min(ranges.length, (b + 1) * URL_BATCH); k++) numbers.push(k);
      batch = urls(numbers).then((list) => new Map(list.map((p) => [p.part_number, p.url])));
      batches.set(b, batch);
    }
    const url = (await batch).get(n);
    if (!url) throw new UploadError(`the API gave no URL for part ${n}`);
    return url;
  };
  let next = 0;
  const worker = async () => {
    while (next < ranges.length) {
      const i = next++;
      const [start, end] = ranges[i]!;
      const res = await put(await urlOf(i + 1), file.slice(start, end), (n) => {
        loaded[i] = n;
        report();
      }, signal);
      if (!res.etag) {
        throw new UploadError("storage hid the part's ETag: the bucket's CORS rules must expose the ETag header");
      }
      done.push({ part_number: i + 1, etag: res.etag });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ranges.length) }, worker));
  return done.sort((a, b) => a.part_number - b.part_number);
}
