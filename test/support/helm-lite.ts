/**
 * Renders the sockbypass chart without the helm binary (not in Debian 12): the subset of Go
 * templates its templates use and nothing more: {{ .Values.a.b }}, $ and $var paths, "strings",
 * numbers, pipelines into quote / toYaml / nindent N, (lookup ...).items, if / range $v := / end,
 * and {{- -}} whitespace trimming. Anything else throws, so a template using more fails the test.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'out'; expr: string }
  | { kind: 'if'; expr: string; body: Node[] }
  | { kind: 'range'; name: string; expr: string; body: Node[] };

export interface RenderContext {
  Values: unknown;
  Release: { Name: string; Namespace: string };
  Chart: Record<string, unknown>;
  /** What lookup returns (helm template gets {} offline). */
  lookup?: (apiVersion: string, kind: string, namespace: string, name: string) => unknown;
}

function tokenize(src: string): Array<{ text: string } | { action: string }> {
  const out: Array<{ text: string } | { action: string }> = [];
  const re = /\{\{(-?)\s*([\s\S]*?)\s*(-?)\}\}/g;
  let last = 0;
  let trimNext = false;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    let text = src.slice(last, m.index);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (m[1]) text = text.replace(/\s+$/, '');
    out.push({ text }, { action: m[2] as string });
    trimNext = m[3] === '-';
    last = re.lastIndex;
  }
  let tail = src.slice(last);
  if (trimNext) tail = tail.replace(/^\s+/, '');
  out.push({ text: tail });
  return out;
}

function parseNodes(tokens: Array<{ text: string } | { action: string }>): Node[] {
  let i = 0;
  const block = (): Node[] => {
    const nodes: Node[] = [];
    while (i < tokens.length) {
      const t = tokens[i++] as { text: string } | { action: string };
      if ('text' in t) {
        if (t.text) nodes.push({ kind: 'text', text: t.text });
        continue;
      }
      const a = t.action;
      if (a === 'end') return nodes;
      let m: RegExpExecArray | null;
      if ((m = /^if\s+(.+)$/.exec(a))) nodes.push({ kind: 'if', expr: m[1] as string, body: block() });
      else if ((m = /^range\s+\$(\w+)\s*:=\s*(.+)$/.exec(a)))
        nodes.push({ kind: 'range', name: m[1] as string, expr: m[2] as string, body: block() });
      else if (/^(else|with|define|template|include|block)\b/.test(a))
        throw new Error(`helm-lite: unsupported action {{ ${a} }}`);
      else nodes.push({ kind: 'out', expr: a });
    }
    return nodes;
  };
  return block();
}

function path(value: unknown, fields: string): unknown {
  let v = value;
  for (const f of fields.split('.').filter(Boolean))
    v = v === null || v === undefined ? undefined : (v as Record<string, unknown>)[f];
  return v;
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

/** Split on a separator outside "quotes" and (parens). */
function splitTop(s: string, sep: RegExp): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && ch === '(') depth++;
    if (!quoted && ch === ')') depth--;
    if (!quoted && depth === 0 && sep.test(ch)) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter(Boolean);
}

class Renderer {
  constructor(private readonly ctx: RenderContext) {}

  term(t: string, dot: unknown, vars: Record<string, unknown>): unknown {
    let m: RegExpExecArray | null;
    if ((m = /^\(([\s\S]*)\)((?:\.\w+)*)$/.exec(t)))
      return path(this.pipeline(m[1] as string, dot, vars), m[2] as string);
    if ((m = /^"([^"]*)"$/.exec(t))) return m[1];
    if (/^\d+$/.test(t)) return Number(t);
    if ((m = /^\$(\w*)((?:\.\w+)*)$/.exec(t))) {
      const base = m[1] ? vars[m[1]] : this.ctx;
      if (m[1] && !(m[1] in vars)) throw new Error(`helm-lite: undefined variable $${m[1]}`);
      return path(base, m[2] as string);
    }
    if ((m = /^((?:\.\w+)+)$/.exec(t))) return path(dot, m[1] as string);
    throw new Error(`helm-lite: unsupported term ${t}`);
  }

  call(words: string[], dot: unknown, vars: Record<string, unknown>, piped?: { value: unknown }): unknown {
    const [head, ...rest] = words;
    const args = rest.map((w) => this.term(w, dot, vars));
    if (piped) args.push(piped.value);
    switch (head) {
      case 'quote':
        return JSON.stringify(String(args[0] ?? ''));
      case 'toYaml':
        return stringify(args[0]).replace(/\n$/, '');
      case 'nindent': {
        const pad = ' '.repeat(Number(args[0]));
        return `\n${String(args[1])
          .split('\n')
          .map((l) => pad + l)
          .join('\n')}`;
      }
      case 'lookup':
        return this.ctx.lookup ? this.ctx.lookup(...(args as [string, string, string, string])) : {};
      default:
        if (words.length === 1 && !piped) return this.term(head as string, dot, vars);
        throw new Error(`helm-lite: unsupported function ${head}`);
    }
  }

  pipeline(expr: string, dot: unknown, vars: Record<string, unknown>): unknown {
    const stages = splitTop(expr, /\|/);
    let value: { value: unknown } | undefined;
    for (const stage of stages) value = { value: this.call(splitTop(stage, /\s/), dot, vars, value) };
    return value?.value;
  }

  nodes(nodes: Node[], dot: unknown, vars: Record<string, unknown>): string {
    return nodes
      .map((n) => {
        if (n.kind === 'text') return n.text;
        if (n.kind === 'out') {
          const v = this.pipeline(n.expr, dot, vars);
          return v === undefined || v === null ? '' : String(v);
        }
        const v = this.pipeline(n.expr, dot, vars);
        if (n.kind === 'if') return truthy(v) ? this.nodes(n.body, dot, vars) : '';
        return (Array.isArray(v) ? v : []).map((item) => this.nodes(n.body, dot, { ...vars, [n.name]: item })).join('');
      })
      .join('');
  }
}

/** Deep merge of value overrides onto defaults (maps merge, everything else replaces). */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (
    base &&
    over &&
    typeof base === 'object' &&
    typeof over === 'object' &&
    !Array.isArray(base) &&
    !Array.isArray(over)
  ) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(over)) out[k] = mergeValues(out[k], v);
    return out;
  }
  return over;
}

/** Render every template of the chart in `chartDir`: the YAML documents, parsed, nulls dropped. */
export function renderChart(
  chartDir: string,
  options: { values?: unknown; release?: { name: string; namespace: string }; lookup?: RenderContext['lookup'] } = {},
): unknown[] {
  const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const ctx: RenderContext = {
    Values: mergeValues(parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')), options.values),
    Release: { Name: options.release?.name ?? 'sockbypass', Namespace: options.release?.namespace ?? 'kube-system' },
    Chart: { ...chart, AppVersion: chart.appVersion, Version: chart.version, Name: chart.name },
    ...(options.lookup ? { lookup: options.lookup } : {}),
  };
  const renderer = new Renderer(ctx);
  const docs: unknown[] = [];
  const dir = join(chartDir, 'templates');
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const text = renderer.nodes(parseNodes(tokenize(readFileSync(join(dir, file), 'utf8'))), ctx, {});
    for (const doc of text.split(/^---$/m)) {
      const obj: unknown = parse(doc);
      if (obj !== null && obj !== undefined) docs.push(obj);
    }
  }
  return docs;
}
