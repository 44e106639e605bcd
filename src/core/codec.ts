/**
 * A tiny codec for C structs laid out with natural alignment (what clang
 * -target bpf and the host compiler produce for the types in bpf/*.h).
 * Offsets and size are derived from the field list, so a size is never
 * written down twice; test/layout.test.ts checks them against BTF.
 */
export type Scalar = 'u8' | 'u16' | 'u32' | 's32' | 'u64';
export type FieldType = Scalar | { array: Scalar; length: number } | { chars: number } | StructCodec<object>;

export interface FieldSpec {
  /** Name in TypeScript. */
  name: string;
  /** Name in the C struct, checked against BTF. */
  c: string;
  type: FieldType;
}

const SCALAR_SIZE: Record<Scalar, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };

function sizeOf(t: FieldType): number {
  if (typeof t === 'string') return SCALAR_SIZE[t];
  if (t instanceof StructCodec) return t.size;
  if ('chars' in t) return t.chars;
  return SCALAR_SIZE[t.array] * t.length;
}

function alignOf(t: FieldType): number {
  if (typeof t === 'string') return SCALAR_SIZE[t];
  if (t instanceof StructCodec) return t.align;
  if ('chars' in t) return 1;
  return SCALAR_SIZE[t.array];
}

function readScalar(buf: Buffer, off: number, t: Scalar): number | bigint {
  switch (t) {
    case 'u8':
      return buf.readUInt8(off);
    case 'u16':
      return buf.readUInt16LE(off);
    case 'u32':
      return buf.readUInt32LE(off);
    case 's32':
      return buf.readInt32LE(off);
    case 'u64':
      return buf.readBigUInt64LE(off);
  }
}

function writeScalar(buf: Buffer, off: number, t: Scalar, v: number | bigint): void {
  switch (t) {
    case 'u8':
      buf.writeUInt8(Number(v), off);
      return;
    case 'u16':
      buf.writeUInt16LE(Number(v), off);
      return;
    case 'u32':
      buf.writeUInt32LE(Number(v), off);
      return;
    case 's32':
      buf.writeInt32LE(Number(v), off);
      return;
    case 'u64':
      buf.writeBigUInt64LE(BigInt(v), off);
      return;
  }
}

export interface FieldLayout extends FieldSpec {
  offset: number;
  size: number;
}

/**
 * Raw decode: scalars as number (u64 as bigint), arrays as Buffer (their
 * bytes, in memory order), chars as string up to the first NUL, nested
 * structs as objects. Layout-level codecs (src/layout.ts) convert further.
 */
export class StructCodec<T extends object> {
  readonly fields: readonly FieldLayout[];
  readonly size: number;
  readonly align: number;

  constructor(
    readonly cName: string,
    specs: readonly FieldSpec[],
  ) {
    let off = 0;
    let align = 1;
    const fields: FieldLayout[] = [];
    for (const spec of specs) {
      const a = alignOf(spec.type);
      align = Math.max(align, a);
      off = Math.ceil(off / a) * a;
      const size = sizeOf(spec.type);
      fields.push({ ...spec, offset: off, size });
      off += size;
    }
    this.fields = fields;
    this.align = align;
    this.size = Math.ceil(off / align) * align;
  }

  decode(buf: Buffer, base = 0): T {
    if (buf.length - base < this.size) {
      throw new RangeError(`${this.cName}: need ${this.size} bytes, have ${buf.length - base}`);
    }
    const out: Record<string, unknown> = {};
    for (const f of this.fields) {
      const off = base + f.offset;
      const t = f.type;
      if (typeof t === 'string') out[f.name] = readScalar(buf, off, t);
      else if (t instanceof StructCodec) out[f.name] = t.decode(buf, off);
      else if ('chars' in t) {
        const s = buf.subarray(off, off + t.chars);
        const end = s.indexOf(0);
        out[f.name] = s.subarray(0, end < 0 ? t.chars : end).toString('utf8');
      } else out[f.name] = Buffer.from(buf.subarray(off, off + f.size));
    }
    return out as T;
  }

  encode(value: T, buf: Buffer = Buffer.alloc(this.size), base = 0): Buffer {
    const v = value as Record<string, unknown>;
    for (const f of this.fields) {
      const off = base + f.offset;
      const t = f.type;
      const x = v[f.name];
      if (x === undefined) continue;
      if (typeof t === 'string') writeScalar(buf, off, t, x as number | bigint);
      else if (t instanceof StructCodec) t.encode(x as object, buf, off);
      else if ('chars' in t) buf.write(String(x).slice(0, t.chars - 1), off, 'utf8');
      else (x as Buffer).copy(buf, off, 0, f.size);
    }
    return buf;
  }
}
