import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CAP_NET_ADMIN, hasCapability, parseEffectiveCapabilities } from './privileges.js';

describe('capabilities', () => {
  it('reads CapEff and tests CAP_NET_ADMIN', () => {
    const root = parseEffectiveCapabilities('Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n');
    assert.equal(hasCapability(root, CAP_NET_ADMIN), true);
    const user = parseEffectiveCapabilities('CapEff:\t0000000000000000\n');
    assert.equal(hasCapability(user, CAP_NET_ADMIN), false);
    assert.equal(hasCapability(parseEffectiveCapabilities('CapEff:\t0000000000001000\n'), CAP_NET_ADMIN), true);
  });
});
