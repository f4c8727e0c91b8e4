/**
 * Splits a byte stream into JSON messages, one per line, as QMP and the guest agent send them.
 * Bytes before a 0xFF sentinel are dropped when `resync()` was called: the agent's
 * guest-sync-delimited answer starts with 0xFF so stale output can be skipped.
 */
export class JsonLineReader {
  #buffer: Buffer = Buffer.alloc(0);
  #waitingForSentinel = false;

  /** Drop everything up to and including the next 0xFF byte. */
  resync(): void {
    this.#waitingForSentinel = true;
  }

  /** Feeds a chunk; returns the complete messages it finished. Throws on a line that is not JSON. */
  push(chunk: Buffer): unknown[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const messages: unknown[] = [];
    for (;;) {
      if (this.#waitingForSentinel) {
        const sentinel = this.#buffer.indexOf(SYNC_SENTINEL);
        if (sentinel < 0) {
          this.#buffer = Buffer.alloc(0);
          return messages;
        }
        this.#buffer = this.#buffer.subarray(sentinel + 1);
        this.#waitingForSentinel = false;
      }
      const newline = this.#buffer.indexOf(NEWLINE);
      if (newline < 0) return messages;
      let start = 0;
      while (start < newline && this.#buffer[start] === SYNC_SENTINEL) start += 1;
      const line = this.#buffer.subarray(start, newline).toString('utf8').trim();
      this.#buffer = this.#buffer.subarray(newline + 1);
      if (line.length > 0) messages.push(JSON.parse(line) as unknown);
    }
  }
}

/** The byte the guest agent's guest-sync-delimited puts before its answer (qemu-ga-ref). */
export const SYNC_SENTINEL = 0xff;
const NEWLINE = 0x0a;
