import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { VisorError } from '../../core/errors.js';
import { quietContext, type OperationContext } from '../../core/progress.js';
import { compactVhd, convertFromRaw, convertToRaw, createVhd, resizeVhd, VhdFile } from './index.js';
import { firstDifference, pattern, qemuInfo, qemuRaw, readAll, run, withScratch, withVhdimount } from './test-support.js';

const MiB = 1024 * 1024;

for (const subformat of ['dynamic', 'fixed'] as const) {
  test(`convert to raw: QEMU-written ${subformat} VHD, sparse output, progress to 1`, async () => {
    await withScratch(async (s) => {
      const path = s.path('q.vhd');
      await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', `subformat=${subformat},force_size=on`, path, '24M']);
      await run('qemu-io', ['-f', 'vpc', '-c', 'write -P 0xab 1M 3M', '-c', 'write -P 0xcd 13M 1M', '-c', 'write -z 2M 64k', path]);
      const progress: number[] = [];
      const ctx: OperationContext = { signal: new AbortController().signal, progress: (f) => progress.push(f) };
      const raw = s.path('out.raw');
      await convertToRaw(path, raw, ctx);
      assert.equal(firstDifference(await readFile(raw), await qemuRaw(path, s)), undefined);
      assert.equal(progress.at(-1), 1);
      assert.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]!), 'progress never goes back');
      const st = await stat(raw);
      assert.equal(st.size, 24 * MiB);
      assert.ok(st.blocks * 512 < 8 * MiB, `sparse output: ${st.blocks * 512} bytes allocated`);
    });
  });
}

test('convert to raw honours cancellation and removes the partial output', async () => {
  await withScratch(async (s) => {
    const path = s.path('d.vhd');
    await createVhd(path, { type: 'fixed', size: 16 * MiB });
    const ac = new AbortController();
    ac.abort();
    const raw = s.path('out.raw');
    await assert.rejects(convertToRaw(path, raw, { signal: ac.signal, progress: () => undefined }), (e: unknown) => e instanceof VisorError && e.kind === 'cancelled');
    await assert.rejects(stat(raw));
    // And the other way: a cancelled raw → VHD leaves no file behind.
    await writeFile(s.path('in.raw'), pattern(4 * MiB, 1));
    await assert.rejects(convertFromRaw(s.path('in.raw'), s.path('x.vhd'), { signal: ac.signal, progress: () => undefined }), (e: unknown) => e instanceof VisorError && e.kind === 'cancelled');
    await assert.rejects(stat(s.path('x.vhd')));
  });
});

test('convert from raw: dynamic and fixed VHDs that qemu-img reads back identically; zero blocks stay unallocated', async () => {
  await withScratch(async (s) => {
    const raw = s.path('in.raw');
    const data = Buffer.alloc(10 * MiB + 1000); // not a sector multiple: padded with zeros
    pattern(3 * MiB, 5).copy(data, MiB);
    pattern(1000, 6).copy(data, data.length - 1000);
    await writeFile(raw, data);
    const expected = Buffer.concat([data, Buffer.alloc(512 - (data.length % 512))]);
    for (const type of ['dynamic', 'fixed'] as const) {
      const vhd = s.path(`${type}.vhd`);
      await convertFromRaw(raw, vhd, quietContext(), { type });
      assert.equal((await qemuInfo(vhd))['virtual-size'], expected.length);
      assert.equal(firstDifference(await qemuRaw(vhd, s), expected), undefined, type);
      if (type === 'dynamic') {
        const f = await VhdFile.open(vhd);
        const allocated = [0, 1, 2, 3, 4, 5].filter((b) => f.blockFileOffset(b) !== undefined);
        await f.close();
        assert.deepEqual(allocated, [0, 1, 5]);
      }
    }
  });
});

test('compact drops all-zero blocks, moves the rest down and shrinks the file; QEMU reads the same bytes', async () => {
  await withScratch(async (s) => {
    const path = s.path('c.vhd');
    await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic,force_size=on', path, '20M']);
    // Blocks 0..7 allocated in order; then zero 1, 3, 4 and 6 (allocated but all zeros).
    await run('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x61 0 16M', '-c', 'write -z 2M 2M', '-c', 'write -z 6M 4M', '-c', 'write -z 12M 2M', path]);
    const expected = await qemuRaw(path, s);
    const before = (await stat(path)).size;
    const result = await compactVhd(path, quietContext());
    assert.equal(result.blocksDropped, 4);
    assert.ok(result.blocksMoved >= 2);
    const after = (await stat(path)).size;
    assert.equal(after, result.fileSizeAfter);
    assert.ok(after <= before - 4 * 2 * MiB, `${before} -> ${after}`);
    assert.equal(firstDifference(await qemuRaw(path, s), expected), undefined);
    assert.ok((await readAll(path)).equals(expected));
    await assert.rejects(compactVhd(s.path('none.vhd'), quietContext()), (e: unknown) => e instanceof VisorError && e.code === 'vhd-not-found');
  });
});

test('compact of a differencing disk drops blocks that only repeat the parent', async () => {
  await withScratch(async (s) => {
    const base = s.path('base.vhd');
    const child = s.path('child.vhd');
    await createVhd(base, { type: 'dynamic', size: 8 * MiB });
    const b = await VhdFile.open(base, { readOnly: false });
    await b.write(pattern(8 * MiB, 1), 0);
    await b.close();
    await createVhd(child, { type: 'differencing', parentPath: base });
    const c = await VhdFile.open(child, { readOnly: false });
    await c.write(await c.read(MiB, MiB), MiB); // block 0: the parent's own bytes
    await c.write(Buffer.alloc(4096, 0x42), 5 * MiB); // block 2: new data
    await c.close();
    const expected = await readAll(child);
    const result = await compactVhd(child, quietContext());
    assert.equal(result.blocksDropped, 1);
    assert.ok((await readAll(child)).equals(expected));
    await withVhdimount(child, s.path('mnt'), async (raw) => assert.equal(firstDifference(await readFile(raw), expected), undefined));
  });
});

test('resize grows fixed and dynamic disks (a new BAT at the end when needed); shrinking is refused', async () => {
  await withScratch(async (s) => {
    for (const type of ['fixed', 'dynamic'] as const) {
      const path = s.path(`${type}.vhd`);
      await createVhd(path, { type, size: 4 * MiB });
      const f = await VhdFile.open(path, { readOnly: false });
      await f.write(pattern(4 * MiB, 9), 0);
      await f.close();
      await resizeVhd(path, 24 * MiB + 512, quietContext());
      const expected = Buffer.concat([pattern(4 * MiB, 9), Buffer.alloc(20 * MiB + 512)]);
      assert.equal((await qemuInfo(path))['virtual-size'], 24 * MiB + 512, type);
      assert.equal(firstDifference(await qemuRaw(path, s), expected), undefined, type);
      // The grown area is writable.
      const g = await VhdFile.open(path, { readOnly: false });
      await g.write(Buffer.alloc(MiB, 0x99), 23 * MiB);
      await g.close();
      expected.fill(0x99, 23 * MiB, 24 * MiB);
      assert.ok((await readAll(path)).equals(expected), type);
      assert.equal(firstDifference(await qemuRaw(path, s), expected), undefined, type);
      await assert.rejects(resizeVhd(path, 2 * MiB, quietContext()), (e: unknown) => e instanceof VisorError && e.code === 'vhd-shrink-refused');
    }
  });
});

test('resize grows a differencing disk past its parent: the new area reads zeros, then what is written', async () => {
  await withScratch(async (s) => {
    const base = s.path('base.vhd');
    const child = s.path('child.vhd');
    await createVhd(base, { type: 'dynamic', size: 4 * MiB });
    const b = await VhdFile.open(base, { readOnly: false });
    await b.write(pattern(4 * MiB, 3), 0);
    await b.close();
    await createVhd(child, { type: 'differencing', parentPath: base });
    await resizeVhd(child, 12 * MiB, quietContext());
    const expected = Buffer.concat([pattern(4 * MiB, 3), Buffer.alloc(8 * MiB)]);
    assert.ok((await readAll(child)).equals(expected));
    const c = await VhdFile.open(child, { readOnly: false });
    await c.write(Buffer.alloc(3 * MiB, 0x21), 3 * MiB); // straddles the parent's end
    await c.close();
    expected.fill(0x21, 3 * MiB, 6 * MiB);
    assert.ok((await readAll(child)).equals(expected));
  });
});
