import { cleanup } from '@testing-library/react';
import { afterEach } from 'vitest';

// jsdom has no layout and no ResizeObserver; the virtualizer starts from its initialRect.
class NoResize {
  observe() {}
  unobserve() {}
  disconnect() {}
}
(globalThis as unknown as { ResizeObserver: unknown }).ResizeObserver ??= NoResize;

// Give scroll containers (the timeline grid) a screen's size, as a browser would.
for (const [prop, size] of [
  ['offsetHeight', 600],
  ['offsetWidth', 1000],
  ['clientHeight', 600],
  ['clientWidth', 1000],
] as const) {
  Object.defineProperty(HTMLElement.prototype, prop, {
    configurable: true,
    get(this: HTMLElement) {
      return this.getAttribute('role') === 'grid' ? size : 0;
    },
  });
}

afterEach(() => cleanup());
