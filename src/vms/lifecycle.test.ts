import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmAction, VmState, VisorError, LEGAL_FROM } from '../core/index.js';
import { assertLegal } from './lifecycle.js';

test('every action is legal exactly in its states, and refusals advise the next step', () => {
  for (const action of VmAction.options) {
    for (const state of VmState.options) {
      const legal = LEGAL_FROM[action].includes(state);
      if (legal) {
        assert.doesNotThrow(() => assertLegal(action, state, 'web1'));
        continue;
      }
      assert.throws(
        () => assertLegal(action, state, 'web1'),
        (error: unknown) =>
          error instanceof VisorError &&
          error.kind === 'conflict' &&
          error.code === 'invalid-state' &&
          error.message.includes(`it is ${state}`) &&
          !(error.hint ?? '').includes('NAME'),
      );
    }
  }
});

test('a saved VM is told how to resume', () => {
  assert.throws(() => assertLegal('pause', 'saved', 'db'), /Cannot pause VM "db": it is saved/);
  try {
    assertLegal('save', 'saved', 'db');
  } catch (error) {
    assert.match((error as VisorError).hint ?? '', /visor vm start db/);
  }
});
