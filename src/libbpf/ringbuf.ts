/**
 * A BPF ring buffer (BPF_MAP_TYPE_RINGBUF) read through libbpf's
 * ring_buffer__new/ring_buffer__consume. Node's event loop never blocks:
 * records are drained with ring_buffer__consume (it never waits) on a timer,
 * or whenever the owner calls consume(). Each record reaches the handler as
 * a Buffer copy of its bytes, so it stays valid after the callback returns.
 *
 * A BPF ring buffer has ONE consumer position, shared by everyone who maps
 * it: two readers of the same map race for the records (each record reaches
 * one of them, or both).
 */
import { fn, koffi, RingBufferSampleFn, errno } from './ffi.js';
import type { IKoffiRegisteredCallback } from 'koffi';
import { bpfError } from './errors.js';
import type { BpfMap } from './map.js';

const MAP_TYPE_RINGBUF = 27;

export type RecordHandler = (record: Buffer) => void;

export interface RingBufferOptions {
  /** Milliseconds between drains on a timer; 0 means no timer (call consume() yourself). Default 50. */
  intervalMs?: number;
  /** Errors thrown by the handler or by libbpf during a timer drain. Default: rethrown (uncaught). */
  onError?: (err: unknown) => void;
}

export class RingBuffer {
  private rb: unknown;
  private callback: IKoffiRegisteredCallback | undefined;
  private timer: NodeJS.Timeout | undefined;
  private handlerErrors: unknown[] = [];
  private closed = false;

  private constructor(
    private readonly map: BpfMap,
    private readonly onRecord: RecordHandler,
    options: RingBufferOptions,
  ) {
    if (map.info.type !== MAP_TYPE_RINGBUF) {
      throw new TypeError(`map ${map.name} is not a ring buffer (map type ${map.info.type})`);
    }
    this.callback = koffi.register(
      (_ctx: unknown, data: unknown, size: number | bigint): number => this.onSample(data, Number(size)),
      koffi.pointer(RingBufferSampleFn),
    );
    const rb = fn.ring_buffer__new(map.fd, this.callback, null, null);
    if (!rb) {
      koffi.unregister(this.callback);
      this.callback = undefined;
      throw bpfError(`open ring buffer ${map.name}`, errno() || 22);
    }
    this.rb = rb;
    const intervalMs = options.intervalMs ?? 50;
    if (intervalMs > 0) {
      this.timer = setInterval(() => {
        try {
          this.consume();
        } catch (err) {
          if (options.onError) options.onError(err);
          else throw err;
        }
      }, intervalMs);
    }
  }

  /** Read `map` (borrowed: the caller keeps it open until close()). */
  static fromMap(map: BpfMap, onRecord: RecordHandler, options: RingBufferOptions = {}): RingBuffer {
    return new RingBuffer(map, onRecord, options);
  }

  private onSample(data: unknown, size: number): number {
    try {
      // koffi.view maps the record in place; Buffer.from copies it out of the ring.
      const record = Buffer.from(new Uint8Array(koffi.view(data, size)));
      this.onRecord(record);
    } catch (err) {
      this.handlerErrors.push(err);
    }
    return 0; // keep draining: a failing handler must not wedge the ring
  }

  /**
   * Drain every record available now, without waiting. Returns how many
   * were consumed; throws the first error a handler threw meanwhile.
   */
  consume(): number {
    if (this.closed) return 0;
    const n = fn.ring_buffer__consume(this.rb) as number;
    const errors = this.handlerErrors;
    this.handlerErrors = [];
    if (errors.length > 0) throw errors[0];
    if (n < 0) throw bpfError(`consume ring buffer ${this.map.name}`, n);
    return n;
  }

  /** Stop the timer and free libbpf's ring buffer and the callback; the map stays the caller's. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    fn.ring_buffer__free(this.rb);
    this.rb = null;
    if (this.callback) koffi.unregister(this.callback);
    this.callback = undefined;
  }
}
