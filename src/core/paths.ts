/** Where the package's built artifacts live, wherever it is run from. */
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

/** The checkout or package root (this file is dist/src/core/paths.js once built). */
export const PACKAGE_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
export const BUILD_DIR = resolve(PACKAGE_ROOT, 'build');
export const DEFAULT_OBJECT = resolve(BUILD_DIR, 'sockbypass.bpf.o');
