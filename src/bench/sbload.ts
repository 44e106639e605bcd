import { BenchParseError } from "./errors.js";
import {
  parseJsonObject,
  requireCount,
  requireNonNegativeNumber,
  type JsonObject,
} from "./json-fields.js";

/** `sbload` in stream mode: one-way bulk transfer. */
export interface SbloadStreamResult {
  readonly mode: "stream";
  readonly bytes: number;
  readonly seconds: number;
  readonly bitsPerSecond: number;
}

/**
 * `sbload` in request/response mode. Latencies are exactly as sbload prints
 * them (microseconds); they are NOT converted to sockperf's one-way
 * convention, so check sbload's own definition before comparing the two.
 */
export interface SbloadRrResult {
  readonly mode: "rr";
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly roundTrips: number;
}

/** `sbload` in connect/request/response mode: connection setup rate. */
export interface SbloadCrrResult {
  readonly mode: "crr";
  readonly connectionsPerSecond: number;
  readonly connections: number;
  /** Connections that failed; a non-zero value is reported, not rejected. */
  readonly failures: number;
}

export type SbloadResult = SbloadStreamResult | SbloadRrResult | SbloadCrrResult;
export type SbloadMode = SbloadResult["mode"];
export type SbloadResultOf<M extends SbloadMode> = Extract<SbloadResult, { mode: M }>;

function fail(reason: string): never {
  throw new BenchParseError("sbload", reason);
}

function parseStream(object: JsonObject): SbloadStreamResult {
  const bytes = requireCount("sbload", object, "bytes", "bytes");
  const seconds = requireNonNegativeNumber("sbload", object, "seconds", "seconds");
  const bitsPerSecond = requireNonNegativeNumber("sbload", object, "bitsPerSecond", "bitsPerSecond");
  if (bytes === 0 || seconds === 0) {
    fail(`stream moved ${bytes} bytes in ${seconds} s; nothing was measured`);
  }
  return { mode: "stream", bytes, seconds, bitsPerSecond };
}

function parseRr(object: JsonObject): SbloadRrResult {
  const p50Us = requireNonNegativeNumber("sbload", object, "p50Us", "p50Us");
  const p99Us = requireNonNegativeNumber("sbload", object, "p99Us", "p99Us");
  const p999Us = requireNonNegativeNumber("sbload", object, "p999Us", "p999Us");
  const roundTrips = requireCount("sbload", object, "roundTrips", "roundTrips");
  if (roundTrips === 0) {
    fail("rr completed 0 round trips; nothing was measured");
  }
  if (!(p50Us <= p99Us && p99Us <= p999Us)) {
    fail(`percentiles out of order: p50Us=${p50Us} p99Us=${p99Us} p999Us=${p999Us}`);
  }
  return { mode: "rr", p50Us, p99Us, p999Us, roundTrips };
}

function parseCrr(object: JsonObject): SbloadCrrResult {
  const connectionsPerSecond = requireNonNegativeNumber(
    "sbload",
    object,
    "connectionsPerSecond",
    "connectionsPerSecond",
  );
  const connections = requireCount("sbload", object, "connections", "connections");
  const failures = requireCount("sbload", object, "failures", "failures");
  if (connections === 0) {
    fail("crr completed 0 connections; nothing was measured");
  }
  return { mode: "crr", connectionsPerSecond, connections, failures };
}

/**
 * Parses the single JSON object `build/sbload` prints. Unknown extra fields
 * are ignored; a missing or mistyped required field, an unknown `mode`, an
 * `"error"` key, empty or truncated output, or (when `expectedMode` is given)
 * a different mode all throw BenchParseError.
 */
export function parseSbloadOutput(text: string): SbloadResult;
export function parseSbloadOutput<M extends SbloadMode>(text: string, expectedMode: M): SbloadResultOf<M>;
export function parseSbloadOutput(text: string, expectedMode?: SbloadMode): SbloadResult {
  const object = parseJsonObject("sbload", text);
  const reportedError = object["error"];
  if (reportedError !== undefined) {
    fail(`sbload reported an error: ${typeof reportedError === "string" ? reportedError : JSON.stringify(reportedError)}`);
  }
  const mode = object["mode"];
  if (expectedMode !== undefined && mode !== expectedMode) {
    fail(`expected mode "${expectedMode}", got ${JSON.stringify(mode)}`);
  }
  switch (mode) {
    case "stream":
      return parseStream(object);
    case "rr":
      return parseRr(object);
    case "crr":
      return parseCrr(object);
    default:
      return fail(`missing or unknown mode ${JSON.stringify(mode)}`);
  }
}
