import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonLineReader } from './json-lines.js';

describe('JsonLineReader', () => {
  it('joins partial chunks and splits lines, CRLF included', () => {
    const reader = new JsonLineReader();
    assert.deepEqual(reader.push(Buffer.from('{"a":')), []);
    assert.deepEqual(reader.push(Buffer.from('1}\r\n{"b":2}\n{"c"')), [{ a: 1 }, { b: 2 }]);
    assert.deepEqual(reader.push(Buffer.from(':3}\n')), [{ c: 3 }]);
  });

  it('after resync drops everything up to the 0xFF sentinel', () => {
    const reader = new JsonLineReader();
    reader.resync();
    const chunk = Buffer.concat([Buffer.from('{"return": 1}\n{"ret'), Buffer.from([0xff]), Buffer.from('{"return": 42}\n')]);
    assert.deepEqual(reader.push(chunk), [{ return: 42 }]);
  });

  it('throws on a line that is not JSON', () => {
    assert.throws(() => new JsonLineReader().push(Buffer.from('nope\n')));
  });
});
