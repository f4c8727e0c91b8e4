/**
 * Disk operations on real files: every format made, detected and inspected; a VHDX chain
 * converted to qcow2 and back reads the same bytes through qemu-img; resize, compact, merge;
 * a cancelled conversion leaves no file; bad input is refused before any work.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { quietContext } from '../core/index.js';
import type { DiskFormat, OperationContext , VisorError } from '../core/index.js';
import {
  compactDisk,
  convertDisk,
  detectFormat,
  inspectDisk,
  mergeDisk,
  newDisk,
  prepareConvertDisk,
  prepareNewDisk,
  resizeDisk,
} from './disk-operations.js';
import { VhdxFile } from './vhdx/index.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

async function scratch(t: { after: (fn: () => Promise<void>) => void }): Promise<(name: string) => string> {
  const dir = await mkdtemp(join(tmpdir(), 'visor-diskops-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return (name) => join(dir, name);
}

/** The disk's virtual bytes, as QEMU reads them. */
async function qemuBytes(path: string, format: DiskFormat, out: string): Promise<Buffer> {
  const qemuName = format === 'vhd' ? 'vpc' : format;
  await run('qemu-img', ['convert', '-f', qemuName, '-O', 'raw', path, out]);
  const bytes = await readFile(out);
  await rm(out);
  return bytes;
}

async function writeAt(path: string, data: Buffer, position: number): Promise<void> {
  const f = await VhdxFile.open(path, { readOnly: false });
  await f.write(data, position);
  await f.close();
}

const fill = (length: number, byte: number): Buffer => Buffer.alloc(length, byte);

describe('disk operations', () => {
  test('new disks in every format are detected and inspected', async (t) => {
    const p = await scratch(t);
    for (const format of ['vhdx', 'vhd', 'qcow2', 'raw'] as const) {
      const path = p(`d.${format}`);
      const info = await newDisk({ path, format, size: 8 * MiB, type: 'dynamic' }, quietContext());
      assert.equal(await detectFormat(path), format);
      assert.equal(info.format, format);
      assert.equal(info.virtualSize, 8 * MiB);
      assert.equal(info.health.ok, true, `${format}: ${info.health.findings.join(' ')}`);
      assert.deepEqual(info.parents, []);
    }
    const fixed = await newDisk({ path: p('f.vhd'), format: 'vhd', size: 4 * MiB, type: 'fixed' }, quietContext());
    assert.equal(fixed.type, 'fixed');
    assert.equal(await detectFormat(p('f.vhd')), 'vhd', 'a fixed VHD has its footer only at the end');
  });

  test('a VHDX chain converts to qcow2 and to VHDX with the chain\'s bytes; the parent chain is inspected', async (t) => {
    const p = await scratch(t);
    await newDisk({ path: p('base.vhdx'), format: 'vhdx', size: 8 * MiB, type: 'dynamic' }, quietContext());
    await writeAt(p('base.vhdx'), fill(MiB, 0xaa), 0);
    await writeAt(p('base.vhdx'), fill(MiB, 0xbb), 4 * MiB);
    await newDisk({ path: p('child.avhdx'), format: 'vhdx', type: 'dynamic', parent: p('base.vhdx') }, quietContext());
    await writeAt(p('child.avhdx'), fill(MiB, 0xcc), 4 * MiB);
    const expected = Buffer.concat([fill(MiB, 0xaa), fill(3 * MiB, 0), fill(MiB, 0xcc), fill(3 * MiB, 0)]);

    const child = await inspectDisk(p('child.avhdx'));
    assert.equal(child.type, 'differencing');
    assert.deepEqual(child.parents, [{ path: p('base.vhdx'), format: 'vhdx' }]);

    const fractions: number[] = [];
    const ctx: OperationContext = { signal: new AbortController().signal, progress: (f) => fractions.push(f) };
    const q = await convertDisk({ path: p('child.avhdx'), destination: p('flat.qcow2'), format: 'qcow2' }, ctx);
    assert.equal(q.format, 'qcow2');
    assert.deepEqual(q.parents, []);
    assert.ok((await qemuBytes(p('flat.qcow2'), 'qcow2', p('out.raw'))).equals(expected), 'qcow2 holds the chain\'s bytes');
    assert.equal(fractions.at(-1), 1);
    assert.ok(fractions.every((f, i) => i === 0 || f >= fractions[i - 1]!), 'progress never goes back');
    await stat(p('flat.qcow2.partial.raw')).then(
      () => assert.fail('the temporary raw file is left'),
      () => undefined,
    );

    await convertDisk({ path: p('child.avhdx'), destination: p('flat.vhdx'), format: 'vhdx' }, quietContext());
    assert.ok((await qemuBytes(p('flat.vhdx'), 'vhdx', p('out.raw'))).equals(expected), 'standalone VHDX holds the chain\'s bytes');
    await convertDisk({ path: p('flat.qcow2'), destination: p('back.vhd'), format: 'vhd' }, quietContext());
    assert.ok((await qemuBytes(p('back.vhd'), 'vhd', p('out.raw'))).equals(expected), 'qcow2 → vhd');
  });

  test('a cancelled conversion removes its partial output', async (t) => {
    const p = await scratch(t);
    await writeFile(p('big.raw'), Buffer.alloc(0));
    await run('truncate', ['-s', '64M', p('big.raw')]);
    await writeFile(p('big.raw'), fill(32 * MiB, 0x5a), { flag: 'r+' });
    const work = await prepareConvertDisk({ path: p('big.raw'), destination: p('big.vhdx'), format: 'vhdx' });
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(work({ signal: controller.signal, progress: () => undefined }), (e: VisorError) => e.kind === 'cancelled');
    await stat(p('big.vhdx')).then(
      () => assert.fail('the partial output is left'),
      () => undefined,
    );
  });

  test('resize grows, compact gives space back, merge writes the child into its parent', async (t) => {
    const p = await scratch(t);
    await newDisk({ path: p('r.qcow2'), format: 'qcow2', size: 4 * MiB, type: 'dynamic' }, quietContext());
    assert.equal((await resizeDisk({ path: p('r.qcow2'), size: 16 * MiB }, quietContext())).virtualSize, 16 * MiB);
    await newDisk({ path: p('r.vhdx'), format: 'vhdx', size: 8 * MiB, type: 'dynamic' }, quietContext());
    assert.equal((await resizeDisk({ path: p('r.vhdx'), size: 32 * MiB }, quietContext())).virtualSize, 32 * MiB);

    await newDisk({ path: p('c.vhdx'), format: 'vhdx', size: 16 * MiB, type: 'dynamic' }, quietContext());
    await writeAt(p('c.vhdx'), fill(8 * MiB, 0), 0); // allocates blocks that hold only zeros
    const before = (await inspectDisk(p('c.vhdx'))).physicalSize;
    const after = await compactDisk({ path: p('c.vhdx') }, quietContext());
    assert.ok(after.physicalSize < before, `compact gives space back: ${before} → ${after.physicalSize}`);

    await newDisk({ path: p('m.vhdx'), format: 'vhdx', size: 8 * MiB, type: 'dynamic' }, quietContext());
    await newDisk({ path: p('m.avhdx'), format: 'vhdx', type: 'dynamic', parent: p('m.vhdx') }, quietContext());
    await writeAt(p('m.avhdx'), fill(MiB, 0x77), 2 * MiB);
    const merged = await mergeDisk({ path: p('m.avhdx') }, quietContext());
    assert.equal(merged.path, p('m.vhdx'));
    const bytes = await qemuBytes(p('m.vhdx'), 'vhdx', p('out.raw'));
    assert.ok(bytes.subarray(2 * MiB, 3 * MiB).equals(fill(MiB, 0x77)), 'the parent holds the child\'s data');
    await stat(p('m.avhdx')).then(
      () => assert.fail('the merged child is left'),
      () => undefined,
    );
  });

  test('bad input is refused before any work', async (t) => {
    const p = await scratch(t);
    await newDisk({ path: p('a.vhdx'), format: 'vhdx', size: 4 * MiB, type: 'dynamic' }, quietContext());
    const refuse = async (promise: Promise<unknown>, code: string, field: string): Promise<void> =>
      assert.rejects(promise, (e: VisorError) => e.code === code && e.field === field);
    await refuse(prepareNewDisk({ path: p('a.vhdx'), format: 'vhdx', size: MiB, type: 'dynamic' }), 'file-exists', 'path');
    await refuse(prepareNewDisk({ path: p('b.vhdx'), format: 'vhdx', type: 'dynamic' }), 'invalid-value', 'size');
    await refuse(prepareNewDisk({ path: p('b.vhd'), format: 'vhd', type: 'dynamic', parent: p('a.vhdx') }), 'invalid-value', 'parent');
    await refuse(prepareNewDisk({ path: '/nonexistent/x.vhdx', format: 'vhdx', size: MiB, type: 'dynamic' }), 'folder-not-found', 'path');
    await refuse(prepareConvertDisk({ path: p('none.vhdx'), destination: p('x.raw'), format: 'raw' }), 'disk-not-found', 'path');
    await refuse(prepareConvertDisk({ path: p('a.vhdx'), destination: p('a.vhdx'), format: 'raw' }), 'invalid-value', 'destination');
    await refuse(resizeDisk({ path: p('a.vhdx'), size: 1000 }, quietContext()), 'invalid-value', 'size');
    await refuse(mergeDisk({ path: p('a.vhdx') }, quietContext()), 'invalid-value', 'path');
    // A damaged file is inspected, not thrown: its health says what is wrong.
    const bad = Buffer.alloc(2 * MiB);
    bad.write('vhdxfile', 0, 'ascii');
    await writeFile(p('bad.vhdx'), bad);
    const info = await inspectDisk(p('bad.vhdx'));
    assert.equal(info.format, 'vhdx');
    assert.equal(info.health.ok, false);
    assert.ok(info.health.findings.length > 0);
  });
});
