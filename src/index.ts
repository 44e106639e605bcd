/** sockbypass's library API. The CLI (src/cli/) is a thin layer over this. */
export { load, DEFAULT_MAX_ENTRIES, type LoadOptions, type LoadResult } from './core/load.js';
export { unload, type UnloadOptions, type UnloadResult } from './core/unload.js';
export { status, type Status, type ProgramStatus } from './core/status.js';
export {
  COUNTERS,
  readCounters,
  sumCounters,
  type Counters,
  type CounterName,
  type CounterSpec,
} from './core/counters.js';
export { KNOBS, type Knobs, type KnobField, type KnobSpec } from './core/knobs.js';
export { PinnedState, withPinnedState } from './core/state.js';
export { ALLOW_ALL, readPolicy, writePolicy, formatPolicy, validatePolicy, type Policy } from './core/policy.js';
export { listSockets, pairSockets, type AcceleratedSocket, type SocketPair } from './core/sockhash.js';
export {
  connections,
  describeSockets,
  type ConnectionDetails,
  type SocketDetails,
  type NetnsRef,
} from './observe/connections.js';
export {
  watchEvents,
  eventDate,
  EventResolver,
  type WatchEventsOptions,
  type EventWatch,
  type EventContext,
} from './observe/events.js';
export {
  listNetns,
  socketOwners,
  diagSockets,
  type NetnsEntry,
  type SocketOwner,
  type DiagSocket,
} from './os/sockdiag.js';
export {
  startAgent,
  createMetrics,
  DEFAULT_METRICS_ADDR,
  type RunOptions,
  type Agent,
  type AgentStop,
} from './observe/run.js';
export {
  decodeSocketKey,
  encodeSocketKey,
  samePair,
  decodeSockEvent,
  type SocketKey,
  type SockEvent,
  type EventType,
} from './core/layout.js';
export { formatAddress, formatEndpoint, parseAddress, parseRange } from './core/address.js';
export { cgroup2Mount, resolveCgroup, createCgroup, removeCgroup, moveToCgroup } from './os/cgroup.js';
export { DEFAULT_PIN_DIR, ensureBpffs } from './os/bpffs.js';
export { SockbypassError, EXIT, type ExitCode } from './errors.js';
export { DEFAULT_OBJECT, PACKAGE_ROOT } from './core/paths.js';
export * as libbpf from './libbpf/index.js';
export { runBench, type BenchOptions } from './bench/runner.js';
export { planBench } from './bench/plan.js';
export { summarizeRuns } from './bench/assemble.js';
export { renderBenchReport, renderBenchSvg, writeBenchOutputs } from './bench/render.js';
export type { BenchReport, RunRecord } from './bench/report.js';
export { verifyOnRun, verifyOffRun, countersDelta, type OnExpectation } from './bench/verify.js';
export { WORKLOADS, selectWorkloads } from './bench/workloads.js';
export { runDemo, type DemoOptions, type DemoResult } from './demo.js';
