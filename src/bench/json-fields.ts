import { BenchParseError, type BenchOutputSource } from './errors.js';

/** A parsed JSON object (not an array, not null). */
export type JsonObject = Record<string, unknown>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A JSON object from one tool's output, read field by field. Every complaint
 * is a BenchParseError naming the tool and the field's full path
 * (e.g. "end.sum_received.bytes").
 */
export class JsonFields {
  private constructor(
    readonly source: BenchOutputSource,
    private readonly value: JsonObject,
    private readonly path: string,
  ) {}

  /**
   * Parses `text` as exactly one JSON object, which must not carry the
   * tool's own `"error"` key. Empty output, invalid or truncated JSON,
   * non-object JSON and a reported error all throw.
   */
  static parse(source: BenchOutputSource, text: string): JsonFields {
    if (text.trim() === '') {
      throw new BenchParseError(source, 'empty output');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      throw new BenchParseError(source, `invalid or truncated JSON (${detail})`);
    }
    if (!isJsonObject(parsed)) {
      throw new BenchParseError(source, 'expected a JSON object at the top level');
    }
    const reported = parsed['error'];
    if (reported !== undefined) {
      const message = typeof reported === 'string' ? reported : JSON.stringify(reported);
      throw new BenchParseError(source, `${source} reported an error: ${message}`);
    }
    return new JsonFields(source, parsed, '');
  }

  /** `key` as it is, for optional fields read leniently. */
  raw(key: string): unknown {
    return this.value[key];
  }

  private pathOf(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  /** `key` as an object, or throws. */
  object(key: string): JsonFields {
    const value = this.value[key];
    if (!isJsonObject(value)) {
      throw new BenchParseError(this.source, `missing or non-object field ${this.pathOf(key)}`);
    }
    return new JsonFields(this.source, value, this.pathOf(key));
  }

  /** `key` as a finite number >= 0, or throws. */
  number(key: string): number {
    const value = this.value[key];
    const path = this.pathOf(key);
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new BenchParseError(this.source, `missing or non-numeric field ${path}`);
    }
    if (value < 0) {
      throw new BenchParseError(this.source, `negative value ${value} in field ${path}`);
    }
    return value;
  }

  /** `key` as a whole number >= 0, or throws. */
  count(key: string): number {
    const value = this.number(key);
    if (!Number.isInteger(value)) {
      throw new BenchParseError(this.source, `non-integer count ${value} in field ${this.pathOf(key)}`);
    }
    return value;
  }
}
