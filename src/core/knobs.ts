/**
 * The data plane's numeric policy knobs: one row per field of `struct settings`
 * after its header (bpf/sockbypass.h), in the C order, each a __u32. The
 * settings codec (layout.ts), Policy and its validation and wording
 * (policy.ts), and the CLI flags and their usage (cli/parse.ts: load, policy,
 * run, bench) all come from this table; test/layout.test.ts checks the codec,
 * and so the C names and order, against the object's BTF.
 *
 * A new knob: the field in `struct settings`, the data plane's use of it, and
 * one row here.
 */

export interface KnobSpec {
  /** Field of Policy (and of Settings). */
  field: string;
  /** CLI flag, without the dashes. */
  flag: string;
  /** Field of struct settings. */
  c: string;
  unit: 'bytes' | 'messages';
  /** What a policy without the field gets. */
  default: number;
  /** Allowed values are 0..max; what 0 means is `zero`. */
  max: number;
  zero: string;
  /** What the flag does, for usage; the default and what 0 means are added. */
  help: string;
  /** The knob in a policy's one-line wording (formatPolicy); undefined when another knob's phrase says it. */
  describe(value: number, knobs: Readonly<Record<string, number>>): string | undefined;
}

const I32_MAX = 2 ** 31 - 1;

export const KNOBS = [
  {
    field: 'queueLimit',
    flag: 'queue-limit',
    c: 'queue_limit',
    unit: 'bytes',
    // What TCP would let the receiver hold (tcp_rmem[2]) by default: flow control comes back once the
    // receiver catches up (docs/architecture.md), so no larger bound is needed. It can only lower
    // that bound; a receiver with SO_RCVBUF set is always held to its own.
    default: 0,
    max: I32_MAX,
    zero: 'tcp_rmem[2]',
    help: 'lowers the bytes a receiver without its own SO_RCVBUF may have queued before its sender goes by TCP until it catches up',
    describe: (v) => `queue limit the receiver's SO_RCVBUF if set, else ${v ? `${v} bytes` : 'tcp_rmem[2]'}`,
  },
  {
    field: 'smallWrite',
    flag: 'small-write',
    c: 'small_write',
    unit: 'bytes',
    // TCP coalesces a stream of tiny writes better than the redirect carries them (each redirected
    // message locks the receiving socket and wakes its reader: docs/benchmarks.md, "Where the time
    // goes"). The data plane judges a socket by the mean of all its writes, so a mix of mostly tiny writes
    // with rare huge ones stays redirected, and a ping-pong never builds the backlog. A sender whose peer
    // never redirected to it then leaves the sockhash (plain TCP, no tcp_bpf on either path); 16 KiB
    // writes gain from the redirect, so the default stays well under them.
    default: 4096,
    max: I32_MAX,
    zero: 'off',
    help:
      'a sender whose writes so far average under this many bytes goes by TCP (until its receiver catches up) once more than ' +
      '--small-backlog bytes wait at its receiver (and leaves the sockhash if its peer never redirected to it)',
    describe: (v, k) =>
      `small-write rule ${v === 0 ? 'off' : `senders whose writes average under ${v} B go by TCP once over ${k.smallBacklog} B are queued`}`,
  },
  {
    field: 'smallBacklog',
    flag: 'small-backlog',
    c: 'small_backlog',
    unit: 'bytes',
    default: 65536,
    max: I32_MAX,
    zero: 'any backlog',
    help: 'the receiver backlog in bytes over which --small-write applies',
    describe: () => undefined,
  },
  {
    field: 'shortMessages',
    flag: 'short-messages',
    c: 'short_messages',
    unit: 'messages',
    // Joining the sockhash costs each socket a psock (allocated, its proto switched, freed through RCU),
    // which connect, one small request, one small response, close never earns back (docs/benchmarks.md,
    // "Connection rate"); under 2 messages per socket on average is that pattern.
    default: 2,
    // The data plane caps each socket's sample at 1024 messages (SERVICE_SAMPLE_MAX): a higher threshold
    // would call every service short.
    max: 1024,
    zero: 'off',
    help:
      'new connections to a service (server address and port) whose recent sockets sent under this many ' +
      'messages each on average stay on TCP',
    describe: (v) =>
      `short connections: ${v === 0 ? 'off' : `services whose sockets sent under ${v} messages each on average stay on TCP`}`,
  },
] as const satisfies readonly KnobSpec[];

export type KnobField = (typeof KNOBS)[number]['field'];
export type Knobs = Record<KnobField, number>;

/** Each knob's default. */
export function defaultKnobs(): Knobs {
  return Object.fromEntries(KNOBS.map((k) => [k.field, k.default])) as Knobs;
}

/** The problem with a knob's value, or undefined when it is allowed. */
export function knobProblem(knob: KnobSpec, value: number): string | undefined {
  if (Number.isInteger(value) && value >= 0 && value <= knob.max) return undefined;
  return `bad ${knob.flag.replaceAll('-', ' ')} ${value}: want 0..${knob.max} ${knob.unit}`;
}
