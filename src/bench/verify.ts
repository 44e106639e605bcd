/**
 * Is a run what it claims to be? Pure checks on what was observed around one
 * run; every failed check becomes part of the reason the run is discarded
 * (never averaged in, always reported).
 *
 *   - An ON run must have had the bypass loaded into the bench's own cgroup,
 *     and its counters must have moved for the workload's connections: the
 *     sockets entered the map, sk_msg handled (nearly) all the bytes the tool
 *     reports, most of them went socket to socket, and (almost) no send
 *     missed its peer.
 *
 *     Two ways a send can take TCP with the bypass on are told apart (data
 *     plane v2): a miss (peer not in the map: redirectMisses/bytesPassed, and
 *     the socket stays on TCP for good) means the connection was not
 *     accelerated, so the run is discarded beyond a handful; flow control
 *     (the receiver's redirected queue over its limit: flowMessages/flowBytes)
 *     is the bypass working as designed, so those bytes count as handled
 *     and the run is kept whatever its redirected share: discarding it would
 *     hide what flow control costs. The report shows the redirected share of
 *     every kept ON run (a stricter minRedirectedFraction can be asked for).
 *   - The outside-veth rows invert that (issue 11, "do no harm"): their
 *     peer is a server outside the cgroup, so an ON run must show that
 *     NOTHING joined the sockhash (no socket inserted, no pair joined, no
 *     send seen by sk_msg) and that the data plane saw the connections and
 *     left them alone for having no peer here (left_no_peer). A row whose
 *     ON run inserted anything is refused, as a same-host row whose ON run
 *     was not accelerated is.
 *   - The nat rows (issue 12) go through a proxy or a DNAT: an ON run must
 *     show, besides the above, a pair joined for every connection hop
 *     (app→proxy and proxy→server are two) and no end left alone, the two
 *     ends of each hop having found each other through the NAT.
 *   - An OFF run must have had nothing loaded: no pins in the bench's pin
 *     folder before or after, and no sockbypass sock_ops program effective on
 *     the bench cgroup (attached there or to an ancestor, e.g. by someone
 *     else's `sockbypass load` at the cgroup root).
 */
import type { Counters } from '../core/layout.js';

/** What an accelerated run of a workload must show in the counters. */
export interface OnExpectation {
  /** Sockets the workload's connections put in the map when accelerated (two per connection). */
  readonly minSockets: number;
  /** Payload bytes the tool reports it moved (a lower bound of what was sent). */
  readonly payloadBytes: number;
}

/**
 * What an ON run of a row whose peer the bypass cannot accelerate (a server
 * outside the cgroup) must show: every connection left alone.
 */
export interface LeftAloneExpectation {
  readonly leftAlone: true;
  /** Client connections the workload opened (each one is counted left_no_peer, at its client end). */
  readonly minConnections: number;
}

/**
 * What an ON run through NAT on this host (the nat rows, issue 12) must show:
 * accelerated as an OnExpectation, and every hop of every connection paired
 * (the app→proxy hop and the proxy→server hop are separate connections),
 * no end left alone.
 */
export interface PairedExpectation extends OnExpectation {
  /** Connection hops the workload made: each must have paired. */
  readonly minPairs: number;
}

/** What the counters of an ON run must show. */
export type RunExpectation = OnExpectation | PairedExpectation | LeftAloneExpectation;

export function expectsLeftAlone(e: RunExpectation): e is LeftAloneExpectation {
  return 'leftAlone' in e && e.leftAlone;
}

export function expectsPairs(e: RunExpectation): e is PairedExpectation {
  return 'minPairs' in e;
}

export interface VerifyThresholds {
  /** Bytes sk_msg handled (redirected + sent by TCP under flow control): at least this fraction of the tool's bytes. */
  readonly minHandledFraction: number;
  /** Bytes redirected socket to socket: at least this fraction of the tool's bytes ("most"). */
  readonly minRedirectedFraction: number;
  /** Sends that missed their peer (redirectMisses, bytesPassed): at most this fraction of all sends and of all bytes seen by sk_msg. */
  readonly maxMissFraction: number;
}

/**
 * Handled >= 90% of the tool's bytes: the counters see every send, the tool
 * reports what was received inside its timed window, so an accelerated run is
 * normally at or above 100%. Redirected: no minimum by default, since flow
 * control sending bytes by TCP is the product's behaviour, to be measured,
 * not filtered out. Misses: a peer is missing from the
 * map only in the instant between the two ends' "established" callbacks, so
 * an accelerated connection sees none or a handful; the limit allows a few
 * such first-send races over all of a crr run's connections (how many a run
 * opens: docs/benchmarks.md, Workloads) and nothing more.
 */
export const DEFAULT_THRESHOLDS: VerifyThresholds = {
  minHandledFraction: 0.9,
  minRedirectedFraction: 0,
  maxMissFraction: 0.001,
};

export interface OnObservation {
  /** `status()` said loaded when the run started. */
  readonly loaded: boolean;
  /** The cgroup `status()` reported the programs attached to. */
  readonly attachedCgroup: string | undefined;
  /** The bench's own cgroup. */
  readonly benchCgroup: string;
  /** Counters after the run minus counters before it. */
  readonly delta: Counters;
}

export interface OffObservation {
  /** `status()` of the bench pin folder said loaded before the run. */
  readonly loadedBefore: boolean;
  /** ... or after it. */
  readonly loadedAfter: boolean;
  /**
   * sockbypass sock_ops programs effective on the bench cgroup (by bpftool),
   * e.g. "id 12 sockbypass_sockops"; null when they could not be listed.
   */
  readonly effectivePrograms: readonly string[] | null;
}

/** Field-wise after - before. */
export function countersDelta(before: Counters, after: Counters): Counters {
  const delta = { ...after };
  for (const key of Object.keys(after) as Array<keyof Counters>) delta[key] = after[key] - before[key];
  return delta;
}

function percent(fraction: number): string {
  return `${Number((fraction * 100).toFixed(2))}%`;
}

/** Reasons an ON run is not what it claims; empty when it is. */
export function verifyOnRun(
  observation: OnObservation,
  expectation: RunExpectation,
  thresholds: VerifyThresholds = DEFAULT_THRESHOLDS,
): string[] {
  if (!observation.loaded) {
    return ['bypass on claimed, but sockbypass was not loaded when the run started'];
  }
  const reasons: string[] = [];
  if (observation.attachedCgroup !== observation.benchCgroup) {
    reasons.push(
      `sockbypass was attached to ${observation.attachedCgroup ?? 'an unknown cgroup'}, not the bench cgroup ${observation.benchCgroup}`,
    );
  }
  const counterReasons = expectsLeftAlone(expectation)
    ? leftAloneReasons(observation.delta, expectation)
    : [
        ...acceleratedReasons(observation.delta, expectation, thresholds),
        ...(expectsPairs(expectation) ? pairedReasons(observation.delta, expectation) : []),
      ];
  return [...reasons, ...counterReasons];
}

/** Pairing through NAT: a pair joined per connection hop, and no end counted as left alone. */
export function pairedReasons(d: Counters, expectation: PairedExpectation): string[] {
  const reasons: string[] = [];
  const wanted = Math.max(1, expectation.minPairs);
  if (d.pairsJoined < wanted) {
    reasons.push(`only ${d.pairsJoined} connections paired; the workload's connection hops need at least ${wanted}`);
  }
  const alone = d.leftNoPeer + d.leftPeerDeclined + d.pairUnjoined;
  if (alone > 0) {
    reasons.push(
      `${alone} ends were left alone (no peer here ${d.leftNoPeer}, peer declined ${d.leftPeerDeclined}, unjoined ${d.pairUnjoined}): some hop did not pair through the NAT`,
    );
  }
  return reasons;
}

/** The counters of an ON run whose connections all had a peer the bypass cannot accelerate. */
export function leftAloneReasons(d: Counters, expectation: LeftAloneExpectation): string[] {
  const reasons: string[] = [];
  if (d.socketsInserted > 0 || d.pairsJoined > 0) {
    reasons.push(
      `${d.socketsInserted} sockets joined the sockhash (${d.pairsJoined} pairs), though the peer is outside the cgroup`,
    );
  }
  const insertTries = d.insertMapFull + d.insertExists + d.insertOther;
  if (insertTries > 0) {
    reasons.push(
      `${insertTries} sockets tried to join the sockhash (map full ${d.insertMapFull}, exists ${d.insertExists}, other ${d.insertOther}), though the peer is outside the cgroup`,
    );
  }
  const sends = d.messagesRedirected + d.flowMessages + d.redirectMisses;
  if (sends > 0) {
    reasons.push(
      `sk_msg saw ${sends} sends (redirected ${d.messagesRedirected}, flow control ${d.flowMessages}, missed ${d.redirectMisses}): some socket was in the sockhash`,
    );
  }
  if (d.policySkipped > 0) {
    reasons.push(`${d.policySkipped} sockets were skipped by policy: this row measures pairing, not the policy`);
  }
  const wanted = Math.max(1, expectation.minConnections);
  if (d.leftNoPeer < wanted) {
    reasons.push(
      `only ${d.leftNoPeer} sockets were left alone for having no peer here (left_no_peer); the workload opened at least ${wanted} connections`,
    );
  }
  return reasons;
}

/** The counters of an ON run whose connections must have been accelerated. */
function acceleratedReasons(d: Counters, expectation: OnExpectation, thresholds: VerifyThresholds): string[] {
  const reasons: string[] = [];
  // Sockets the short-connection rule left on TCP were decided by the bypass, as flow control's are.
  const decided = d.socketsInserted + d.shortSkipped;
  if (decided < expectation.minSockets) {
    const short = d.shortSkipped > 0 ? ` (${d.shortSkipped} left on TCP as short)` : '';
    reasons.push(
      `only ${d.socketsInserted} sockets were accelerated${short}; the workload's connections need at least ${expectation.minSockets}`,
    );
  }
  const insertFailures = d.insertMapFull + d.insertExists + d.insertOther;
  if (insertFailures > 0) {
    reasons.push(
      `${insertFailures} sockets failed to enter the map (map full ${d.insertMapFull}, exists ${d.insertExists}, other ${d.insertOther})`,
    );
  }
  if (d.policySkipped > 0) {
    reasons.push(`${d.policySkipped} sockets were skipped by policy`);
  }
  // sk_msg sees only the accelerated sockets' bytes: expect their share of the payload.
  const tool =
    decided > 0 ? Math.round((expectation.payloadBytes * d.socketsInserted) / decided) : expectation.payloadBytes;
  const share = (bytes: number) => (tool > 0 ? ` (${percent(bytes / tool)})` : '');
  const handled = d.bytesRedirected + d.flowBytes;
  // A small-write sender that left the sockhash sends its later bytes by plain TCP, which sk_msg never
  // sees: the bypass decided them as it decides flow control's, so the shares cannot be checked.
  if (d.socketsLeft === 0 && handled < tool * thresholds.minHandledFraction) {
    reasons.push(
      `${handled} bytes went through the bypass${share(handled)} (redirected ${d.bytesRedirected}, by TCP under flow control ${d.flowBytes}), less than ${percent(thresholds.minHandledFraction)} of the ${tool} bytes the tool moved`,
    );
  } else if (d.socketsLeft === 0 && d.bytesRedirected < tool * thresholds.minRedirectedFraction) {
    reasons.push(
      `only ${d.bytesRedirected} bytes were redirected socket to socket${share(d.bytesRedirected)}, less than ${percent(thresholds.minRedirectedFraction)} of the ${tool} bytes the tool moved; flow control sent ${d.flowBytes} bytes by TCP`,
    );
  }
  const sends = d.messagesRedirected + d.flowMessages + d.redirectMisses;
  const sentBytes = d.bytesRedirected + d.flowBytes + d.bytesPassed;
  if (d.redirectMisses > thresholds.maxMissFraction * sends || d.bytesPassed > thresholds.maxMissFraction * sentBytes) {
    reasons.push(
      `${d.redirectMisses} of ${sends} sends (${d.bytesPassed} of ${sentBytes} bytes) missed their peer and went by TCP (more than ${percent(thresholds.maxMissFraction)})`,
    );
  }
  return reasons;
}

/** How an ON run's sends went, as fractions of the bytes sk_msg saw; null when it saw none. */
export function bytesShares(d: Counters): { redirected: number; flowControlTcp: number; missedTcp: number } | null {
  const total = d.bytesRedirected + d.flowBytes + d.bytesPassed;
  if (total <= 0) return null;
  return {
    redirected: d.bytesRedirected / total,
    flowControlTcp: d.flowBytes / total,
    missedTcp: d.bytesPassed / total,
  };
}

/** Reasons an OFF run is not what it claims; empty when it is. */
export function verifyOffRun(observation: OffObservation): string[] {
  const reasons: string[] = [];
  if (observation.loadedBefore)
    reasons.push('bypass off claimed, but sockbypass was loaded in the bench pin folder when the run started');
  if (observation.loadedAfter)
    reasons.push('bypass off claimed, but sockbypass was loaded in the bench pin folder when the run ended');
  if (observation.effectivePrograms !== null && observation.effectivePrograms.length > 0) {
    reasons.push(
      `bypass off claimed, but sockbypass sock_ops programs are effective on the bench cgroup: ${observation.effectivePrograms.join(', ')}`,
    );
  }
  return reasons;
}
