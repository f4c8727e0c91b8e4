/**
 * Growing a VHD. A fixed disk gains zeros and its footer moves to the new end. A dynamic or
 * differencing disk whose BAT is too small for the new size gets a new, larger BAT at the end
 * of the file (the header's table offset may point anywhere), so no block moves. Order: new BAT,
 * then the header naming it, then the footers with the new size — a crash between steps leaves
 * a valid file of the old size.
 */
import type { OperationContext } from '../../core/progress.js';
import { batBytes } from './bat.js';
import { quote, vhdError } from './errors.js';
import { chsGeometry, FOOTER_SIZE } from './footer.js';
import { MAX_VIRTUAL_SIZE, SECTOR_SIZE } from './layout.js';
import { VhdFile } from './vhd-file.js';

/** Grows the VHD at `path` to `newSize` bytes. Shrinking is refused (`vhd-shrink-refused`). */
export async function resizeVhd(path: string, newSize: number, ctx: OperationContext): Promise<void> {
  if (!Number.isSafeInteger(newSize) || newSize <= 0 || newSize % SECTOR_SIZE !== 0 || newSize > MAX_VIRTUAL_SIZE) {
    throw vhdError('vhd-bad-argument', `The new size must be a positive multiple of 512 bytes up to 2040 GiB: current value is ${quote(newSize)}.`, {
      option: 'size',
    });
  }
  const file = await VhdFile.open(path, { readOnly: false });
  try {
    await file.exclusive(async () => {
      const old = file.virtualSize;
      if (newSize < old) {
        throw vhdError('vhd-shrink-refused', `"${path}" is ${quote(old)} bytes; shrinking it to ${quote(newSize)} is refused.`, {
          virtualSize: old,
          newSize,
        });
      }
      if (newSize === old) return;
      await file.flushHeld();
      ctx.progress(0, 'Resizing');
      const { footer, header, nextFree } = file.layout;
      const newFooter = { ...footer, currentSize: newSize, geometry: chsGeometry(newSize) };
      if (!header) {
        // Fixed: zero the old footer (now data) only after the new one is in place.
        file.replaceMetadata(newFooter);
        await file.flushHeld();
        await file.writeFileBytes(Buffer.alloc(FOOTER_SIZE), old);
        await file.flushHeld();
        return;
      }
      const entries = Math.ceil(newSize / header.blockSize);
      if (entries <= header.maxTableEntries) {
        file.replaceMetadata(newFooter);
      } else {
        const bat = Buffer.alloc(batBytes(entries), 0xff);
        const oldBat = Buffer.alloc(batBytes(header.maxTableEntries));
        await file.readFileBytes(oldBat, header.tableOffset);
        oldBat.copy(bat, 0, 0, header.maxTableEntries * 4);
        const tableOffset = nextFree;
        await file.writeFileBytes(bat, tableOffset);
        file.setDataEnd(tableOffset + bat.length);
        file.replaceMetadata(newFooter, { ...header, tableOffset, maxTableEntries: entries }, bat);
      }
      await file.flushHeld();
      ctx.progress(1, 'Resized');
    });
  } finally {
    await file.close();
  }
}
