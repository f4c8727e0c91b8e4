import type { VmEvents, VmService } from '../vms/index.js';
import type { JobManager, Job } from '../jobs/index.js';
import type { VisorEvent } from '../api/contract/index.js';

/** A client falling this far behind is dropped rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export interface EventSink {
  send(text: string): void;
  readonly bufferedAmount: number;
  terminate(): void;
}

/**
 * Fans VM and job events out to the /v1/events WebSocket clients, one JSON object per message.
 * Disposable: `close()` detaches from the sources and drops the clients.
 */
export class EventHub {
  private readonly sinks = new Set<EventSink>();
  private readonly detach: Array<() => void> = [];

  constructor(vms: VmService, jobs: JobManager, private readonly now: () => Date = () => new Date()) {
    const onState = (e: VmEvents['vm-state'][0]): void =>
      this.publish({ type: 'vm-state', at: this.stamp(), vmId: e.vmId, name: e.name, state: e.state, reason: e.reason });
    vms.events.on('vm-state', onState);
    this.detach.push(() => vms.events.off('vm-state', onState));
    for (const type of ['vm-created', 'vm-updated', 'vm-deleted'] as const) {
      const listener = (e: { vmId: string; name: string }): void => this.publish({ type, at: this.stamp(), vmId: e.vmId, name: e.name });
      vms.events.on(type, listener);
      this.detach.push(() => vms.events.off(type, listener));
    }
    for (const type of ['job-state', 'job-progress'] as const) {
      const listener = (job: Job): void => this.publish({ type, at: this.stamp(), job });
      jobs.events.on(type, listener);
      this.detach.push(() => jobs.events.off(type, listener));
    }
  }

  add(sink: EventSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  get size(): number {
    return this.sinks.size;
  }

  publish(event: VisorEvent): void {
    if (this.sinks.size === 0) return;
    const text = JSON.stringify(event);
    for (const sink of this.sinks) {
      if (sink.bufferedAmount > MAX_BUFFERED_BYTES) {
        this.sinks.delete(sink);
        sink.terminate();
        continue;
      }
      sink.send(text);
    }
  }

  close(): void {
    for (const undo of this.detach.splice(0)) undo();
    for (const sink of this.sinks) sink.terminate();
    this.sinks.clear();
  }

  private stamp(): string {
    return this.now().toISOString();
  }
}
