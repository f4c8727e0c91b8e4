/**
 * Undo steps of a multi-step change (the model: Incus' shared/revert). Add an undo after each
 * step succeeds; `run()` them newest first on failure, or `release()` on success.
 */
export class Revert {
  readonly #steps: Array<() => Promise<void> | void> = [];

  add(step: () => Promise<void> | void): void {
    this.#steps.push(step);
  }

  release(): void {
    this.#steps.length = 0;
  }

  /** Runs every undo, newest first; an undo that fails does not stop the others. */
  async run(): Promise<void> {
    while (this.#steps.length > 0) {
      const step = this.#steps.pop();
      try {
        await step?.();
      } catch {
        // Best effort: the original error is what the caller reports.
      }
    }
  }
}
