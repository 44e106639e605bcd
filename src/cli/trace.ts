import { formatEndpoint, parseAddress } from '../core/address.js';
import { eventDate, EventResolver, watchEvents, type EventContext } from '../observe/events.js';
import type { SockEvent } from '../core/layout.js';
import { DEFAULT_PIN_DIR } from '../os/bpffs.js';
import { pinState } from '../core/pins.js';
import { COMMON, str, toJson, type Command } from './command.js';
import { stopSignal, timeOfDay } from './live.js';

function endpoint(address: string, port: number): string {
  return formatEndpoint(parseAddress(address), port);
}

function netnsText(cookie: bigint, ctx: EventContext): string {
  const name = ctx.netnsName ?? (ctx.currentNetns ? 'current' : undefined);
  return name ? `netns ${cookie} (${name})` : `netns ${cookie}`;
}

/** One human-readable line for an event. */
export function formatEventLine(event: SockEvent, ctx: EventContext = {}, date = eventDate(event)): string {
  const owner = ctx.processes?.[0];
  const who = owner ? `${owner.command}/${owner.pid}` : '-';
  const parts = [
    timeOfDay(date),
    event.type.padEnd(19),
    who.padEnd(20),
    `${endpoint(event.key.localAddress, event.key.localPort)} → ${endpoint(event.key.remoteAddress, event.key.remotePort)}`,
    event.family,
    netnsText(event.key.netnsCookie, ctx),
    `cookie ${event.socketCookie}`,
  ];
  if (event.error) parts.push(`error ${event.error}`);
  return parts.join('  ');
}

/** The JSON object of an event (bigints become strings when serialised with toJson). */
export function eventJson(event: SockEvent, ctx: EventContext = {}, date = eventDate(event)): Record<string, unknown> {
  const owner = ctx.processes?.[0];
  return {
    time: date.toISOString(),
    timestampNs: event.timestampNs,
    event: event.type,
    family: event.family,
    source: endpoint(event.key.localAddress, event.key.localPort),
    destination: endpoint(event.key.remoteAddress, event.key.remotePort),
    localAddress: event.key.localAddress,
    localPort: event.key.localPort,
    remoteAddress: event.key.remoteAddress,
    remotePort: event.key.remotePort,
    netnsCookie: event.key.netnsCookie,
    handshake: event.key.handshake,
    netns: ctx.netnsName ?? null,
    currentNetns: ctx.currentNetns ?? null,
    socketCookie: event.socketCookie,
    error: event.error,
    pid: owner?.pid ?? null,
    command: owner?.command ?? null,
    processes: ctx.processes ?? [],
  };
}

export function formatLostLine(count: number, total: number, date = new Date()): string {
  return `${timeOfDay(date)}  LOST ${count} event(s): the ring buffer was full (${total} lost since load)`;
}

export function lostJson(count: number, total: number, date = new Date()): Record<string, unknown> {
  return { time: date.toISOString(), event: 'lost', count, total };
}

/** Print events (and lost-event notices) as lines or JSON lines through `write`. */
export function eventPrinter(
  write: (s: string) => void,
  options: { json: boolean; owners: boolean },
): { onEvent: (e: SockEvent) => void; onLost: (count: number, total: number) => void } {
  const resolver = new EventResolver({ owners: options.owners });
  return {
    onEvent(event) {
      const ctx = resolver.resolve(event);
      write((options.json ? toJson(eventJson(event, ctx)) : formatEventLine(event, ctx)) + '\n');
    },
    onLost(count, total) {
      write((options.json ? toJson(lostJson(count, total)) : formatLostLine(count, total)) + '\n');
    },
  };
}

export const traceCommand: Command = {
  name: 'trace',
  summary: "stream the data plane's events (accelerated, refused, skipped as short, closed) until Ctrl-C",
  usage: `sockbypass trace [--pin-dir DIR] [--json] [--no-owners] [--backlog]
  Prints one line per event: time, event, command/pid, local → remote, family,
  network namespace (cookie and name), socket cookie; and a LOST line when the
  ring buffer overflowed. Stops cleanly (exit 0) on Ctrl-C or SIGTERM.
  --json       one JSON object per line (64-bit values as strings)
  --no-owners  do not look up owning processes (no sock_diag / /proc scans)
  --backlog    also print events still queued from before trace started
  Only one reader should consume the ring buffer at a time (trace, or run --log-events).`,
  options: { ...COMMON, 'no-owners': { type: 'boolean' }, backlog: { type: 'boolean' } },
  async run(values, _pos, out) {
    const printer = eventPrinter(out.write, { json: out.json, owners: values['no-owners'] !== true });
    let failure: unknown;
    const signal = stopSignal();
    let watch;
    try {
      watch = watchEvents(str(values, 'pin-dir'), printer.onEvent, {
        onLost: printer.onLost,
        backlog: values.backlog === true,
        onError(err) {
          failure = err;
          signal.stop('error');
        },
      });
    } catch (err) {
      signal.dispose();
      throw err;
    }
    // On stderr in both modes, so stdout stays one event per line; it also tells a caller that trace is ready.
    process.stderr.write('tracing sockbypass events; Ctrl-C to stop\n');
    // Our open maps outlive an unload, but no event would ever come again: stop then.
    const pinDir = str(values, 'pin-dir') ?? DEFAULT_PIN_DIR;
    const unloaded = setInterval(() => {
      if (pinState(pinDir) !== 'complete') signal.stop('unloaded');
    }, 1000);
    const why = await signal.stopped;
    clearInterval(unloaded);
    if (why === 'unloaded') process.stderr.write(`sockbypass was unloaded from ${pinDir}; trace stops\n`);
    try {
      watch.close();
    } catch (err) {
      failure ??= err;
    }
    if (failure) throw failure;
    return 0;
  },
};
