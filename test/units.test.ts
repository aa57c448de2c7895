import { describe, expect, it } from 'vitest';
import { formatBytes, parseBytes, parseCount, parseDurationMs, UnitError } from '../src/units.js';

describe('parseBytes', () => {
  it.each([
    ['0', 0],
    ['1048576', 1048576],
    ['512k', 512 * 1024],
    ['256m', 268435456],
    ['256M', 268435456],
    ['256mb', 268435456],
    ['256MiB', 268435456],
    ['1.5g', 1.5 * 1024 ** 3],
    ['2GiB', 2 * 1024 ** 3],
    ['1t', 1024 ** 4],
    ['100b', 100],
    [' 64m ', 64 * 1024 * 1024],
    ['0.5k', 512],
  ])('%s -> %d', (input, expected) => {
    expect(parseBytes(input)).toBe(expected);
  });

  it('accepts numbers', () => {
    expect(parseBytes(4096)).toBe(4096);
  });

  it.each(['', 'm', '-1', '-5m', '1.5', '12x', '1e6', '1 2m', 'ib', '5ib', 'NaN', '99999999999t'])(
    'rejects %j with a message naming the value and the forms',
    (input) => {
      expect(() => parseBytes(input)).toThrow(UnitError);
      expect(() => parseBytes(input)).toThrow(`invalid byte size ${JSON.stringify(input)}`);
      expect(() => parseBytes(input)).toThrow(/"256m"/);
    },
  );
});

describe('parseDurationMs', () => {
  it.each([
    ['2s', 2000],
    ['500ms', 500],
    ['1.5s', 1500],
    ['2m', 120000],
    ['1h', 3600000],
    ['2', 2000],
    ['0', 0],
    ['0.0001s', 1],
    ['1.4ms', 1],
    ['250MS', 250],
  ])('%s -> %d', (input, expected) => {
    expect(parseDurationMs(input)).toBe(expected);
  });

  it.each(['', 's', '-1s', '2 seconds', '1d', 'ms5', '1e3ms'])('rejects %j', (input) => {
    expect(() => parseDurationMs(input)).toThrow(UnitError);
    expect(() => parseDurationMs(input)).toThrow(`invalid duration ${JSON.stringify(input)}`);
    expect(() => parseDurationMs(input)).toThrow(/"500ms"/);
  });
});

describe('parseCount', () => {
  it.each([
    ['64', 64],
    ['0', 0],
    ['10k', 10000],
    ['2M', 2000000],
  ])('%s -> %d', (input, expected) => {
    expect(parseCount(input)).toBe(expected);
  });

  it.each(['', '-1', '1.5', 'ten', '5g', '0x10'])('rejects %j', (input) => {
    expect(() => parseCount(input)).toThrow(`invalid count ${JSON.stringify(input)}`);
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [10, '10 B'],
    [1023, '1023 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [268435456, '256 MiB'],
    [1.25 * 1024 ** 3, '1.3 GiB'],
    [-2048, '-2 KiB'],
  ])('%d -> %s', (input, expected) => {
    expect(formatBytes(input)).toBe(expected);
  });

  it('round-trips through parseBytes for whole units', () => {
    expect(parseBytes(formatBytes(268435456).replace(' ', ''))).toBe(268435456);
  });
});
