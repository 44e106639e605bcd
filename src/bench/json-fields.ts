import { BenchParseError, type BenchOutputSource } from "./errors.js";

/** A parsed JSON object (not an array, not null). */
export type JsonObject = Record<string, unknown>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses `text` as exactly one JSON object. Empty output, invalid or truncated
 * JSON, and non-object JSON all become a BenchParseError.
 */
export function parseJsonObject(source: BenchOutputSource, text: string): JsonObject {
  if (text.trim() === "") {
    throw new BenchParseError(source, "empty output");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new BenchParseError(source, `invalid or truncated JSON (${detail})`);
  }
  if (!isJsonObject(parsed)) {
    throw new BenchParseError(source, "expected a JSON object at the top level");
  }
  return parsed;
}

/** Reads `object[key]` as an object, or throws naming `path`. */
export function requireObject(
  source: BenchOutputSource,
  object: JsonObject,
  key: string,
  path: string,
): JsonObject {
  const value = object[key];
  if (!isJsonObject(value)) {
    throw new BenchParseError(source, `missing or non-object field ${path}`);
  }
  return value;
}

/** Reads `object[key]` as a finite number >= 0, or throws naming `path`. */
export function requireNonNegativeNumber(
  source: BenchOutputSource,
  object: JsonObject,
  key: string,
  path: string,
): number {
  const value = object[key];
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new BenchParseError(source, `missing or non-numeric field ${path}`);
  }
  if (value < 0) {
    throw new BenchParseError(source, `negative value ${value} in field ${path}`);
  }
  return value;
}

/** Reads `object[key]` as a non-negative integer, or throws naming `path`. */
export function requireCount(
  source: BenchOutputSource,
  object: JsonObject,
  key: string,
  path: string,
): number {
  const value = requireNonNegativeNumber(source, object, key, path);
  if (!Number.isInteger(value)) {
    throw new BenchParseError(source, `non-integer count ${value} in field ${path}`);
  }
  return value;
}
