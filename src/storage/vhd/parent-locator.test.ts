import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VisorError } from '../../core/errors.js';
import {
  checkLocatorEntry,
  decodeLocator,
  encodeLocators,
  locatorExtent,
  parentCandidates,
  PLATFORM_MACX,
  PLATFORM_W2KU,
  PLATFORM_W2RU,
} from './parent-locator.js';

test('locators we write decode back to paths that lead to the parent', () => {
  const encoded = encodeLocators('../base/parent.vhd', '/srv/vms/base/parent.vhd');
  const decoded = encoded.map((l) => decodeLocator(l.code, l.data));
  assert.deepEqual(decoded, [
    { platform: 'W2ru', path: '..\\base\\parent.vhd' },
    { platform: 'W2ku', path: 'Z:\\srv\\vms\\base\\parent.vhd' },
    { platform: 'MacX', path: 'file://../base/parent.vhd' },
  ]);
  const candidates = parentCandidates('/srv/vms/child', decoded, 'parent.vhd');
  assert.equal(candidates[0], '/srv/vms/base/parent.vhd');
  assert.ok(candidates.includes('/srv/vms/child/parent.vhd'), 'the bare name beside the child comes last');
});

test('a Windows-made locator: relative first, a C: path only by its name beside the child', () => {
  const locators = [
    decodeLocator(PLATFORM_W2KU, Buffer.from('C:\\Hyper-V\\base.vhd\0', 'utf16le')),
    decodeLocator(PLATFORM_W2RU, Buffer.from('.\\base.vhd\0', 'utf16le')),
    decodeLocator(PLATFORM_MACX, Buffer.from('file:///Users/me/base%20disk.vhd', 'utf8')),
  ];
  assert.deepEqual(parentCandidates('/d', locators, 'C:\\Hyper-V\\base.vhd'), ['/d/base.vhd', '/Users/me/base disk.vhd', '/d/base disk.vhd']);
});

test('locator data outside the file or absurdly long is refused; space in sectors or bytes', () => {
  const entry = { platformCode: PLATFORM_W2RU, platformDataSpace: 512, platformDataLength: 24, platformDataOffset: 4096 };
  checkLocatorEntry(entry, 0, 8192);
  assert.throws(() => checkLocatorEntry({ ...entry, platformDataOffset: 8180 }, 1, 8192), (e: unknown) => e instanceof VisorError && e.code === 'vhd-bad-parent-locator' && /8180/.test(e.message));
  assert.throws(() => checkLocatorEntry({ ...entry, platformDataLength: 1 << 20 }, 2, 1 << 30), (e: unknown) => e instanceof VisorError && e.code === 'vhd-bad-parent-locator');
  assert.deepEqual(locatorExtent(entry), { offset: 4096, length: 512 });
  assert.deepEqual(locatorExtent({ ...entry, platformDataSpace: 1 }), { offset: 4096, length: 512 }); // 1 sector
  assert.deepEqual(locatorExtent({ ...entry, platformDataSpace: 2 }), { offset: 4096, length: 1024 }); // 2 sectors
});
