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
        resolve({ etag: xhr.getResponseHeader('ETag') });
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

/**
 * Uploads the parts of `file` (`partSize` bytes each, numbered from 1) to their presigned
 * URLs, `concurrency` at a time; returns the parts in order with their ETags.
 */
export async function uploadParts(
  file: Blob,
  partSize: number,
  urls: PartUrl[],
  onProgress: OnProgress,
  signal?: AbortSignal,
  concurrency = 3,
  put: typeof putWithProgress = putWithProgress,
): Promise<CompletedPart[]> {
  const ranges = partRanges(file.size, partSize);
  if (urls.length !== ranges.length) {
    throw new UploadError(`the API gave ${urls.length} part URLs for ${ranges.length} parts`);
  }
  const loaded = new Array<number>(ranges.length).fill(0);
  const report = () => onProgress({ loaded: loaded.reduce((a, b) => a + b, 0), total: file.size });
  const done: CompletedPart[] = [];
  let next = 0;
  const worker = async () => {
    while (next < urls.length) {
      const i = next++;
      const part = urls[i]!;
      const [start, end] = ranges[part.part_number - 1] ?? ranges[i]!;
      const res = await put(part.url, file.slice(start, end), (n) => {
        loaded[i] = n;
        report();
      }, signal);
      if (!res.etag) {
        throw new UploadError('storage did not expose the ETag of a part (the bucket CORS must expose ETag)');
      }
      done.push({ part_number: part.part_number, etag: res.etag });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, worker));
  return done.sort((a, b) => a.part_number - b.part_number);
}
