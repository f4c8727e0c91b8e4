import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyNic } from './network-interfaces.js';
import type { NicFacts } from './network-interfaces.js';

const nic = (facts: Partial<NicFacts>): NicFacts => ({ name: 'x', hasDevice: true, isWireless: false, type: 1, isBridge: false, isTun: false, ...facts });

describe('classifyNic', () => {
  it('tells wired, wireless and virtual apart', () => {
    assert.equal(classifyNic(nic({ name: 'enp3s0' })), 'wired');
    assert.equal(classifyNic(nic({ name: 'wlp2s0', isWireless: true })), 'wireless');
    assert.equal(classifyNic(nic({ name: 'lo', hasDevice: false, type: 772 })), 'virtual');
    assert.equal(classifyNic(nic({ name: 'veth0', hasDevice: false })), 'virtual');
    assert.equal(classifyNic(nic({ name: 'br0', hasDevice: false, isBridge: true })), 'virtual');
    assert.equal(classifyNic(nic({ name: 'tap0', hasDevice: false, isTun: true })), 'virtual');
  });
});
