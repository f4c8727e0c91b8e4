/**
 * `node dist/bench/convert-cli.js vhdx|vhd SRC DST.raw`: Visor's VHDX or VHD → raw conversion,
 * for bench/lib/convert-bench.sh to time against `qemu-img convert -O raw`. Only the library of
 * that format is loaded, as in visord. Prints the seconds the convertToRaw call took.
 */
import { quietContext } from '../src/core/progress.js';

const [format, src, dst] = process.argv.slice(2);
if ((format !== 'vhdx' && format !== 'vhd') || !src || !dst) {
  console.error('usage: convert-cli vhdx|vhd SRC DST.raw');
  process.exit(2);
}
const { convertToRaw } = format === 'vhdx' ? await import('../src/storage/vhdx/index.js') : await import('../src/storage/vhd/index.js');
const start = performance.now();
await convertToRaw(src, dst, quietContext());
// What visord pays for a conversion (it is already running): the call alone, opening included.
console.log(((performance.now() - start) / 1000).toFixed(4));
