import { withClient } from '../connect.js';
import { EXIT } from '../exit-codes.js';

/** Ctrl-]: telnet's escape, as virsh console uses it. */
const DETACH = 0x1d;

/**
 * Attaches the terminal to the VM's serial console: raw mode, bytes both ways, Ctrl-] detaches.
 */
export async function serial(name: string): Promise<number> {
  const socket = await withClient((c) => c.openSerial(name));
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  process.stderr.write(`Connected to ${name}'s serial console. Ctrl-] detaches.\r\n`);
  if (raw) stdin.setRawMode(true);
  return new Promise<number>((resolve) => {
    let finished = false;
    const finish = (code: number, note: string): void => {
      if (finished) return;
      finished = true;
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onInput);
      process.stderr.write(`\r\n${note}\r\n`);
      socket.close();
      resolve(code);
    };
    const onInput = (chunk: Buffer): void => {
      const at = chunk.indexOf(DETACH);
      if (at >= 0) {
        if (at > 0) socket.send(chunk.subarray(0, at));
        finish(EXIT.ok, 'Detached.');
        return;
      }
      socket.send(chunk);
    };
    stdin.on('data', onInput);
    stdin.on('end', () => finish(EXIT.ok, 'Input ended; detached.'));
    stdin.resume();
    socket.on('message', (data) => process.stdout.write(data as Buffer));
    socket.on('close', (code, reason) => finish(code === 1000 || code === 1005 ? EXIT.ok : EXIT.failed, `Console closed${reason.length ? `: ${reason.toString()}` : '.'}`));
    socket.on('error', (error) => finish(EXIT.failed, `Console failed: ${error.message}`));
  });
}
