import { DEFAULT_PIN_DIR } from '../os/bpffs.js';
import { connections, type ConnectionDetails, type NetnsRef, type SocketDetails } from '../observe/connections.js';
import { renderTextTable, type TextColumn } from '../text-table.js';
import { COMMON, str, toJson, type Command } from './command.js';

function familyText(s: SocketDetails): string {
  if (s.family === 'unknown') return '?';
  return s.mapped ? 'inet6 (v4-mapped)' : s.family;
}

function processText(s: SocketDetails): string {
  if (s.processes.length === 0) return '-';
  return s.processes.map((p) => `${p.command}/${p.pid} fd ${p.fd}`).join(', ');
}

export function netnsLabel(ns: NetnsRef): string {
  const name = ns.name ?? (ns.current ? 'current' : undefined);
  return name ? `${ns.cookie} (${name})` : String(ns.cookie);
}

const COLUMNS: TextColumn[] = [
  { header: 'CONN', align: 'right' },
  { header: 'NETNS', align: 'left' },
  { header: 'END', align: 'left' },
  { header: 'LOCAL', align: 'left' },
  { header: 'REMOTE', align: 'left' },
  { header: 'FAMILY', align: 'left' },
  { header: 'STATE', align: 'left' },
  { header: 'COOKIE', align: 'right' },
  { header: 'PROCESS', align: 'left' },
];

export function formatConnections(list: readonly ConnectionDetails[]): string {
  const rows: string[][] = [];
  list.forEach((conn, i) => {
    const ends = conn.b ? [conn.a, conn.b] : [conn.a];
    ends.forEach((s, j) => {
      rows.push([
        j === 0 ? String(i + 1) : '',
        conn.netns ? (j === 0 ? netnsLabel(conn.netns) : '') : s.netns ? netnsLabel(s.netns) : '?',
        s.role ?? '?',
        s.local,
        s.remote,
        familyText(s),
        s.state ?? '?',
        String(s.cookie),
        processText(s),
      ]);
    });
    if (!conn.b) rows.push(['', '', '', '(peer not in the map)', '', '', '', '', '']);
  });
  return renderTextTable(COLUMNS, rows);
}

export const connectionsCommand: Command = {
  name: 'connections',
  summary: 'list accelerated connections: both ends, family, netns, socket cookies, owning processes',
  usage: `sockbypass connections [--pin-dir DIR] [--json]
  One block per connection, one row per end (client first): local and remote
  address:port, the socket's real family (inet6 (v4-mapped) for a dual-stack
  socket talking IPv4), TCP state, socket cookie and the owning process
  (command/pid fd N), with the network namespace (cookie, and its /run/netns
  name or "current" for this process's own). Owners and families come from
  sock_diag in this namespace, the ones named under /run/netns, and those of
  running processes; needs root.`,
  options: { ...COMMON },
  run(values, _pos, out) {
    const pinDir = str(values, 'pin-dir') ?? DEFAULT_PIN_DIR;
    const list = connections({ pinDir });
    if (out.json) {
      out.write(toJson({ pinDir, connections: list }, 2) + '\n');
      return 0;
    }
    out.write(`${list.length} accelerated connection(s) (${pinDir})\n`);
    if (list.length > 0) out.write(formatConnections(list));
    return 0;
  },
};
