// B1 `_transfer` workers: the buffer arrives through the run() transferList (no copy) and goes back
// with the pool's move() (no copy), together with its checksum. A separate module so that the
// other workloads' workers do not load the pool library.
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';

import { checksumOf } from './worker.mjs';

// A Transferable in the pools' protocol: the value posted back is {sum, bytes}; the ArrayBuffer
// under `bytes` is in the transfer list, so it is moved, not cloned.
function movedResult(pool, bytes) {
  const value = { sum: checksumOf(bytes), bytes };
  return pool.move({
    get [pool.transferableSymbol]() {
      return [bytes.buffer];
    },
    get [pool.valueSymbol]() {
      return value;
    },
  });
}

export function checksumMovePiscina(bytes) {
  return movedResult(Piscina, bytes);
}

export function checksumMoveTinypool(bytes) {
  return movedResult(Tinypool, bytes);
}
