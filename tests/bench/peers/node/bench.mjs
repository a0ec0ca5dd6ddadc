#!/usr/bin/env node
// Node peers for procpool's benchmarks: ONE ROUND of the docs/workloads.md workloads on Piscina
// (worker_threads), tinypool (worker_threads) and tinypool with runtime 'child_process', printed
// on stdout one figure per line as `WORKLOAD IMPL FIGURE VALUE UNIT`. scripts/bench.sh peers calls
// this once per round, interleaving implementations, and takes the medians.
//
// Every result is checked; a wrong answer, a failed task or a watchdog expiry prints a message on
// stderr and exits non-zero (figures already printed stay printed). See README.md.
//
// usage: node bench.mjs [--workload L1,T1,B1,C1,S1,R1,I1] [--impl piscina,tinypool,tinypool-cp,node-inproc]
//                       [--quick] [--verbose] [--timeout SECONDS]

import { readFileSync, readdirSync } from 'node:fs';
import { endianness } from 'node:os';
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';

import { checksumOf, fib } from './worker.mjs';

const WORKER = new URL('./worker.mjs', import.meta.url).href;
const WORKER_MOVE = new URL('./worker-move.mjs', import.meta.url).href;

// ---- sizes (docs/workloads.md) ----
const L1_WARMUP = 1_000;
const L1_MEASURED = 20_000;
const L1_BASE = 1_000_000;
const T1_TASKS = 200_000;
const T1_WINDOW = 1_024;
const T1_WARMUP = 2_000; // untimed, on every T1 pool before its timed section
const T1_CTPW = 16; // the `_ctpwN` variant: concurrentTasksPerWorker = 16
const MIB = 1_048_576;
const B1_TASKS = 2_000;
const B1_WINDOW = 4;
const B1_INPROC_REPS = 200;
const C1_TASKS = 512;
const C1_ALTERNATIONS = 3; // --quick: 1 (a serial run is several seconds here)
const FIB30 = 832_040;
const S1_REPS = { piscina: 15, tinypool: 15, 'tinypool-cp': 8 };
const S1_WARMUP = 1;
const R1_KILLS = 20;
const R1_DEADLINE_MS = 10_000; // per kill: a replacement that has not answered by then is a failure

const WORKLOADS = ['L1', 'T1', 'B1', 'C1', 'S1', 'R1', 'I1'];
const NOT_HERE = ['M1', 'X1']; // docs/workloads.md workloads that these peers do not run
const IMPLS = ['piscina', 'tinypool', 'tinypool-cp', 'node-inproc'];

// ---- output and failure ----

class WrongResult extends Error {}

function wrong(what) {
  throw new WrongResult(`wrong result: ${what}`);
}

// Three significant digits, like the C++ peers (tests/bench/bench_stats.hpp format_value).
function formatValue(v) {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (v === 0) return '0';
  const mag = Math.abs(v);
  let exp10 = Math.floor(Math.log10(mag));
  const scale = 10 ** (exp10 - 2);
  const rounded = Math.round(mag / scale) * scale;
  if (rounded >= 10 ** (exp10 + 1)) exp10 += 1;
  if (exp10 >= 2) return (Math.sign(v) * rounded).toFixed(0);
  let out = v.toFixed(2 - exp10);
  out = out.replace(/0+$/, '').replace(/\.$/, '');
  return out === '-0' ? '0' : out;
}

function print(workload, impl, figure, value, unit) {
  process.stdout.write(`${workload} ${impl} ${figure} ${formatValue(value)} ${unit}\n`);
}

let verbose = false;
function note(msg) {
  if (verbose) process.stderr.write(`bench.mjs: ${msg}\n`);
}

// ---- time and statistics ----

const now = () => process.hrtime.bigint();
const usSince = (t0) => Number(now() - t0) / 1e3;
const msSince = (t0) => Number(now() - t0) / 1e6;
const secondsSince = (t0) => Number(now() - t0) / 1e9;

// Nearest rank: sort ascending, take sample number ceil(q * n) (1-based).
function percentile(samples, q) {
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- pools ----

// Every pool this round made and has not destroyed yet: destroyed on the way out whatever happens.
const livePools = new Set();

function makePool(impl, { threads, ...extra } = {}) {
  const options = { filename: WORKER, minThreads: threads, maxThreads: threads, ...extra };
  let pool;
  if (impl === 'piscina') {
    pool = new Piscina(options);
  } else if (impl === 'tinypool') {
    pool = new Tinypool(options);
  } else if (impl === 'tinypool-cp') {
    pool = new Tinypool({ ...options, runtime: 'child_process' });
  } else {
    throw new Error(`no pool for ${impl}`);
  }
  // A pool emits 'error' for a worker that dies with no task in flight; unhandled, that would
  // throw from inside the pool. Outside R1 no worker may die.
  pool.on('error', (err) => {
    if (pool.onWorkerError) pool.onWorkerError(err);
    else fatal(new Error(`${impl}: worker error: ${err?.message ?? err}`));
  });
  livePools.add(pool);
  return pool;
}

async function destroy(pool) {
  livePools.delete(pool);
  await pool.destroy();
}

// Submits tasks 0..n-1 keeping at most `window` outstanding (submit whenever fewer are); each
// result is checked as it completes. Resolves when the last one is in.
function runWindow(n, window, submit, check) {
  return new Promise((resolve, reject) => {
    let next = 0;
    let done = 0;
    const onResult = (i, result) => {
      check(i, result);
      done += 1;
      if (done === n) resolve();
      else launch();
    };
    const launch = () => {
      while (next < n && next - done < window) {
        const i = next++;
        submit(i).then((result) => onResult(i, result)).catch(reject);
      }
    };
    launch();
  });
}

// Submits all n tasks, then awaits them all; each result is checked.
function runAll(n, submit, check) {
  const pending = new Array(n);
  for (let i = 0; i < n; i++) pending[i] = submit(i).then((result) => check(i, result));
  return Promise.all(pending);
}

const checkInc = (label) => (i, r) => {
  if (r !== i + 1) wrong(`${label}: inc(${i}) returned ${r}`);
};

// ---- L1: latency, one worker, one task in flight ----

async function l1(impl) {
  const pool = makePool(impl, { threads: 1 });
  for (let i = 0; i < L1_WARMUP; i++) {
    const r = await pool.run(i);
    if (r !== i + 1) wrong(`L1 warm-up: inc(${i}) returned ${r}`);
  }
  const samples = new Float64Array(L1_MEASURED);
  for (let i = 0; i < L1_MEASURED; i++) {
    const x = L1_BASE + i;
    const t0 = now();
    const r = await pool.run(x);
    samples[i] = usSince(t0);
    if (r !== x + 1) wrong(`L1: inc(${x}) returned ${r}`);
  }
  await destroy(pool);
  print('L1', impl, 'p50', percentile(samples, 0.5), 'us');
  print('L1', impl, 'p99', percentile(samples, 0.99), 'us');
}

// ---- T1: throughput, two workers ----

async function t1Variant(impl, strategy, ctpw) {
  const pool = makePool(impl, { threads: 2, ...(ctpw ? { concurrentTasksPerWorker: ctpw } : {}) });
  const submit = (i) => pool.run(i);
  await runWindow(T1_WARMUP, T1_WINDOW, submit, checkInc('T1 warm-up'));
  const check = checkInc(`T1 ${strategy}`);
  const t0 = now();
  if (strategy === 'window1024') await runWindow(T1_TASKS, T1_WINDOW, submit, check);
  else await runAll(T1_TASKS, submit, check);
  const seconds = secondsSince(t0);
  await destroy(pool);
  const suffix = ctpw ? `_ctpw${ctpw}` : '';
  print('T1', impl, `tput_2w_${strategy}${suffix}`, T1_TASKS / seconds, 'tasks/s');
}

// The default strategy (window 1024, one task per message, concurrentTasksPerWorker 1) and the
// pools' batching option (concurrentTasksPerWorker 16: up to 16 tasks posted to a worker before it
// answers). submitall only on Piscina: tinypool keeps its queue in an array it shift()s, so with
// 200,000 queued tasks it crawls (about 6,000 tasks/s here) and the round would take minutes.
async function t1(impl) {
  await t1Variant(impl, 'window1024');
  if (impl === 'piscina') await t1Variant(impl, 'submitall');
  await t1Variant(impl, 'window1024', T1_CTPW);
}

// ---- B1: 1 MiB buffers, one worker, at most 4 in flight ----

function sourceBuffer(b) {
  const bytes = new Uint8Array(MIB);
  for (let j = 0; j < MIB; j++) bytes[j] = (7 * j + b) & 255;
  return bytes;
}

// The reference checksum, computed the plain way (BigUint64Array is little-endian here).
function referenceChecksum(bytes) {
  const words = new BigUint64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  let sum = 0n;
  for (const w of words) sum += w;
  return sum & 0xffffffffffffffffn;
}

let b1Sources = null;
let b1Expected = null;
function b1Inputs() {
  if (b1Sources === null) {
    b1Sources = Array.from({ length: 8 }, (_, b) => sourceBuffer(b));
    b1Expected = b1Sources.map(referenceChecksum);
  }
  return { sources: b1Sources, expected: b1Expected };
}

function reportB1(impl, mechanism, seconds) {
  print('B1', impl, `us_per_task_${mechanism}`, (seconds * 1e6) / B1_TASKS, 'us');
  print('B1', impl, `MiB_per_s_${mechanism}`, B1_TASKS / seconds, 'MiB/s');
}

// `_copy`: 8 source buffers, task k sends buffer k mod 8, cloned by the pool.
async function b1Copy(impl) {
  const { sources, expected } = b1Inputs();
  // tinypool's child processes talk over the IPC channel with Node's default 'json' serialization,
  // which turns a Uint8Array into an object of a million keys and cannot carry a BigInt; the
  // v8 serializer ('advanced') clones both. Other workloads keep the default.
  const extra = impl === 'tinypool-cp' ? { serialization: 'advanced' } : {};
  const pool = makePool(impl, { threads: 1, ...extra });
  const run = (k) => pool.run(sources[k % 8].buffer, { name: 'checksum' });
  const check = (k, sum) => {
    if (sum !== expected[k % 8]) wrong(`B1 ${impl} copy: task ${k} checksum ${sum}, want ${expected[k % 8]}`);
  };
  for (let b = 0; b < 8; b++) check(b, await run(b));
  const t0 = now();
  await runWindow(B1_TASKS, B1_WINDOW, run, check);
  const seconds = secondsSince(t0);
  await destroy(pool);
  reportB1(impl, 'copy', seconds);
}

// `_transfer`: 4 buffers in rotation (buffer b = 0..3), each moved to the worker (transferList)
// and back (the pool's move()); task k uses buffer k mod 4. Four chains, one per buffer, keep
// exactly 4 tasks in flight, and a buffer is sent again only once it is back.
async function b1Transfer(impl) {
  const { expected } = b1Inputs();
  const name = impl === 'piscina' ? 'checksumMovePiscina' : 'checksumMoveTinypool';
  const pool = makePool(impl, { threads: 1, filename: WORKER_MOVE });
  const buffers = Array.from({ length: 4 }, (_, b) => sourceBuffer(b));
  const roundTrip = async (b, k) => {
    const bytes = buffers[b];
    buffers[b] = null;
    const result = await pool.run(bytes, { name, transferList: [bytes.buffer] });
    if (bytes.byteLength !== 0) wrong(`B1 ${impl} transfer: buffer ${b} was copied, not moved`);
    if (result.sum !== expected[b]) {
      wrong(`B1 ${impl} transfer: task ${k} checksum ${result.sum}, want ${expected[b]}`);
    }
    if (!(result.bytes instanceof Uint8Array) || result.bytes.byteLength !== MIB) {
      wrong(`B1 ${impl} transfer: task ${k} did not move the buffer back`);
    }
    buffers[b] = result.bytes;
  };
  for (let b = 0; b < 4; b++) await roundTrip(b, b);
  const chain = async (b) => {
    for (let k = b; k < B1_TASKS; k += 4) await roundTrip(b, k);
  };
  const t0 = now();
  await Promise.all([0, 1, 2, 3].map(chain));
  const seconds = secondsSince(t0);
  await destroy(pool);
  // The buffers came back intact (not only their checksums).
  for (let b = 0; b < 4; b++) {
    if (referenceChecksum(buffers[b]) !== expected[b]) {
      wrong(`B1 ${impl} transfer: buffer ${b} came back changed`);
    }
  }
  reportB1(impl, 'transfer', seconds);
}

// Context figure: the checksum alone in the supervisor thread.
function b1Inproc() {
  const { sources, expected } = b1Inputs();
  for (let k = 0; k < 20; k++) checksumOf(sources[k % 8]); // JIT warm-up
  const t0 = now();
  for (let k = 0; k < B1_INPROC_REPS; k++) {
    if (checksumOf(sources[k % 8]) !== expected[k % 8]) wrong(`B1 in-process checksum of buffer ${k % 8}`);
  }
  print('B1', 'node-inproc', 'checksum_us_per_MiB', usSince(t0) / B1_INPROC_REPS, 'us');
}

async function b1(impl) {
  if (impl === 'node-inproc') return b1Inproc();
  if (impl !== 'tinypool-cp') await b1Transfer(impl);
  await b1Copy(impl);
}

// ---- C1: CPU scaling, 512 x fib(30) on two workers against the serial baseline ----

function serialFib30s(count) {
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const r = fib(30);
    if (r !== FIB30) wrong(`C1 serial fib(30) = ${r}`);
    sum += r;
  }
  return sum;
}

async function c1(impl, alternations) {
  const pool = makePool(impl, { threads: 2 });
  const parallel = () =>
    runAll(C1_TASKS, () => pool.run(undefined, { name: 'fib30' }), (i, r) => {
      if (r !== FIB30) wrong(`C1 ${impl}: fib(30) task ${i} returned ${r}`);
    });
  // JIT warm-up: 5 serial calls, 4 pool tasks.
  serialFib30s(5);
  await runAll(4, () => pool.run(undefined, { name: 'fib30' }), (i, r) => {
    if (r !== FIB30) wrong(`C1 ${impl} warm-up: fib(30) returned ${r}`);
  });
  const serial = [];
  const wall = [];
  for (let a = 0; a < alternations; a++) {
    let t0 = now();
    serialFib30s(C1_TASKS);
    serial.push(msSince(t0));
    t0 = now();
    await parallel();
    wall.push(msSince(t0));
  }
  await destroy(pool);
  const s = percentile(serial, 0.5);
  const w = percentile(wall, 0.5);
  print('C1', impl, 'serial_ms', s, 'ms');
  print('C1', impl, 'wall_ms', w, 'ms');
  print('C1', impl, 'efficiency_pct', (100 * s) / (2 * w), '%');
}

// ---- S1: cold start, new pool of one worker + first run() ----

async function s1(impl) {
  const samples = [];
  for (let rep = 0; rep < S1_WARMUP + S1_REPS[impl]; rep++) {
    const t0 = now();
    const pool = makePool(impl, { threads: 1 });
    const r = await pool.run(41);
    const ms = msSince(t0);
    if (r !== 42) wrong(`S1 ${impl}: inc(41) returned ${r}`);
    await destroy(pool); // teardown is not timed
    if (rep >= S1_WARMUP) samples.push(ms);
  }
  print('S1', impl, 'p50_ms', percentile(samples, 0.5), 'ms');
}

// ---- R1: SIGKILL the one worker process; time from the kill to the first successful result ----

async function r1(impl) {
  const pool = makePool(impl, { threads: 1 });
  let workerErrors = 0;
  pool.onWorkerError = () => {
    workerErrors += 1;
  };
  const r0 = await pool.run(1);
  if (r0 !== 2) wrong(`R1 ${impl} warm-up: inc(1) returned ${r0}`);
  const samples = [];
  let failedTasks = 0;
  for (let kill = 0; kill < R1_KILLS; kill++) {
    const victim = await pool.run(undefined, { name: 'pid' });
    if (victim === process.pid) throw new Error(`R1 ${impl}: the worker is this process`);
    const t0 = now();
    process.kill(victim, 'SIGKILL');
    for (;;) {
      try {
        const r = await pool.run(41);
        if (r !== 42) wrong(`R1 ${impl}: inc(41) returned ${r}`);
        break;
      } catch (err) {
        if (err instanceof WrongResult) throw err;
        failedTasks += 1; // landed on the dying worker; tinypool rejects it; submit again
        if (msSince(t0) > R1_DEADLINE_MS) {
          throw new Error(`R1 ${impl}: no result ${R1_DEADLINE_MS} ms after the kill`);
        }
      }
    }
    samples.push(msSince(t0));
    const replacement = await pool.run(undefined, { name: 'pid' });
    if (replacement === victim) wrong(`R1 ${impl}: the killed worker ${victim} answered`);
    const workers = descendantPids();
    if (workers.length !== 1 || workers[0] !== replacement) {
      wrong(`R1 ${impl}: after kill ${kill} the worker processes are [${workers}], want [${replacement}]`);
    }
  }
  await destroy(pool);
  note(`R1 ${impl}: ${failedTasks} tasks rejected after kills, ${workerErrors} worker error events`);
  print('R1', impl, 'p50_ms', percentile(samples, 0.5), 'ms');
}

// ---- I1: idle cost of a warmed-up pool of 2 workers ----

// On-CPU nanoseconds of every thread of this process and of all its descendant processes, keyed
// by pid/tid (/proc/PID/task/TID/schedstat, first field: ns resolution, unlike the 10 ms ticks of
// /proc/PID/stat).
function cpuSnapshot() {
  const out = new Map();
  const visit = (pid) => {
    let tids;
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      return; // exited meanwhile
    }
    for (const tid of tids) {
      try {
        const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
        out.set(`${pid}/${tid}`, ns);
        const children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
        if (children) for (const child of children.split(/\s+/)) visit(child);
      } catch {
        // the thread exited meanwhile
      }
    }
  };
  visit(process.pid);
  return out;
}

function cpuSecondsBetween(before, after) {
  let ns = 0;
  for (const [key, value] of after) ns += value - (before.get(key) ?? 0);
  const vanished = [...before.keys()].filter((key) => !after.has(key));
  if (vanished.length > 0) {
    process.stderr.write(`bench.mjs: I1: threads exited while idle (not counted): ${vanished}\n`);
  }
  return ns / 1e9;
}

async function i1(impl, seconds) {
  const pool = makePool(impl, { threads: 2 });
  await runWindow(2_000, T1_WINDOW, (i) => pool.run(i), checkInc('I1 warm-up'));
  const before = cpuSnapshot();
  const t0 = now();
  await sleep(seconds * 1000); // the workload is to idle
  const after = cpuSnapshot();
  const elapsed = secondsSince(t0);
  const r = await pool.run(41);
  if (r !== 42) wrong(`I1 ${impl}: inc(41) after idling returned ${r}`);
  await destroy(pool);
  print('I1', impl, 'cpu_pct', (100 * cpuSecondsBetween(before, after)) / elapsed, '%');
}

// ---- main ----

// Which workloads run on which implementation. Threads cannot be SIGKILLed one at a time, so R1
// is omitted for the worker_threads pools (see README.md).
const PLAN = {
  L1: { run: l1, impls: ['piscina', 'tinypool', 'tinypool-cp'] },
  T1: { run: t1, impls: ['piscina', 'tinypool', 'tinypool-cp'] },
  B1: { run: b1, impls: ['piscina', 'tinypool', 'tinypool-cp', 'node-inproc'] },
  C1: { run: c1, impls: ['piscina', 'tinypool', 'tinypool-cp'] },
  S1: { run: s1, impls: ['piscina', 'tinypool', 'tinypool-cp'] },
  R1: { run: r1, impls: ['tinypool-cp'] },
  I1: { run: null, impls: ['piscina', 'tinypool', 'tinypool-cp'] },
};

function usage(exitCode) {
  const text =
    'usage: node bench.mjs [--workload L1,T1,B1,C1,S1,R1,I1]\n' +
    '                      [--impl piscina,tinypool,tinypool-cp,node-inproc]\n' +
    '                      [--quick] [--verbose] [--timeout SECONDS]\n';
  (exitCode === 0 ? process.stdout : process.stderr).write(text);
  process.exit(exitCode);
}

function parseList(value, known, what) {
  if (value === undefined) usage(2);
  const items = value.split(',').filter(Boolean);
  for (const item of items) {
    if (!known.includes(item)) {
      process.stderr.write(`bench.mjs: unknown ${what} '${item}' (known: ${known.join(', ')})\n`);
      process.exit(2);
    }
  }
  return items;
}

function parseArgs(argv) {
  const args = { workloads: WORKLOADS, impls: IMPLS, quick: false, timeout: 900 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--workload' || a === '--workloads') {
      args.workloads = parseList(argv[++i], [...WORKLOADS, ...NOT_HERE], 'workload');
    } else if (a === '--impl' || a === '--impls') {
      args.impls = parseList(argv[++i], IMPLS, 'implementation');
    } else if (a === '--quick') {
      args.quick = true;
    } else if (a === '--verbose') {
      verbose = true;
    } else if (a === '--timeout') {
      args.timeout = Number(argv[++i]);
      if (!(args.timeout > 0)) usage(2);
    } else if (a === '-h' || a === '--help') {
      usage(0);
    } else {
      process.stderr.write(`bench.mjs: unknown argument '${a}'\n`);
      usage(2);
    }
  }
  for (const w of args.workloads) {
    if (NOT_HERE.includes(w)) note(`${w} is not run by the Node peers`);
  }
  return args;
}

// The live processes below this one (tinypool-cp's children).
function descendantPids() {
  const pids = new Set([...cpuSnapshot().keys()].map((key) => Number(key.split('/')[0])));
  pids.delete(process.pid);
  return [...pids].filter((pid) => {
    try {
      // The state follows the parenthesised command name; a zombie (Z) is dead, not yet reaped.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
      return false;
    }
  });
}

// SIGKILLs every descendant process (tinypool-cp children) so that none outlives a failed round.
function killDescendants() {
  for (const pid of descendantPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

let failing = false;
function fatal(err) {
  if (failing) return;
  failing = true;
  process.stderr.write(`bench.mjs: ${err instanceof WrongResult ? '' : 'error: '}${err?.stack ?? err}\n`);
  killDescendants();
  process.exit(err instanceof WrongResult ? 3 : 1);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (endianness() !== 'LE') throw new Error('B1 assumes a little-endian host');
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench.mjs: watchdog: the round took more than ${args.timeout} s, giving up\n`);
    killDescendants();
    process.exit(4);
  }, args.timeout * 1000);
  watchdog.unref();
  const idleSeconds = args.quick ? 2 : 10;
  for (const workload of WORKLOADS) {
    if (!args.workloads.includes(workload)) continue;
    for (const impl of PLAN[workload].impls) {
      if (!args.impls.includes(impl)) continue;
      const t0 = now();
      if (workload === 'I1') await i1(impl, idleSeconds);
      else if (workload === 'C1') await c1(impl, args.quick ? 1 : C1_ALTERNATIONS);
      else await PLAN[workload].run(impl);
      note(`${workload} ${impl}: ${secondsSince(t0).toFixed(1)} s`);
    }
  }
  if (livePools.size !== 0) throw new Error(`${livePools.size} pools left undestroyed`);
}

process.on('unhandledRejection', fatal);
process.on('uncaughtException', fatal);
main().then(() => process.exit(0), fatal);
