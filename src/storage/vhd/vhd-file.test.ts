import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { VisorError } from '../../core/errors.js';
import { createVhd, VhdFile } from './index.js';
import { firstDifference, pattern, prng, qemuInfo, qemuRaw, readAll, run, withScratch } from './test-support.js';

const MiB = 1024 * 1024;

const QEMU_WRITES = [
  'write -P 0xab 1M 3M',
  'write -P 0x11 0 512',
  'write -P 0x22 5000000 70000',
  'write -P 0x33 7340032 4096',
];

for (const subformat of ['fixed', 'dynamic'] as const) {
  for (const force of [true, false]) {
    test(`reads what QEMU wrote: ${subformat}${force ? ', force_size=on' : ' (CHS-rounded size)'}`, async () => {
      await withScratch(async (s) => {
        const path = s.path('q.vhd');
        // 7.5 MiB + 3 sectors is no CHS size: without force_size QEMU rounds it up.
        const size = String(7.5 * MiB + 1536);
        await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', `subformat=${subformat}${force ? ',force_size=on' : ''}`, path, size]);
        for (const w of QEMU_WRITES) await run('qemu-io', ['-f', 'vpc', '-c', w, path]);
        const expected = await qemuRaw(path, s);
        const f = await VhdFile.open(path);
        try {
          assert.equal(f.info.diskType, subformat);
          assert.equal(f.virtualSize, expected.length);
          const ours = await f.read(0, f.virtualSize);
          assert.equal(firstDifference(ours, expected), undefined);
          // Reads at odd offsets and lengths agree too.
          const rand = prng(7);
          for (let i = 0; i < 50; i++) {
            const pos = Math.floor(rand() * f.virtualSize);
            const len = Math.floor(rand() * Math.min(3 * MiB, f.virtualSize - pos));
            assert.ok((await f.read(pos, len)).equals(expected.subarray(pos, pos + len)), `read ${pos}+${len}`);
          }
        } finally {
          await f.close();
        }
      });
    });
  }
}

for (const type of ['fixed', 'dynamic'] as const) {
  test(`QEMU reads what we wrote, at the exact size: ${type}`, async () => {
    await withScratch(async (s) => {
      const path = s.path('ours.vhd');
      const size = 9 * MiB + 3 * 512; // not a CHS size: only the current-size field gives it
      await createVhd(path, { type, size });
      const model = Buffer.alloc(size);
      const f = await VhdFile.open(path, { readOnly: false });
      const rand = prng(type === 'fixed' ? 1 : 2);
      const writes: [number, number][] = [
        [0, 100],
        [MiB - 7, 20],
        [2 * MiB - 300, 5000],
        [4 * MiB, 2 * MiB],
        [size - 513, 513],
      ];
      for (let i = 0; i < 20; i++) {
        const pos = Math.floor(rand() * size);
        writes.push([pos, Math.floor(rand() * Math.min(300_000, size - pos))]);
      }
      for (const [i, [pos, len]] of writes.entries()) {
        const data = pattern(len, 100 + i);
        await f.write(data, pos);
        data.copy(model, pos);
      }
      await f.flush();
      assert.ok((await f.read(0, size)).equals(model), 'our own read-back');
      await f.close();
      assert.ok((await readAll(path)).equals(model), 'after reopening');
      const info = await qemuInfo(path);
      assert.equal(info['virtual-size'], size);
      assert.equal(firstDifference(await qemuRaw(path, s), model), undefined);
      // libvhdi agrees on the type and the size.
      const vhdi = await run('vhdiinfo', [path]);
      assert.match(vhdi, type === 'fixed' ? /Disk type\s*: Fixed/ : /Disk type\s*: Dynamic/);
      assert.match(vhdi, new RegExp(`Media size\\s*: .*\\(${size} bytes\\)`));
      // And QEMU can keep writing into our file, and we read that.
      await run('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x5a 6291456 1M', path]);
      model.fill(0x5a, 6 * MiB, 7 * MiB);
      assert.ok((await readAll(path)).equals(model), 'after qemu-io wrote into our file');
    });
  });
}

test('a dynamic disk whose end footer is damaged opens from the copy at offset 0; a fixed one refuses', async () => {
  await withScratch(async (s) => {
    const path = s.path('d.vhd');
    await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic,force_size=on', path, '8M']);
    await run('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x44 1M 2M', path]);
    const expected = await qemuRaw(path, s);
    const bytes = await readFile(path);
    bytes[bytes.length - 512 + 70] = (bytes[bytes.length - 512 + 70] ?? 0) ^ 0xff; // unique id byte: checksum now wrong
    await writeFile(path, bytes);
    const before = await stat(path);
    const f = await VhdFile.open(path);
    assert.equal(f.info.footerSource, 'copy-at-start');
    assert.ok((await f.read(0, f.virtualSize)).equals(expected));
    await f.close();
    assert.equal((await stat(path)).mtimeMs, before.mtimeMs, 'a read-only open never writes');
    // A writable open repairs the end footer at its first flush.
    const w = await VhdFile.open(path, { readOnly: false });
    await w.write(Buffer.alloc(512, 0x77), 0);
    await w.close();
    const again = await VhdFile.open(path);
    assert.equal(again.info.footerSource, 'end');
    await again.close();
    expected.fill(0x77, 0, 512);
    assert.ok((await qemuRaw(path, s)).equals(expected));

    const fixed = s.path('f.vhd');
    await createVhd(fixed, { type: 'fixed', size: MiB });
    const fb = await readFile(fixed);
    fb[fb.length - 1] = (fb[fb.length - 1] ?? 0) ^ 1;
    await writeFile(fixed, fb);
    await assert.rejects(VhdFile.open(fixed), (e: unknown) => e instanceof VisorError && e.code === 'vhd-bad-checksum' && /f\.vhd/.test(e.message));
  });
});

test('errors: not found, read-only, out of range, closed', async () => {
  await withScratch(async (s) => {
    await assert.rejects(VhdFile.open(s.path('none.vhd')), (e: unknown) => e instanceof VisorError && e.code === 'vhd-not-found');
    const path = s.path('a.vhd');
    await createVhd(path, { type: 'dynamic', size: 4 * MiB });
    await assert.rejects(createVhd(path, { type: 'dynamic', size: 4 * MiB }), (e: unknown) => e instanceof VisorError && e.code === 'vhd-bad-argument');
    await assert.rejects(createVhd(s.path('b.vhd'), { type: 'dynamic', size: 1000 }), (e: unknown) => e instanceof VisorError && /1000/.test(e.message));
    const f = await VhdFile.open(path);
    await assert.rejects(f.write(Buffer.alloc(1), 0), (e: unknown) => e instanceof VisorError && e.code === 'vhd-read-only');
    await assert.rejects(f.read(4 * MiB - 1, 2), (e: unknown) => e instanceof VisorError && e.code === 'vhd-out-of-range');
    await f.close();
    await assert.rejects(f.read(0, 1), (e: unknown) => e instanceof VisorError && e.code === 'vhd-closed');
  });
});
