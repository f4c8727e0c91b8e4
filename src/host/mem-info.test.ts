import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMeminfo } from './mem-info.js';

describe('parseMeminfo', () => {
  it('reads MemTotal and MemAvailable in bytes', () => {
    const text = 'MemTotal:       24684092 kB\nMemFree:        20000000 kB\nMemAvailable:   23646632 kB\nHugePages_Total:       0\n';
    assert.deepEqual(parseMeminfo(text), { total: 24684092 * 1024, available: 23646632 * 1024 });
  });

  it('estimates available as free + cached on old kernels', () => {
    assert.deepEqual(parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 50 kB\n'), { total: 1024000, available: 150 * 1024 });
  });

  it('refuses text without MemTotal', () => {
    assert.throws(() => parseMeminfo('MemFree: 1 kB\n'), /MemTotal/);
  });
});
