/** The metrics the workloads report, shared by the same-host rows (workloads.ts), the outside-veth and the nat rows. */
import type { MetricDef } from './workloads.js';

export const THROUGHPUT: MetricDef = {
  key: 'bitsPerSecond',
  name: 'throughput',
  unit: 'bit/s',
  direction: 'higher-is-better',
};

export const LATENCY: readonly MetricDef[] = [
  { key: 'p50Us', name: 'p50 latency', unit: 'us', direction: 'lower-is-better' },
  { key: 'p99Us', name: 'p99 latency', unit: 'us', direction: 'lower-is-better' },
  { key: 'p999Us', name: 'p99.9 latency', unit: 'us', direction: 'lower-is-better' },
];

export const CONNECTION_RATE: MetricDef = {
  key: 'connectionsPerSecond',
  name: 'connection rate',
  unit: 'conn/s',
  direction: 'higher-is-better',
};

/** Round trips per second over one connection (sbload rr). */
export const REQUEST_RATE: MetricDef = {
  key: 'requestsPerSecond',
  name: 'request rate',
  unit: 'req/s',
  direction: 'higher-is-better',
};
