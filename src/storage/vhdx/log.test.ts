/**
 * The log: the active-sequence search of MS-VHDX 2.3.3 on hand-made logs, and crash recovery on
 * real files — our writer stopped after the log flush, replayed by us (in memory on a read-only
 * open, on disk on a writable one) and, as the oracle, by `qemu-img check -r all`.
 */
import assert from 'node:assert/strict';
import { copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import type { VisorError } from '../../core/errors.js';
import { createVhdx } from './create.js';
import { crc32cWithZeroedField } from './crc32c.js';
import { newGuid, writeGuid } from './guid.js';
import { encodeLogEntry, findActiveSequence, planReplay, type ReplayBounds } from './log.js';
import { hasTool, pattern, run, withScratch } from './test-support.js';
import { VhdxFile } from './vhdx-file.js';

const MiB = 1024 * 1024;
const KiB = 1024;
const QEMU = await hasTool('qemu-img');
const LOG_OFFSET = 1 * MiB;
const BOUNDS: ReplayBounds = { maxFileOffset: 64 * MiB, logOffset: LOG_OFFSET, logLength: 1 * MiB };

function sector(fill: number): Buffer {
  return Buffer.alloc(4 * KiB, fill);
}

/** Writes an entry into `log` at `position` (wrapping) and returns its length. */
function put(log: Buffer, position: number, entry: Buffer): number {
  for (let i = 0; i < entry.length; i++) log[(position + i) % log.length] = entry[i]!;
  return entry.length;
}

function entry(guid: string, seq: bigint, tail: number, sectors: { fileOffset: number; data: Buffer }[], zeros: { fileOffset: number; length: number }[] = []) {
  return encodeLogEntry({ sequenceNumber: seq, tail, logGuid: guid, flushedFileOffset: 8 * MiB, lastFileOffset: 8 * MiB, sectors, zeros });
}

describe('finding the active sequence (2.3.3)', () => {
  test('a sequence of three entries whose head points at the first replays all three in order', () => {
    const guid = newGuid();
    const log = Buffer.alloc(1 * MiB);
    let at = 0;
    at += put(log, at, entry(guid, 5n, 0, [{ fileOffset: 4 * MiB, data: sector(1) }]));
    at += put(log, at, entry(guid, 6n, 0, [{ fileOffset: 4 * MiB, data: sector(2) }, { fileOffset: 5 * MiB, data: sector(3) }]));
    put(log, at, entry(guid, 7n, 0, [], [{ fileOffset: 5 * MiB, length: 8 * KiB }]));
    const plan = planReplay(log, guid, 8 * MiB, { logOffset: LOG_OFFSET });
    assert.deepEqual(plan.sequence.entries.map((e) => e.header.sequenceNumber), [5n, 6n, 7n]);
    assert.deepEqual(plan.writes.map((w) => [w.kind, w.fileOffset]), [['data', 4 * MiB], ['data', 4 * MiB], ['data', 5 * MiB], ['zero', 5 * MiB]]);
    const first = plan.writes[0];
    assert.ok(first?.kind === 'data' && first.data.equals(sector(1)), 'leading and trailing bytes are restored');
  });

  test('entries before the head\'s tail are not replayed', () => {
    const guid = newGuid();
    const log = Buffer.alloc(1 * MiB);
    const a = put(log, 0, entry(guid, 1n, 0, [{ fileOffset: 4 * MiB, data: sector(1) }]));
    put(log, a, entry(guid, 2n, a, [{ fileOffset: 4 * MiB, data: sector(2) }]));
    const seq = findActiveSequence(log, guid, BOUNDS);
    assert.deepEqual(seq?.entries.map((e) => e.header.sequenceNumber), [2n]);
  });

  test('a torn newest entry leaves the previous sequence active', () => {
    const guid = newGuid();
    const log = Buffer.alloc(1 * MiB);
    const a = put(log, 0, entry(guid, 1n, 0, [{ fileOffset: 4 * MiB, data: sector(1) }]));
    const torn = entry(guid, 2n, a, [{ fileOffset: 4 * MiB, data: sector(2) }]);
    torn.fill(0, torn.length - 100); // the data sector's end never reached the disk
    put(log, a, torn);
    assert.deepEqual(findActiveSequence(log, guid, BOUNDS)?.entries.map((e) => e.header.sequenceNumber), [1n]);
  });

  test('a sequence wrapping around the end of the log is found, and stale or foreign entries are ignored', () => {
    const guid = newGuid();
    const log = Buffer.alloc(1 * MiB);
    put(log, 64 * KiB, entry(newGuid(), 50n, 64 * KiB, [{ fileOffset: 4 * MiB, data: sector(9) }])); // another session's GUID
    put(log, 128 * KiB, entry(guid, 3n, 128 * KiB, [{ fileOffset: 4 * MiB, data: sector(8) }])); //   older, same GUID
    const start = 1 * MiB - 8 * KiB; // the entry below is 3 sectors: it wraps
    const e = entry(guid, 9n, start, [{ fileOffset: 6 * MiB, data: sector(7) }, { fileOffset: 7 * MiB, data: sector(6) }]);
    assert.equal(e.length, 12 * KiB);
    put(log, start, e);
    const seq = findActiveSequence(log, guid, BOUNDS);
    assert.equal(seq?.head.header.sequenceNumber, 9n);
    assert.deepEqual(seq?.entries[0]?.writes.map((w) => w.fileOffset), [6 * MiB, 7 * MiB]);
  });

  test('a head whose tail is outside its sequence makes the sequence invalid', () => {
    const guid = newGuid();
    const log = Buffer.alloc(1 * MiB);
    put(log, 0, entry(guid, 1n, 512 * KiB, [{ fileOffset: 4 * MiB, data: sector(1) }]));
    assert.equal(findActiveSequence(log, guid, BOUNDS), undefined);
    assert.throws(() => planReplay(log, guid, 8 * MiB, { logOffset: LOG_OFFSET }), (e: VisorError) => e.code === 'vhdx-log-corrupt');
  });

  test('descriptors aimed at the headers or the log itself invalidate the entry', () => {
    const guid = newGuid();
    for (const fileOffset of [64 * KiB, LOG_OFFSET + 4 * KiB]) {
      const log = Buffer.alloc(1 * MiB);
      put(log, 0, entry(guid, 1n, 0, [{ fileOffset, data: sector(1) }]));
      assert.equal(findActiveSequence(log, guid, BOUNDS), undefined, `offset ${fileOffset}`);
    }
  });

  test('a file shorter than FlushedFileOffset is vhdx-log-truncated', () => {
    const guid = newGuid();
    const log = Buffer.alloc(1 * MiB);
    put(log, 0, entry(guid, 1n, 0, [{ fileOffset: 4 * MiB, data: sector(1) }]));
    assert.throws(() => planReplay(log, guid, 6 * MiB, { logOffset: LOG_OFFSET }), (e: VisorError) => e.code === 'vhdx-log-truncated');
  });
});

describe('recovering from a crash between the log flush and applying it', () => {
  async function crashedFile(path: string): Promise<Buffer> {
    const size = 48 * MiB;
    await createVhdx(path, { type: 'dynamic', size, blockSize: 1 * MiB });
    const model = Buffer.alloc(size);
    const f = await VhdxFile.open(path, { readOnly: false });
    const a = pattern(3 * MiB + 5, 1);
    await f.write(a, 1000);
    a.copy(model, 1000);
    await f.close();
    const crashing = await VhdxFile.open(path, {
      readOnly: false,
      hooks: {
        afterLogFlush() {
          throw new Error('simulated power cut');
        },
      },
    });
    const b = pattern(9 * MiB, 2);
    await crashing.write(b, 30 * MiB + 512);
    b.copy(model, 30 * MiB + 512);
    await assert.rejects(crashing.flush(), /simulated power cut/);
    await crashing.close();
    return model;
  }

  test('a read-only open replays in memory and writes nothing; a writable open replays on disk', async () => {
    await withScratch(async (s) => {
      const path = s.path('crashed.vhdx');
      const model = await crashedFile(path);
      const before = await readFile(path);
      const mtime = (await stat(path)).mtimeMs;
      // Before replay the BAT on disk does not know the new blocks: the log must be used.
      const ro = await VhdxFile.open(path);
      assert.equal(ro.info.logReplay, 'in-memory');
      assert.ok((await ro.read(0, model.length)).equals(model));
      await ro.close();
      assert.ok((await readFile(path)).equals(before), 'a read-only open changed the file');
      assert.equal((await stat(path)).mtimeMs, mtime);
      await assert.rejects(VhdxFile.open(path, { readOnlyReplay: 'refuse' }), (e: VisorError) => e.code === 'vhdx-log-replay-required');

      const rw = await VhdxFile.open(path, { readOnly: false });
      assert.equal(rw.info.logReplay, 'replayed');
      assert.ok((await rw.read(0, model.length)).equals(model));
      await rw.close();
      const again = await VhdxFile.open(path);
      assert.equal(again.info.logReplay, 'none', 'the log is empty after replay');
      assert.ok((await again.read(0, model.length)).equals(model));
      await again.close();
    });
  });

  test('QEMU sees the same pending log, and its replay agrees with ours', { skip: !QEMU && 'qemu-img not installed' }, async () => {
    await withScratch(async (s) => {
      const path = s.path('crashed.vhdx');
      const model = await crashedFile(path);
      await copyFile(path, s.path('qemu.vhdx'));
      // QEMU refuses a read-only open of a file with a log to replay: proof the log is pending.
      await assert.rejects(run('qemu-img', ['info', '-f', 'vhdx', s.path('qemu.vhdx')]), /log that needs to be replayed/);
      await run('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', s.path('qemu.vhdx')]);
      await run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', s.path('qemu.vhdx'), s.path('qemu.raw')]);
      assert.ok((await readFile(s.path('qemu.raw'))).equals(model), 'QEMU replayed the log to different bytes');
      // Our on-disk replay leaves a file QEMU accepts as clean.
      const rw = await VhdxFile.open(path, { readOnly: false });
      await rw.close();
      assert.match(await run('qemu-img', ['check', '-f', 'vhdx', path]), /No errors were found/);
      await run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', path, s.path('ours.raw')]);
      assert.ok((await readFile(s.path('ours.raw'))).equals(model));
    });
  });

  test('a crash in the second entry of a large commit replays only what was not applied', { skip: !QEMU && 'qemu-img not installed' }, async () => {
    await withScratch(async (s) => {
      // 130 blocks 512 MiB apart dirty 130 BAT sectors: more than one 1 MiB log's half holds,
      // so the commit takes two entries; the "power cut" comes after the second one's flush.
      const path = s.path('big.vhdx');
      const size = 65 * 1024 * MiB;
      await createVhdx(path, { type: 'dynamic', size, blockSize: 1 * MiB });
      let calls = 0;
      const f = await VhdxFile.open(path, {
        readOnly: false,
        hooks: {
          afterLogFlush() {
            if (++calls === 2) throw new Error('simulated power cut');
          },
        },
      });
      const writes: [number, Buffer][] = [];
      for (let i = 0; i < 130; i++) writes.push([i * 512 * MiB + 4096 * (i % 7), pattern(700 + i, 100 + i)]);
      for (const [pos, data] of writes) await f.write(data, pos);
      await assert.rejects(f.flush(), /simulated power cut/);
      await f.close();
      assert.equal(calls, 2);
      await copyFile(path, s.path('qemu.vhdx'));
      const check = async (file: VhdxFile) => {
        for (const [pos, data] of writes) assert.ok((await file.read(pos, data.length)).equals(data), `data at ${pos}`);
      };
      const ro = await VhdxFile.open(path);
      assert.equal(ro.info.logReplay, 'in-memory');
      await check(ro);
      await ro.close();
      await run('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', s.path('qemu.vhdx')]);
      const q = await VhdxFile.open(s.path('qemu.vhdx'));
      assert.equal(q.info.logReplay, 'none', 'QEMU emptied the log');
      await check(q);
      await q.close();
      const rw = await VhdxFile.open(path, { readOnly: false });
      await check(rw);
      await rw.close();
      assert.match(await run('qemu-img', ['check', '-f', 'vhdx', path]), /No errors were found/);
    });
  });

  test('zero and data descriptors written by hand replay the same through us and QEMU', { skip: !QEMU && 'qemu-img not installed' }, async () => {
    await withScratch(async (s) => {
      const path = s.path('hand.vhdx');
      await createVhdx(path, { type: 'dynamic', size: 16 * MiB, blockSize: 1 * MiB });
      const f = await VhdxFile.open(path, { readOnly: false });
      const data = pattern(2 * MiB, 9);
      await f.write(data, 0);
      const block0 = f.blockMapping(0).fileOffset;
      const block1 = f.blockMapping(1).fileOffset;
      await f.close();
      // An entry that zeroes 8 KiB of block 0 and rewrites the first 4 KiB of block 1.
      const guid = newGuid();
      const raw = await readFile(path);
      const fileSize = raw.length;
      const e = encodeLogEntry({
        sequenceNumber: 1n,
        tail: 0,
        logGuid: guid,
        flushedFileOffset: fileSize,
        lastFileOffset: fileSize,
        sectors: [{ fileOffset: block1, data: sector(0x3c) }],
        zeros: [{ fileOffset: block0 + 4 * KiB, length: 8 * KiB }],
      });
      e.copy(raw, LOG_OFFSET);
      const current = raw.readBigUInt64LE(128 * KiB + 8) > raw.readBigUInt64LE(64 * KiB + 8) ? 128 * KiB : 64 * KiB;
      const header = Buffer.from(raw.subarray(current, current + 4 * KiB));
      header.writeBigUInt64LE(header.readBigUInt64LE(8) + 1n, 8);
      writeGuid(header, 48, guid);
      header.writeUInt32LE(crc32cWithZeroedField(header, 4), 4);
      header.copy(raw, current === 64 * KiB ? 128 * KiB : 64 * KiB);
      await writeFile(path, raw);
      const expected = Buffer.alloc(16 * MiB);
      data.copy(expected);
      expected.fill(0, 4 * KiB, 12 * KiB);
      expected.fill(0x3c, 1 * MiB, 1 * MiB + 4 * KiB);

      const ro = await VhdxFile.open(path);
      assert.equal(ro.info.logReplay, 'in-memory');
      assert.ok((await ro.read(0, 16 * MiB)).equals(expected), 'in-memory replay');
      await ro.close();
      await copyFile(path, s.path('qemu.vhdx'));
      await run('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', s.path('qemu.vhdx')]);
      await run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', s.path('qemu.vhdx'), s.path('qemu.raw')]);
      assert.ok((await readFile(s.path('qemu.raw'))).equals(expected), 'QEMU replays the hand-made entry differently');
      const rw = await VhdxFile.open(path, { readOnly: false });
      assert.equal(rw.info.logReplay, 'replayed');
      await rw.close();
      const again = await VhdxFile.open(path);
      assert.ok((await again.read(0, 16 * MiB)).equals(expected), 'on-disk replay');
      await again.close();
    });
  });
});
