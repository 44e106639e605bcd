/**
 * The one table of what an application can still tell apart with sockbypass
 * loaded (docs/conformance.md explains each row from the kernel's source).
 * test/conformance.test.ts holds every row to exactly these fields and values:
 * a fix makes its row fail ("the difference is gone"), and so does any new or
 * changed difference in a listed case.
 */
import type { Value } from './conform.js';

export interface DocumentedDifference {
  case: string;
  /** Every field that differs, with what plain TCP and the bypass observe. */
  fields: Record<string, { plain: Value | undefined; bypass: Value | undefined }>;
  what: string;
  /** Why the kernel does it, in a line; docs/conformance.md has the detail. */
  why: string;
  fixable: string;
}

export const DOCUMENTED_DIFFERENCES: readonly DocumentedDifference[] = [];
