import type { VmConfig } from './vm-config.js';

/**
 * A complete, valid VmConfig for tests: generation 1, no disks, no NICs. Overrides replace
 * whole fields.
 */
export function sampleVmConfig(overrides: Partial<VmConfig> = {}): VmConfig {
  return {
    schemaVersion: 1,
    id: '0b6f8c3e-5d1a-4c4e-9a57-3f2d1e0c9b8a',
    name: 'web1',
    generation: 1,
    secureBoot: false,
    machineType: null,
    processors: { count: 2 },
    memory: { startup: 512 * 1024 * 1024, dynamic: null },
    bootOrder: ['disk'],
    disks: [],
    dvd: null,
    networkAdapters: [],
    display: { width: 1280, height: 800 },
    automaticStartAction: 'nothing',
    automaticStopAction: 'save',
    notes: '',
    sourceImage: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    ...overrides,
  };
}
