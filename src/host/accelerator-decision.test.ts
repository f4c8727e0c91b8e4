import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideAccelerator } from './accelerator-decision.js';
import type { KvmFacts, KvmProbeResult } from './accelerator-decision.js';

const good: KvmFacts = { device: 'opens', flavour: 'intel', cpuHasVirtualization: true };
const ran: KvmProbeResult = { ok: true, detail: 'reached long mode in 40 ms' };

describe('decideAccelerator', () => {
  const table: Array<[string, KvmFacts, KvmProbeResult | null, 'kvm' | 'tcg', RegExp]> = [
    ['everything works', good, ran, 'kvm', /KVM works: a probe guest reached long mode/],
    ['AMD works too', { ...good, flavour: 'amd' }, ran, 'kvm', /KVM works/],
    ['this machine: PVM, no flags', { device: 'opens', flavour: 'pvm', cpuHasVirtualization: false }, null, 'tcg', /^CPU has no vmx\/svm flags; \/dev\/kvm is the PVM flavour/],
    ['flags but no device', { ...good, device: 'missing' }, ran, 'tcg', /\/dev\/kvm does not exist/],
    ['device not ours', { ...good, device: 'no-access' }, ran, 'tcg', /cannot be opened/],
    ['no module', { ...good, flavour: 'none' }, ran, 'tcg', /no kvm_intel or kvm_amd/],
    ['flags and device but the probe fails', good, { ok: false, detail: 'did not reach long mode within 3000 ms' }, 'tcg', /probe guest did not run under KVM: did not reach long mode/],
    ['not probed', good, null, 'tcg', /not probed/],
    ['no flags even if the probe passed', { ...good, cpuHasVirtualization: false }, ran, 'tcg', /no vmx\/svm/],
  ];
  for (const [name, facts, probe, kind, reason] of table) {
    it(name, () => {
      const choice = decideAccelerator(facts, probe);
      assert.equal(choice.kind, kind);
      assert.match(choice.reason, reason);
    });
  }
});
