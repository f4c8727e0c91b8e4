import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCpuinfo } from './cpu-info.js';

const block = (n: number, flags: string): string =>
  `processor\t: ${n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz\nflags\t\t: ${flags}\n\n`;

describe('parseCpuinfo', () => {
  it('counts processors and reads model, vendor and vmx', () => {
    const info = parseCpuinfo(block(0, 'fpu vme de vmx sse2') + block(1, 'fpu vme de vmx sse2'));
    assert.deepEqual(info, { count: 2, model: 'Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz', vendor: 'GenuineIntel', vmx: true, svm: false });
  });

  it('sees svm on AMD and neither flag where there is no hardware virtualization', () => {
    assert.equal(parseCpuinfo(block(0, 'fpu svm lm')).svm, true);
    const none = parseCpuinfo(block(0, 'fpu lm hypervisor svm_lock'));
    assert.equal(none.vmx, false);
    assert.equal(none.svm, false, 'svm_lock is not svm');
  });

  it('copes with an empty file', () => {
    assert.deepEqual(parseCpuinfo(''), { count: 0, model: 'unknown', vendor: 'unknown', vmx: false, svm: false });
  });
});
