/** Read struct and enum layouts from an object's BTF, with bpftool as an independent witness. */
import { execFileSync } from 'node:child_process';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: Array<{ name: string; type_id: number; bits_offset: number }>;
  values?: Array<{ name: string; val: number }>;
}

export class Btf {
  private readonly byId = new Map<number, BtfType>();
  constructor(objectPath: string) {
    const json = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', objectPath]).toString()) as {
      types: BtfType[];
    };
    for (const t of json.types) this.byId.set(t.id, t);
  }

  private find(kind: string, name: string): BtfType {
    for (const t of this.byId.values()) if (t.kind === kind && t.name === name) return t;
    throw new Error(`no ${kind} ${name} in BTF`);
  }

  sizeOf(id: number): number {
    const t = this.byId.get(id);
    if (!t) throw new Error(`no BTF type ${id}`);
    switch (t.kind) {
      case 'TYPEDEF':
      case 'CONST':
      case 'VOLATILE':
        return this.sizeOf(t.type_id as number);
      case 'ARRAY':
        return this.sizeOf(t.type_id as number) * (t.nr_elems as number);
      default:
        if (t.size === undefined) throw new Error(`BTF type ${id} (${t.kind}) has no size`);
        return t.size;
    }
  }

  struct(name: string): { size: number; members: Array<{ name: string; offset: number; size: number }> } {
    const t = this.find('STRUCT', name);
    return {
      size: t.size as number,
      members: (t.members ?? []).map((m) => ({
        name: m.name,
        offset: m.bits_offset / 8,
        size: this.sizeOf(m.type_id),
      })),
    };
  }

  enumValues(name: string): Record<string, number> {
    const t = this.find('ENUM', name);
    return Object.fromEntries((t.values ?? []).map((v) => [v.name, v.val]));
  }
}
