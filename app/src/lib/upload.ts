// Evidence files go from the browser straight to S3 through presigned URLs, never through
// the API: one PUT for a small file, or S3 multipart upload (parts PUT in parallel, each
// part's ETag kept for the completion) for a big one. Progress is reported in bytes.
// Chain of custody: every PUT carries the SHA-256 of its body, computed here before the
// URL is asked for; the URL is signed with it and storage refuses another body.

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

/** A blob's bytes (FileReader where `Blob.arrayBuffer` is missing, as in jsdom). */
function bytesOf(body: Blob): Promise<ArrayBuffer> {
  if (typeof body.arrayBuffer === 'function') return body.arrayBuffer();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result as ArrayBuffer);
    reader.onerror = () => reject(reader.error);
    reader.readAsArrayBuffer(body);
  });
}

/** The SHA-256 of a blob, lowercase hex (Web Crypto). */
export async function sha256Hex(body: Blob): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new Uint8Array(await bytesOf(body)));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

export interface PartUrl {
  part_number: number;
  url: string;
  /** Headers the PUT must carry exactly (they are signed). */
  headers?: Record<string, string>;
}

export interface PartChecksum {
  part_number: number;
  sha256: string;
}

export interface CompletedPart {
  part_number: number;
  etag: string;
  sha256: string;
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
 * returns every part's ETag and SHA-256 in part order, for the completion. Part URLs are
 * asked for batch by batch as the upload reaches them (`urls(parts)`, each part with its
 * SHA-256, hashed one part at a time), so none expires while earlier parts of a big file
 * are still on their way.
 */
export async function uploadMultipart(
  file: Blob,
  partSize: number,
  urls: (parts: PartChecksum[]) => Promise<PartUrl[]>,
  onProgress: OnProgress,
  signal?: AbortSignal,
  concurrency = 4,
  put: typeof putWithProgress = putWithProgress,
  hash: (body: Blob) => Promise<string> = sha256Hex,
): Promise<CompletedPart[]> {
  const ranges = partRanges(file.size, partSize);
  const done: CompletedPart[] = [];
  const loaded = new Array<number>(ranges.length).fill(0);
  const report = () => onProgress({ loaded: loaded.reduce((a, b) => a + b, 0), total: file.size });
  const slice = (n: number) => file.slice(ranges[n - 1]![0], ranges[n - 1]![1]);
  const batches = new Map<number, Promise<Map<number, PartUrl & { sha256: string }>>>();
  const urlOf = async (n: number): Promise<PartUrl & { sha256: string }> => {
    const b = Math.floor((n - 1) / URL_BATCH);
    let batch = batches.get(b);
    if (!batch) {
      batch = (async () => {
        const parts: PartChecksum[] = [];
        for (let k = b * URL_BATCH + 1; k <= Math.min(ranges.length, (b + 1) * URL_BATCH); k++) {
          parts.push({ part_number: k, sha256: await hash(slice(k)) });
        }
        const sums = new Map(parts.map((p) => [p.part_number, p.sha256]));
        const list = await urls(parts);
        return new Map(list.map((p) => [p.part_number, { ...p, sha256: sums.get(p.part_number) ?? '' }]));
      })();
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
      const part = await urlOf(i + 1);
      const res = await put(part.url, slice(i + 1), (n) => {
        loaded[i] = n;
        report();
      }, signal, part.headers);
      if (!res.etag) {
        throw new UploadError("storage hid the part's ETag: the bucket's CORS rules must expose the ETag header");
      }
      done.push({ part_number: i + 1, etag: res.etag, sha256: part.sha256 });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ranges.length) }, worker));
  return done.sort((a, b) => a.part_number - b.part_number);
}
