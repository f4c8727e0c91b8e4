/**
 * `node dist/bench/vhd-convert-cli.js SRC.vhd DST.raw`: Visor's VHD → raw conversion, for
 * bench/vhd-convert.sh to time against `qemu-img convert -f vpc -O raw`. Prints the seconds
 * the convertToRaw call took.
 */
import { quietContext } from '../src/core/progress.js';
import { convertToRaw } from '../src/storage/vhd/index.js';

const [src, dst] = process.argv.slice(2);
if (!src || !dst) {
  console.error('usage: vhd-convert-cli SRC.vhd DST.raw');
  process.exit(2);
}
const start = performance.now();
await convertToRaw(src, dst, quietContext());
// What visord pays for a conversion (it is already running): the call alone, opening included.
console.log(((performance.now() - start) / 1000).toFixed(4));
