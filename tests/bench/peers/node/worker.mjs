// Task functions for the Node peers (bench.mjs), loaded by Piscina and tinypool workers (threads or
// child processes) and imported by the supervisor for the serial C1 baseline and the in-process
// checksum. No imports: S1 measures a pool's own start-up, not this module's.

// T1/L1/S1/R1: the increment task. The default export, so a run() without `name` reaches it.
export default function inc(x) {
  return x + 1;
}

// C1: naive recursive Fibonacci, fib(30) = 832040.
export function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

export function fib30() {
  return fib(30);
}

// B1: the sum of the little-endian unsigned 64-bit words of `bytes` modulo 2^64, as a BigInt.
// Summing 131,072 BigInts (BigUint64Array) costs about 3 ms per MiB here, so the low and high
// 32-bit halves of the words are summed as Numbers instead, in two interleaved pairs of
// accumulators (each sum < 2^32 * 2^17 = 2^49 < 2^53 for 1 MiB: exact), and combined once:
// about 0.2 ms per MiB. Uint32Array uses the host's byte order; bench.mjs refuses to run on a
// big-endian host and checks every result against a BigUint64Array reference.
export function checksumOf(bytes) {
  if (bytes.byteLength % 16 !== 0 || bytes.byteLength > 1 << 20) {
    throw new RangeError('checksum: want at most 1 MiB, in 16-byte units');
  }
  if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice(); // Uint32Array needs an aligned view
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  let lo0 = 0;
  let hi0 = 0;
  let lo1 = 0;
  let hi1 = 0;
  for (let i = 0; i < words.length; i += 4) {
    lo0 += words[i];
    hi0 += words[i + 1];
    lo1 += words[i + 2];
    hi1 += words[i + 3];
  }
  return (BigInt(lo0 + lo1) + (BigInt(hi0 + hi1) << 32n)) & 0xffffffffffffffffn;
}

// B1 `_copy`: the 1 MiB ArrayBuffer arrives cloned (structured clone between threads, the v8
// serializer over tinypool-cp's IPC pipe). An ArrayBuffer rather than a Uint8Array: a Uint8Array
// deserialized from the IPC stream is a view at an arbitrary offset into the message, which a
// Uint32Array cannot read without one more copy; an ArrayBuffer is allocated on its own.
export function checksum(buffer) {
  return checksumOf(new Uint8Array(buffer));
}

// R1: which process answers (tinypool-cp), outside the timed section.
export function pid() {
  return process.pid;
}
