// What the table and the detail show of an event, in one place.

import type { ChronoEvent } from '../api/client';

/** The event catalog's title and category (issue 17), when the API sends them. */
export function titleOf(e: ChronoEvent): string | null {
  const t = (e as { title?: unknown }).title;
  return typeof t === 'string' && t ? t : null;
}

export function categoryOf(e: ChronoEvent): string | null {
  const c = (e as { category?: unknown }).category;
  return typeof c === 'string' && c ? c : null;
}

export function hostOf(e: ChronoEvent): string {
  return e.device?.name ?? '';
}

export function userOf(e: ChronoEvent): string {
  return e.identity?.value ?? '';
}

/** `4625 · An account failed to log on`, or the code alone. */
export function eventLabel(e: ChronoEvent): string {
  const title = titleOf(e);
  const code = e.event_code ?? '';
  if (title && code) return `${code} · ${title}`;
  return title ?? code;
}

/** Distinct non-empty values picked from loaded rows (filter suggestions), sorted. */
export function distinct<T>(rows: readonly T[], pick: (e: T) => string | null | undefined, max = 200): string[] {
  const seen = new Set<string>();
  for (const r of rows) {
    const v = pick(r);
    if (v) seen.add(v);
    if (seen.size >= max) break;
  }
  return [...seen].sort();
}

const PICKERS: Record<string, (e: ChronoEvent) => readonly (string | null | undefined)[]> = {
  action: (e) => [e.action],
  outcome: (e) => [e.outcome],
  source: (e) => [e.source],
  data_type: (e) => [e.data_type],
  event_code: (e) => [e.event_code],
  device: (e) => [hostOf(e)],
  identity: (e) => [userOf(e)],
  tag: (e) => e.tags,
};

/** Values of a filter field seen in the loaded rows (suggestions for the builder). */
export function seenValues(rows: readonly ChronoEvent[], field: string, max = 200): string[] {
  const pick = PICKERS[field];
  if (!pick) return [];
  return distinct(
    rows.flatMap((e) => pick(e)),
    (v) => v,
    max,
  );
}
