/**
 * The 16-byte address form of the data plane: IPv6 as is, IPv4 as the
 * IPv4-mapped IPv6 address ::ffff:a.b.c.d. Text forms: dotted quad for
 * IPv4-mapped, RFC 5952 compressed form for the rest.
 */
import { isIPv4, isIPv6 } from 'node:net';

const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

export function isMapped(addr: Buffer): boolean {
  return addr.length === 16 && addr.subarray(0, 12).equals(MAPPED_PREFIX);
}

/** Parse an IPv4 or IPv6 address into the 16-byte form. */
export function parseAddress(text: string): Buffer {
  if (isIPv4(text)) {
    return Buffer.concat([MAPPED_PREFIX, Buffer.from(text.split('.').map(Number))]);
  }
  if (!isIPv6(text)) throw new TypeError(`not an IP address: ${JSON.stringify(text)}`);
  let tail4: Buffer | undefined;
  let body = text;
  const v4 = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    tail4 = Buffer.from(v4[1].split('.').map(Number));
    body = text.slice(0, v4.index + 1) + '0:0';
  }
  const [head = '', rest] = body.split('::');
  const headGroups = head ? head.split(':') : [];
  const restGroups = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const missing = 8 - headGroups.length - restGroups.length;
  const groups = rest === undefined ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...restGroups];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    out.writeUInt16BE(parseInt(g, 16), i * 2);
  });
  if (tail4) tail4.copy(out, 12);
  return out;
}

/** Format a 16-byte address: dotted quad when IPv4-mapped. */
export function formatAddress(addr: Buffer): string {
  if (isMapped(addr)) return Array.from(addr.subarray(12)).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(addr.readUInt16BE(i));
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

/** "addr:port", with brackets for IPv6. */
export function formatEndpoint(addr: Buffer, port: number): string {
  const text = formatAddress(addr);
  return text.includes(':') ? `[${text}]:${port}` : `${text}:${port}`;
}

/** Parse "a.b.c.d/n" or "v6/n" into a 16-byte prefix and its length over 128 bits. */
export function parseRange(text: string): { addr: Buffer; prefixLength: number } {
  const [addrText = '', lenText] = text.split('/');
  const addr = parseAddress(addrText);
  const v4 = isIPv4(addrText);
  const max = v4 ? 32 : 128;
  const len = lenText === undefined ? max : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > max || (lenText !== undefined && !/^\d+$/.test(lenText))) {
    throw new TypeError(`bad prefix length in ${JSON.stringify(text)}: want 0..${max}`);
  }
  return { addr, prefixLength: v4 ? 96 + len : len };
}
