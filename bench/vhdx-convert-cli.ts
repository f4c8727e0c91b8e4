/**
 * `node dist/bench/vhdx-convert-cli.js SRC.vhdx DST.raw`: Visor's VHDX → raw conversion, for
 * bench/vhdx-convert.sh to time against `qemu-img convert -O raw`. Prints the seconds the
 * convertToRaw call took.
 */
import { quietContext } from '../src/core/progress.js';
import { convertToRaw } from '../src/storage/vhdx/index.js';

const [src, dst] = process.argv.slice(2);
if (!src || !dst) {
  console.error('usage: vhdx-convert-cli SRC.vhdx DST.raw');
  process.exit(2);
}
const start = performance.now();
await convertToRaw(src, dst, quietContext());
// What visord pays for a conversion (it is already running): the call alone, opening included.
console.log(((performance.now() - start) / 1000).toFixed(4));
