import { connect } from 'node:net';
import type { HandlerTable, SocketHandler } from '../handler.js';

/** Close codes: 1011 when the far side (the VM's serial socket) fails. */
const CLOSE_NORMAL = 1000;
const CLOSE_FAR_SIDE_FAILED = 1011;
const SERIAL_HIGH_WATER = 1024 * 1024;
const SERIAL_LOW_WATER = 64 * 1024;

const serial: SocketHandler = {
  check: (input, s) => {
    s.vmService.serialSocketPath(input.params.ref!);
  },
  open: (socket, input, s) => {
    const path = s.vmService.serialSocketPath(input.params.ref!);
    const console = connect(path);
    let closed = false;
    const closeBoth = (code: number, reason: string): void => {
      if (closed) return;
      closed = true;
      console.destroy();
      if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, reason.slice(0, 120));
    };
    console.on('data', (chunk) => {
      if (socket.readyState !== socket.OPEN) return;
      // Backpressure: stop reading the console while the client lags, go on once it caught up.
      socket.send(chunk, { binary: true }, () => {
        if (console.isPaused() && socket.bufferedAmount < SERIAL_LOW_WATER) console.resume();
      });
      if (socket.bufferedAmount > SERIAL_HIGH_WATER) console.pause();
    });
    console.on('end', () => closeBoth(CLOSE_NORMAL, 'The serial console closed.'));
    console.on('error', (error) => closeBoth(CLOSE_FAR_SIDE_FAILED, `Serial console: ${error.message}`));
    socket.on('message', (data) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      console.write(bytes);
    });
    socket.on('close', () => closeBoth(CLOSE_NORMAL, ''));
    socket.on('error', () => closeBoth(CLOSE_FAR_SIDE_FAILED, ''));
  },
};

const events: SocketHandler = {
  check: () => undefined,
  open: (socket, _input, s) => {
    const remove = s.hub.add({
      send: (text) => socket.send(text),
      get bufferedAmount() {
        return socket.bufferedAmount;
      },
      terminate: () => socket.terminate(),
    });
    socket.on('close', remove);
    socket.on('error', remove);
  },
};

export const socketHandlers: HandlerTable = { connectVmSerial: serial, streamEvents: events };
