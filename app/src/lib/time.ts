// Timestamps in the table: UTC or the browser's zone, with milliseconds (forensic times
// need them), in one fixed ISO-like shape so columns line up.

export type ZoneChoice = 'utc' | 'local';

export function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

export function zoneName(choice: ZoneChoice): string {
  return choice === 'utc' ? 'UTC' : browserZone();
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone: zone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      fractionalSecondDigits: 3,
      hourCycle: 'h23',
    });
    formatters.set(zone, f);
  }
  return f;
}

const formatted = new Map<string, string>();

/** `2024-03-01 10:00:00.123` in the zone (remembered: the grid shows the same rows again and again). */
export function formatTs(iso: string, zone: string): string {
  const key = `${zone} ${iso}`;
  let text = formatted.get(key);
  if (text === undefined) {
    text = format(iso, zone);
    if (formatted.size >= 20_000) formatted.clear();
    formatted.set(key, text);
  }
  return text;
}

function format(iso: string, zone: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const parts: Record<string, string> = {};
  for (const p of formatter(zone).formatToParts(d)) parts[p.type] = p.value;
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}.${parts.fractionalSecond}`;
}

/** A short axis label for a histogram bucket. */
export function axisLabel(iso: string, zone: string, spanMs: number): string {
  const full = formatTs(iso, zone);
  if (spanMs <= 2 * 86_400_000) return full.slice(11, 16);
  return full.slice(0, 10);
}
